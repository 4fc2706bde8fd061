package projector_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/ops"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
)

// httpMethods are the keys of an OpenAPI path item that are operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := openAPIMap(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}

	// The route table the mux serves (ops.Routes) is what the document
	// must describe.
	scopes := map[string]string{} // route → scope ("" for no auth)
	var apiRoutes []string
	for _, r := range ops.Routes() {
		if r.InOpenAPI() {
			apiRoutes = append(apiRoutes, r.Pattern)
			scopes[r.Pattern] = r.Scope
		}
	}
	if len(apiRoutes) == 0 {
		t.Fatal("the route table has no status API routes")
	}

	paths, _ := doc["paths"].(map[string]any)
	var documented []string
	for path, item := range paths {
		for _, method := range httpMethods {
			if _, ok := item.(map[string]any)[method]; ok {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	if !sameSet(documented, apiRoutes) {
		t.Fatalf("openapi.json documents %q; the route table serves %q", sorted(documented), sorted(apiRoutes))
	}

	for _, route := range apiRoutes {
		method, path, _ := strings.Cut(route, " ")
		item := paths[path].(map[string]any)
		op := item[strings.ToLower(method)].(map[string]any)

		// The security requirement names the scope api.go checks.
		sec, ok := op["security"].([]any)
		if !ok {
			t.Errorf("%s: no security requirement (use [] for none)", route)
		}
		var want []any
		if scopes[route] != "" {
			want = []any{map[string]any{"opsToken": []any{scopes[route]}}}
		}
		if len(sec) != len(want) || len(want) > 0 && !reflect.DeepEqual(sec, want) {
			t.Errorf("%s: security = %v; the route table wants scope %q, i.e. %v", route, sec, scopes[route], want)
		}
		if scopes[route] != "" && !strings.Contains(fmt.Sprint(op["description"]), "Required scope: `"+scopes[route]+"`") {
			t.Errorf("%s: description does not say \"Required scope: `%s`\"", route, scopes[route])
		}

		// Every authenticated route can answer what the auth wrapper answers.
		responses, _ := op["responses"].(map[string]any)
		if _, ok := responses["200"]; !ok {
			t.Errorf("%s: no 200 response", route)
		}
		if scopes[route] != "" {
			for _, code := range []string{"401", "403", "429", "500", "503"} {
				if _, ok := responses[code]; !ok {
					t.Errorf("%s: no %s response, which the auth wrapper or the error path can answer", route, code)
				}
			}
		}

		// Path parameters are declared.
		declared := map[string]bool{}
		for _, params := range []any{item["parameters"], op["parameters"]} {
			list, _ := params.([]any)
			for _, p := range list {
				p := resolveRef(t, doc, p)
				if p["in"] == "path" && p["required"] == true {
					declared[p["name"].(string)] = true
				}
			}
		}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %q is not declared as a required path parameter", route, m[1])
			}
		}

		// Every JSON response schema compiles (its $refs resolve).
		for code := range responses {
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", route, code)
				continue
			}
			if _, err := responseSchema(method, path, status); err != nil {
				t.Error(err)
			}
		}
	}
}

// The component schemas describe the Go types field for field: the same
// properties, required exactly when not omitempty, of matching JSON types;
// and every object schema refuses unknown properties.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := openAPIMap(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	goTypes := map[string]reflect.Type{
		"View":             reflect.TypeFor[view.View](),
		"SubscriptionView": reflect.TypeFor[view.SubscriptionView](),
		"Payment":          reflect.TypeFor[view.Payment](),
		"CRMStatus":        reflect.TypeFor[view.CRMStatus](),
		"Ticket":           reflect.TypeFor[view.Ticket](),
		"TimelinePage":     reflect.TypeFor[view.TimelinePage](),
		"TimelineEntry":    reflect.TypeFor[view.TimelineEntry](),
		"RebuildReport":    reflect.TypeFor[view.RebuildReport](),
		"Overview":         reflect.TypeFor[ops.Overview](),
		"ConsumerLag":      reflect.TypeFor[ops.ConsumerLag](),
		"Digest":           reflect.TypeFor[ops.Digest](),
		"ActionResult":     reflect.TypeFor[ops.ActionResult](),
		"UnlinkedPayer":    reflect.TypeFor[view.UnlinkedPayer](),
		"Candidate":        reflect.TypeFor[view.Candidate](),
		"LinkResult":       reflect.TypeFor[ops.LinkResult](),
	}
	for name, typ := range goTypes {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("components/schemas has no %s", name)
			continue
		}
		props, _ := s["properties"].(map[string]any)
		var fields, required []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "-" {
				continue
			}
			jsonName, opts, _ := strings.Cut(tag, ",")
			if jsonName == "" {
				jsonName = f.Name
			}
			fields = append(fields, jsonName)
			if !slices.Contains(strings.Split(opts, ","), "omitempty") {
				required = append(required, jsonName)
			}
			p, ok := props[jsonName].(map[string]any)
			if !ok {
				continue // reported below
			}
			wantType, wantFormat := jsonType(f.Type)
			if got := schemaType(t, doc, p); got != wantType {
				t.Errorf("%s.%s (Go %s): schema type %q, want %q", name, jsonName, f.Type, got, wantType)
			}
			if wantFormat != "" && p["format"] != wantFormat {
				t.Errorf("%s.%s (Go %s): format %v, want %q", name, jsonName, f.Type, p["format"], wantFormat)
			}
		}
		if !sameSet(keys(props), fields) {
			t.Errorf("%s: schema properties %q, Go JSON fields %q", name, sorted(keys(props)), sorted(fields))
		}
		var req []string
		for _, r := range anySlice(s["required"]) {
			req = append(req, r.(string))
		}
		if !sameSet(req, required) {
			t.Errorf("%s: schema requires %q; Go always emits (no omitempty) %q", name, sorted(req), sorted(required))
		}
	}

	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch v := v.(type) {
		case map[string]any:
			// A struct refuses unknown properties; a map names its values' schema.
			if _, isMap := v["additionalProperties"].(map[string]any); v["type"] == "object" && v["additionalProperties"] != false && !isMap {
				t.Errorf("%s: object schema without \"additionalProperties\": false (or a schema for a map's values)", ptr)
			}
			for k, c := range v {
				walk(ptr+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(ptr+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("#/components/schemas", schemas)
}

func TestOpenAPISchemasValidateSamples(t *testing.T) {
	sample := sampleView(t)
	// The sample exercises the interesting parts of the schema.
	if !strings.HasPrefix(sample.State, view.StatePaymentFailed) || sample.LastPayment == nil || sample.LastPayment.NextAttemptAt == nil ||
		sample.CRM.Status != "pending_retry" || len(sample.OpenTickets) != 1 || len(sample.Subscriptions) != 1 {
		t.Fatalf("sample view is not what the test wants: %+v", sample)
	}
	viewJSON := mustJSON(t, sample)
	validateResponse(t, "GET", "/v1/customers/{id}", 200, viewJSON)
	validateResponse(t, "GET", "/v1/customers/{id}", 200, mustJSON(t, view.Fold("cust_empty", nil)))
	validateResponse(t, "GET", "/v1/customers", 200, mustJSON(t, map[string]any{"customers": []json.RawMessage{viewJSON}}))
	validateResponse(t, "GET", "/v1/customers", 200, []byte(`{"customers": []}`+"\n"))

	at := time.Date(2025, 3, 7, 10, 0, 0, 123456789, time.UTC)
	page := view.TimelinePage{
		CustomerID: "cust_1",
		Entries: []view.TimelineEntry{{
			EventID: "ev_pay_1", At: at, Kind: "billing", Subject: subjects.BillingPaymentFailed,
			Summary: "Payment failed: 49.00 USD, attempt 1 (insufficient_funds); retry on 2025-03-10", Status: "failed",
			SourceEventIDs: []string{"evt_1QxYz"}, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CustomerID: "cust_1",
		}},
		Next: base64.RawURLEncoding.EncodeToString([]byte(at.Format(time.RFC3339Nano) + "|ev_pay_1")),
	}
	pageJSON := mustJSON(t, page)
	validateResponse(t, "GET", "/v1/customers/{id}/timeline", 200, pageJSON)
	validateResponse(t, "GET", "/v1/customers/{id}/timeline", 200, mustJSON(t, view.TimelinePage{CustomerID: "cust_1", Entries: []view.TimelineEntry{}}))

	rep := view.RebuildReport{Events: 1200, Duplicates: 3, Skipped: 1, Customers: 40, CaughtUp: 2, Seconds: 0.75, EventsPerSecond: 1608, LastSequences: map[string]uint64{}}
	for i, s := range view.Streams {
		rep.LastSequences[s] = uint64(i * 100)
	}
	validateResponse(t, "POST", "/v1/rebuild", 200, mustJSON(t, rep))

	validateResponse(t, "GET", "/v1/openapi.json", 200, ops.OpenAPI)
	for _, e := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/customers/{id}", 401, "unauthorized"},
		{"GET", "/v1/customers/{id}", 404, "not_found"},
		{"GET", "/v1/customers/{id}", 503, "not_configured"},
		{"GET", "/v1/customers", 400, "invalid"},
		{"GET", "/v1/customers/{id}/timeline", 400, "invalid"},
		{"POST", "/v1/rebuild", 403, "forbidden"},
		{"POST", "/v1/rebuild", 409, "conflict"},
		{"POST", "/v1/rebuild", 500, "internal"},
		{"POST", "/v1/rebuild", 501, "not_configured"},
	} {
		validateResponse(t, e.method, e.path, e.status, errorJSON(e.code, "something"))
	}

	// And the schema rejects what the API must not send.
	rejects := []struct {
		name, method, path string
		status             int
		body               []byte
	}{
		{"unknown field", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["bogus"] = 1 })},
		{"missing required field", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { delete(m, "states") })},
		{"null array", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["subscriptions"] = nil })},
		{"no states", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["states"] = []any{} })},
		{"unknown state", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["state"] = "payment failed — retry on soon" })},
		{"unknown crm status", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["crm"].(map[string]any)["status"] = "done" })},
		{"nested unknown field", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["last_payment"].(map[string]any)["bogus"] = true })},
		{"bad time", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) { m["last_event_at"] = "yesterday" })},
		{"failed ticket among open ones", "GET", "/v1/customers/{id}", 200, edit(t, viewJSON, func(m map[string]any) {
			m["open_tickets"].([]any)[0].(map[string]any)["status"] = "failed"
		})},
		{"unknown timeline kind", "GET", "/v1/customers/{id}/timeline", 200, edit(t, pageJSON, func(m map[string]any) {
			m["entries"].([]any)[0].(map[string]any)["kind"] = "stripe"
		})},
		{"bare view list", "GET", "/v1/customers", 200, []byte(`[]`)},
		{"unknown error code", "GET", "/v1/customers/{id}", 404, errorJSON("missing", "no customer with this id")},
		{"wrong error code for status", "GET", "/v1/customers/{id}", 404, errorJSON("invalid", "no customer with this id")},
		{"undocumented status", "GET", "/v1/customers", 404, errorJSON("not_found", "no customer with this id")},
		{"not JSON", "GET", "/v1/customers/{id}", 200, []byte("<html>")},
	}
	for _, r := range rejects {
		if err := checkResponse(r.method, r.path, r.status, r.body); err == nil {
			t.Errorf("%s: openapi.json accepts %s %s %d %s", r.name, r.method, r.path, r.status, r.body)
		}
	}
}

// Every view and timeline entry of generated lifecycles (every message
// type, merges, retries, failures) matches the document.
func TestOpenAPISchemasValidateGeneratedLifecycles(t *testing.T) {
	for seed := range uint64(40) {
		all := viewtest.Entries(t, lifegen.Generate(seed, 3))
		byOwner := map[string][]view.Entry{}
		for _, e := range all {
			owner := strings.TrimSuffix(e.CustomerID, "_dup")
			byOwner[owner] = append(byOwner[owner], e)
		}
		for owner, es := range byOwner {
			body := mustJSON(t, view.Fold(owner, es))
			if err := checkResponse("GET", "/v1/customers/{id}", 200, body); err != nil {
				t.Fatalf("seed %d, %s: %v", seed, owner, err)
			}
			page := view.TimelinePage{CustomerID: owner, Entries: []view.TimelineEntry{}}
			for _, e := range es {
				page.Entries = append(page.Entries, timelineEntry(e))
			}
			if err := checkResponse("GET", "/v1/customers/{id}/timeline", 200, mustJSON(t, page)); err != nil {
				t.Fatalf("seed %d, %s: %v", seed, owner, err)
			}
		}
	}
}

// validateResponse fails t unless body is a response openapi.json allows
// for status from the operation method pathTemplate (as written in the
// document, e.g. "/v1/customers/{id}").
func validateResponse(t *testing.T, method, pathTemplate string, status int, body []byte) {
	t.Helper()
	if err := checkResponse(method, pathTemplate, status, body); err != nil {
		t.Errorf("%v\nbody: %s", err, body)
	}
}

// checkResponse is validateResponse returning the mismatch.
func checkResponse(method, pathTemplate string, status int, body []byte) error {
	sch, err := responseSchema(method, pathTemplate, status)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s → %d: response is not JSON: %w", method, pathTemplate, status, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s %s → %d: response does not match openapi.json: %w", method, pathTemplate, status, err)
	}
	return nil
}

// openAPIURL names the document inside the schema compiler; nothing is
// fetched from it.
const openAPIURL = "https://switchyard.invalid/v1/openapi.json"

var schemaCache = struct {
	sync.Mutex
	doc      any
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
}{}

// responseSchema compiles the JSON schema of a documented response,
// following a response $ref to components/responses.
func responseSchema(method, pathTemplate string, status int) (*jsonschema.Schema, error) {
	schemaCache.Lock()
	defer schemaCache.Unlock()
	if schemaCache.compiler == nil {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(ops.OpenAPI))
		if err != nil {
			return nil, fmt.Errorf("openapi.json: %w", err)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's dialect
		c.AssertFormat()
		if err := c.AddResource(openAPIURL, doc); err != nil {
			return nil, err
		}
		schemaCache.doc, schemaCache.compiler, schemaCache.schemas = doc, c, map[string]*jsonschema.Schema{}
	}
	key := fmt.Sprint(method, " ", pathTemplate, " ", status)
	if s, ok := schemaCache.schemas[key]; ok {
		return s, nil
	}
	ptr := []string{"paths", pathTemplate, strings.ToLower(method), "responses", strconv.Itoa(status)}
	resp, ok := lookup(schemaCache.doc, ptr).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi.json documents no %d response for %s %s", status, method, pathTemplate)
	}
	if ref, ok := resp["$ref"].(string); ok {
		ptr = refPointer(ref)
		if _, ok := lookup(schemaCache.doc, ptr).(map[string]any); !ok {
			return nil, fmt.Errorf("%s %s %d: $ref %q resolves to nothing", method, pathTemplate, status, ref)
		}
	}
	ptr = append(ptr, "content", "application/json", "schema")
	if lookup(schemaCache.doc, ptr) == nil {
		return nil, fmt.Errorf("%s %s %d: no application/json schema", method, pathTemplate, status)
	}
	s, err := schemaCache.compiler.Compile(openAPIURL + "#" + fragment(ptr))
	if err != nil {
		return nil, fmt.Errorf("%s %s %d: %w", method, pathTemplate, status, err)
	}
	schemaCache.schemas[key] = s
	return s, nil
}

// fragment is a URL fragment holding the JSON pointer to tokens: each
// token escaped for JSON pointer (~ → ~0, / → ~1), then for a URL ({ }
// and the like percent-encoded).
func fragment(tokens []string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)))
	}
	return b.String()
}

// refPointer splits a local $ref ("#/components/...") into tokens.
func refPointer(ref string) []string {
	frag, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	toks := strings.Split(frag, "/")
	for i, tok := range toks {
		if u, err := url.PathUnescape(tok); err == nil {
			tok = u
		}
		toks[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
	}
	return toks
}

func lookup(v any, tokens []string) any {
	for _, tok := range tokens {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[tok]
	}
	return v
}

// resolveRef returns the object v or, for a {"$ref": ...}, its target.
func resolveRef(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		target, ok := lookup(doc, refPointer(ref)).(map[string]any)
		if !ok {
			t.Fatalf("$ref %q resolves to nothing", ref)
		}
		m = target
	}
	t.Fatal("$ref chain too long")
	return nil
}

// schemaType is the "type" of a property schema, following $ref.
func schemaType(t *testing.T, doc map[string]any, p map[string]any) string {
	t.Helper()
	typ, _ := resolveRef(t, doc, p)["type"].(string)
	return typ
}

// jsonType is how encoding/json writes a Go type: JSON Schema type and
// format.
func jsonType(t reflect.Type) (typ, format string) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "string", "date-time"
	}
	switch t.Kind() {
	case reflect.String:
		return "string", ""
	case reflect.Bool:
		return "boolean", ""
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer", ""
	case reflect.Float32, reflect.Float64:
		return "number", ""
	case reflect.Slice, reflect.Array:
		return "array", ""
	case reflect.Map, reflect.Struct:
		return "object", ""
	}
	return t.Kind().String(), ""
}

func openAPIMap(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(ops.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// sampleView folds a customer whose payment failed with a retry due, whose
// CRM update waits for a retry, and who got a support ticket.
func sampleView(t *testing.T) view.View {
	t0 := time.Date(2025, 3, 7, 10, 0, 0, 0, time.UTC)
	meta := func(id string, at time.Time) *billingv1.EventMeta {
		return &billingv1.EventMeta{EventId: id, CanonicalCustomerId: "cust_1", SourceEventIds: []string{"evt_stripe_" + id},
			OccurredAt: timestamppb.New(at), StripeCustomerId: "cus_PxY4Qm1Z2a3b4c", Email: "ada@example.com"}
	}
	msgs := []proto.Message{
		&billingv1.CustomerUpserted{Meta: meta("ev_cus_1", t0), Email: "ada@example.com", Name: "Ada Lovelace",
			StripeCustomerIds: []string{"cus_PxY4Qm1Z2a3b4c"}},
		&billingv1.SubscriptionStarted{Meta: meta("ev_sub_1", t0.Add(time.Minute)), Subscription: &billingv1.Subscription{
			SubscriptionId: "sub_1", Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE,
			Plan: &billingv1.Plan{PriceId: "price_pro_monthly", ProductId: "prod_pro", ProductName: "Pro", Quantity: 1, AmountPerInterval: 4900,
				Currency: "usd", Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: 4900},
			CurrentPeriodStart: timestamppb.New(t0), CurrentPeriodEnd: timestamppb.New(t0.AddDate(0, 1, 0)),
		}},
		&billingv1.PaymentFailed{Meta: meta("ev_pay_1", t0.Add(time.Hour)), InvoiceId: "in_1", SubscriptionId: "sub_1", Amount: 4900, Currency: "usd",
			AttemptCount: 1, NextPaymentAttempt: timestamppb.New(t0.Add(72 * time.Hour)), DeclineCode: "insufficient_funds"},
		&crmv1.ContactPendingRetry{EventId: "crm_1", CanonicalCustomerId: "cust_1", SourceEventId: "ev_pay_1",
			OccurredAt: timestamppb.New(t0.Add(time.Hour + time.Minute)), Attempt: 1, Provider: "hubspot",
			NextAttemptAt: timestamppb.New(t0.Add(time.Hour + 6*time.Minute)), ErrorClass: commonv1.ErrorClass_ERROR_CLASS_TRANSIENT, Reason: "HTTP 503"},
		&supportv1.TicketOpened{EventId: "sup_1", CanonicalCustomerId: "cust_1", SourceEventId: "ev_pay_1",
			OccurredAt: timestamppb.New(t0.Add(time.Hour + 2*time.Minute)), Rule: "payment_failed", TicketId: "4711",
			Priority: supportv1.Priority_PRIORITY_HIGH, Provider: "zendesk", Group: "Billing"},
	}
	header := nats.Header{"traceparent": []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	var es []view.Entry
	for _, m := range msgs {
		subject, err := subjects.Of(m)
		if err != nil {
			t.Fatal(err)
		}
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		e, err := view.NewEntry(subject, data, header)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		es = append(es, e)
	}
	return view.Fold("cust_1", es)
}

// timelineEntry is e as Store.Timeline returns it (source ids come back
// from a NOT NULL text[] column, so never null).
func timelineEntry(e view.Entry) view.TimelineEntry {
	summary, status := e.Describe()
	src := e.SourceIDs
	if src == nil {
		src = []string{}
	}
	return view.TimelineEntry{EventID: e.EventID, At: e.OccurredAt, Kind: e.Kind(), Subject: e.Subject, Summary: summary, Status: status,
		SourceEventIDs: src, TraceID: e.TraceID, CustomerID: e.CustomerID}
}

func errorJSON(code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	return b
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit returns the JSON object body changed by f.
func edit(t *testing.T, body []byte, f func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	return mustJSON(t, m)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func anySlice(v any) []any { s, _ := v.([]any); return s }

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func sameSet(a, b []string) bool {
	return slices.Equal(sorted(a), sorted(b))
}
