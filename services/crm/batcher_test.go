package crm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/config"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// recorder is an Upserter that keeps every call's emails.
type recorder struct {
	mu    sync.Mutex
	calls [][]string
	at    []time.Time
}

func (r *recorder) UpsertContacts(_ context.Context, in []hubspot.ContactInput) ([]hubspot.ContactResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var emails []string
	out := make([]hubspot.ContactResult, len(in))
	for i, c := range in {
		emails = append(emails, c.Email+"#"+c.Properties["n"])
		out[i] = hubspot.ContactResult{Email: c.Email, ID: fmt.Sprint(len(r.calls)*1000 + i)}
	}
	r.calls = append(r.calls, emails)
	r.at = append(r.at, time.Now())
	return out, nil
}

// TestBatcherClosesWhenEveryCallerIsIn, without coalescing (the
// benchmark's baseline): with as many callers as the batch holds, three of
// them updating one email, the first call goes out as soon as every
// caller's update is in — not after the linger — and no call carries an
// email twice, the updates of one email in the order they came (the held
// ones then go out at once too, one call each, since no ticket is out). In
// a synctest bubble: time only moves when every goroutine waits, so a wait
// on the linger would show as an hour gone by.
func TestBatcherClosesWhenEveryCallerIsIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := newBatcher(rec, time.Hour)
		b.coalesce = false
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		start := time.Now()
		emails := []string{"a@x.io", "dup@x.io", "b@x.io", "dup@x.io", "c@x.io", "dup@x.io"}
		ctxs := expect(ctx, b, len(emails))
		var wg sync.WaitGroup
		for i, e := range emails {
			wg.Go(func() {
				if _, err := b.Upsert(ctxs[i], hubspot.ContactInput{Email: e, Properties: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
					t.Error(err)
				}
			})
			synctest.Wait() // taken by the batcher before the next one comes
		}
		wg.Wait()
		if len(rec.at) != 3 || rec.at[0] != start || rec.at[1] != start || rec.at[2] != start {
			t.Errorf("calls at %v (from %v): want three at once, though the linger is an hour", rec.at, start)
		}
		var dupOrder []string
		total := 0
		for _, call := range rec.calls {
			seen := map[string]bool{}
			for _, e := range call {
				email, _, _ := strings.Cut(e, "#")
				if seen[email] {
					t.Errorf("one call carries %s twice: %v", email, call)
				}
				seen[email] = true
				if email == "dup@x.io" {
					dupOrder = append(dupOrder, e)
				}
				total++
			}
		}
		if total != len(emails) {
			t.Errorf("%d updates sent in %v, want %d", total, rec.calls, len(emails))
		}
		if strings.Join(dupOrder, " ") != "dup@x.io#1 dup@x.io#3 dup@x.io#5" {
			t.Errorf("updates of one email out of order: %v (calls %v)", dupOrder, rec.calls)
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatcherLingersForCompany: an update waits the linger for the update
// of a ticket still out (its handler stuck, say), then goes out alone; a
// lone update with no ticket out goes out at once, and so does one whose
// company gave its ticket back.
func TestBatcherLingersForCompany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := newBatcher(rec, 150*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		start := time.Now()
		ctxs := expect(ctx, b, 2) // the second never sends its update
		if _, err := b.Upsert(ctxs[0], hubspot.ContactInput{Email: "solo@x.io", Properties: map[string]string{"n": "0"}}); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 150*time.Millisecond {
			t.Errorf("an update waited %v for a ticket that never came, want the 150ms linger", waited)
		}
		ctxs[1].Value(ticketKey{}).(*ticket).done()
		start = time.Now()
		if _, err := b.Upsert(ctx, hubspot.ContactInput{Email: "alone@x.io", Properties: map[string]string{"n": "1"}}); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("a lone update waited %v, want none", waited)
		}
		ctxs = expect(ctx, b, 2)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := b.Upsert(ctxs[0], hubspot.ContactInput{Email: "left@x.io", Properties: map[string]string{"n": "2"}}); err != nil {
				t.Error(err)
			}
		})
		synctest.Wait()
		ctxs[1].Value(ticketKey{}).(*ticket).done()
		wg.Wait()
		if waited := time.Since(start); waited != 0 {
			t.Errorf("an update whose company gave its ticket back waited %v, want none", waited)
		}
		if len(rec.calls) != 3 || len(rec.calls[0]) != 1 || len(rec.calls[1]) != 1 || len(rec.calls[2]) != 1 {
			t.Errorf("calls: %v", rec.calls)
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatcherCoalescesUpdatesOfOneContact: the same six callers, three of
// them updating one email, go out in one call at once, the three updates
// of dup@x.io as one input with the last one's values, and each of the
// three gets that input's id.
func TestBatcherCoalescesUpdatesOfOneContact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := newBatcher(rec, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		start := time.Now()
		emails := []string{"a@x.io", "dup@x.io", "b@x.io", "DUP@x.io", "c@x.io", "dup@x.io"}
		ctxs := expect(ctx, b, len(emails))
		ids := make([]string, len(emails))
		var wg sync.WaitGroup
		for i, e := range emails {
			wg.Go(func() {
				id, err := b.Upsert(ctxs[i], hubspot.ContactInput{Email: e, Properties: map[string]string{"n": fmt.Sprint(i)}})
				if err != nil {
					t.Error(err)
				}
				ids[i] = id
			})
			synctest.Wait()
		}
		wg.Wait()
		if len(rec.calls) != 1 || rec.at[0] != start {
			t.Fatalf("calls %v at %v (from %v): want one, at once", rec.calls, rec.at, start)
		}
		if got, want := strings.Join(rec.calls[0], " "), "a@x.io#0 dup@x.io#5 b@x.io#2 c@x.io#4"; got != want {
			t.Errorf("call carries %s, want %s", got, want)
		}
		if ids[1] != "1" || ids[3] != "1" || ids[5] != "1" || ids[0] != "0" || ids[2] != "2" || ids[4] != "3" {
			t.Errorf("ids %v: want every update of dup@x.io answered with its input's id (1)", ids)
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	})
}

// TestCoalescedUpdatesReachHubSpotAsOne: updates of one contact that come
// together reach the HubSpot emulator as one input of one call, and the
// contact ends as sending them one after the other would leave it — a
// later "" clearing a value included; every caller gets the contact's id.
func TestCoalescedUpdatesReachHubSpotAsOne(t *testing.T) {
	tests := []struct {
		name    string
		updates []map[string]string
		want    map[string]string
	}{
		{
			name: "two updates",
			updates: []map[string]string{
				{"firstname": "Ada", "lastname": "Lovelace", "phone": "+44 20 7946 0000"},
				{"firstname": "Augusta", "phone": "+44 20 7946 0001"},
			},
			want: map[string]string{"firstname": "Augusta", "lastname": "Lovelace", "phone": "+44 20 7946 0001"},
		},
		{
			name: "three updates, the last clearing",
			updates: []map[string]string{
				{"firstname": "Ada", "lastname": "Lovelace"},
				{"lastname": "King", "phone": "+44 20 7946 0000"},
				{"lastname": "", "firstname": "Augusta"},
			},
			want: map[string]string{"firstname": "Augusta", "lastname": "", "phone": "+44 20 7946 0000"},
		},
		{
			name: "a clear overwritten by a later value",
			updates: []map[string]string{
				{"firstname": "Ada", "lastname": ""},
				{"lastname": "Lovelace"},
			},
			want: map[string]string{"firstname": "Ada", "lastname": "Lovelace"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub, api := emulator(t)
				// Another contact shares the call; the batch closes once
				// every caller is in, not after the (hour-long) linger.
				b := newBatcher(api, time.Hour)
				ctx, cancel := context.WithCancel(context.Background())
				ran := make(chan error, 1)
				go func() { ran <- b.Run(ctx) }()
				ctxs := expect(ctx, b, len(tt.updates)+1)
				ids := make([]string, len(tt.updates))
				var wg sync.WaitGroup
				for i, props := range tt.updates {
					wg.Go(func() {
						id, err := b.Upsert(ctxs[i], hubspot.ContactInput{Email: "ada@example.com", Properties: props})
						if err != nil {
							t.Errorf("update %d: %v", i, err)
						}
						ids[i] = id
					})
					synctest.Wait() // taken before the next one comes
				}
				if _, err := b.Upsert(ctxs[len(tt.updates)], hubspot.ContactInput{Email: "grace@example.com", Properties: map[string]string{"firstname": "Grace"}}); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if calls := hub.Requests()[hubspotemu.EndpointBatchUpsert]; calls != 1 {
					t.Errorf("%d batch upserts, want 1", calls)
				}
				if got := api.inputs("ada@example.com"); got != 1 {
					t.Errorf("%d inputs for ada@example.com, want 1", got)
				}
				c, ok := hub.ContactByEmail("ada@example.com")
				if !ok {
					t.Fatal("no contact for ada@example.com")
				}
				for k, v := range tt.want {
					if c.Properties[k] != v {
						t.Errorf("contact %s = %q, want %q", k, c.Properties[k], v)
					}
				}
				for i, id := range ids {
					if id != c.ID {
						t.Errorf("update %d answered with id %q, want the contact's %q", i, id, c.ID)
					}
				}
				cancel()
				if err := <-ran; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// failing is an Upserter that fails: the whole call when whole is set,
// else only the input for email (as HubSpot's 207 does).
type failing struct {
	email string
	whole error
	calls int
}

var errRefused = errors.New("refused")

func (f *failing) UpsertContacts(_ context.Context, in []hubspot.ContactInput) ([]hubspot.ContactResult, error) {
	f.calls++
	if f.whole != nil {
		return nil, f.whole
	}
	out := make([]hubspot.ContactResult, len(in))
	for i, c := range in {
		out[i] = hubspot.ContactResult{Email: c.Email, ID: fmt.Sprint(100 + i)}
		if c.Email == f.email {
			out[i] = hubspot.ContactResult{Email: c.Email, Err: errRefused}
		}
	}
	return out, nil
}

// TestCoalescedErrorReachesEveryCaller: the merged input's error, its own
// or the whole call's, is every merged caller's; the other contact in the
// call is answered for itself.
func TestCoalescedErrorReachesEveryCaller(t *testing.T) {
	errDown := errors.New("hubspot is down")
	tests := []struct {
		name      string
		up        *failing
		wantErr   error
		otherFail bool
	}{
		{name: "the input refused", up: &failing{email: "dup@x.io"}, wantErr: errRefused},
		{name: "the whole call failed", up: &failing{whole: errDown}, wantErr: errDown, otherFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBatcher(tt.up, time.Hour)
				ctx, cancel := context.WithCancel(context.Background())
				ran := make(chan error, 1)
				go func() { ran <- b.Run(ctx) }()
				emails := []string{"dup@x.io", "other@x.io", "dup@x.io", "dup@x.io"}
				ctxs := expect(ctx, b, len(emails))
				errs := make([]error, len(emails))
				var wg sync.WaitGroup
				for i, e := range emails {
					wg.Go(func() {
						_, errs[i] = b.Upsert(ctxs[i], hubspot.ContactInput{Email: e, Properties: map[string]string{"n": fmt.Sprint(i)}})
					})
					synctest.Wait()
				}
				wg.Wait()
				if tt.up.calls != 1 {
					t.Errorf("%d calls, want 1", tt.up.calls)
				}
				for i, e := range emails {
					if e == "other@x.io" && !tt.otherFail {
						if errs[i] != nil {
							t.Errorf("other@x.io: %v, want no error", errs[i])
						}
						continue
					}
					if !errors.Is(errs[i], tt.wantErr) {
						t.Errorf("caller %d (%s): %v, want %v", i, e, errs[i], tt.wantErr)
					}
				}
				cancel()
				if err := <-ran; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestStoppingBatcherAnswersEveryCaller: the batch being formed when Run is
// told to stop is still sent, and every caller in it — merged ones too —
// gets the id; an update after that gets errStopping. Without coalescing
// the held update gets errStopping (redelivered later).
func TestStoppingBatcherAnswersEveryCaller(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				b := newBatcher(rec, time.Hour)
				b.coalesce = coalesce
				ctx, cancel := context.WithCancel(context.Background())
				ran := make(chan error, 1)
				go func() { ran <- b.Run(ctx) }()
				emails := []string{"dup@x.io", "a@x.io", "dup@x.io"}
				// The callers' own contexts outlive the batcher's; more
				// tickets are out than updates come, so the batch lingers.
				ctxs := expect(context.Background(), b, 10)
				ids, errs := make([]string, len(emails)), make([]error, len(emails))
				var wg sync.WaitGroup
				for i, e := range emails {
					wg.Go(func() {
						ids[i], errs[i] = b.Upsert(ctxs[i], hubspot.ContactInput{Email: e, Properties: map[string]string{"n": fmt.Sprint(i)}})
					})
					synctest.Wait()
				}
				cancel() // while the batch lingers
				wg.Wait()
				if err := <-ran; err != nil {
					t.Fatal(err)
				}
				if len(rec.calls) != 1 {
					t.Fatalf("calls %v, want the forming batch sent once", rec.calls)
				}
				if errs[0] != nil || errs[1] != nil || ids[0] == "" || ids[1] == "" {
					t.Errorf("first two callers: ids %q, errors %v; want ids", ids[:2], errs[:2])
				}
				if coalesce && (errs[2] != nil || ids[2] != ids[0]) {
					t.Errorf("merged caller: id %q, error %v; want the merged input's id %q", ids[2], errs[2], ids[0])
				}
				if !coalesce && !errors.Is(errs[2], errStopping) {
					t.Errorf("held caller: %v, want errStopping", errs[2])
				}
				if _, err := b.Upsert(context.Background(), hubspot.ContactInput{Email: "late@x.io"}); !errors.Is(err, errStopping) {
					t.Errorf("update after stop: %v, want errStopping", err)
				}
			})
		})
	}
}

// TestBatchSpanLinksEveryCaller: every caller waits in a client span of its
// own, linked to the HubSpot call that carried its contact (so each event's
// trace shows it, merged or batched); the call is a child of the first
// caller's and links every other caller's, merged ones included.
func TestBatchSpanLinksEveryCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		tracer := tp.Tracer("test")
		b := newBatcher(&recorder{}, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		var callers []trace.SpanContext
		var wg sync.WaitGroup
		ctxs := expect(context.Background(), b, 3)
		for i, e := range []string{"dup@x.io", "a@x.io", "dup@x.io"} {
			cctx, span := tracer.Start(ctxs[i], fmt.Sprint("caller ", i))
			callers = append(callers, span.SpanContext())
			wg.Go(func() {
				defer span.End()
				if _, err := b.Upsert(cctx, hubspot.ContactInput{Email: e}); err != nil {
					t.Error(err)
				}
			})
			synctest.Wait()
		}
		wg.Wait()
		cancel()
		<-ran
		var call sdktrace.ReadOnlySpan
		own := map[trace.SpanID]sdktrace.ReadOnlySpan{} // each caller's client span, by its caller
		for _, s := range spans.Ended() {
			switch s.Name() {
			case "hubspot batch upsert":
				call = s
			case "hubspot contact upsert":
				own[s.Parent().SpanID()] = s
			}
		}
		if call == nil {
			t.Fatal("no hubspot batch upsert span")
		}
		if len(own) != 3 {
			t.Fatalf("%d callers have a hubspot contact upsert span of their own, want all 3", len(own))
		}
		for i, c := range callers {
			cs := own[c.SpanID()]
			if cs == nil {
				t.Fatalf("caller %d has no hubspot contact upsert span", i)
			}
			if cs.SpanKind() != trace.SpanKindClient {
				t.Errorf("caller %d's span kind %v, want client", i, cs.SpanKind())
			}
			if len(cs.Links()) != 1 || cs.Links()[0].SpanContext.SpanID() != call.SpanContext().SpanID() {
				t.Errorf("caller %d's span links %v, want the call that carried it", i, cs.Links())
			}
		}
		if call.Parent().SpanID() != own[callers[0].SpanID()].SpanContext().SpanID() {
			t.Errorf("call's parent %v, want the first caller's client span", call.Parent().SpanID())
		}
		linked := map[trace.SpanID]bool{}
		for _, l := range call.Links() {
			linked[l.SpanContext.SpanID()] = true
		}
		if len(call.Links()) != 2 || !linked[own[callers[1].SpanID()].SpanContext().SpanID()] || !linked[own[callers[2].SpanID()].SpanContext().SpanID()] {
			t.Errorf("call links %v, want the second and (merged) third callers' client spans", call.Links())
		}
	})
}

// emulator is the HubSpot emulator behind a client that reaches it in
// memory (so a synctest bubble holds the whole exchange), counting the
// inputs of every batch upsert by email.
func emulator(t *testing.T) (*hubspotemu.Server, *countingClient) {
	t.Helper()
	hub := hubspotemu.New(hubspotemu.Options{Tokens: map[string][]string{"pat-test": nil}})
	cc := &countingClient{hub: hub, sent: map[string]int{}}
	c, err := hubspot.New(hubspot.Config{BaseURL: "http://hubspot.test", Token: config.NewSecret("pat-test"),
		HTTPClient: &http.Client{Transport: cc}})
	if err != nil {
		t.Fatal(err)
	}
	cc.Client = c
	return hub, cc
}

// countingClient is a hubspot.Client whose transport serves requests with
// the emulator and counts batch-upsert inputs.
type countingClient struct {
	*hubspot.Client
	hub  http.Handler
	mu   sync.Mutex
	sent map[string]int
}

func (c *countingClient) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var body struct {
			Inputs []struct {
				ID string `json:"id"`
			} `json:"inputs"`
		}
		if strings.HasSuffix(r.URL.Path, "/batch/upsert") && json.Unmarshal(raw, &body) == nil {
			c.mu.Lock()
			for _, in := range body.Inputs {
				c.sent[in.ID]++
			}
			c.mu.Unlock()
		}
	}
	w := httptest.NewRecorder()
	c.hub.ServeHTTP(w, r)
	return w.Result(), nil
}

func (c *countingClient) inputs(email string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[email]
}

// expect takes n tickets up front, as HandleBatch does for a pull (the
// batch then closes once n updates are in), and returns a context under
// which each caller spends its own.
func expect(ctx context.Context, b *batcher, n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = withTicket(ctx, b.enter())
	}
	return ctxs
}

// inputs is an Upserter that keeps every input it is sent.
type inputs struct {
	mu  sync.Mutex
	got []hubspot.ContactInput
}

func (r *inputs) UpsertContacts(_ context.Context, in []hubspot.ContactInput) ([]hubspot.ContactResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, in...)
	out := make([]hubspot.ContactResult, len(in))
	for i, c := range in {
		out[i] = hubspot.ContactResult{Email: c.Email, ID: "1"}
	}
	return out, nil
}

// TestMergedUpdatesFollowStreamOrder: a pull's handlers reach the batcher
// in any order; updates of one contact merged into one input overlay in
// their messages' stream order, not in the order they came.
func TestMergedUpdatesFollowStreamOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &inputs{}
		b := newBatcher(up, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		updates := []struct {
			seq   uint64
			props map[string]string
		}{ // as they come
			{30, map[string]string{"plan": "team"}},
			{10, map[string]string{"plan": "basic", "firstname": "Ada"}},
			{20, map[string]string{"plan": "pro", "firstname": ""}},
		}
		ctxs := expect(ctx, b, len(updates))
		var wg sync.WaitGroup
		for i, u := range updates {
			ctxs[i].Value(ticketKey{}).(*ticket).seq = u.seq
			wg.Go(func() {
				if _, err := b.Upsert(ctxs[i], hubspot.ContactInput{Email: "ada@x.io", Properties: u.props}); err != nil {
					t.Error(err)
				}
			})
			synctest.Wait()
		}
		wg.Wait()
		if len(up.got) != 1 || !maps.Equal(up.got[0].Properties, map[string]string{"plan": "team", "firstname": ""}) {
			t.Errorf("sent %+v, want one input: plan team (the last message's), firstname cleared", up.got)
		}
		if !maps.Equal(updates[0].props, map[string]string{"plan": "team"}) {
			t.Errorf("the first caller's properties were changed: %v", updates[0].props)
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	})
}
