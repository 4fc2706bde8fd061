package identity

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
)

// Ids shared by the fixtures (see MANIFEST.json, fixture_links).
const (
	fxCustomer     = "cus_OnMHOpJU2HN6Xv"
	fxSubscription = "sub_1O00X8GgdF1VjufLsFtFRRh8"
	fxInvoice      = "in_1O00X6GgdF1VjufL97zeI8ME"
	fxCharge       = "ch_1NzlYeGgdF1VjufLh34inorG"
	fxDispute      = "dp_1O00X8GgdF1VjufLSpQfMUKI"
	fxPaymentInt   = "pi_3O53wcGgdF1VjufLTrZKk6nm"
	fxAPIVersion   = "2023-10-16"
)

// fixture returns the named Stripe event fixture, edited by edit (may be
// nil), which receives the envelope and its data.object.
func fixture(t *testing.T, name string, edit func(ev, obj map[string]any)) []byte {
	t.Helper()
	raw := testkit.StripeEvent(t, name)
	if edit == nil {
		return raw
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	edit(ev, ev["data"].(map[string]any)["object"].(map[string]any))
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return out
}

// setPrevious sets data.previous_attributes from JSON.
func setPrevious(t *testing.T, ev map[string]any, prevJSON string) {
	t.Helper()
	var prev map[string]any
	if err := json.Unmarshal([]byte(prevJSON), &prev); err != nil {
		t.Fatalf("previous_attributes: %v", err)
	}
	ev["data"].(map[string]any)["previous_attributes"] = prev
}

// jsonValue decodes a JSON literal, for edits that set objects.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("json %s: %v", s, err)
	}
	return v
}

func TestExtractFactsFixtures(t *testing.T) {
	t.Parallel()
	at := func(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
	want := map[string]Facts{
		"charge.dispute.created": {
			EventID: "evt_1O5n8TGgdF1VjufLqXAtUdXB", EventType: "charge.dispute.created", Created: at(1698250200),
			APIVersion: fxAPIVersion, ObjectKind: "dispute", ObjectID: fxDispute,
			ChargeID: fxCharge, ObjectStatus: "warning_needs_response",
		},
		"charge.refunded": {
			EventID: "evt_1O56anGgdF1VjufLFh020xRN", EventType: "charge.refunded", Created: at(1698250500),
			APIVersion: fxAPIVersion, ObjectKind: "charge", ObjectID: fxCharge,
			ChargeID: fxCharge, ObjectStatus: "succeeded",
		},
		"checkout.session.completed": {
			EventID: "evt_1O5LCwGgdF1VjufLd5fxf3aH", EventType: "checkout.session.completed", Created: at(1698250860),
			APIVersion: fxAPIVersion, ObjectKind: "checkout.session",
			ObjectID: "cs_test_a13BtkHzI9DOTE311wMFzHBiKijsIoPPBB2oAOfTTUcyN6z42axw2NpneW",
			// A guest checkout: the email typed in it is unverified.
			UnverifiedEmail: "example@example.com", PaymentIntentID: "pi_1NzlYfGgdF1VjufLf7IeUzYV", ObjectStatus: "complete",
		},
		"customer.created": {
			EventID: "evt_1O59vsGgdF1VjufLNnhVwvTi", EventType: "customer.created", Created: at(1698249600),
			APIVersion: fxAPIVersion, ObjectKind: "customer", ObjectID: fxCustomer, StripeCustomerID: fxCustomer,
		},
		"customer.subscription.created": {
			EventID: "evt_1O5EuiGgdF1VjufLZtb3fvOc", EventType: "customer.subscription.created", Created: at(1698249660),
			APIVersion: fxAPIVersion, ObjectKind: "subscription", ObjectID: fxSubscription, StripeCustomerID: fxCustomer,
			SubscriptionID: fxSubscription, ObjectStatus: "active",
		},
		"customer.subscription.deleted": {
			EventID: "evt_1O5t6lGgdF1VjufLjgXyjiqn", EventType: "customer.subscription.deleted", Created: at(1698256800),
			APIVersion: fxAPIVersion, ObjectKind: "subscription", ObjectID: fxSubscription, StripeCustomerID: fxCustomer,
			SubscriptionID: fxSubscription, ObjectStatus: "canceled",
		},
		"customer.subscription.updated": {
			EventID: "evt_1O5Nv5GgdF1VjufLza9UqNwQ", EventType: "customer.subscription.updated", Created: at(1698249720),
			APIVersion: fxAPIVersion, ObjectKind: "subscription", ObjectID: fxSubscription, StripeCustomerID: fxCustomer,
			SubscriptionID: fxSubscription, ObjectStatus: "active",
		},
		"customer.updated": {
			EventID: "evt_1O5Q0vGgdF1VjufLtlQUsRfG", EventType: "customer.updated", Created: at(1698249604),
			APIVersion: fxAPIVersion, ObjectKind: "customer", ObjectID: fxCustomer, StripeCustomerID: fxCustomer,
		},
		"customer.updated.email-set": {
			EventID: "evt_1O5mztGgdF1VjufLj4K62fhg", EventType: "customer.updated", Created: at(1698249630),
			APIVersion: fxAPIVersion, ObjectKind: "customer", ObjectID: fxCustomer, StripeCustomerID: fxCustomer,
			Email: "jenny.rosen@example.com", Name: "Jenny Rosen",
		},
		"invoice.paid": {
			EventID: "evt_1O5cugGgdF1VjufLgEvxRpek", EventType: "invoice.paid", Created: at(1698253506),
			APIVersion: fxAPIVersion, ObjectKind: "invoice", ObjectID: fxInvoice, StripeCustomerID: fxCustomer,
			InvoiceID: fxInvoice, ChargeID: "ch_3O5H0NGgdF1VjufL4E5nFQRj", PaymentIntentID: fxPaymentInt, ObjectStatus: "paid",
		},
		"invoice.payment_failed": {
			EventID: "evt_1O5WElGgdF1VjufL5i2gHzqM", EventType: "invoice.payment_failed", Created: at(1698249906),
			APIVersion: fxAPIVersion, ObjectKind: "invoice", ObjectID: fxInvoice, StripeCustomerID: fxCustomer,
			InvoiceID: fxInvoice, ChargeID: "ch_3O5E8yGgdF1VjufLyUrixmc3", PaymentIntentID: fxPaymentInt, ObjectStatus: "open",
		},
	}
	names := testkit.StripeEventNames(t)
	for _, name := range names {
		if _, ok := want[name]; !ok {
			t.Errorf("fixture %s has no expected Facts: add a row", name)
		}
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !slices.Contains(names, name) {
				t.Fatalf("fixture %s is gone", name)
			}
			got, ev, err := ExtractFacts(testkit.StripeEvent(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if got.object == nil {
				t.Errorf("facts of %s keep no decoded object for Derive", name)
			}
			got.object = nil // compared by what it was decoded from
			if got != w {
				t.Errorf("facts:\n got %+v\nwant %+v", got, w)
			}
			if ev == nil || ev.ID != w.EventID || string(ev.Type) != w.EventType {
				t.Errorf("event = %+v, want id %s type %s", ev, w.EventID, w.EventType)
			}
		})
	}
}

func TestExtractFactsSources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fixture string
		edit    func(ev, obj map[string]any)
		check   func(t *testing.T, f Facts)
	}{
		{
			name: "customer email is trimmed and lower-cased", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["email"] = "  Jenny.Rosen@Example.COM \n" },
			check: wantEmail("jenny.rosen@example.com"),
		},
		{
			// Stripe's copy of the customer's email, frozen at finalisation:
			// shown, never the profile email (see Facts.UnverifiedEmail).
			name: "invoice customer_email is unverified", fixture: "invoice.paid",
			edit:  func(_, o map[string]any) { o["customer_email"] = "Payer@Example.com" },
			check: wantEmails("", "payer@example.com"),
		},
		{
			name: "invoice with an expanded customer: id and its email", fixture: "invoice.paid",
			edit: func(_, o map[string]any) {
				o["customer"] = map[string]any{"id": "cus_X", "object": "customer", "email": "X@example.com", "name": "Ex"}
			},
			check: func(t *testing.T, f Facts) {
				wantEmail("x@example.com")(t, f)
				if f.StripeCustomerID != "cus_X" || f.Name != "Ex" {
					t.Errorf("customer, name = %q, %q; want cus_X, Ex", f.StripeCustomerID, f.Name)
				}
			},
		},
		{
			name: "the expanded customer's email is verified, the invoice's copy is not", fixture: "invoice.paid",
			edit: func(_, o map[string]any) {
				o["customer_email"] = "own@example.com"
				o["customer"] = map[string]any{"id": "cus_X", "object": "customer", "email": "other@example.com"}
			},
			check: wantEmails("other@example.com", "own@example.com"),
		},
		{
			name: "invoice links its subscription", fixture: "invoice.payment_failed",
			edit: func(_, o map[string]any) { o["subscription"] = fxSubscription },
			check: func(t *testing.T, f Facts) {
				if f.SubscriptionID != fxSubscription {
					t.Errorf("SubscriptionID = %q", f.SubscriptionID)
				}
			},
		},
		{
			name: "checkout customer_email when customer_details has none", fixture: "checkout.session.completed",
			edit: func(_, o map[string]any) {
				o["customer_details"] = nil
				o["customer_email"] = "Prefilled@Example.com"
			},
			check: wantEmails("", "prefilled@example.com"),
		},
		{
			name: "checkout with a customer: its details' email is still typed, the expanded customer's verified", fixture: "checkout.session.completed",
			edit: func(_, o map[string]any) {
				o["customer"] = map[string]any{"id": fxCustomer, "object": "customer", "email": "Jenny.Rosen@example.com"}
				o["customer_details"].(map[string]any)["email"] = "typed@example.com"
			},
			check: wantEmails("jenny.rosen@example.com", "typed@example.com"),
		},
		{
			name: "checkout customer_details name and customer", fixture: "checkout.session.completed",
			edit: func(_, o map[string]any) {
				o["customer"] = fxCustomer
				o["subscription"] = fxSubscription
				o["customer_details"].(map[string]any)["name"] = "Jenny Rosen"
			},
			check: func(t *testing.T, f Facts) {
				if f.StripeCustomerID != fxCustomer || f.Name != "Jenny Rosen" || f.SubscriptionID != fxSubscription {
					t.Errorf("facts = %+v", f)
				}
			},
		},
		{
			name: "charge billing_details email before receipt_email", fixture: "charge.refunded",
			edit: func(_, o map[string]any) {
				o["billing_details"].(map[string]any)["email"] = "Billing@example.com"
				o["receipt_email"] = "receipt@example.com"
			},
			check: wantEmails("", "billing@example.com"),
		},
		{
			name: "charge receipt_email", fixture: "charge.refunded",
			edit:  func(_, o map[string]any) { o["receipt_email"] = "Receipt@example.com" },
			check: wantEmails("", "receipt@example.com"),
		},
		{
			name: "an invalid billing email is none: the receipt email is next", fixture: "charge.refunded",
			edit: func(_, o map[string]any) {
				o["billing_details"].(map[string]any)["email"] = "jenny rosen@example.com"
				o["receipt_email"] = "receipt@example.com"
			},
			check: wantEmails("", "receipt@example.com"),
		},
		{
			name: "a charge naming its customer: its billing email stays unverified", fixture: "charge.refunded",
			edit: func(_, o map[string]any) {
				o["customer"] = fxCustomer
				o["billing_details"].(map[string]any)["email"] = "stranger@example.com"
			},
			check: func(t *testing.T, f Facts) {
				wantEmails("", "stranger@example.com")(t, f)
				if f.StripeCustomerID != fxCustomer {
					t.Errorf("StripeCustomerID = %q", f.StripeCustomerID)
				}
			},
		},
		{
			name: "payment intent receipt_email is unverified", fixture: "charge.refunded",
			edit: func(ev, _ map[string]any) {
				ev["type"] = "payment_intent.succeeded"
				ev["data"].(map[string]any)["object"] = jsonValue(t, `{"id": "pi_X", "object": "payment_intent", "customer": null,
					"receipt_email": "Guest@example.com", "latest_charge": "ch_X", "status": "succeeded"}`)
			},
			check: func(t *testing.T, f Facts) {
				wantEmails("", "guest@example.com")(t, f)
				if f.PaymentIntentID != "pi_X" || f.ChargeID != "ch_X" {
					t.Errorf("facts = %+v", f)
				}
			},
		},
		{
			name: "an expanded dispute charge's billing email is unverified", fixture: "charge.dispute.created",
			edit: func(_, o map[string]any) {
				o["charge"] = map[string]any{"id": fxCharge, "object": "charge", "billing_details": map[string]any{"email": "card@example.com"}}
			},
			check: wantEmails("", "card@example.com"),
		},
		{
			name: "a customer email with spaces is no email", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["email"] = "jenny rosen@example.com" },
			check: wantEmails("", ""),
		},
		{
			name: "a customer email of 255 bytes is no email", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["email"] = strings.Repeat("j", 243) + "@example.com" },
			check: wantEmails("", ""),
		},
		{
			name: "a customer email with a display name is no email", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["email"] = "Jenny <jenny@example.com>" },
			check: wantEmails("", ""),
		},
		{
			name: "a customer email of 254 bytes is kept", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["email"] = email254 },
			check: wantEmails(email254, ""),
		},
		{
			name: "a customer email with a local part over 64 bytes is no email", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["email"] = strings.Repeat("j", 65) + "@example.com" },
			check: wantEmails("", ""),
		},
		{
			name: "a name with NUL, control, bidi and invalid UTF-8 is one clean line", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["name"] = "  Jenny\u0000 Ro\u202esen\n\tof \u0007Acme\xff  " },
			check: wantName("Jenny Rosen of Acme\uFFFD"),
		},
		{
			name: "a 20,000-character name is cut to 256 characters", fixture: "customer.updated.email-set",
			edit:  func(_, o map[string]any) { o["name"] = strings.Repeat("é", 20000) },
			check: wantName(strings.Repeat("é", 255) + "…"),
		},
		{
			name: "ids that cannot be Stripe's name nothing", fixture: "invoice.paid",
			edit: func(_, o map[string]any) {
				o["customer"] = "cus_\u0000X"
				o["subscription"] = "sub_ X"
				o["charge"] = "ch_" + strings.Repeat("x", 300)
			},
			check: func(t *testing.T, f Facts) {
				if f.StripeCustomerID != "" || f.SubscriptionID != "" || f.ChargeID != "" || f.InvoiceID != fxInvoice {
					t.Errorf("facts = %+v", f)
				}
			},
		},
		{
			name: "dispute with an expanded charge finds its customer", fixture: "charge.dispute.created",
			edit: func(_, o map[string]any) {
				o["charge"] = map[string]any{"id": fxCharge, "object": "charge", "customer": fxCustomer, "payment_intent": "pi_C"}
				o["payment_intent"] = "pi_D"
			},
			check: func(t *testing.T, f Facts) {
				if f.StripeCustomerID != fxCustomer || f.ChargeID != fxCharge || f.PaymentIntentID != "pi_D" {
					t.Errorf("facts = %+v", f)
				}
			},
		},
		{
			name: "metadata never names the customer", fixture: "charge.refunded",
			edit: func(_, o map[string]any) {
				o["metadata"] = map[string]any{"customer": "cus_EVIL", "email": "evil@example.com"}
			},
			check: func(t *testing.T, f Facts) {
				if f.StripeCustomerID != "" || f.Email != "" || f.UnverifiedEmail != "" {
					t.Errorf("facts read metadata: %+v", f)
				}
			},
		},
		{
			name: "object without id (invoice.upcoming)", fixture: "invoice.paid",
			edit: func(ev, o map[string]any) {
				ev["type"] = "invoice.upcoming"
				delete(o, "id")
			},
			check: func(t *testing.T, f Facts) {
				if f.ObjectID != "" || f.InvoiceID != "" || f.ObjectKind != "invoice" || f.StripeCustomerID != fxCustomer {
					t.Errorf("facts = %+v", f)
				}
			},
		},
		{
			name: "an unknown object kind gives envelope facts only", fixture: "charge.refunded",
			edit: func(ev, o map[string]any) {
				ev["type"] = "balance.available"
				ev["data"].(map[string]any)["object"] = map[string]any{"object": "balance", "livemode": true}
				ev["livemode"] = true
			},
			check: func(t *testing.T, f Facts) {
				want := Facts{EventID: "evt_1O56anGgdF1VjufLFh020xRN", EventType: "balance.available",
					Created: time.Unix(1698250500, 0).UTC(), Livemode: true, APIVersion: fxAPIVersion, ObjectKind: "balance"}
				if f != want {
					t.Errorf("facts = %+v, want %+v", f, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _, err := ExtractFacts(fixture(t, tt.fixture, tt.edit))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f)
		})
	}
}

func wantEmail(want string) func(t *testing.T, f Facts) {
	return func(t *testing.T, f Facts) {
		t.Helper()
		if f.Email != want {
			t.Errorf("Email = %q, want %q", f.Email, want)
		}
	}
}

// wantEmails checks the verified and the unverified email.
func wantEmails(verified, unverified string) func(t *testing.T, f Facts) {
	return func(t *testing.T, f Facts) {
		t.Helper()
		if f.Email != verified || f.UnverifiedEmail != unverified {
			t.Errorf("Email, UnverifiedEmail = %q, %q; want %q, %q", f.Email, f.UnverifiedEmail, verified, unverified)
		}
	}
}

func wantName(want string) func(t *testing.T, f Facts) {
	return func(t *testing.T, f Facts) {
		t.Helper()
		if f.Name != want {
			t.Errorf("Name = %q, want %q", f.Name, want)
		}
	}
}

func TestExtractFactsErrors(t *testing.T) {
	t.Parallel()
	edited := func(edit func(ev, obj map[string]any)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return fixture(t, "invoice.paid", edit) }
	}
	literal := func(s string) func(t *testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }
	tests := []struct {
		name string
		raw  func(t *testing.T) []byte
	}{
		{"empty", literal("")},
		{"not json", literal("evt_123")},
		{"truncated", literal(`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":`)},
		{"array", literal(`[]`)},
		{"no id", edited(func(ev, _ map[string]any) { delete(ev, "id") })},
		{"no type", edited(func(ev, _ map[string]any) { delete(ev, "type") })},
		{"no data", edited(func(ev, _ map[string]any) { delete(ev, "data") })},
		{"data.object null", edited(func(ev, _ map[string]any) { ev["data"] = map[string]any{"object": nil} })},
		{"object field of the wrong type", edited(func(_, o map[string]any) { o["amount_paid"] = "a lot" })},
		{"customer reference of the wrong type", edited(func(_, o map[string]any) { o["customer"] = 42 })},
		// The envelope is read as encoding/json would decode it into a
		// stripe.Event: a value of the wrong JSON type is an error.
		{"id not a string", edited(func(ev, _ map[string]any) { ev["id"] = 7 })},
		{"type not a string", edited(func(ev, _ map[string]any) { ev["type"] = []any{"invoice.paid"} })},
		{"created not an integer", edited(func(ev, _ map[string]any) { ev["created"] = 1.5 })},
		{"livemode not a boolean", edited(func(ev, _ map[string]any) { ev["livemode"] = "false" })},
		{"api_version not a string", edited(func(ev, _ map[string]any) { ev["api_version"] = 20231016 })},
		{"data not an object", edited(func(ev, _ map[string]any) { ev["data"] = "x" })},
		{"data.object not an object", edited(func(ev, _ map[string]any) { ev["data"] = map[string]any{"object": "in_1"} })},
		{"previous_attributes not an object", edited(func(ev, o map[string]any) {
			ev["data"] = map[string]any{"object": o, "previous_attributes": "x"}
		})},
		// A key that is a routed field only when case is folded would be
		// read as it by encoding/json: refused, as the gateway does.
		{"a case variant of id", edited(func(ev, _ map[string]any) { ev["ID"] = "evt_other" })},
		{"a case variant of data.object.object", edited(func(_, o map[string]any) { o["Object"] = "customer" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, ev, err := ExtractFacts(tt.raw(t))
			if err == nil {
				t.Fatalf("ExtractFacts = %+v, nil; want an error", f)
			}
			if got := errclass.Of(err); got != errclass.ClassPermanent {
				t.Errorf("class = %v, want permanent (err %v)", got, err)
			}
			var ce *errclass.Error
			if !errors.As(err, &ce) || ev != nil || f != (Facts{}) {
				t.Errorf("want zero Facts, nil event and an *errclass.Error; got %+v, %v, %v", f, ev, err)
			}
		})
	}
}
