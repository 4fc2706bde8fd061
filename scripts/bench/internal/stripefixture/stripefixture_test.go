package stripefixture_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
)

const fixturePath = "../../../../platform/devkit/testkit/fixtures/stripe/events/customer.created.json"

func TestSignedBodyVerifiesWithStripeGo(t *testing.T) {
	t.Parallel()
	tmpl, err := stripefixture.Load(fixturePath)
	if err != nil {
		t.Fatalf("load fixture (the in-repo copy at %s): %v", fixturePath, err)
	}
	const secret = "whsec_test_secret"
	id := tmpl.ID(42)
	body := tmpl.Body(id)
	header := stripefixture.SignatureHeader(secret, time.Now().Unix(), body)

	ev, err := webhook.ConstructEventWithOptions(body, header, secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		t.Fatalf("ConstructEvent: %v", err)
	}
	if got, want := ev.ID, id; got != want {
		t.Errorf("event id = %q, want %q", got, want)
	}
	if got, want := string(ev.Type), tmpl.Type(); got != want {
		t.Errorf("event type = %q, want %q", got, want)
	}
}

func TestIDsAreUniqueAndStripeShaped(t *testing.T) {
	t.Parallel()
	tmpl, err := stripefixture.Parse([]byte(`{"id":"evt_1O59vsGgdF1VjufLNnhVwvTi","type":"customer.created"}`))
	if err != nil {
		t.Fatal(err)
	}
	shape := regexp.MustCompile(`^evt_[0-9A-Za-z]{24}$`)
	seen := make(map[string]bool)
	for seq := range uint64(10000) {
		id := tmpl.ID(seq)
		if !shape.MatchString(id) {
			t.Fatalf("id %q does not look like a Stripe event id", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated at seq %d", id, seq)
		}
		seen[id] = true
	}
}

func TestParseRejectsFixtureWithoutID(t *testing.T) {
	t.Parallel()
	if _, err := stripefixture.Parse([]byte(`{"type":"customer.created"}`)); err == nil {
		t.Fatal("Parse succeeded, want error for a fixture without id")
	}
}

const fixtureDir = "../../../../platform/devkit/testkit/fixtures/stripe/events"

func TestLoadSetDirectoryTakesEveryEventSortedByName(t *testing.T) {
	t.Parallel()
	set, err := stripefixture.LoadSet(fixtureDir)
	if err != nil {
		t.Fatalf("LoadSet(%s): %v", fixtureDir, err)
	}
	want, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(p string) bool {
		b := filepath.Base(p)
		return b == "MANIFEST.json" || b == "signatures.json"
	})
	slices.Sort(want)
	if len(want) < 2 {
		t.Fatalf("only %d events in %s; the test needs a mix", len(want), fixtureDir)
	}
	if got := set.Paths(); !slices.Equal(got, want) {
		t.Errorf("paths = %v, want %v", got, want)
	}
	if got := set.Len(); got != len(want) {
		t.Errorf("Len = %d, want %d", got, len(want))
	}
	var total int
	for i, p := range want {
		tmpl, err := stripefixture.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := set.For(uint64(i)).Type(); got != tmpl.Type() {
			t.Errorf("template %d type = %q, want %q (from %s)", i, got, tmpl.Type(), p)
		}
		total += len(tmpl.Body(tmpl.ID(0)))
	}
	if got, want := set.MeanBody(), float64(total)/float64(len(want)); got != want {
		t.Errorf("MeanBody = %v, want %v", got, want)
	}
}

func TestLoadSetListMixesFilesAndDirectories(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeEvent(t, dir, "b.json", "evt_1O59vsGgdF1VjufLNnhVwvTb", "invoice.paid")
	writeEvent(t, dir, "a.json", "evt_1O59vsGgdF1VjufLNnhVwvTa", "charge.refunded")
	writeFile(t, dir, "MANIFEST.json", `{"_about":"not an event"}`)
	writeFile(t, dir, "signatures.json", `{"_about":"not an event"}`)
	writeFile(t, dir, "notes.txt", "not JSON")
	other := t.TempDir()
	writeEvent(t, other, "c.json", "evt_1O59vsGgdF1VjufLNnhVwvTc", "customer.created")
	single := filepath.Join(other, "c.json")

	set, err := stripefixture.LoadSet(single + ", " + dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{single, filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")}
	if got := set.Paths(); !slices.Equal(got, want) {
		t.Fatalf("paths = %v, want %v", got, want)
	}
	// Round-robin: request i uses template i mod n.
	types := []string{"customer.created", "charge.refunded", "invoice.paid"}
	for seq := range uint64(10) {
		if got, want := set.For(seq).Type(), types[seq%3]; got != want {
			t.Errorf("For(%d).Type() = %q, want %q", seq, got, want)
		}
	}
}

func TestLoadSetIDsAreUniqueAcrossTemplates(t *testing.T) {
	t.Parallel()
	set, err := stripefixture.LoadSet(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for seq := range uint64(5000) {
		tmpl := set.For(seq)
		id := tmpl.ID(seq)
		if seen[id] {
			t.Fatalf("id %q repeated at seq %d", id, seq)
		}
		seen[id] = true
		body := tmpl.Body(id)
		if got := len(body); got != tmpl.BodyLen() {
			t.Fatalf("len(body) = %d, BodyLen = %d", got, tmpl.BodyLen())
		}
		var ev struct{ ID, Type string }
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatalf("seq %d: body is not JSON: %v", seq, err)
		}
		if ev.ID != id || ev.Type != tmpl.Type() {
			t.Fatalf("seq %d: body has id %q type %q, want %q %q", seq, ev.ID, ev.Type, id, tmpl.Type())
		}
	}
}

func TestLoadSetRejects(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	writeFile(t, empty, "MANIFEST.json", `{}`)
	bad := t.TempDir()
	writeFile(t, bad, "x.json", `{"type":"customer.created"}`)
	for name, spec := range map[string]string{
		"same event twice":    fixtureDir + "," + fixturePath,
		"directory no events": empty,
		"file not an event":   filepath.Join(bad, "x.json"),
		"missing path":        filepath.Join(empty, "nope.json"),
		"empty entry":         fixturePath + ",",
		"empty spec":          "",
	} {
		if _, err := stripefixture.LoadSet(spec); err == nil {
			t.Errorf("%s: LoadSet(%q) succeeded, want error", name, spec)
		}
	}
}

func writeEvent(t *testing.T, dir, name, id, typ string) {
	t.Helper()
	writeFile(t, dir, name, `{"id":"`+id+`","object":"event","type":"`+typ+`","data":{"object":{}}}`)
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
