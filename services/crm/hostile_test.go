package crm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// maxPropertyValue is HubSpot's limit on a text property's value
// (hubspot.MaxPropertyValue, in UTF-16 code units).
const maxPropertyValue = 65536

// noDeadLetter fails if crm dead-lettered anything.
func noDeadLetter(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(context.Background(), natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), "dlq.crm")
	if err == nil {
		dl, _ := consumer.DecodeDeadLetter(m.Data)
		t.Fatalf("crm dead-lettered %s: %s", dl.OriginalMsgID, dl.Reason)
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatal(err)
	}
}

// Hostile names, plans and ids reach HubSpot as clean values within its
// limit; a hostile email (spaces, no @, markup) or one HubSpot refuses is
// never sent, and is recorded as a permanent crm.contact.failed that names
// the problem but not the email — never a dead letter.
func TestHostileEventsSyncInertContacts(t *testing.T) {
	e := start(t)
	corpus := testkit.HostileCorpus()
	plan := func(name string) *billingv1.Subscription {
		return &billingv1.Subscription{SubscriptionId: "sub_h", Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE,
			Plan: &billingv1.Plan{PriceId: "price_h", ProductName: name, Mrr: 4900, Currency: "usd"}}
	}
	index := map[string]int{}
	for i, h := range corpus {
		index[h.Name] = i
		v := strings.ToValidUTF8(h.Value, "\uFFFD") // all the proto3 wire can carry
		email := fmt.Sprintf("hostile%d@example.com", i)
		m := func(id, email string) *billingv1.EventMeta {
			return &billingv1.EventMeta{EventId: id, CanonicalCustomerId: fmt.Sprintf("%s %d", v, i), OccurredAt: timestamppb.Now(),
				StripeCustomerId: v, Email: email}
		}
		e.publish(t, &billingv1.CustomerUpserted{Meta: m(fmt.Sprintf("n%d", i), email), Email: email, Name: v})
		e.publish(t, &billingv1.SubscriptionStarted{Meta: m(fmt.Sprintf("s%d", i), email), Subscription: plan(v)})
		e.publish(t, &billingv1.PaymentSucceeded{Meta: m(fmt.Sprintf("e%d", i), v), InvoiceId: "in_h"})
	}
	// Well formed, but HubSpot refuses it (a TLD that does not exist).
	e.publish(t, &billingv1.PaymentSucceeded{Meta: &billingv1.EventMeta{EventId: "refused", CanonicalCustomerId: "cust_r",
		Email: "broken.address@nowhere.invalid"}, InvoiceId: "in_r"})
	synced, failed := 2*len(corpus), len(corpus)+1
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("%d syncs and %d recorded failures", synced, failed), func() bool {
		noDeadLetter(t, e.js)
		return len(e.outcomes(t, subjects.CRMContactSynced)) == synced && len(e.outcomes(t, subjects.CRMContactFailed)) == failed
	})
	if n := len(e.hub.Contacts()); n != len(corpus) {
		t.Errorf("%d contacts in HubSpot, want %d: an unusable email became a contact", n, len(corpus))
	}
	for _, c := range e.hub.Contacts() {
		for k, v := range c.Properties {
			if !utf8.ValidString(v) || len(utf16.Encode([]rune(v))) > maxPropertyValue {
				t.Errorf("contact %s: %s invalid or over HubSpot's limit", c.Properties["email"], k)
			}
			for _, r := range v {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Errorf("contact %s: %s carries %U", c.Properties["email"], k, r)
					break
				}
			}
		}
	}
	if c, ok := e.hub.ContactByEmail(fmt.Sprintf("hostile%d@example.com", index["nul"])); !ok || c.Properties["firstname"] != "AdaLovelace" {
		t.Errorf("the NUL name: contact %v, firstname %q; want the name without its NUL", ok, c.Properties["firstname"])
	}
	for _, o := range e.outcomes(t, subjects.CRMContactFailed) {
		f := o.(*crmv1.ContactFailed)
		if errclass.FromProto(f.GetErrorClass()) != errclass.ClassPermanent || !strings.Contains(f.GetReason(), "not sent to HubSpot") ||
			strings.Contains(f.GetReason(), "lovelace@") || strings.Contains(f.GetReason(), "broken.address") {
			t.Errorf("failed outcome %v: want permanent, saying what happened, without the email", f)
		}
	}
}
