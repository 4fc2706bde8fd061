package alerts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	"github.com/switchyard/switchyard/proto/wire"
)

// The alert names the customer the dead letter's envelope carries
// (customer_id), even when the message itself names none: a Stripe event
// identity had resolved before it gave up.
func TestDeadLetterAlertNamesTheEnvelopesCustomer(t *testing.T) {
	js, sl := start(t)
	env, err := proto.Marshal(&dlqv1.DeadLetter{
		OriginalSubject: wire.StripeEventSubject("invoice.payment_failed"),
		OriginalHeaders: map[string]*dlqv1.HeaderValues{wire.HeaderMsgID: {Values: []string{"evt_1"}}},
		OriginalData:    []byte(`{"id":"evt_1","type":"invoice.payment_failed"}`),
		Consumer:        "identity", ErrorClass: commonv1.ErrorClass_ERROR_CLASS_PERMANENT, Reason: "no such price", Attempts: 1,
		CustomerId: "cust_grace",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: "dlq.identity", Data: env, Header: nats.Header{wire.HeaderMsgID: {"dlq:evt_1"}}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the alert", func() bool { return len(sl.Messages()) == 1 })
	if text := sl.Messages()[0].Text; !strings.Contains(text, "Customer: `cust_grace`") {
		t.Errorf("alert does not name the envelope's customer:\n%s", text)
	}
}
