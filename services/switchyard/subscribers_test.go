package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/natsembed"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
)

// The example subscribers of docs/subscribing.md, relative to this package.
const (
	exampleGoDir = "../../docs/examples/subscriber-go"
	exampleTSDir = "../../docs/examples/subscriber-ts"
	subjectsJSON = "../../proto/subjects.json"
)

// requireNode returns the paths of node and npm; their absence fails the
// test, saying what to install (as every missing dependency of make test
// does: nothing skips).
func requireNode(t *testing.T) (node, npm string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNPM := exec.LookPath("npm")
	if err := errors.Join(errNode, errNPM); err != nil {
		msg := fmt.Sprintf("the TypeScript example subscriber needs Node.js 20 or later with npm on PATH (Debian: apt-get install nodejs npm): %v", err)
		t.Fatal(msg)
	}
	return node, npm
}

// buildTSExample installs the TypeScript example's packages if they are
// missing (npm ci: exactly package-lock.json) and compiles it to dist/.
func buildTSExample(npm string) error {
	if _, err := os.Stat(filepath.Join(exampleTSDir, "node_modules", ".bin", "tsc")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = exampleTSDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("npm ci in %s: %v\n%s", exampleTSDir, err, out)
		}
	}
	cmd := exec.Command(filepath.Join("node_modules", ".bin", "tsc"), "-p", ".")
	cmd.Dir = exampleTSDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tsc in %s: %v\n%s", exampleTSDir, err, out)
	}
	return nil
}

// buildGoExample builds the Go example subscriber into dir.
func buildGoExample(dir string) (string, error) {
	bin := filepath.Join(dir, "subscriber-go")
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", abs, ".")
	cmd.Dir = exampleGoDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %v\n%s", exampleGoDir, err, out)
	}
	return abs, nil
}

// storedEvent is one message of the BILLING stream as the hub stored it.
type storedEvent struct {
	seq                             uint64
	subject, typ, eventID, customer string
	traceID, parentSpanID           string
}

// printedLine is what an example subscriber prints for each message.
type printedLine struct {
	Subject             string `json:"subject"`
	Type                string `json:"type"`
	EventID             string `json:"event_id"`
	CanonicalCustomerID string `json:"canonical_customer_id"`
	TraceID             string `json:"trace_id"`
	SpanID              string `json:"span_id"`
	ParentSpanID        string `json:"parent_span_id"`
}

var reTraceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)

// TestExampleSubscribers is docs/subscribing.md's quick start, for both
// examples: a dev hub on a NATS server that knows, besides the hub's own
// login, one user per subscriber with exactly natsbus.SubscriberPermissions;
// the operator creates each subscriber's durable (SubscriberDurable);
// signed Stripe webhooks are posted; then the Go example (built) and the
// TypeScript example (npm ci, tsc, node) each print every BILLING message
// the hub stored — its type, event id and canonical customer id — in a
// span continuing the message's trace (the trace id of its traceparent, and
// its span as the parent), ack everything, and stop on SIGTERM with exit 0.
// The subscriber's credentials are refused everything else.
func TestExampleSubscribers(t *testing.T) {
	node, npm := requireNode(t)
	if _, err := os.Stat(subjectsJSON); err != nil {
		t.Fatalf("the TypeScript example decodes by proto/subjects.json (the subject→type mapping): %v", err)
	}
	// The examples build while the hub starts.
	binDir := t.TempDir()
	goBin, goErr := make(chan string, 1), make(chan error, 1)
	go func() {
		bin, err := buildGoExample(binDir)
		goBin <- bin
		goErr <- err
	}()
	tsErr := make(chan error, 1)
	go func() { tsErr <- buildTSExample(npm) }()

	const hubUser, hubPassword = "hub", "hub-pw"
	subs := []string{"example_go", "example_ts"}
	users := []natsembed.User{{Name: hubUser, Password: hubPassword, Publish: []string{">"}, Subscribe: []string{">"}}}
	for _, name := range subs {
		p, err := natsbus.SubscriberPermissions(name, natsbus.StreamBilling)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, natsembed.User{Name: p.Identity, Password: name + "-pw", Publish: p.Publish, Subscribe: p.Subscribe})
	}
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	hubNC, err := nats.Connect(ns.ClientURL(), nats.UserInfo(hubUser, hubPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hubNC.Close)
	js, err := jetstream.New(hubNC)
	if err != nil {
		t.Fatal(err)
	}

	secret := "whsec_subs" + randomHex(16)
	ports := freePorts(t, 11)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	operator := "ops:read+operate:" + randomHex(24)
	env := config.MapEnv(map[string]string{
		"NATS_URL": ns.ClientURL(), "NATS_USER": hubUser, "NATS_PASSWORD": hubPassword,
		"OPS_NATS_USER": hubUser, "OPS_NATS_PASSWORD": hubPassword,
		"DATABASE_URL": testkit.Postgres(t), "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error",
		"SWITCHYARD_OPS_TOKENS": operator, "ALERTS_DIGEST_AT": "off",
	})
	ctx, cancel := context.WithCancel(context.Background())
	var hubOut, hubErr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"dev", "--data-dir", filepath.Join(t.TempDir(), "hub"), "--gateway-addr", addr(0), "--gateway-admin-addr", addr(10),
			"--identity-addr", addr(1), "--crm-addr", addr(2), "--hubspot-addr", addr(3), "--support-addr", addr(4), "--zendesk-addr", addr(5),
			"--alerts-addr", addr(6), "--slack-addr", addr(7), "--projector-addr", addr(8), "--ops-addr", addr(9)}, env, nil, &hubOut, &hubErr)
	}()
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("switchyard dev exited %d:\n%s", code, hubErr.String())
		}
	}()
	defer func() {
		if t.Failed() {
			log := hubErr.String()
			t.Logf("hub log (last 4000 bytes):\n%s", log[max(0, len(log)-4000):])
		}
	}()
	opsToken := strings.SplitN(operator, ":", 3)[2]
	testkit.WaitFor(t, 60*time.Second, "the dev hub's status API", func() bool {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("dev exited with %d:\n%s", code, hubErr.String())
		default:
		}
		return getJSON("http://"+addr(9)+"/v1/status", opsToken, &map[string]any{}) == nil
	})

	// A customer's signup, a paid invoice and a failed payment.
	for _, name := range []string{"customer.created", "invoice.paid", "invoice.payment_failed"} {
		if status, answer := postSigned(t, "http://"+addr(0)+"/webhooks/stripe", secret, testkit.StripeEvent(t, name)); status != http.StatusOK {
			t.Fatalf("gateway answered %s with %d %s", name, status, answer)
		}
	}
	waitHubIdle(t, js, "the webhooks")
	stored := billingStream(t, js)
	if len(stored) < 3 {
		t.Fatalf("the hub stored %d billing events for three Stripe events, want at least 3", len(stored))
	}
	for _, e := range stored {
		t.Logf("BILLING %d: %s %s %s trace %s", e.seq, e.subject, e.eventID, e.customer, e.traceID)
	}
	// An operator's replay of the first event for crm: every other
	// consumer of the subject acks it and does nothing.
	last := replayFor(t, js, stored[0].seq, natsbus.ConsumerCRM)
	waitHubIdle(t, js, "the replay")

	// The operator creates each subscriber's durable, as the docs say:
	// `switchyard subscriber NAME`, logged in with the right to.
	for _, name := range subs {
		var out, errOut strings.Builder
		cliEnv := config.MapEnv(map[string]string{"NATS_URL": ns.ClientURL(), "NATS_USER": hubUser, "NATS_PASSWORD": hubPassword})
		if code := run(ctx, []string{"subscriber", name, "--filter", "billing.>"}, cliEnv, nil, &out, &errOut); code != 0 {
			t.Fatalf("switchyard subscriber %s: exit %d\n%s", name, code, errOut.String())
		}
		if !strings.Contains(out.String(), "consumer "+name+" on BILLING: created") {
			t.Errorf("switchyard subscriber %s said:\n%s", name, out.String())
		}
	}
	checkSubscriberRefusals(t, ns.ClientURL(), subs[0], js)

	if err := <-goErr; err != nil {
		t.Fatal(err)
	}
	if err := <-tsErr; err != nil {
		t.Fatal(err)
	}
	tsMain, err := filepath.Abs(filepath.Join(exampleTSDir, "dist", "main.js"))
	if err != nil {
		t.Fatal(err)
	}
	examples := []struct {
		name string
		cmd  *exec.Cmd
	}{
		{subs[0], exec.Command(<-goBin)},
		{subs[1], exec.Command(node, tsMain)},
	}
	results := make(chan error, len(examples))
	for _, ex := range examples {
		ex.cmd.Env = append(os.Environ(), "NATS_URL="+ns.ClientURL(), "NATS_USER="+ex.name, "NATS_PASSWORD="+ex.name+"-pw",
			"NATS_CREDS=", "NATS_PASSWORD_FILE=", "NATS_INBOX_PREFIX=", "SUBSCRIBER_NAME="+ex.name, "SUBSCRIBER_STREAM=", "SUBSCRIBER_FILTER=",
			// The TypeScript example finds proto/subjects.json by itself.
			"SUBSCRIBER_DELIVER=", "SUBJECTS_JSON=")
		acked := func() bool {
			c, err := js.Consumer(ctx, natsbus.StreamBilling, ex.name)
			return err == nil && c.CachedInfo().AckFloor.Stream == last
		}
		go func() { results <- runExample(ex.name, ex.cmd, stored, acked) }()
	}
	for range examples {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}

	// Everything acknowledged, up to the stream's last message.
	for _, name := range subs {
		c, err := js.Consumer(ctx, natsbus.StreamBilling, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != last {
			t.Errorf("consumer %s: %d pending, %d awaiting ack, ack floor at stream seq %d; want 0, 0 and %d",
				name, info.NumPending, info.NumAckPending, info.AckFloor.Stream, last)
		}
	}
}

// billingStream reads every message of the BILLING stream as the hub
// stored it.
func billingStream(t *testing.T, js jetstream.JetStream) []storedEvent {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("BILLING seq %d: %v", seq, err)
		}
		m, err := subjects.Decode(raw.Subject, raw.Data)
		if err != nil {
			t.Fatalf("BILLING seq %d: %v", seq, err)
		}
		ev, ok := m.(subjects.BillingEvent)
		if !ok {
			t.Fatalf("BILLING seq %d: %T is not a billing event", seq, m)
		}
		tp := reTraceparent.FindStringSubmatch(raw.Header.Get("traceparent"))
		if tp == nil {
			t.Fatalf("BILLING seq %d (%s): traceparent %q, want a W3C trace context", seq, raw.Subject, raw.Header.Get("traceparent"))
		}
		out = append(out, storedEvent{seq: seq, subject: raw.Subject, typ: string(m.ProtoReflect().Descriptor().FullName()),
			eventID: ev.GetMeta().GetEventId(), customer: ev.GetMeta().GetCanonicalCustomerId(), traceID: tp[1], parentSpanID: tp[2]})
	}
	return out
}

// replayFor publishes the BILLING message at seq again as the operator's
// replay for consumer does (a fresh message id, Switchyard-Replay-Of and
// -For), and returns its sequence.
func replayFor(t *testing.T, js jetstream.JetStream, seq uint64, consumer string) uint64 {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(orig.Subject)
	msg.Data = orig.Data
	msg.Header.Set("traceparent", orig.Header.Get("traceparent"))
	msg.Header.Set(jetstream.MsgIDHeader, "replay-"+randomHex(8))
	msg.Header.Set("Switchyard-Replay-Of", orig.Header.Get(jetstream.MsgIDHeader))
	msg.Header.Set("Switchyard-Replay-For", consumer)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// runExample runs one example subscriber until it has printed a line per
// stored event and acked everything (acked), stops it with SIGTERM and
// checks what it printed.
func runExample(name string, cmd *exec.Cmd, stored []storedEvent, acked func() bool) error {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []printedLine
	deadline := time.After(30 * time.Second)
	for len(got) < len(stored) {
		select {
		case l, ok := <-lines:
			if !ok {
				return fmt.Errorf("%s exited after %d of %d lines: %v\n%s", name, len(got), len(stored), cmd.Wait(), stderr.String())
			}
			var p printedLine
			if err := json.Unmarshal([]byte(l), &p); err != nil {
				return fmt.Errorf("%s printed %q, not a JSON line: %w", name, l, err)
			}
			got = append(got, p)
		case <-deadline:
			return fmt.Errorf("%s printed %d of %d lines in 30s:\n%s", name, len(got), len(stored), stderr.String())
		}
	}
	for !acked() {
		select {
		case l, ok := <-lines:
			if !ok {
				return fmt.Errorf("%s exited before acking everything: %v\n%s", name, cmd.Wait(), stderr.String())
			}
			got = append(got, printedLine{Subject: "unexpected: " + l})
		case <-deadline:
			return fmt.Errorf("%s printed every event but has not acked them all in 30s:\n%s", name, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		for l := range lines {
			got = append(got, printedLine{Subject: "unexpected: " + l})
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s after SIGTERM: %v, want exit 0\n%s", name, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not stop within 10s of SIGTERM\n%s", name, stderr.String())
	}
	return comparePrinted(name, got, stored)
}

// comparePrinted checks that the lines are the stored events, once each,
// each in a span that continues the event's trace.
func comparePrinted(name string, got []printedLine, stored []storedEvent) error {
	var problems []string
	if len(got) != len(stored) {
		problems = append(problems, fmt.Sprintf("%d lines for %d stored events", len(got), len(stored)))
	}
	seen := map[string]bool{}
	for _, p := range got {
		i := slices.IndexFunc(stored, func(e storedEvent) bool { return e.eventID == p.EventID })
		switch {
		case i < 0:
			problems = append(problems, fmt.Sprintf("printed %+v, which the hub did not store", p))
			continue
		case seen[p.EventID]:
			problems = append(problems, "printed "+p.EventID+" twice")
		}
		seen[p.EventID] = true
		e := stored[i]
		want := printedLine{Subject: e.subject, Type: e.typ, EventID: e.eventID, CanonicalCustomerID: e.customer, TraceID: e.traceID, ParentSpanID: e.parentSpanID, SpanID: p.SpanID}
		if p != want {
			problems = append(problems, fmt.Sprintf("printed %+v\n  want %+v", p, want))
		}
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(p.SpanID) || p.SpanID == e.parentSpanID || p.SpanID == "0000000000000000" {
			problems = append(problems, fmt.Sprintf("%s: span id %q, want a span of its own under %s", p.EventID, p.SpanID, e.parentSpanID))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s:\n%s", name, strings.Join(problems, "\n"))
	}
	return nil
}

// checkSubscriberRefusals proves the subscriber's credentials are tight:
// no event, dead letter or other subject published; no consumer created,
// not even its own (a push deliver subject would publish for it); no other
// consumer's deliveries; nothing of STRIPE; no one else's inboxes.
func checkSubscriberRefusals(t *testing.T, natsURL, name string, hub jetstream.JetStream) {
	t.Helper()
	violations := make(chan error, 64)
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(name, name+"-pw")
	nc, err := nats.Connect(u.String(), nats.CustomInboxPrefix(natsbus.InboxPrefix(name)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				violations <- err
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subject := range []string{
		"billing.x", "billing.customer.upserted", "dlq." + name, "crm.contact.synced",
		"$JS.API.CONSUMER.CREATE.BILLING." + name, "$JS.API.CONSUMER.CREATE.BILLING." + name + ".billing.>",
		"$JS.API.CONSUMER.DURABLE.CREATE.BILLING." + name, "$JS.API.CONSUMER.CREATE.BILLING.other",
		"$JS.API.CONSUMER.DELETE.BILLING." + name, "$JS.API.CONSUMER.MSG.NEXT.BILLING." + natsbus.ConsumerCRM,
		"$JS.API.CONSUMER.CREATE.STRIPE." + name, "$JS.API.CONSUMER.INFO.STRIPE." + natsbus.ConsumerIdentity,
		"$JS.API.STREAM.MSG.GET.STRIPE", "$JS.API.STREAM.INFO.STRIPE", "$JS.API.STREAM.PURGE.BILLING",
	} {
		if err := nc.Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-violations:
			if !strings.Contains(err.Error(), subject) {
				t.Errorf("%s publishing %s: violation %q names another subject", name, subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s may publish %s", name, subject)
		}
	}
	for _, subject := range []string{"billing.>", "_INBOX.>", natsbus.InboxPrefix("hub") + ".>", "$JS.ACK.>"} {
		if _, err := nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-violations:
			if !strings.Contains(err.Error(), "Subscription") {
				t.Errorf("%s subscribing %s: %v, want a subscription violation", name, subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s may subscribe to %s", name, subject)
		}
	}
	// Through the JetStream client too: the consumer it tried is not there.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(ctx, natsbus.StreamBilling, jetstream.ConsumerConfig{Durable: "other", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Errorf("%s created consumer other on BILLING", name)
	}
	if _, err := hub.Consumer(context.Background(), natsbus.StreamBilling, "other"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("consumer other on BILLING after %s's attempt: %v, want not found", name, err)
	}
}

// TestExampleSubscriberTSGeneratedCode: the TypeScript example's committed
// src/gen is what its generator (scripts/generate.sh: the buf of
// proto/tools, protoc-gen-es of package-lock.json) makes of proto/ now.
func TestExampleSubscriberTSGeneratedCode(t *testing.T) {
	_, npm := requireNode(t)
	if _, err := os.Stat(filepath.Join(exampleTSDir, "node_modules", ".bin", "protoc-gen-es")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = exampleTSDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", exampleTSDir, err, out)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "scripts/generate.sh", out)
	cmd.Dir = exampleTSDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/generate.sh: %v\n%s", err, b)
	}
	committed := filepath.Join(exampleTSDir, "src", "gen")
	want, got := treeFiles(t, out), treeFiles(t, committed)
	for name, content := range want {
		if got[name] != content {
			t.Errorf("%s/%s differs from what scripts/generate.sh makes: run npm run generate in %s and commit", committed, name, exampleTSDir)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s/%s is no longer generated: run npm run generate in %s and commit", committed, name, exampleTSDir)
		}
	}
}

// treeFiles reads every file under dir, by its path relative to dir.
func treeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files under %s", dir)
	}
	return files
}

// TestSubscriberCommand: `switchyard subscriber` creates the durable the
// examples read, with the settings asked for, and prints a nats.conf user
// that nats-server loads with exactly natsbus.SubscriberPermissions; names
// and streams a subscriber may not have are refused.
func TestSubscriberCommand(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	env := config.MapEnv(map[string]string{"NATS_URL": b.URL})
	cli := func(args ...string) (string, string, int) {
		var out, errOut strings.Builder
		code := run(context.Background(), append([]string{"subscriber"}, args...), env, nil, &out, &errOut)
		return out.String(), errOut.String(), code
	}

	out, stderr, code := cli("billing_sync", "--filter", "billing.payment.>", "--deliver", "new")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "consumer billing_sync on BILLING: created") {
		t.Errorf("output:\n%s", out)
	}
	c, err := js.Consumer(context.Background(), natsbus.StreamBilling, "billing_sync")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.DeliverPolicy != jetstream.DeliverNewPolicy || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.FilterSubject != "billing.payment.>" ||
		cfg.MaxDeliver != -1 || cfg.AckWait != natsbus.DefaultAckWait || cfg.DeliverSubject != "" {
		t.Errorf("consumer config %+v: want a pull consumer, deliver new, explicit ack, filter billing.payment.>, unlimited deliveries, 30s ack wait", cfg)
	}
	if out, stderr, code = cli("billing_sync", "--filter", "billing.payment.>", "--deliver", "new"); code != 0 || !strings.Contains(out, "billing_sync on BILLING: updated") {
		t.Errorf("second run: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code = cli("billing_sync", "--filter", "billing.payment.>", "--deliver", "all"); code != 1 || !strings.Contains(stderr, "cannot change") {
		t.Errorf("changing where it starts: exit %d, %s; want 1 and why", code, stderr)
	}

	// The printed user, loaded by nats-server, has exactly the permissions.
	out, stderr, code = cli("billing_sync", "--conf-only")
	if code != 0 {
		t.Fatalf("--conf-only: exit %d: %s", code, stderr)
	}
	t.Setenv("NATS_PASSWORD_BILLING_SYNC", "pw-from-env")
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("authorization {\n  users: [\n"+out+"  ]\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server refuses the printed user: %v\n%s", err, out)
	}
	want, err := natsbus.SubscriberPermissions("billing_sync", natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Users) != 1 || opts.Users[0].Username != "billing_sync" || opts.Users[0].Password != "pw-from-env" ||
		!slices.Equal(opts.Users[0].Permissions.Publish.Allow, want.Publish) || !slices.Equal(opts.Users[0].Permissions.Subscribe.Allow, want.Subscribe) {
		t.Errorf("nats-server loaded %+v from:\n%s", opts.Users, out)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a hub identity", []string{"crm", "--conf-only"}, 1, "identity or durable consumer of the hub"},
		{"a hub durable", []string{"identity_crm_links", "--conf-only"}, 1, "identity or durable consumer of the hub"},
		{"two tokens", []string{"a.b", "--conf-only"}, 1, "one NATS subject token"},
		{"the raw Stripe stream", []string{"x", "--stream", "STRIPE", "--conf-only"}, 1, "not one a subscriber may read"},
		{"no name", []string{"--conf-only"}, 2, "usage"},
		{"a bad start", []string{"x", "--deliver", "yesterday"}, 1, "RFC 3339"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := cli(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

// TestSubscribingDocShowsTheSubscriberUser: the nats.conf user in
// docs/subscribing.md is what `switchyard subscriber billing_sync` prints.
func TestSubscribingDocShowsTheSubscriberUser(t *testing.T) {
	doc, err := os.ReadFile("../../docs/subscribing.md")
	if err != nil {
		t.Fatal(err)
	}
	p, err := natsbus.SubscriberPermissions("billing_sync", natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	if want := natsConfUser(p, subscriberPasswordVar("billing_sync")); !strings.Contains(string(doc), want) {
		t.Errorf("docs/subscribing.md does not show the user switchyard subscriber prints:\n%s", want)
	}
}
