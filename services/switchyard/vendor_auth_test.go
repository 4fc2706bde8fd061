package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/alerts"
	"github.com/switchyard/switchyard/services/crm"
	"github.com/switchyard/switchyard/services/projector"
)

// TestRevokedCRMTokenAlertsThenReplayCompletes is the operator's loop: the
// HubSpot token is revoked, the sync dead-letters as auth and Slack hears
// of it within a second with the replay command; the operator fixes the
// token and runs that command; the contact is synced.
func TestRevokedCRMTokenAlertsThenReplayCompletes(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	hub := hubspotemu.New(hubspotemu.Options{Tokens: map[string][]string{"pat-na1-good": nil}})
	hubAPI := httptest.NewServer(hub)
	defer hubAPI.Close()
	sl, err := slackemu.New(slackemu.Options{RateLimit: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	slackAPI := httptest.NewServer(sl)
	defer slackAPI.Close()
	db := testkit.Postgres(t)
	ports := freePorts(t, 4)
	opsToken := randomHex(24)
	env := config.MapEnv(map[string]string{
		"NATS_URL": b.URL, "DATABASE_URL": db, "LOG_LEVEL": "warn",
		"CRM_ADDR": "127.0.0.1:" + strconv.Itoa(ports[0]), "HUBSPOT_TOKEN": "pat-na1-good", "HUBSPOT_BASE_URL": hubAPI.URL,
		"ALERTS_ADDR": "127.0.0.1:" + strconv.Itoa(ports[1]), "SLACK_WEBHOOK_URL": slackAPI.URL + sl.Path(),
		// The projector's status API, which the replay goes through (audited).
		"PROJECTOR_ADDR": "127.0.0.1:" + strconv.Itoa(ports[2]), "OPS_ADDR": "127.0.0.1:" + strconv.Itoa(ports[3]),
		"SWITCHYARD_OPS_TOKENS": "oncall:read+operate:" + opsToken,
		// It replays as the operator, on a login of its own (the test
		// broker checks no passwords).
		"OPS_NATS_PASSWORD":  "operator-test",
		"SWITCHYARD_OPS_URL": "http://127.0.0.1:" + strconv.Itoa(ports[3]), "SWITCHYARD_OPS_TOKEN": opsToken,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- crm.Run(ctx, env, io.Discard) }()
	go func() { done <- alerts.Run(ctx, env, io.Discard) }()
	go func() { done <- projector.Run(ctx, env, io.Discard) }()
	defer func() { cancel(); <-done; <-done; <-done }()
	for _, addr := range []string{env("CRM_ADDR"), env("ALERTS_ADDR"), env("PROJECTOR_ADDR")} {
		if err := waitReady(ctx, "http://"+addr+"/readyz", 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	hub.SetTokens(map[string][]string{"pat-na1-rotated": nil}) // someone rotated the token in HubSpot
	ev := &billingv1.CustomerUpserted{Meta: &billingv1.EventMeta{EventId: "billing.customer.upserted:evt_auth1", CanonicalCustomerId: "cust_ada",
		OccurredAt: timestamppb.Now(), StripeCustomerId: "cus_Ada", Email: "ada@example.com"}, Email: "ada@example.com", Name: "Ada"}
	data, _ := proto.Marshal(ev)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects.BillingCustomerUpserted, Data: data,
		Header: nats.Header{wire.HeaderMsgID: {ev.GetMeta().GetEventId()}}}); err != nil {
		t.Fatal(err)
	}

	dlq, _ := js.Stream(ctx, natsbus.StreamDLQ)
	var deadAt time.Time
	testkit.WaitFor(t, 10*time.Second, "the dead letter", func() bool {
		m, err := dlq.GetLastMsgForSubject(ctx, "dlq.crm")
		if err == nil {
			deadAt = m.Time
		}
		return err == nil
	})
	testkit.WaitFor(t, 5*time.Second, "the Slack alert", func() bool { return len(sl.Messages()) == 1 })
	alert := sl.Messages()[0]
	if lag := alert.Time.Sub(deadAt); lag > time.Second {
		t.Errorf("alert came %v after the dead letter, want within a second", lag)
	}
	if !strings.Contains(alert.Text, "Credentials rejected") || !strings.Contains(alert.Text, "switchyard dlq replay") {
		t.Fatalf("alert: %s", alert.Text)
	}

	// The operator fixes the token and runs the command from the alert.
	hub.SetTokens(map[string][]string{"pat-na1-good": nil})
	var out bytes.Buffer
	listCode := run(ctx, []string{"dlq", "list", "--nats", b.URL, "--consumer", "crm", "--class", "auth", "--json"}, env, nil, &out, io.Discard)
	var entries []dlqEntry
	if listCode != 0 || json.Unmarshal(out.Bytes(), &entries) != nil || len(entries) != 1 {
		t.Fatalf("dlq list: %d %s", listCode, out.String())
	}
	cmd := "switchyard dlq replay " + strconv.FormatUint(entries[0].Seq, 10)
	if !strings.Contains(alert.Text, cmd) {
		t.Errorf("alert names another command than %q:\n%s", cmd, alert.Text)
	}
	out.Reset()
	var errOut bytes.Buffer
	if code := run(ctx, []string{"dlq", "replay", "--nats", b.URL, strconv.FormatUint(entries[0].Seq, 10)}, env, nil, &out, &errOut); code != 0 {
		t.Fatalf("replay: %d %s%s", code, out.String(), errOut.String())
	}
	// Through the status API: recorded under the token's name.
	pool, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var actor, action string
	if err := pool.QueryRow(ctx, `SELECT actor, action FROM ops_audit`).Scan(&actor, &action); err != nil || actor != "oncall" || action != "replay" {
		t.Errorf("audit of the replay: %q %q %v (output %s)", actor, action, err, out.String())
	}
	testkit.WaitFor(t, 10*time.Second, "the contact synced after the replay", func() bool {
		_, ok := hub.ContactByEmail("ada@example.com")
		return ok
	})
	crmStream, _ := js.Stream(ctx, natsbus.StreamCRM)
	testkit.WaitFor(t, 10*time.Second, "crm.contact.synced", func() bool {
		_, err := crmStream.GetLastMsgForSubject(ctx, subjects.CRMContactSynced)
		return err == nil
	})
	if n := len(hub.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
}
