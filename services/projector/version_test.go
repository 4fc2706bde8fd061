package projector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// A projection written by another view version (an upgrade changed what
// Fold stores) is rebuilt from the streams when the projector starts: the
// stored views and the state column come out as this version writes them,
// and the schema is stamped with it.
func TestProjectionOfAnotherViewVersionIsRebuiltAtStart(t *testing.T) {
	ctx := context.Background()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	dbURL := testkit.Postgres(t)
	env := config.MapEnv(map[string]string{
		"PROJECTOR_ADDR": freeAddr(t), "OPS_ADDR": freeAddr(t), "NATS_URL": b.URL, "DATABASE_URL": dbURL,
		"LOG_LEVEL": "warn", "SWITCHYARD_OPS_TOKENS": opsTokens, "CONSUMER_BACKOFF": "100ms",
	})
	run := func() (stop func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- projector.Run(ctx, env, &syncWriter{w: &bytes.Buffer{}}) }()
		testkit.WaitFor(t, 20*time.Second, "projector ready", func() bool {
			resp, err := http.Get("http://" + env("PROJECTOR_ADDR") + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("projector.Run: %v", err)
			}
		}
	}
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	stop := run()
	for _, m := range lifegen.Generate(3, 20) {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}); err != nil {
			t.Fatal(err)
		}
	}
	h := &hub{js: js}
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))
	stop()
	want, err := view.NewStore(pool, projector.Schema).Rows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := migrations.StoredViewVersion(ctx, pool); err != nil || v != view.ViewVersion {
		t.Fatalf("a new projection is stamped %d (%v), want %d", v, err, view.ViewVersion)
	}

	// What an older version left: no stamp, states it no longer writes.
	if _, err := pool.Exec(ctx, `COMMENT ON SCHEMA projection IS NULL; UPDATE projection.customers SET state = 'payment failed — retry on 2020-01-01'`); err != nil {
		t.Fatal(err)
	}
	stop = run()
	testkit.WaitFor(t, 30*time.Second, "the projection rebuilt to the current view version", func() bool {
		v, err := migrations.StoredViewVersion(ctx, pool)
		return err == nil && v == view.ViewVersion
	})
	got, err := view.NewStore(pool, projector.Schema).Rows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("rebuilt projection has %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rebuilt row %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	stop()

	// A rebuild at start that cannot succeed (a stream no longer holds its
	// first message) leaves the old views serving, and says so where an
	// operator looks: the status API's problems, until someone rebuilds.
	if _, err := pool.Exec(ctx, `COMMENT ON SCHEMA projection IS NULL`); err != nil {
		t.Fatal(err)
	}
	billing, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	if err := billing.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	stop = run()
	defer stop()
	h.api = "http://" + env("OPS_ADDR")
	var problems []string
	testkit.WaitFor(t, 30*time.Second, "the failed rebuild in the status API's problems", func() bool {
		code, body := h.get(t, "/v1/status", readToken)
		var o struct {
			Problems []string `json:"problems"`
			Healthy  bool     `json:"healthy"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &o) != nil {
			return false
		}
		problems = o.Problems
		for _, p := range o.Problems {
			if strings.Contains(p, "holds views of version 0, this build writes") && strings.Contains(p, "its rebuild failed") &&
				strings.Contains(p, "stream history incomplete") && !o.Healthy {
				return true
			}
		}
		return false
	})
	t.Logf("problems: %q", problems)
}
