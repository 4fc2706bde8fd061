package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
)

// tracedLedger returns a ledger over a migrated database whose pool and
// claim pool count their round trips in trips.
func tracedLedger(tb testing.TB, trips *testkit.RoundTrips, opts ...ledger.Option) *ledger.Ledger {
	tb.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testkit.Postgres(tb), trips)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := ledger.Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	claims, err := ledger.OpenClaimPool(ctx, pool, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(claims.Close)
	return ledger.New(pool, append([]ledger.Option{ledger.WithClaimPool(claims)}, opts...)...)
}

// TestOnceRoundTrips pins what Once costs PostgreSQL, the largest CPU cost
// per event: an effect done already is one lookup; a fresh one is the
// lookup, the claim (BEGIN, settings, lock and lookup under it in one
// pipeline) and the record (INSERT and COMMIT in one pipeline).
func TestOnceRoundTrips(t *testing.T) {
	ctx := context.Background()
	trips := &testkit.RoundTrips{}
	l := tracedLedger(t, trips)
	k := ledger.Key{Consumer: "crm", MessageID: "evt_rt", Effect: "hubspot.upsert"}
	effect := func(context.Context) ([]byte, error) { return []byte("contact-1"), nil }
	for _, s := range []struct {
		name string
		want int64
	}{
		{name: "a fresh effect", want: 3},
		{name: "an effect done already", want: 1},
	} {
		before := trips.Count()
		got, err := l.Once(ctx, k, effect)
		if err != nil || string(got) != "contact-1" {
			t.Fatalf("%s: %q, %v; want contact-1", s.name, got, err)
		}
		if n := trips.Count() - before; n != s.want {
			t.Errorf("%s: %d round trips, want %d", s.name, n, s.want)
		}
	}
	// A first try skips the lookup ahead of the claim; one that turns out
	// to be done costs the claim and returns the recorded result without
	// running the effect again.
	fresh := ledger.Key{Consumer: "crm", MessageID: "evt_rt_fresh", Effect: "hubspot.upsert"}
	ran := 0
	counted := func(context.Context) ([]byte, error) { ran++; return []byte("contact-2"), nil }
	for _, s := range []struct {
		name string
		want int64
	}{
		{name: "a first try", want: 2},
		{name: "a first try already done", want: 2},
	} {
		before := trips.Count()
		got, err := l.OnceFresh(ctx, fresh, counted)
		if err != nil || string(got) != "contact-2" {
			t.Fatalf("%s: %q, %v; want contact-2", s.name, got, err)
		}
		if n := trips.Count() - before; n != s.want {
			t.Errorf("%s: %d round trips, want %d", s.name, n, s.want)
		}
	}
	if ran != 1 {
		t.Errorf("OnceFresh ran the effect %d times for one key, want once", ran)
	}
}

// BenchmarkOnce measures a fresh effect through Once (the effect itself
// returns at once): the ledger's own cost per external effect.
func BenchmarkOnce(b *testing.B) {
	ctx := context.Background()
	trips := &testkit.RoundTrips{}
	l := tracedLedger(b, trips)
	effect := func(context.Context) ([]byte, error) { return []byte("contact-1"), nil }
	run := time.Now().UnixNano() // fresh keys, however often the benchmark runs
	before := trips.Count()
	for i := 0; b.Loop(); i++ {
		k := ledger.Key{Consumer: "crm", MessageID: fmt.Sprintf("evt_bench_%d_%d", run, i), Effect: "hubspot.upsert"}
		if _, err := l.Once(ctx, k, effect); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(trips.Count()-before)/float64(b.N), "roundtrips/op")
}
