package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
)

func (h *hub) rows(t *testing.T) []string {
	t.Helper()
	rows, err := h.store.Rows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Rebuild replays the streams into fresh tables that equal the live
// projection row for row, also when events keep arriving during the
// rebuild; the API keeps answering throughout.
func TestRebuildEqualsLiveProjection(t *testing.T) {
	h := start(t, nil)
	log := slog.New(slog.DiscardHandler)
	msgs := lifegen.Generate(42, 150)
	// Redelivered duplicates (past JetStream's dedup window) are stored twice.
	dup := make([]lifegen.Msg, 20)
	for i := range dup {
		dup[i] = msgs[i]
		dup[i].Header = nats.Header{}
		for k, v := range msgs[i].Header {
			if k != "Nats-Msg-Id" {
				dup[i].Header[k] = v
			}
		}
	}
	h.publish(t, msgs...)
	h.publish(t, dup...)
	testkit.WaitFor(t, 30*time.Second, "live projection settled", h.settled(t))
	live := h.rows(t)
	if len(live) < len(msgs) {
		t.Fatalf("live projection has %d rows for %d messages", len(live), len(msgs))
	}

	rep, err := view.Rebuild(context.Background(), h.pool, h.js, log)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != len(msgs) || rep.Duplicates != len(dup) || rep.Skipped != 0 || rep.EventsPerSecond <= 0 {
		t.Fatalf("report %+v, want %d events and %d duplicates", rep, len(msgs), len(dup))
	}
	if d := viewtest.Diff(live, h.rows(t)); d != "" {
		t.Fatalf("rebuilt projection differs from the live one:\n%s", d)
	}

	// Now with the live projection busy during the rebuild, and readers.
	more := lifegen.GenerateRange(43, 151, 150)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr error
	var mu sync.Mutex
	wg.Add(2)
	go func() {
		defer wg.Done()
		h.publish(t, more...)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, body := h.get(t, "/v1/customers/cust_000001", readToken)
			if code != http.StatusOK {
				mu.Lock()
				readErr = errors.New(string(body))
				mu.Unlock()
				return
			}
		}
	}()
	rep, err = view.Rebuild(context.Background(), h.pool, h.js, log)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if readErr != nil {
		t.Fatalf("the API failed during the rebuild: %v", readErr)
	}
	testkit.WaitFor(t, 30*time.Second, "live projection settled", h.settled(t))
	afterLive := h.rows(t)
	if len(afterLive) <= len(live) {
		t.Fatal("the second batch of customers is missing")
	}
	// A third rebuild from a quiet stream is the reference.
	if _, err := view.Rebuild(context.Background(), h.pool, h.js, log); err != nil {
		t.Fatal(err)
	}
	if d := viewtest.Diff(h.rows(t), afterLive); d != "" {
		t.Fatalf("after a rebuild under load the live projection lost or gained rows:\n%s", d)
	}
	b, _ := json.Marshal(rep)
	t.Logf("rebuild under load: %s", b)
}

func TestRebuildRefusesToRunTwice(t *testing.T) {
	h := start(t, nil)
	h.publish(t, lifegen.Generate(5, 300)...)
	testkit.WaitFor(t, 30*time.Second, "settled", h.settled(t))
	log := slog.New(slog.DiscardHandler)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = view.Rebuild(context.Background(), h.pool, h.js, log)
		}()
	}
	wg.Wait()
	ok, running := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, view.ErrRebuildRunning):
			running++
		default:
			t.Fatal(err)
		}
	}
	// Both may succeed one after the other; never two at once.
	if ok == 0 || ok+running != 2 {
		t.Fatalf("ok %d, refused %d", ok, running)
	}
	code, body := h.do(t, http.MethodPost, "/v1/rebuild", operateToken)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/rebuild: %d %s", code, body)
	}
	validateResponse(t, http.MethodPost, "/v1/rebuild", code, body)
}

// A stream whose last message was deleted, or whose first ones are gone,
// must not hang a rebuild (which holds the lock live batches need).
func TestRebuildWithDeletedMessages(t *testing.T) {
	h := start(t, nil)
	h.publish(t, lifegen.Generate(9, 5)...)
	testkit.WaitFor(t, 20*time.Second, "settled", h.settled(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	crm, err := h.js.Stream(ctx, natsbus.StreamCRM)
	if err != nil {
		t.Fatal(err)
	}
	info, err := crm.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := crm.DeleteMsg(ctx, info.State.LastSeq); err != nil {
		t.Fatal(err)
	}
	rep, err := view.Rebuild(ctx, h.pool, h.js, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("rebuild with the last CRM message deleted: %v", err)
	}
	if rep.LastSequences[natsbus.StreamCRM] != info.State.LastSeq-1 {
		t.Fatalf("read CRM up to %d, want %d", rep.LastSequences[natsbus.StreamCRM], info.State.LastSeq-1)
	}
	// A second rebuild catches up from the gap without waiting for it.
	if _, err := view.Rebuild(ctx, h.pool, h.js, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := crm.DeleteMsg(ctx, info.State.FirstSeq); err != nil {
		t.Fatal(err)
	}
	if _, err := view.Rebuild(ctx, h.pool, h.js, slog.New(slog.DiscardHandler)); !errors.Is(err, view.ErrHistoryIncomplete) {
		t.Fatalf("rebuild without the first CRM message: %v, want ErrHistoryIncomplete", err)
	}
	if code, body := h.do(t, http.MethodPost, "/v1/rebuild", operateToken); code != http.StatusConflict {
		t.Fatalf("POST /v1/rebuild: %d %s, want 409", code, body)
	}
}
