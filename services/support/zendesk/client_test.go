package zendesk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	emulator "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

const (
	agentEmail = "support-bot@acme.test"
	agentToken = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
	groupID    = 360001
	agentID    = 9001
	customer   = "jane.doe@customer.test"
)

// t0 is 15 s into a minute: the emulator's rate-limit window has 45 s left.
var t0 = time.Date(2026, 3, 2, 12, 0, 15, 0, time.UTC)

// clock is a fake clock shared by the emulator and the client; sleeping on
// it advances it.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	slept time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept += d
	return nil
}

func (c *clock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

type env struct {
	srv    *emulator.Server
	client *zendesk.Client
	clk    *clock
	url    string
}

// newEnv starts the emulator on httptest (real HTTP) with one group and one
// agent, and a client that reaches it by BaseURL alone. The rate limit is
// off unless opts sets one.
func newEnv(t *testing.T, opts emulator.Options) *env {
	t.Helper()
	clk := &clock{t: t0}
	opts.Email, opts.APIToken, opts.Now = agentEmail, agentToken, clk.Now
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	opts.Groups = []emulator.Group{{ID: groupID, Name: "Billing"}}
	opts.Agents = []emulator.User{{ID: agentID, Name: "Alice", Email: "alice@acme.test", GroupIDs: []int64{groupID}}}
	srv, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	e := &env{srv: srv, clk: clk, url: ts.URL}
	e.client = e.newClient(t, agentToken)
	return e
}

func (e *env) newClient(t *testing.T, token string) *zendesk.Client {
	t.Helper()
	c, err := zendesk.New(zendesk.Config{
		BaseURL:  e.url,
		Email:    agentEmail,
		APIToken: config.NewSecret(token),
		Now:      e.clk.Now,
		Sleep:    e.clk.Sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// creates counts the POST /api/v2/tickets requests the emulator received.
func (e *env) creates() int {
	n := 0
	for _, r := range e.srv.Requests() {
		if r.Method == http.MethodPost && strings.TrimSuffix(r.Path, ".json") == "/api/v2/tickets" {
			n++
		}
	}
	return n
}

func newTicket(externalID string) zendesk.NewTicket {
	return zendesk.NewTicket{
		ExternalID: externalID,
		Subject:    "Payment failed: Pro plan",
		Body:       "Invoice in_123 for 49.00 USD failed (attempt 2).",
		Priority:   "high",
		Type:       "incident",
		Tags:       []string{"billing", "payment_failed"},
		GroupID:    groupID,
		AssigneeID: agentID,
		Requester:  &zendesk.Requester{Name: "Jane Doe", Email: customer},
	}
}

// checkErr asserts err's class and that it leaks neither the token nor
// the customer's email.
func checkErr(t *testing.T, err error, want errclass.Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", want)
	}
	if got := errclass.Of(err); got != want {
		t.Errorf("class of %q: got %v, want %v", err, got, want)
	}
	for _, secret := range []string{agentToken, customer} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := zendesk.Config{BaseURL: "https://acme.zendesk.com", Email: agentEmail, APIToken: config.NewSecret(agentToken)}
	tests := []struct {
		name    string
		edit    func(*zendesk.Config)
		wantErr bool
	}{
		{"valid", func(*zendesk.Config) {}, false},
		{"no base URL", func(c *zendesk.Config) { c.BaseURL = "" }, true},
		{"bad base URL", func(c *zendesk.Config) { c.BaseURL = "acme.zendesk.com" }, true},
		{"no email", func(c *zendesk.Config) { c.Email = "" }, true},
		{"no token", func(c *zendesk.Config) { c.APIToken = config.Secret{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := zendesk.New(cfg)
			if (err != nil) != tt.wantErr {
				t.Errorf("New: got %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), agentToken) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestEnsureTicketCreatesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{})
	ctx := context.Background()
	first, created, err := e.client.EnsureTicket(ctx, newTicket("evt_1/payment_failed"), zendesk.MaybeSent)
	if err != nil || !created {
		t.Fatalf("first EnsureTicket: created %v, err %v", created, err)
	}
	again, created, err := e.client.EnsureTicket(ctx, newTicket("evt_1/payment_failed"), zendesk.MaybeSent)
	if err != nil || created {
		t.Fatalf("second EnsureTicket: created %v, err %v", created, err)
	}
	if again.ID != first.ID {
		t.Errorf("second EnsureTicket: got ticket %d, want %d", again.ID, first.ID)
	}
	if got, want := len(e.srv.Tickets()), 1; got != want {
		t.Errorf("tickets in emulator: got %d, want %d", got, want)
	}
	if got, want := e.creates(), 1; got != want {
		t.Errorf("create requests: got %d, want %d", got, want)
	}

	// The ticket as stored is exactly what was asked for.
	st, ok := e.srv.Ticket(first.ID)
	if !ok {
		t.Fatalf("ticket %d not in emulator", first.ID)
	}
	user, _ := e.srv.UserByEmail(customer)
	if st.ExternalID != "evt_1/payment_failed" || st.Priority != "high" || st.Type != "incident" ||
		st.GroupID != groupID || st.AssigneeID != agentID || st.RequesterID != user.ID ||
		st.Subject != "Payment failed: Pro plan" || strings.Join(st.Tags, ",") != "billing,payment_failed" {
		t.Errorf("stored ticket: got %+v", st)
	}
	if len(st.Comments) != 1 || st.Comments[0].Public || st.IsPublic {
		t.Errorf("first comment must be private: got %+v (is_public %v)", st.Comments, st.IsPublic)
	}
	if first.ExternalID != st.ExternalID || first.Priority != "high" || first.GroupID != groupID ||
		first.AssigneeID != agentID || first.Status != "open" || !first.CreatedAt.Equal(t0) {
		t.Errorf("returned ticket: got %+v", first)
	}
}

func TestEnsureTicketReturnsOldestDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{})
	ctx := context.Background()
	var ids []int64
	for range 3 {
		tk, err := e.client.CreateTicket(ctx, newTicket("evt_2/refund"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	got, created, err := e.client.EnsureTicket(ctx, newTicket("evt_2/refund"), zendesk.MaybeSent)
	if err != nil || created {
		t.Fatalf("EnsureTicket: created %v, err %v", created, err)
	}
	if got.ID != ids[0] {
		t.Errorf("EnsureTicket: got ticket %d, want the oldest %d", got.ID, ids[0])
	}
	if n := e.creates(); n != 3 {
		t.Errorf("create requests: got %d, want 3", n)
	}
}

func TestFindByExternalIDFollowsPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{})
	const n = emulator.MaxPageSize + 5
	for i := range n {
		ext := "evt_3/dispute"
		if i%2 == 1 {
			ext = "other"
		}
		body := fmt.Sprintf(`{"ticket":{"subject":"s","comment":{"body":"b"},"external_id":%q}}`, ext)
		if _, err := e.srv.SeedTicket([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		body := fmt.Sprintf(`{"ticket":{"subject":"s%d","comment":{"body":"b"},"external_id":"evt_3/dispute"}}`, i)
		if _, err := e.srv.SeedTicket([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.client.FindByExternalID(context.Background(), "evt_3/dispute")
	if err != nil {
		t.Fatal(err)
	}
	want := e.srv.TicketsByExternalID("evt_3/dispute")
	if len(got) != len(want) || len(want) <= emulator.MaxPageSize {
		t.Fatalf("FindByExternalID: got %d tickets, want %d (> one page)", len(got), len(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID {
			t.Fatalf("ticket %d: got id %d, want %d", i, got[i].ID, want[i].ID)
		}
	}
	pages := 0
	for _, r := range e.srv.Requests() {
		if r.Method == http.MethodGet {
			pages++
		}
	}
	if pages != 2 {
		t.Errorf("list requests: got %d, want 2", pages)
	}

	none, err := e.client.FindByExternalID(context.Background(), "evt_none")
	if err != nil || len(none) != 0 {
		t.Errorf("FindByExternalID(unknown): got %v, %v; want none", none, err)
	}
}

func TestFindByExternalID404IsEmpty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{})
	e.srv.FailNext(1, http.StatusNotFound)
	got, err := e.client.FindByExternalID(context.Background(), "evt_4")
	if err != nil || len(got) != 0 {
		t.Errorf("FindByExternalID on 404: got %v, %v; want none, nil", got, err)
	}
}

func TestInvalidPriorityIsPermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{})
	nt := newTicket("evt_5/payment_failed")
	nt.Priority = "asap"
	_, _, err := e.client.EnsureTicket(context.Background(), nt, zendesk.MaybeSent)
	checkErr(t, err, errclass.ClassPermanent)
	if !strings.Contains(err.Error(), "priority") || strings.Contains(err.Error(), "asap") {
		t.Errorf("error %q: want the field name priority, not its value", err)
	}
	if n := len(e.srv.Tickets()); n != 0 {
		t.Errorf("tickets in emulator: got %d, want 0", n)
	}
}

func TestAuthFailures(t *testing.T) {
	t.Parallel()
	t.Run("401 wrong token", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, emulator.Options{})
		c := e.newClient(t, "wrong-"+agentToken)
		_, _, err := c.EnsureTicket(context.Background(), newTicket("evt_6"), zendesk.MaybeSent)
		checkErr(t, err, errclass.ClassAuth)
		if strings.Contains(err.Error(), "wrong-") {
			t.Errorf("error %q contains the token", err)
		}
	})
	t.Run("401 rotated", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, emulator.Options{})
		e.srv.SetCredentials(agentEmail, "rotated")
		_, err := e.client.CreateTicket(context.Background(), newTicket("evt_6"))
		checkErr(t, err, errclass.ClassAuth)
	})
	t.Run("403", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, emulator.Options{Forbidden: true})
		_, err := e.client.FindByExternalID(context.Background(), "evt_6")
		checkErr(t, err, errclass.ClassAuth)
	})
}

func TestTransientFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		wantHint time.Duration
	}{
		{"429 with Retry-After", http.StatusTooManyRequests, 7 * time.Second},
		{"503", http.StatusServiceUnavailable, 7 * time.Second},
		{"500", http.StatusInternalServerError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{})
			e.srv.SetInjectedRetryAfter(7)
			ctx := context.Background()
			e.srv.FailNext(1, tt.status)
			_, _, err := e.client.EnsureTicket(ctx, newTicket("evt_7"), zendesk.MaybeSent)
			checkErr(t, err, errclass.ClassTransient)
			if got := errclass.RetryHint(err); got != tt.wantHint {
				t.Errorf("retry hint: got %v, want %v", got, tt.wantHint)
			}
			// The failed lookup created nothing; the retry does.
			if _, created, err := e.client.EnsureTicket(ctx, newTicket("evt_7"), zendesk.MaybeSent); err != nil || !created {
				t.Fatalf("retry: created %v, err %v", created, err)
			}
			if n := len(e.srv.Tickets()); n != 1 {
				t.Errorf("tickets in emulator: got %d, want 1", n)
			}
		})
	}
}

// TestLostCreateAnswer is the crash-between-create-and-ack case: Zendesk
// stores the ticket but the answer never arrives; the retry must find it.
func TestLostCreateAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		crash emulator.Crash
	}{
		{"dropped connection", emulator.CrashDropConnection},
		{"500 after commit", emulator.CrashStatus500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{})
			ctx := context.Background()
			e.srv.CrashNextCreates(1, tt.crash)
			_, _, err := e.client.EnsureTicket(ctx, newTicket("evt_8/cancel"), zendesk.MaybeSent)
			checkErr(t, err, errclass.ClassTransient)
			tk, created, err := e.client.EnsureTicket(ctx, newTicket("evt_8/cancel"), zendesk.MaybeSent)
			if err != nil || created {
				t.Fatalf("retry: created %v, err %v", created, err)
			}
			stored := e.srv.TicketsByExternalID("evt_8/cancel")
			if len(stored) != 1 || len(e.srv.Tickets()) != 1 {
				t.Fatalf("tickets in emulator: got %d, want exactly 1", len(e.srv.Tickets()))
			}
			if tk.ID != stored[0].ID {
				t.Errorf("retry returned ticket %d, want %d", tk.ID, stored[0].ID)
			}
			if n := e.creates(); n != 1 {
				t.Errorf("create requests: got %d, want 1", n)
			}
		})
	}
}

func TestPacesByRateLimitHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{RateLimit: 3})
	ctx := context.Background()
	for i := range 7 {
		if _, err := e.client.FindByExternalID(ctx, "evt_9"); err != nil {
			t.Fatalf("find %d: %v", i, err)
		}
	}
	for _, r := range e.srv.Requests() {
		if r.Status == http.StatusTooManyRequests {
			t.Fatalf("got a 429 at %v: the limiter must stop before the budget is spent", r.Time)
		}
	}
	// 3 requests per window: the 4th waits 45 s to the minute, the 7th
	// another 60 s.
	if got, want := e.clk.Slept(), 105*time.Second; got != want {
		t.Errorf("slept: got %v, want %v", got, want)
	}
}

func TestPacingHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{RateLimit: 1})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := e.client.FindByExternalID(ctx, "evt_10"); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err := e.client.FindByExternalID(ctx, "evt_10")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("find after cancel: got %v, want context.Canceled", err)
	}
}

// TestEnsureTicketNeverSentIsOneRequest: a ticket no earlier attempt can
// have sent costs one request, the create, with the requester inline (no
// lookup, no user request).
func TestEnsureTicketNeverSentIsOneRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{})
	before := len(e.srv.Requests())
	tk, created, err := e.client.EnsureTicket(context.Background(), newTicket("evt_9/payment_failed"), zendesk.NeverSent)
	if err != nil || !created {
		t.Fatalf("EnsureTicket: created %v, err %v", created, err)
	}
	reqs := e.srv.Requests()[before:]
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || !strings.Contains(string(reqs[0].Body), `"requester":{`) {
		t.Fatalf("requests: got %d (%+v), want one POST with the requester inline", len(reqs), reqs)
	}
	if st, _ := e.srv.Ticket(tk.ID); st.RequesterID == 0 {
		t.Errorf("stored ticket has no requester: %+v", st)
	}
}
