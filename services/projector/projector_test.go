package projector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/ops"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

const (
	operateToken = "founder-operate-0123456789abcdef"
	readToken    = "app-read-only-0123456789abcdefgh"
	opsTokens    = "founder:read+operate:" + operateToken + ",app:read:" + readToken
)

type hub struct {
	js    jetstream.JetStream
	api   string // status API base URL
	admin string // health, readiness and metrics base URL
	pool  *pgxpool.Pool
	store *view.Store
	logs  *bytes.Buffer
}

func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

// start runs projector.Run on a fresh broker and database.
func start(t *testing.T, extra map[string]string) *hub {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	dbURL := testkit.Postgres(t)
	addr, ops := freeAddr(t), freeAddr(t)
	env := map[string]string{
		"PROJECTOR_ADDR": addr, "OPS_ADDR": ops, "NATS_URL": b.URL, "DATABASE_URL": dbURL,
		"LOG_LEVEL": "warn", "SWITCHYARD_OPS_TOKENS": opsTokens, "CONSUMER_BACKOFF": "100ms",
		// The dead-letter actions' login as the operator (the test broker
		// checks no passwords; natsbus's permissions tests prove who may
		// replay). "" leaves the projector read-only.
		"OPS_NATS_PASSWORD": "operator-test",
	}
	for k, v := range extra {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &bytes.Buffer{}
	go func() { done <- projector.Run(ctx, config.MapEnv(env), &syncWriter{w: logs}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projector.Run: %v", err)
		}
	})
	testkit.WaitFor(t, 20*time.Second, "projector ready", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("projector exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &hub{js: js, api: "http://" + ops, admin: "http://" + addr, pool: pool, store: view.NewStore(pool, projector.Schema), logs: logs}
}

type syncWriter struct {
	mu chan struct{}
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.w.Write(p)
}

func (h *hub) publish(t *testing.T, msgs ...lifegen.Msg) {
	t.Helper()
	for _, m := range msgs {
		if _, err := h.js.PublishMsg(context.Background(), &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}); err != nil {
			t.Fatal(err)
		}
	}
}

// msg builds a published message with a fixed trace id.
func msg(t *testing.T, m proto.Message, id, trace string) lifegen.Msg {
	t.Helper()
	subj, err := subjects.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(wire.HeaderMsgID, id)
	h.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	return lifegen.Msg{Subject: subj, Data: data, Header: h}
}

// settled reports whether the projector has applied everything stored.
func (h *hub) settled(t *testing.T) func() bool {
	return func() bool {
		for _, stream := range view.Streams {
			ok, err := testkit.Settled(context.Background(), h.js, stream, projector.ConsumerName)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return false
			}
		}
		return true
	}
}

func (h *hub) get(t *testing.T, path, token string) (int, []byte) {
	t.Helper()
	return h.do(t, http.MethodGet, path, token)
}

func (h *hub) do(t *testing.T, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.api+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// customer fetches a view (validated against the OpenAPI document).
func (h *hub) customer(t *testing.T, id string) map[string]any {
	t.Helper()
	code, body := h.get(t, "/v1/customers/"+id, readToken)
	if code != http.StatusOK {
		t.Fatalf("GET customer %s: %d %s", id, code, body)
	}
	validateResponse(t, http.MethodGet, "/v1/customers/{id}", code, body)
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func jsonEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	gb, _ := json.MarshalIndent(g, "", "  ")
	wb, _ := json.MarshalIndent(w, "", "  ")
	if !bytes.Equal(gb, wb) {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, gb, wb)
	}
}

func TestRefusesToStartInProductionWithoutTokens(t *testing.T) {
	err := projector.Run(context.Background(), config.MapEnv(map[string]string{
		"SWITCHYARD_ENV": "production", "DATABASE_URL": "postgres://x@127.0.0.1:1/x", "NATS_URL": "nats://127.0.0.1:1",
	}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SWITCHYARD_OPS_TOKENS") {
		t.Fatalf("Run = %v, want a SWITCHYARD_OPS_TOKENS error", err)
	}
	err = projector.Run(context.Background(), config.MapEnv(map[string]string{
		"SWITCHYARD_OPS_TOKENS": "founder:read:short", "DATABASE_URL": "postgres://x@127.0.0.1:1/x",
	}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "shorter than") || strings.Contains(err.Error(), "short\"") {
		t.Fatalf("Run = %v, want a token-length error that does not print the token", err)
	}
}

func TestAPIWithoutTokensRefusesEveryRequest(t *testing.T) {
	h := start(t, map[string]string{"SWITCHYARD_OPS_TOKENS": ""})
	for _, tok := range []string{"", operateToken} {
		if code, body := h.get(t, "/v1/customers/cust_x", tok); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "SWITCHYARD_OPS_TOKENS") {
			t.Fatalf("token %q: %d %s, want 503 naming SWITCHYARD_OPS_TOKENS", tok, code, body)
		}
	}
}

// Every endpoint: no token and a wrong token are 401 with WWW-Authenticate,
// a read token reads but cannot operate (403), an operate token does both.
func TestAuthorization(t *testing.T) {
	h := start(t, nil)
	h.publish(t, lifegen.Generate(1, 1)...)
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))

	endpoints := []struct {
		method, path string
		operate      bool
	}{
		{http.MethodGet, "/v1/customers/cust_000001", false},
		{http.MethodGet, "/v1/customers?email=user1@example.com", false},
		{http.MethodGet, "/v1/customers?stripe_customer_id=cus_G000001", false},
		{http.MethodGet, "/v1/customers/cust_000001/timeline", false},
		{http.MethodGet, "/v1/status", false},
		{http.MethodGet, "/v1/digest", false},
		{http.MethodPost, "/v1/rebuild", true},
	}
	for _, ep := range endpoints {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			for _, c := range []struct {
				name, header string
				want         int
			}{
				{"missing", "", http.StatusUnauthorized},
				{"wrong", "Bearer " + strings.ToUpper(operateToken), http.StatusUnauthorized},
				{"not bearer", "Basic " + operateToken, http.StatusUnauthorized},
				{"read", "Bearer " + readToken, map[bool]int{false: http.StatusOK, true: http.StatusForbidden}[ep.operate]},
				{"operate", "Bearer " + operateToken, http.StatusOK},
			} {
				req, _ := http.NewRequest(ep.method, h.api+ep.path, nil)
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Fatalf("%s token: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
				}
				if c.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("%s token: 401 without WWW-Authenticate: Bearer", c.name)
				}
				if c.want == http.StatusForbidden && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="operate"`) {
					t.Fatalf("403 does not name the missing scope: %q", resp.Header.Get("WWW-Authenticate"))
				}
				if c.want != http.StatusOK && strings.Contains(string(body), "cust_000001") {
					t.Fatalf("%s token: refused response leaks data: %s", c.name, body)
				}
				validateResponse(t, ep.method, strings.SplitN(strings.Replace(strings.Replace(ep.path, "cust_000001", "{id}", 1), "?", "\x00", 1), "\x00", 2)[0], resp.StatusCode, body)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	h := start(t, nil)
	for _, c := range []struct {
		path string
		want int
	}{
		{"/v1/customers", http.StatusBadRequest},
		{"/v1/customers?email=not-an-email", http.StatusBadRequest},
		{"/v1/customers?stripe_customer_id=sub_1", http.StatusBadRequest},
		{"/v1/customers?email=a@b.c&stripe_customer_id=cus_1", http.StatusBadRequest},
		{"/v1/customers/cust_nobody", http.StatusNotFound},
		{"/v1/customers/cust_nobody/timeline", http.StatusNotFound},
		{"/v1/customers/cust_x/timeline?limit=0", http.StatusBadRequest},
		{"/v1/customers/cust_x/timeline?limit=1001", http.StatusBadRequest},
		{"/v1/customers/cust_x/timeline?order=sideways", http.StatusBadRequest},
		{"/v1/customers/cust_x/timeline?after=%%%", http.StatusBadRequest},
		{"/v1/nothing", http.StatusNotFound},
	} {
		code, body := h.get(t, c.path, readToken)
		if code != c.want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s: %d %s, want %d with a JSON error", c.path, code, body, c.want)
		}
	}
	if code, body := h.get(t, "/v1/customers?email=nobody@example.com", readToken); code != http.StatusOK || !strings.Contains(string(body), `"customers":[]`) {
		t.Errorf("unknown email: %d %s, want 200 and an empty list", code, body)
	}
	code, body := h.get(t, "/v1/openapi.json", "")
	if code != http.StatusOK || !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(ops.OpenAPI)) {
		t.Errorf("GET /v1/openapi.json: %d, want the checked-in document", code)
	}
}

func TestTimelinePages(t *testing.T) {
	h := start(t, nil)
	h.publish(t, lifegen.Generate(3, 1)...)
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))
	var all []string
	for _, order := range []string{"asc", "desc"} {
		var ids []string
		next := ""
		for pages := 0; ; pages++ {
			path := "/v1/customers/cust_000001/timeline?limit=2&order=" + order
			if next != "" {
				path += "&after=" + next
			}
			code, body := h.get(t, path, readToken)
			if code != http.StatusOK {
				t.Fatalf("%s: %d %s", path, code, body)
			}
			validateResponse(t, http.MethodGet, "/v1/customers/{id}/timeline", code, body)
			var page view.TimelinePage
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Entries {
				ids = append(ids, e.EventID)
			}
			if page.Next == "" {
				break
			}
			next = page.Next
			if pages > 100 {
				t.Fatal("pagination does not end")
			}
		}
		if order == "asc" {
			all = ids
		} else {
			for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
				ids[i], ids[j] = ids[j], ids[i]
			}
			if fmt.Sprint(ids) != fmt.Sprint(all) {
				t.Fatalf("desc pages reversed %v != asc pages %v", ids, all)
			}
		}
	}
	v := h.customer(t, "cust_000001")
	if got := int(v["events"].(float64)); got != len(all) || len(all) < 4 {
		t.Fatalf("paged through %d entries, view counts %d", len(all), got)
	}
}
