package identity_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/identity"
)

// fixtureCharge is the charge the charge.refunded and charge.dispute.created
// fixtures are about. In charge.refunded it names no customer and no
// invoice (a guest payment); the dispute names it by id only.
const fixtureCharge = "ch_1NzlYeGgdF1VjufLh34inorG"

// identityDeadLetters returns identity's dead letters stored so far,
// checking that each says its class in its header as in its envelope.
func identityDeadLetters(t *testing.T, js jetstream.JetStream) []*consumer.DeadLetter {
	t.Helper()
	return deadLettersOf(t, js, identity.DefaultConsumerName)
}

// deadLettersOf returns one consumer's dead letters stored so far, checked
// the same way.
func deadLettersOf(t *testing.T, js jetstream.JetStream, consumerName string) []*consumer.DeadLetter {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*consumer.DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		if m.Subject != wire.DLQPrefix+consumerName {
			continue
		}
		d, err := consumer.DecodeDeadLetter(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if h := m.Header.Get(consumer.HeaderErrorClass); h != d.Class.String() {
			t.Errorf("dead letter %d: %s header %q, envelope class %s", seq, consumer.HeaderErrorClass, h, d.Class)
		}
		d.Sequence = seq
		out = append(out, d)
	}
	return out
}

// oneDeadLetter waits for identity's first dead letter and returns it.
func oneDeadLetter(t *testing.T, js jetstream.JetStream) *consumer.DeadLetter {
	t.Helper()
	var dls []*consumer.DeadLetter
	testkit.WaitFor(t, 20*time.Second, "a dead letter on "+wire.DLQPrefix+identity.DefaultConsumerName, func() bool {
		dls = identityDeadLetters(t, js)
		return len(dls) > 0
	})
	return dls[0]
}

// settledStripeConsumer is identity's durable consumer on the STRIPE stream, once
// it has settled every stored event (testkit.Settled).
func settledStripeConsumer(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := context.Background()
	testkit.WaitFor(t, 20*time.Second, "identity's consumer to settle", func() bool {
		ok, err := testkit.Settled(ctx, js, natsbus.StreamStripe, identity.DefaultConsumerName)
		return err == nil && ok // an API timeout on a loaded machine: ask again
	})
	c, err := js.Consumer(ctx, natsbus.StreamStripe, identity.DefaultConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// wantReason checks that the dead letter's reason says each of parts.
func wantReason(t *testing.T, d *consumer.DeadLetter, parts ...string) {
	t.Helper()
	t.Logf("dead letter (%s, %d attempts): %s", d.Class, d.Attempts, d.Reason)
	for _, p := range parts {
		if !strings.Contains(d.Reason, p) {
			t.Errorf("dead letter reason does not say %q:\n%s", p, d.Reason)
		}
	}
}

// wantWhole checks that the reason fits the dead-letter alert, which
// shows 300 bytes of it (services/alerts): what to do comes last.
func wantWhole(t *testing.T, d *consumer.DeadLetter) {
	t.Helper()
	if len(d.Reason) > 300 {
		t.Errorf("reason is %d bytes; the alert shows 300 and would cut off what to do", len(d.Reason))
	}
}

// TestGuestChargeWithoutStripeAPIIsDeadLetteredAtOnce: the real
// charge.refunded fixture is a refund of a guest payment — its charge
// names no customer and no invoice. Without the Stripe API no retry can
// ever find its customer: no other event links the charge to one, and
// only Stripe can say it belongs to none. So it is dead-lettered on its
// first delivery, as permanent, with a reason that says what to do —
// rather than retried CONSUMER_MAX_ATTEMPTS times and dead-lettered as
// transient.
func TestGuestChargeWithoutStripeAPIIsDeadLetteredAtOnce(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	// Short retries, so that a retried refund reaches its (wrong) dead
	// letter quickly and the test says so instead of timing out.
	h := startIdentity(t, b.URL, js, map[string]string{"CONSUMER_MAX_ATTEMPTS": "3", "CONSUMER_BACKOFF": "50ms"})
	h.deliver(t, testkit.StripeEvent(t, "charge.refunded"))

	d := oneDeadLetter(t, js)
	if d.Class != errclass.ClassPermanent || d.Attempts != 1 {
		t.Errorf("dead-lettered as %s after %d attempts, want permanent after 1", d.Class, d.Attempts)
	}
	wantReason(t, d, fixtureCharge, "STRIPE_API_KEY is not set", "replay")
	wantWhole(t, d)
	if d.OriginalSubject != wire.StripeEventSubject("charge.refunded") {
		t.Errorf("dead letter of %s, want the refund", d.OriginalSubject)
	}
	info := settledStripeConsumer(t, js)
	if info.Delivered.Consumer != 1 || info.NumRedelivered != 0 {
		t.Errorf("the refund was delivered %d times (%d redelivered), want once", info.Delivered.Consumer, info.NumRedelivered)
	}
	if n := len(identityDeadLetters(t, js)); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	if n := streamCount(t, js, natsbus.StreamBilling); n != 0 {
		t.Errorf("%d billing messages, want none", n)
	}
}

// TestChargeIDOnlyEventWithoutStripeAPIWaitsForTheCharge: a dispute names
// its charge by id only. Without the Stripe API it can still be resolved
// by retrying — the charge's own event, which names the customer, may
// simply come later (Stripe delivers in any order; reconcile heals missed
// events) — so it is retried as transient; only once retries run out is
// it dead-lettered, with a reason naming the charge and what to do.
func TestChargeIDOnlyEventWithoutStripeAPIWaitsForTheCharge(t *testing.T) {
	t.Run("the charge's event comes late", func(t *testing.T) {
		t.Parallel()
		b := testkit.NATS(t)
		_, js := b.Connect(t)
		h := startIdentity(t, b.URL, js, map[string]string{"CONSUMER_BACKOFF": "200ms,5s"})
		h.deliver(t, testkit.StripeEvent(t, "charge.dispute.created"))
		testkit.WaitFor(t, 20*time.Second, "the dispute to fail and be redelivered", func() bool {
			c, err := js.Consumer(context.Background(), natsbus.StreamStripe, identity.DefaultConsumerName)
			if err != nil {
				return false
			}
			info, err := c.Info(context.Background())
			return err == nil && info.Delivered.Consumer >= 2
		})
		// The refund of the same charge, this time naming its customer.
		refund := bytes.Replace(testkit.StripeEvent(t, "charge.refunded"), []byte(`"customer": null`), []byte(`"customer": "cus_OnMHOpJU2HN6Xv"`), 1)
		h.deliver(t, refund)
		testkit.WaitFor(t, 20*time.Second, "the dispute and the refund published", func() bool {
			got := h.billing(t)
			return len(got[subjects.BillingDisputeOpened]) == 1 && len(got[subjects.BillingRefundIssued]) == 1
		})
		got := h.billing(t)
		if d, r := got[subjects.BillingDisputeOpened][0], got[subjects.BillingRefundIssued][0]; d != r {
			t.Errorf("dispute for %s, refund for %s: want one customer", d, r)
		}
		settledStripeConsumer(t, js)
		if n := len(identityDeadLetters(t, js)); n != 0 {
			t.Errorf("%d dead letters, want none", n)
		}
	})

	t.Run("the charge's event never comes", func(t *testing.T) {
		t.Parallel()
		b := testkit.NATS(t)
		_, js := b.Connect(t)
		h := startIdentity(t, b.URL, js, map[string]string{"CONSUMER_MAX_ATTEMPTS": "2", "CONSUMER_BACKOFF": "50ms"})
		h.deliver(t, testkit.StripeEvent(t, "charge.dispute.created"))
		d := oneDeadLetter(t, js)
		if d.Class != errclass.ClassTransient || d.Attempts != 2 {
			t.Errorf("dead-lettered as %s after %d attempts, want transient after 2 (retries ran out)", d.Class, d.Attempts)
		}
		wantReason(t, d, "dp_1O00X8GgdF1VjufLSpQfMUKI", fixtureCharge, "STRIPE_API_KEY is not set", "replay")
		wantWhole(t, d)
	})
}
