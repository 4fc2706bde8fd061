package view_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// shuffleDup returns es in a random order with about a third repeated.
func shuffleDup(rng *rand.Rand, es []view.Entry) []view.Entry {
	out := slices.Clone(es)
	for _, e := range es {
		if rng.IntN(3) == 0 {
			out = append(out, e)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Fold is a function of the set of entries: any order, any duplicates.
func TestFoldIgnoresOrderAndDuplicates(t *testing.T) {
	for seed := range uint64(300) {
		all := viewtest.Entries(t, lifegen.Generate(seed, 2))
		byOwner := map[string][]view.Entry{}
		for _, e := range all {
			owner := strings.TrimSuffix(e.CustomerID, "_dup")
			byOwner[owner] = append(byOwner[owner], e)
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		for owner, es := range byOwner {
			want, _ := json.Marshal(view.Fold(owner, es))
			for range 5 {
				got, _ := json.Marshal(view.Fold(owner, shuffleDup(rng, es)))
				if string(got) != string(want) {
					t.Fatalf("seed %d, %s: view depends on order\nin order: %s\nshuffled: %s", seed, owner, want, got)
				}
			}
		}
	}
}

// The projection in PostgreSQL converges to the same rows for any order,
// duplication and batching of its input, merges included.
func TestProjectionConvergesForAnyOrder(t *testing.T) {
	ctx := context.Background()
	open := func() *view.Store {
		pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		if err := migrations.Projection(ctx, pool); err != nil {
			t.Fatal(err)
		}
		return view.NewStore(pool, view.Schema)
	}
	ordered, shuffled, concurrent := open(), open(), open()
	for seed := range uint64(6) {
		all := viewtest.Entries(t, lifegen.Generate(100+seed, 12))
		for _, e := range all {
			if err := ordered.Apply(ctx, []view.Entry{e}); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(seed, 11))
		in := shuffleDup(rng, all)
		for len(in) > 0 {
			n := min(len(in), 1+rng.IntN(40))
			if err := shuffled.Apply(ctx, in[:n]); err != nil {
				t.Fatal(err)
			}
			in = in[n:]
		}
		// Three appliers at once, as the three stream consumers (or
		// several replicas) run: merges and their customers interleave.
		in = shuffleDup(rng, all)
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := w * 7; off < len(in); off += 21 {
					batch := in[off:min(off+7, len(in))]
					for {
						err := concurrent.Apply(ctx, batch)
						if err == nil {
							break
						}
						if !errclass.Of(err).Retryable() {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want, err := ordered.Rows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := shuffled.Rows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := viewtest.Diff(want, got); d != "" {
			t.Fatalf("seed %d: shuffled, duplicated and batched input gave other rows:\n%s", seed, d)
		}
		got, err = concurrent.Rows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := viewtest.Diff(want, got); d != "" {
			t.Fatalf("seed %d: concurrent appliers gave other rows:\n%s", seed, d)
		}
		if !slices.ContainsFunc(want, func(r string) bool { return strings.HasPrefix(r, "aliases ") }) && seed == 5 {
			t.Fatal("no merge was generated; the test does not cover merges")
		}
	}
}
