package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// TestDevRestartsAfterKill9MidBurst is issue 14's "restart after kill -9":
// the built hub (`make run`) takes a burst of signed webhooks for 150
// customers and is killed with SIGKILL a third of the way in — the hub
// process alone, as the shell's kill -9 does, so its private PostgreSQL
// must die on its own. The hub then starts again on the same data folder
// and ports, the whole burst is posted again (Stripe retries every delivery
// it got no 200 for; the ones it did are posted again to prove them
// harmless), and everything converges exactly once: each event stored
// once, each customer once in the status API with one failed payment and
// one ticket in its timeline, one HubSpot contact and one Zendesk ticket
// per customer in the emulators' saved accounts.
func TestDevRestartsAfterKill9MidBurst(t *testing.T) {
	const customers = 150
	h := newKillHub(t)
	events, ids := killBurst(t, customers)

	h.start(t)
	post := poster("http://"+h.addr(0)+"/webhooks/stripe", h.secret)
	var ok atomic.Int64
	killed := make(chan struct{})
	var once sync.Once
	burst(events, func(body []byte) {
		select {
		case <-killed:
			return // the rest of the burst meets a dead hub; Stripe retries it later
		default:
		}
		if post(body) == nil && ok.Add(1) == int64(len(events)/3) {
			once.Do(func() {
				h.kill9(t)
				close(killed)
			})
		}
	})
	// The hub's PostgreSQL dies with it, not lingering on the data folder.
	pgDir := filepath.Join(h.data, "postgres")
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := pgcluster.Processes(pgDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL processes %v of %s outlived the hub killed with SIGKILL by 10s", pids, pgDir)
		}
		time.Sleep(50 * time.Millisecond)
	}

	h.start(t)
	var failed atomic.Int64
	burst(events, func(body []byte) {
		if err := post(body); err != nil && failed.Add(1) == 1 {
			t.Errorf("after the restart, a webhook failed: %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Convergence: every customer synced to the CRM and its ticket open.
	ops := "http://" + h.addr(10)
	type view struct {
		ID  string `json:"id"`
		CRM struct {
			Status string `json:"status"`
		} `json:"crm"`
		States []string `json:"states"`
	}
	converged := func(vs []view) bool {
		return len(vs) == 1 && vs[0].CRM.Status == "synced" && slices.Contains(vs[0].States, "support ticket opened")
	}
	views := map[string][]view{}
	var behind string
	defer func() {
		if t.Failed() {
			t.Logf("the last customer not converged: %s", behind)
		}
	}()
	testkit.WaitFor(t, 60*time.Second, "every customer synced to HubSpot with its ticket open", func() bool {
		for _, id := range ids {
			if converged(views[id]) {
				continue
			}
			var res struct {
				Customers []view `json:"customers"`
			}
			if err := getJSON(ops+"/v1/customers?stripe_customer_id="+id, h.opsToken, &res); err != nil {
				behind = id + ": " + err.Error()
				return false
			}
			views[id] = res.Customers
			if !converged(res.Customers) {
				behind = fmt.Sprintf("%s: %+v", id, res.Customers)
				return false
			}
		}
		behind = "none"
		return true
	})
	js := h.jetstream(t)
	waitHubIdle(t, js, "the burst posted again")

	// Exactly once: each event stored once, each customer one view whose
	// timeline holds its failed payment and its ticket once.
	for name, want := range map[string]uint64{natsbus.StreamStripe: uint64(len(events)), natsbus.StreamDLQ: 0} {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != want {
			t.Errorf("%s holds %d messages, want %d", name, info.State.Msgs, want)
		}
	}
	for _, id := range ids {
		var res struct {
			Customers []view `json:"customers"`
		}
		if err := getJSON(ops+"/v1/customers?stripe_customer_id="+id, h.opsToken, &res); err != nil || len(res.Customers) != 1 {
			t.Errorf("status API: customer %s: %d views (%v), want 1", id, len(res.Customers), err)
			continue
		}
		var page struct {
			Entries []struct {
				Subject string `json:"subject"`
			} `json:"entries"`
		}
		if err := getJSON(ops+"/v1/customers/"+res.Customers[0].ID+"/timeline", h.opsToken, &page); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range page.Entries {
			seen[e.Subject]++
		}
		for _, s := range []string{"billing.payment.failed", "support.ticket.opened"} {
			if seen[s] != 1 {
				t.Errorf("customer %s: timeline holds %s %d times, want once: %v", id, s, seen[s], seen)
			}
		}
	}

	// The vendors' side, from the accounts the emulators saved at a clean
	// stop: one contact per customer's email, one ticket per failed payment.
	h.stop(t)
	hs := hubspotemu.New(hubspotemu.Options{})
	loadState(t, filepath.Join(h.data, emulatorStateDir, "hubspot.json"), hs)
	contacts := map[string]int{}
	for _, c := range hs.Contacts() {
		contacts[c.Properties["stripe_customer_id"]]++
	}
	zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken})
	if err != nil {
		t.Fatal(err)
	}
	loadState(t, filepath.Join(h.data, emulatorStateDir, "zendesk.json"), zd)
	tickets := map[string]int{}
	for _, tk := range zd.Tickets() {
		tickets[tk.ExternalID]++
	}
	for _, id := range ids {
		if contacts[id] != 1 {
			t.Errorf("HubSpot holds %d contacts for customer %s, want 1", contacts[id], id)
		}
	}
	if len(contacts) != customers {
		t.Errorf("HubSpot holds contacts for %d customers, want %d", len(contacts), customers)
	}
	for ext, n := range tickets {
		if n != 1 {
			t.Errorf("Zendesk holds %d tickets with external_id %s, want 1", n, ext)
		}
	}
	if len(tickets) != customers {
		t.Errorf("Zendesk holds tickets for %d distinct failures, want %d (one per customer)", len(tickets), customers)
	}
}

// killHub is a built `switchyard dev` on a fixed data folder and fixed
// ports, started and killed as a person at a terminal would.
type killHub struct {
	bin, data string
	ports     []int
	runs      int

	cmd              *exec.Cmd
	stderr           *lockedBuffer
	exited           chan error
	secret, opsToken string
}

func newKillHub(t *testing.T) *killHub {
	t.Helper()
	h := &killHub{bin: filepath.Join(t.TempDir(), "switchyard"), ports: freePorts(t, 12)}
	if out, err := exec.Command("go", "build", "-o", h.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Like a checkout, the data folder must be reachable by the postgres
	// user that runs the private cluster when tests run as root.
	dir, err := os.MkdirTemp("", "switchyard-kill-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.data = filepath.Join(dir, "hub")
	t.Cleanup(func() {
		// Whatever happened, leave no server behind on the folder.
		if pids, _ := pgcluster.Processes(filepath.Join(h.data, "postgres")); len(pids) > 0 {
			t.Errorf("PostgreSQL processes %v left on the data folder", pids)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
		_ = os.RemoveAll(dir)
	})
	return h
}

func (h *killHub) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(h.ports[i]) }

// start starts the hub and waits for its banner.
func (h *killHub) start(t *testing.T) {
	t.Helper()
	h.runs++
	h.cmd = exec.Command(h.bin, "dev", "--data-dir", h.data, "--vendor-limits", "none",
		"--gateway-addr", h.addr(0), "--gateway-admin-addr", h.addr(11), "--nats-port", strconv.Itoa(h.ports[1]),
		"--identity-addr", h.addr(2), "--crm-addr", h.addr(3), "--hubspot-addr", h.addr(4), "--support-addr", h.addr(5),
		"--zendesk-addr", h.addr(6), "--alerts-addr", h.addr(7), "--slack-addr", h.addr(8),
		"--projector-addr", h.addr(9), "--ops-addr", h.addr(10))
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "DATABASE_URL" && k != "NATS_URL" && k != "STRIPE_WEBHOOK_SECRET" && !strings.HasPrefix(k, "HUBSPOT_") && !strings.HasPrefix(k, "ZENDESK_") &&
			!strings.HasPrefix(k, "SUPPORT_") && !strings.HasPrefix(k, "SLACK_") && !strings.HasPrefix(k, "ALERTS_") && !strings.HasPrefix(k, "SWITCHYARD_OPS") &&
			!strings.HasPrefix(k, "OTEL_") {
			env = append(env, kv)
		}
	}
	h.cmd.Env = append(env, "LOG_LEVEL=warn")
	// A process group of its own, as a shell's job: the hub is its leader.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stderr = &lockedBuffer{}
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited, lines := h.cmd, make(chan error, 1), make(chan string, 100)
	h.exited = exited
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // past the banner nobody reads
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
	})
	stderr := h.stderr
	defer func() {
		if t.Failed() {
			t.Logf("dev's log (run %d):\n%s", h.runs, logTail(stderr.String(), 60))
		}
	}()

	reSecret := regexp.MustCompile(`signing secret:\s+(whsec_[0-9a-f]+)`)
	reToken := regexp.MustCompile(`ops token:\s+([0-9a-f]{48})`)
	h.secret, h.opsToken = "", ""
	deadline := time.After(60 * time.Second)
	for h.secret == "" || h.opsToken == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev (run %d) exited before printing its banner: %v\n%s", h.runs, <-exited, stderr.String())
			}
			if m := reSecret.FindStringSubmatch(l); m != nil {
				h.secret = m[1]
			}
			if m := reToken.FindStringSubmatch(l); m != nil {
				h.opsToken = m[1]
			}
		case <-deadline:
			t.Fatalf("no banner within 60s (run %d)\n%s", h.runs, stderr.String())
		}
	}
}

// kill9 kills the hub process alone with SIGKILL and waits for it.
func (h *killHub) kill9(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Error(err)
	}
	<-h.exited
}

// stop stops the hub as Ctrl-C does and waits for a clean exit.
func (h *killHub) stop(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.exited:
		if err != nil {
			t.Errorf("dev exited with %v after SIGTERM\n%s", err, logTail(h.stderr.String(), 60))
		}
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		t.Fatal("dev did not exit within 30s of SIGTERM")
	}
}

// jetstream connects to the hub's NATS as the operator (closed at the end
// of the test).
func (h *killHub) jetstream(t *testing.T) jetstream.JetStream {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(h.data, natsUsersDir, natsbus.IdentityOperator))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+h.addr(1), nats.UserInfo(natsbus.IdentityOperator, strings.TrimSpace(string(pw))),
		nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityOperator)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// killBurst returns n customers' Stripe events, in the order Stripe sends
// them (customer.created with an email, a failed payment, then the paid
// invoice), and the customers' Stripe ids.
func killBurst(t *testing.T, n int) (events [][]byte, ids []string) {
	t.Helper()
	var templates [3]map[string]any
	for i, name := range []string{"customer.created", "invoice.payment_failed", "invoice.paid"} {
		if err := json.Unmarshal(testkit.StripeEvent(t, name), &templates[i]); err != nil {
			t.Fatal(err)
		}
	}
	obj := templates[0]["data"].(map[string]any)["object"].(map[string]any)
	obj["email"] = "jenny.rosen@example.com"
	for i := range n {
		suffix := fmt.Sprintf("k%05d", i)
		for k, tpl := range templates {
			ev := rewrite(tpl, suffix).(map[string]any)
			ev["id"] = fmt.Sprintf("evt_kill%d%s", k, suffix)
			body, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, body)
		}
		ids = append(ids, rewrite(obj["id"], suffix).(string))
	}
	return events, ids
}

// burst hands events to send from 8 goroutines, in order, and returns when
// all are handled.
func burst(events [][]byte, send func([]byte)) {
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				send(body)
			}
		}()
	}
	for _, body := range events {
		work <- body
	}
	close(work)
	wg.Wait()
}

// loadState loads an emulator's saved account.
func loadState(t *testing.T, path string, st interface{ UnmarshalState([]byte) error }) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the emulator's saved account: %v", err)
	}
	if err := st.UnmarshalState(b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// logTail is the last n lines of a log.
func logTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
