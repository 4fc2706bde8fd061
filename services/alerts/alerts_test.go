package alerts_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/alerts"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

func start(t *testing.T) (jetstream.JetStream, *slackemu.Server) {
	t.Helper()
	return startWith(t, nil)
}

// startWith runs alerts.Run against a Slack emulator, with extra env.
func startWith(t *testing.T, extra map[string]string) (jetstream.JetStream, *slackemu.Server) {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	sl, err := slackemu.New(slackemu.Options{RateLimit: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sl)
	t.Cleanup(api.Close)
	addr := testkit.FreeAddr(t)
	env := map[string]string{
		"ALERTS_ADDR": addr, "NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t), "LOG_LEVEL": "warn",
		"SLACK_WEBHOOK_URL": api.URL + sl.Path(), "ALERTS_WINDOW": "1h", "ALERTS_STORM_THRESHOLD": "3",
	}
	for k, v := range extra {
		env[k] = v
	}
	vars := config.MapEnv(env)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- alerts.Run(ctx, vars, &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("alerts.Run: %v", err)
		}
	})
	testkit.WaitFor(t, 20*time.Second, "alerts ready", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("alerts exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return js, sl
}

func deadLetter(t *testing.T, js jetstream.JetStream, consumerName, id, subject string, class errclass.Class) {
	t.Helper()
	ev := &billingv1.PaymentSucceeded{Meta: &billingv1.EventMeta{EventId: id, CanonicalCustomerId: "cust_ada", Email: "ada.lovelace@example.com"}}
	data, _ := proto.Marshal(ev)
	d := &consumer.DeadLetter{OriginalSubject: subject, OriginalHeaders: nats.Header{wire.HeaderMsgID: {id}}, OriginalData: data,
		Consumer: consumerName, Class: class, Reason: "hubspot 401 INVALID_AUTHENTICATION", Attempts: 1,
		FirstFailureAt: time.Now(), LastFailureAt: time.Now()}
	raw, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: "dlq." + consumerName, Data: raw, Header: nats.Header{wire.HeaderMsgID: {"dlq:" + id}}}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLettersAlertOnceFoldedAndCriticalAtOnce(t *testing.T) {
	js, sl := start(t)
	deadLetter(t, js, "crm", "b1", subjects.BillingPaymentSucceeded, errclass.ClassAuth)
	testkit.WaitFor(t, 10*time.Second, "first alert", func() bool { return len(sl.Messages()) == 1 })
	text := sl.Messages()[0].Text
	for _, want := range []string{"Credentials rejected", "`crm`", "`auth`", "cust_ada", "a***@example.com", "switchyard dlq replay 1", "b1"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "ada.lovelace@example.com") {
		t.Error("alert carries the full email")
	}

	// The same kind again within the window: folded, not sent …
	deadLetter(t, js, "crm", "b2", subjects.BillingPaymentSucceeded, errclass.ClassAuth)
	// … but a failed ticket in a critical flow goes out at once.
	deadLetter(t, js, "support", "b3", subjects.BillingRefundIssued, errclass.ClassTransient)
	testkit.WaitFor(t, 10*time.Second, "critical alert", func() bool { return len(sl.Messages()) == 2 })
	if !strings.Contains(sl.Messages()[1].Text, "CRITICAL") {
		t.Errorf("second alert is not the critical one:\n%s", sl.Messages()[1].Text)
	}
	testkit.Never(t, 500*time.Millisecond, "the folded dead letter sent on its own", func() bool { return len(sl.Messages()) > 2 })
}

func TestCRMRetryStorm(t *testing.T) {
	js, sl := start(t)
	for i := 0; i < 4; i++ {
		p := &crmv1.ContactPendingRetry{EventId: "r" + string(rune('0'+i)), Attempt: 1, NextAttemptAt: timestamppb.Now(), Reason: "503 from HubSpot"}
		data, _ := proto.Marshal(p)
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.CRMContactPendingRetry, Data: data,
			Header: nats.Header{wire.HeaderMsgID: {p.EventId}}}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, "storm alert", func() bool { return len(sl.Messages()) == 1 })
	if !strings.Contains(sl.Messages()[0].Text, "retry storm") {
		t.Errorf("alert %q", sl.Messages()[0].Text)
	}
	testkit.Never(t, 300*time.Millisecond, "a second storm alert within the minute", func() bool { return len(sl.Messages()) > 1 })
}
