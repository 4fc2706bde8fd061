package hubspot_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

var numericID = regexp.MustCompile(`^[1-9][0-9]*$`)

func TestUpsertCreatesThenUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})

	r := e.upsert(t, byEmail(" Ada@Example.COM", map[string]any{"firstname": "Ada", "lifecyclestage": "lead"}))
	wantStatus(t, r, http.StatusOK)
	first := decode[batchResponse](t, r)
	if first.Status != "COMPLETE" || len(first.Results) != 1 || first.NumErrors != 0 || first.StartedAt == "" || first.CompletedAt == "" {
		t.Fatalf("response = %+v", first)
	}
	created := first.Results[0]
	if !numericID.MatchString(created.ID) || created.New == nil || !*created.New || created.Archived == nil || *created.Archived {
		t.Errorf("result id=%q new=%v archived=%v, want a numeric id, new true, archived false", created.ID, created.New, created.Archived)
	}
	if got := created.prop("email"); got != "ada@example.com" {
		t.Errorf("email = %q, want it trimmed and lower-cased", got)
	}
	if created.prop("firstname") != "Ada" || created.prop("hs_object_id") != created.ID || created.CreatedAt != "2026-03-02T09:00:00.000Z" {
		t.Errorf("result = %+v", created)
	}

	e.clk.Advance(time.Minute)
	r = e.upsert(t, byEmail("ADA@example.com", map[string]any{"firstname": "Augusta", "lifecyclestage": "customer"}))
	wantStatus(t, r, http.StatusOK)
	updated := decode[batchResponse](t, r).Results[0]
	if updated.ID != created.ID || updated.New == nil || *updated.New {
		t.Errorf("second upsert id=%q new=%v, want id %s and new false", updated.ID, updated.New, created.ID)
	}
	if updated.CreatedAt != created.CreatedAt || updated.UpdatedAt != "2026-03-02T09:01:00.000Z" {
		t.Errorf("createdAt %s updatedAt %s, want createdAt kept and updatedAt a minute later", updated.CreatedAt, updated.UpdatedAt)
	}

	all := e.srv.Contacts()
	if len(all) != 1 {
		t.Fatalf("%d contacts, want 1", len(all))
	}
	c, ok := e.srv.ContactByEmail("  ada@EXAMPLE.com")
	if !ok || c.ID != created.ID {
		t.Fatalf("ContactByEmail = %+v, %v", c, ok)
	}
	want := map[string]string{"email": "ada@example.com", "firstname": "Augusta", "lifecyclestage": "customer",
		"hs_object_id": created.ID, "createdate": "2026-03-02T09:00:00.000Z", "lastmodifieddate": "2026-03-02T09:01:00.000Z"}
	if fmt.Sprint(c.Properties) != fmt.Sprint(want) {
		t.Errorf("stored properties\n got %v\nwant %v", c.Properties, want)
	}
	if !c.CreatedAt.Equal(t0) || !c.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("CreatedAt %v UpdatedAt %v", c.CreatedAt, c.UpdatedAt)
	}
}

func TestUpsertPartialFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	in2 := byEmail("not-an-email", map[string]any{"firstname": "Bob"})
	in2.TraceID = "trace-2"
	r := e.upsert(t,
		byEmail("ada@example.com", map[string]any{"firstname": "Ada"}),
		in2,
		byEmail("cy@example.com", map[string]any{"favourite_colour": "teal"}),
		byEmail("dee@example.com", nil),
	)
	wantStatus(t, r, http.StatusMultiStatus)
	got := decode[batchResponse](t, r)
	if got.Status != "COMPLETE" || got.NumErrors != 2 || len(got.Errors) != 2 || len(got.Results) != 2 {
		t.Fatalf("response = %+v", got)
	}
	wantErrs := []struct {
		id, traceID, code, name string
	}{
		{"not-an-email", "trace-2", "INVALID_EMAIL", "email"},
		{"cy@example.com", "", "PROPERTY_DOESNT_EXIST", "favourite_colour"},
	}
	for i, w := range wantErrs {
		ge := got.Errors[i]
		if ge.Status != "error" || ge.Category != "VALIDATION_ERROR" || !strings.HasPrefix(ge.Message, "Property values were not valid: [") {
			t.Errorf("errors[%d] = %+v", i, ge)
		}
		if len(ge.Errors) != 1 || ge.Errors[0].Code != w.code || ge.Errors[0].Context["propertyName"][0] != w.name {
			t.Errorf("errors[%d].errors = %+v, want %s on %s", i, ge.Errors, w.code, w.name)
		}
		if ids := ge.Context["ids"]; len(ids) != 1 || ids[0] != w.id {
			t.Errorf("errors[%d].context.ids = %v, want [%s]", i, ids, w.id)
		}
		if tr := ge.Context["objectWriteTraceId"]; (w.traceID == "") != (len(tr) == 0) || (len(tr) > 0 && tr[0] != w.traceID) {
			t.Errorf("errors[%d].context.objectWriteTraceId = %v, want %q", i, tr, w.traceID)
		}
	}
	if !strings.Contains(got.Errors[1].Message, `\"error\":\"PROPERTY_DOESNT_EXIST\"`) &&
		!strings.Contains(got.Errors[1].Message, `"error":"PROPERTY_DOESNT_EXIST"`) {
		t.Errorf("message does not embed the validation result: %s", got.Errors[1].Message)
	}

	var emails []string
	for _, c := range e.srv.Contacts() {
		emails = append(emails, c.Properties["email"])
	}
	if fmt.Sprint(emails) != "[ada@example.com dee@example.com]" {
		t.Errorf("stored %v, want only the two valid inputs applied", emails)
	}
}

func TestUpsertValueValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		input    in
		wantCode string
		wantMsg  string // substring of errors[0].errors[0].message
	}{
		{"unknown property", byEmail("a@example.com", map[string]any{"favourite_colour": "teal"}),
			"PROPERTY_DOESNT_EXIST", `Property "favourite_colour" does not exist`},
		{"invalid email id", byEmail("ada@", nil), "INVALID_EMAIL", "Email address ada@ is invalid"},
		{"empty email id", byEmail("", nil), "INVALID_EMAIL", "is invalid"},
		{"quoted local part", byEmail(`"ada lovelace"@example.com`, nil), "INVALID_EMAIL", "is invalid"},
		{"reserved TLD", byEmail("ada@example.test", nil), "INVALID_EMAIL", "is invalid"},
		{"numeric TLD", byEmail("ada@example.c0m", nil), "INVALID_EMAIL", "is invalid"},
		{"display name", byEmail("Ada <ada@example.com>", nil), "INVALID_EMAIL", "is invalid"},
		{"enum value not an option", byEmail("a@example.com", map[string]any{"lifecyclestage": "champion"}),
			"INVALID_OPTION", "champion was not one of the allowed options: [subscriber, lead,"},
		{"number not a number", byEmail("a@example.com", map[string]any{"mrr": "12 euros"}),
			"INVALID_INTEGER", "mrr was not a valid number"},
		{"checkbox with a bad option", byEmail("a@example.com", map[string]any{"features": "sso;fax"}),
			"INVALID_OPTION", "fax was not one of the allowed options"},
		{"bool", byEmail("a@example.com", map[string]any{"trialing": "maybe"}), "INVALID_BOOLEAN", "trialing"},
		{"date not at midnight", byEmail("a@example.com", map[string]any{"renewal_date": 1772442000000}),
			"INVALID_DATE", "midnight"},
		{"read-only property", byEmail("a@example.com", map[string]any{"hs_object_id": "1"}), "READ_ONLY_VALUE", "read only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, hubspot.Options{})
			seedNumberProperty(t, e.srv, "mrr", false)
			mustNoErr(t, e.srv.SeedProperty(hubspot.Property{Name: "features", Label: "Features", Type: "enumeration",
				FieldType: "checkbox", GroupName: "contactinformation",
				Options: []hubspot.Option{{Label: "SSO", Value: "sso"}, {Label: "API", Value: "api"}}}))
			mustNoErr(t, e.srv.SeedProperty(hubspot.Property{Name: "trialing", Label: "Trialing", Type: "bool",
				FieldType: "booleancheckbox", GroupName: "contactinformation"}))
			mustNoErr(t, e.srv.SeedProperty(hubspot.Property{Name: "renewal_date", Label: "Renewal", Type: "date",
				FieldType: "date", GroupName: "contactinformation"}))

			r := e.upsert(t, tt.input)
			wantStatus(t, r, http.StatusMultiStatus)
			got := decode[batchResponse](t, r)
			if got.NumErrors != 1 || len(got.Errors) != 1 || len(got.Results) != 0 {
				t.Fatalf("response = %+v", got)
			}
			ge := got.Errors[0]
			if ge.Category != "VALIDATION_ERROR" || len(ge.Errors) != 1 || ge.Errors[0].Code != tt.wantCode ||
				!strings.Contains(ge.Errors[0].Message, tt.wantMsg) {
				t.Errorf("error = %+v\nwant VALIDATION_ERROR %s with %q", ge, tt.wantCode, tt.wantMsg)
			}
			if n := len(e.srv.Contacts()); n != 0 {
				t.Errorf("%d contacts stored from an invalid input", n)
			}
		})
	}
}

func TestUpsertNormalizesValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	seedNumberProperty(t, e.srv, "mrr", false)
	mustNoErr(t, e.srv.SeedProperty(hubspot.Property{Name: "renewal_date", Label: "Renewal", Type: "date",
		FieldType: "date", GroupName: "contactinformation"}))
	mustNoErr(t, e.srv.SeedProperty(hubspot.Property{Name: "paid_at", Label: "Paid at", Type: "datetime",
		FieldType: "date", GroupName: "contactinformation"}))

	wantStatus(t, e.upsert(t, byEmail("ada@example.com", map[string]any{
		"firstname":      "Ada",
		"lastname":       "Lovelace",
		"lifecyclestage": "Customer",    // an option's label: stored as its value
		"mrr":            4900,          // JSON number
		"renewal_date":   1772409600000, // 2026-03-02 at midnight UTC, epoch ms
		"paid_at":        "2026-03-02T10:15:00+01:00",
	})), http.StatusOK)
	c, _ := e.srv.ContactByEmail("ada@example.com")
	for name, want := range map[string]string{"lifecyclestage": "customer", "mrr": "4900",
		"renewal_date": "2026-03-02", "paid_at": "2026-03-02T09:15:00.000Z"} {
		if got := c.Properties[name]; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	r := e.upsert(t, byEmail("ada@example.com", map[string]any{"lastname": "", "firstname": nil}))
	wantStatus(t, r, http.StatusOK)
	res := decode[batchResponse](t, r).Results[0]
	if res.prop("lastname") != "" || res.prop("firstname") != "" {
		t.Errorf("cleared values said back as %q, %q, want empty strings", res.prop("lastname"), res.prop("firstname"))
	}
	c, _ = e.srv.ContactByEmail("ada@example.com")
	if _, has := c.Properties["lastname"]; has {
		t.Errorf("lastname still stored after clearing: %v", c.Properties)
	}
	if _, has := c.Properties["firstname"]; has {
		t.Errorf("firstname still stored after null: %v", c.Properties)
	}
}

func TestUpsertBatchSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	inputs := make([]in, hubspot.MaxBatchInputs+1)
	for i := range inputs {
		inputs[i] = byEmail(fmt.Sprintf("user%03d@example.com", i), nil)
	}
	got := decodeError(t, e.upsert(t, inputs...), http.StatusBadRequest, "VALIDATION_ERROR")
	if !strings.Contains(got.Message, "101") {
		t.Errorf("message %q does not say how many inputs were sent", got.Message)
	}
	if n := len(e.srv.Contacts()); n != 0 {
		t.Fatalf("%d contacts written by a refused batch", n)
	}
	r := e.upsert(t, inputs[:hubspot.MaxBatchInputs]...)
	wantStatus(t, r, http.StatusOK)
	if n := len(decode[batchResponse](t, r).Results); n != hubspot.MaxBatchInputs {
		t.Errorf("%d results, want %d", n, hubspot.MaxBatchInputs)
	}
}

func TestUpsertWholeBatchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    any
		wantMsg string
	}{
		{"duplicate emails differing in case", map[string]any{"inputs": []in{byEmail("ada@example.com", nil),
			byEmail("bob@example.com", nil), byEmail("ADA@example.com", nil)}}, "Duplicate IDs found in batch input: [ADA@example.com]"},
		{"idProperty does not exist", map[string]any{"inputs": []in{{IDProperty: "stripe_id", ID: "cus_1",
			Properties: map[string]any{}}}}, "stripe_id does not exist"},
		{"idProperty not unique (default)", map[string]any{"inputs": []in{{IDProperty: "firstname", ID: "Ada",
			Properties: map[string]any{}}}}, "non-unique 0-1 property firstname"},
		{"idProperty not unique (custom)", map[string]any{"inputs": []in{{IDProperty: "plan", ID: "pro",
			Properties: map[string]any{}}}}, "non-unique 0-1 property plan"},
		{"record id is not an upsert key", map[string]any{"inputs": []in{{IDProperty: "hs_object_id", ID: "1",
			Properties: map[string]any{}}}}, "non-unique 0-1 property hs_object_id"},
		{"no inputs field", map[string]any{"input": []in{byEmail("ada@example.com", nil)}}, "Invalid input JSON"},
		{"missing inputs", map[string]any{}, "some of required attributes are not set [inputs]"},
		{"missing properties", `{"inputs":[{"idProperty":"email","id":"ada@example.com"}]}`, "not set [properties]"},
		{"missing idProperty", `{"inputs":[{"id":"ada@example.com","properties":{}}]}`, "idProperty"},
		{"object as a value", `{"inputs":[{"idProperty":"email","id":"ada@example.com","properties":{"firstname":{"x":1}}}]}`,
			"firstname must be a string, number or boolean"},
		{"not JSON", `{"inputs":[`, "Invalid input JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, hubspot.Options{})
			seedTextProperty(t, e.srv, "plan", false)
			r := e.do(t, http.MethodPost, "/crm/v3/objects/contacts/batch/upsert", token, tt.body)
			got := decodeError(t, r, http.StatusBadRequest, "VALIDATION_ERROR")
			if !strings.Contains(got.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", got.Message, tt.wantMsg)
			}
			if n := len(e.srv.Contacts()); n != 0 {
				t.Errorf("%d contacts written by a refused batch", n)
			}
		})
	}
}

func TestUpsertByCustomUniqueProperty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	seedTextProperty(t, e.srv, "switchyard_customer_id", true)
	byCustomer := func(id string, props map[string]any) in {
		return in{IDProperty: "switchyard_customer_id", ID: id, Properties: props}
	}

	r := e.upsert(t, byCustomer("cust_1", map[string]any{"email": "Ada@Example.com", "firstname": "Ada"}))
	wantStatus(t, r, http.StatusOK)
	created := decode[batchResponse](t, r).Results[0]
	if !*created.New || created.prop("switchyard_customer_id") != "cust_1" || created.prop("email") != "ada@example.com" {
		t.Fatalf("created = %+v", created)
	}

	// Same key, new email: the same contact changes address.
	r = e.upsert(t, byCustomer("cust_1", map[string]any{"email": "ada@lovelace.example.org"}))
	wantStatus(t, r, http.StatusOK)
	if got := decode[batchResponse](t, r).Results[0]; got.ID != created.ID || *got.New {
		t.Errorf("update by custom key: id %s new %v, want %s and false", got.ID, *got.New, created.ID)
	}
	if _, ok := e.srv.ContactByEmail("ada@example.com"); ok {
		t.Errorf("old email still finds the contact")
	}
	if c, ok := e.srv.ContactByEmail("ada@lovelace.example.org"); !ok || c.ID != created.ID {
		t.Errorf("new email does not find the contact")
	}

	// Upserting by email still reaches the contact created by the custom key.
	r = e.upsert(t, byEmail("ada@lovelace.example.org", map[string]any{"lastname": "Lovelace"}))
	wantStatus(t, r, http.StatusOK)
	if got := decode[batchResponse](t, r).Results[0]; got.ID != created.ID {
		t.Errorf("upsert by email made contact %s, want %s", got.ID, created.ID)
	}

	// Another key cannot take an email or a unique value already held.
	other := in{IDProperty: "email", ID: "bob@example.com", Properties: map[string]any{"switchyard_customer_id": "cust_1"}}
	r = e.upsert(t, byCustomer("cust_2", map[string]any{"email": "ADA@lovelace.example.org"}), other)
	wantStatus(t, r, http.StatusMultiStatus)
	got := decode[batchResponse](t, r)
	if got.NumErrors != 2 {
		t.Fatalf("response = %+v", got)
	}
	if e0 := got.Errors[0]; e0.Category != "CONFLICT" || e0.Message != "Contact already exists. Existing ID: "+created.ID {
		t.Errorf("email conflict = %+v", e0)
	}
	if e1 := got.Errors[1]; e1.Category != "CONFLICT" || !strings.Contains(e1.Message, "Existing ID: "+created.ID) {
		t.Errorf("unique value conflict = %+v", e1)
	}
	if n := len(e.srv.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
}

func TestUpsertIsAtomicUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	batch := make([]in, 20)
	for i := range batch {
		batch[i] = byEmail(fmt.Sprintf("User%02d@Example.com", i), map[string]any{"firstname": fmt.Sprint("User ", i)})
	}
	const senders = 8
	results := make([]batchResponse, senders)
	statuses := make([]int, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			r := e.upsert(t, batch...)
			statuses[i] = r.status
			results[i] = decode[batchResponse](t, r)
		})
	}
	wg.Wait()

	if n := len(e.srv.Contacts()); n != len(batch) {
		t.Fatalf("%d contacts after %d concurrent identical batches, want %d", n, senders, len(batch))
	}
	ids := map[string]string{}
	newCount := map[string]int{}
	for i, res := range results {
		if statuses[i] != http.StatusOK || len(res.Results) != len(batch) {
			t.Fatalf("sender %d: status %d, %d results", i, statuses[i], len(res.Results))
		}
		for _, o := range res.Results {
			email := o.prop("email")
			if prev, ok := ids[email]; ok && prev != o.ID {
				t.Errorf("%s answered as %s and %s", email, prev, o.ID)
			}
			ids[email] = o.ID
			if *o.New {
				newCount[email]++
			}
		}
	}
	for email, n := range newCount {
		if n != 1 {
			t.Errorf("%s reported new %d times, want once", email, n)
		}
	}
}

func TestMultiStatusNeedsTraceIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{MultiStatusNeedsTraceIDs: true})

	// Without trace ids one bad input fails the batch and nothing is written.
	r := e.upsert(t, byEmail("ada@example.com", nil), byEmail("bob@", nil))
	got := decodeError(t, r, http.StatusBadRequest, "VALIDATION_ERROR")
	if len(got.Errors) != 1 || got.Errors[0].Code != "INVALID_EMAIL" {
		t.Errorf("errors = %+v", got.Errors)
	}
	if n := len(e.srv.Contacts()); n != 0 {
		t.Fatalf("%d contacts written by an all-or-nothing batch that failed", n)
	}

	// With a trace id on every input, failures are reported per input.
	a, b := byEmail("ada@example.com", nil), byEmail("bob@", nil)
	a.TraceID, b.TraceID = "t-a", "t-b"
	r = e.upsert(t, a, b)
	wantStatus(t, r, http.StatusMultiStatus)
	res := decode[batchResponse](t, r)
	if len(res.Results) != 1 || res.Errors[0].Context["objectWriteTraceId"][0] != "t-b" {
		t.Errorf("response = %+v", res)
	}
	if n := len(e.srv.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
}

// An all-or-nothing batch that fails takes back what its earlier inputs
// did to existing contacts too — a changed property, a contact created —
// and the next contact created gets the id the taken-back one had.
func TestAllOrNothingBatchTakesBackUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{MultiStatusNeedsTraceIDs: true})
	wantStatus(t, e.upsert(t, byEmail("cy@example.com", map[string]any{"firstname": "Cy"})), http.StatusOK)
	before := e.srv.Contacts()

	r := e.upsert(t, byEmail("cy@example.com", map[string]any{"firstname": "Changed"}), byEmail("ada@example.com", nil), byEmail("bob@", nil))
	decodeError(t, r, http.StatusBadRequest, "VALIDATION_ERROR")
	after := e.srv.Contacts()
	if len(after) != 1 || after[0].Properties["firstname"] != "Cy" || !after[0].UpdatedAt.Equal(before[0].UpdatedAt) {
		t.Fatalf("after a failed batch: %+v, want only cy unchanged (%+v)", after, before)
	}
	if c, ok := e.srv.ContactByEmail("cy@example.com"); !ok || c.ID != before[0].ID {
		t.Errorf("cy@example.com no longer finds contact %s", before[0].ID)
	}
	if _, ok := e.srv.ContactByEmail("ada@example.com"); ok {
		t.Error("the taken-back contact is still found by its email")
	}
	r = e.upsert(t, byEmail("dee@example.com", nil))
	wantStatus(t, r, http.StatusOK)
	res := decode[batchResponse](t, r)
	if len(res.Results) != 1 || res.Results[0].ID != fmt.Sprint(mustInt(t, before[0].ID)+1) {
		t.Errorf("next contact %+v, want id %d", res.Results, mustInt(t, before[0].ID)+1)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
