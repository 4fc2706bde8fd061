package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fixtureDir = "../../../../platform/devkit/testkit/fixtures/stripe/events"

func mustLifecycles(t *testing.T) *lifecycles {
	t.Helper()
	g, err := newLifecycles(fixtureDir, "tst")
	if err != nil {
		t.Fatalf("lifecycles from the in-repo fixtures (%s): %v", fixtureDir, err)
	}
	return g
}

// TestCustomersOwnTheirObjects: a customer's events are in Stripe's order,
// name only that customer's Stripe objects (the catalogue aside), carry
// its email on customer.created and its id on the refunded charge, and
// no two customers share an event id.
func TestCustomersOwnTheirObjects(t *testing.T) {
	t.Parallel()
	g := mustLifecycles(t)
	seen := map[string]bool{}
	for n := range 100 {
		evs := g.customer(n)
		if got, want := evs[0].typ, "customer.created"; got != want {
			t.Fatalf("customer %d: first event %s, want %s", n, got, want)
		}
		var created map[string]any
		if err := json.Unmarshal(evs[0].body, &created); err != nil {
			t.Fatal(err)
		}
		obj := object(created)
		cus, _ := obj["id"].(string)
		if email, _ := obj["email"].(string); !strings.Contains(email, "+tst") {
			t.Errorf("customer %d: email %q is not the customer's own", n, email)
		}
		for _, ev := range evs {
			if seen[ev.id] {
				t.Fatalf("event id %s twice", ev.id)
			}
			seen[ev.id] = true
			var m map[string]any
			if err := json.Unmarshal(ev.body, &m); err != nil {
				t.Fatalf("%s: %v", ev.typ, err)
			}
			if m["id"] != ev.id || m["type"] != ev.typ {
				t.Errorf("%s: body has id %v type %v, want %s %s", ev.typ, m["id"], m["type"], ev.id, ev.typ)
			}
			if c, ok := object(m)["customer"].(string); ok && c != cus {
				t.Errorf("customer %d: %s names customer %s, want %s", n, ev.typ, c, cus)
			}
		}
	}
	// The mix over 100 customers: 20 failed payments, 10 refunds, 5
	// cancellations, 2 disputes.
	rules := map[string]int{}
	for n := range 100 {
		for _, ev := range g.customer(n) {
			rules[ev.ticketRule]++
		}
	}
	for rule, want := range map[string]int{"payment_failed": 20, "refund": 10, "cancellation": 5, "chargeback": 2} {
		if rules[rule] != want {
			t.Errorf("%d %s tickets over 100 customers, want %d", rules[rule], rule, want)
		}
	}
}

// TestSchedulerKeepsOrderGapsAndDuplicates: a customer's events go out in
// order at least a gap apart, and about the share asked for is delivered
// twice, each duplicate after its first delivery.
func TestSchedulerKeepsOrderGapsAndDuplicates(t *testing.T) {
	t.Parallel()
	s := &scheduler{gen: mustLifecycles(t), duplicates: 0.01, rng: rand.New(rand.NewPCG(1, 2))}
	now := time.Unix(0, 0)
	first := map[string]time.Time{}
	lastOf := map[string]time.Time{} // customer suffix → last delivery
	orderOf := map[string]int{}
	dups := 0
	const deliveries = 20000
	for range deliveries {
		now = now.Add(time.Second / 300)
		d := s.next(now)
		if d.dup {
			dups++
			at, ok := first[d.ev.id]
			if !ok {
				t.Fatalf("duplicate of %s before its first delivery", d.ev.id)
			}
			if now.Sub(at) < laterGap {
				t.Errorf("duplicate of %s %s after the first, want at least %s", d.ev.id, now.Sub(at), laterGap)
			}
			continue
		}
		if _, again := first[d.ev.id]; again {
			t.Fatalf("%s delivered as new twice", d.ev.id)
		}
		first[d.ev.id] = now
		// evt_soak<k><suffix>: k is the event's place in the lifecycle.
		k, cust := int(d.ev.id[len("evt_soak")]-'0'), d.ev.id[len("evt_soak")+1:]
		if k != orderOf[cust] {
			t.Fatalf("customer %s: event %d delivered, want %d next", cust, k, orderOf[cust])
		}
		orderOf[cust]++
		if last, ok := lastOf[cust]; ok && now.Sub(last) < laterGap {
			t.Errorf("customer %s: events %s apart, want at least %s", cust, now.Sub(last), laterGap)
		}
		lastOf[cust] = now
	}
	if share := float64(dups) / deliveries; share < 0.005 || share > 0.015 {
		t.Errorf("%d duplicates in %d deliveries (%.2f %%), want about 1 %%", dups, deliveries, 100*share)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var v []uint64
	for i := range 100 {
		v = append(v, uint64(100-i))
	}
	for _, tc := range []struct {
		name string
		in   []uint64
		p    float64
		want uint64
	}{
		{name: "none", in: nil, p: 0.99, want: 0},
		{name: "one", in: []uint64{7}, p: 0.99, want: 7},
		{name: "p99 of 1..100", in: v, p: 0.99, want: 100},
		{name: "p50 of 1..100", in: v, p: 0.5, want: 51},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("%s: percentile = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestProcFieldReadsKilobytes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte("Name:\tswitchyard\nVmRSS:\t  123456 kB\nThreads:\t9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := procField(path, "VmRSS:"), uint64(123456*1024); got != want {
		t.Errorf("procField = %d, want %d", got, want)
	}
	if got := procField(path, "VmSwap:"); got != 0 {
		t.Errorf("missing field = %d, want 0", got)
	}
	if got := rssOf(os.Getpid()); got == 0 {
		t.Errorf("rssOf(own pid) = 0, want this process's RSS")
	}
}
