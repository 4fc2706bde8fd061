package hubspot_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

var _ statefile.State = (*hubspot.Server)(nil)

// openKept starts an emulator whose account is kept in path.
func openKept(t *testing.T, path string, opts hubspot.Options) (*env, *statefile.Keeper) {
	t.Helper()
	e := newEnv(t, opts)
	k, err := statefile.Open(path, e.srv, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e, k
}

// upsertIDs upserts contacts by email and returns their record ids, in
// input order.
func (e *env) upsertIDs(t *testing.T, emails ...string) []string {
	t.Helper()
	var inputs []in
	for _, m := range emails {
		inputs = append(inputs, byEmail(m, map[string]any{"firstname": "F " + m}))
	}
	res := decode[batchResponse](t, e.upsert(t, inputs...))
	ids := make([]string, len(emails))
	for _, o := range res.Results {
		ids[slices.Index(emails, o.prop("email"))] = o.ID
	}
	return ids
}

func recordID(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("record id %q is not a positive integer: %v", id, err)
	}
	return n
}

// TestStateFileKeepsContactsAcrossRestarts: a second emulator opened on the
// first one's state file has its contacts and custom properties, finds them
// by id and email, and gives new contacts ids above every earlier one.
func TestStateFileKeepsContactsAcrossRestarts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		uniqueIDs bool
	}{
		{"fixed first id", false},
		{"clock-derived first id", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "emulators", "hubspot.json")
			first, k := openKept(t, path, hubspot.Options{UniqueIDs: tc.uniqueIDs})
			seedTextProperty(t, first.srv, "stripe_customer_id", true)
			old := first.upsertIDs(t, "ada@example.com", "grace@example.com")
			if err := k.Save(); err != nil {
				t.Fatal(err)
			}

			second, _ := openKept(t, path, hubspot.Options{UniqueIDs: tc.uniqueIDs})
			if got, want := second.srv.Contacts(), first.srv.Contacts(); len(got) != 2 || got[0].ID != want[0].ID || got[1].Properties["email"] != "grace@example.com" {
				t.Fatalf("restored contacts %+v, want %+v", got, want)
			}
			r := second.get(t, "/crm/v3/objects/contacts/"+old[0])
			wantStatus(t, r, 200)
			if o := decode[object](t, r); o.prop("email") != "ada@example.com" {
				t.Errorf("GET %s = %s", old[0], r.body)
			}
			if p, ok := second.srv.Property("stripe_customer_id"); !ok || !p.HasUniqueValue {
				t.Errorf("custom property not restored: %+v %v", p, ok)
			}
			// Upserting a restored email updates that contact.
			if again := second.upsertIDs(t, "ada@example.com"); again[0] != old[0] {
				t.Errorf("upsert of a restored email made contact %s, want %s", again[0], old[0])
			}
			fresh := second.upsertIDs(t, "alan@example.com")
			if n := recordID(t, fresh[0]); n <= recordID(t, old[0]) || n <= recordID(t, old[1]) {
				t.Errorf("new contact id %d, want above %v", n, old)
			}
		})
	}
}

// TestUniqueIDsNeverRepeatWithoutState is a kill -9 before any save: the
// next emulator starts with no state file and must not hand out the ids
// the first one did, since the hub's database still links them.
func TestUniqueIDsNeverRepeatWithoutState(t *testing.T) {
	clk := &clock{t: t0}
	first := newEnv(t, hubspot.Options{Now: clk.Now, UniqueIDs: true})
	firstIDs := first.upsertIDs(t, "ada@example.com", "grace@example.com", "alan@example.com")
	clk.Advance(time.Millisecond) // the restart; no state was written
	second := newEnv(t, hubspot.Options{Now: clk.Now, UniqueIDs: true})
	secondIDs := second.upsertIDs(t, "ada@example.com", "barbara@example.com", "edsger@example.com")

	for _, id := range secondIDs {
		if slices.Contains(firstIDs, id) {
			t.Errorf("the restarted emulator reissued %s (first run: %v, second: %v)", id, firstIDs, secondIDs)
		}
		if len(id) != 16 {
			t.Errorf("id %q: want HubSpot's shape, a numeric string (16 digits here)", id)
		}
		recordID(t, id)
	}
}

// TestKeeperSavesContactsWithoutBeingAsked: the Keeper writes the file
// after an upsert on its own (no Save call), and once more at shutdown.
func TestKeeperSavesContactsWithoutBeingAsked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hubspot.json")
	e, k := openKept(t, path, hubspot.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	e.upsertIDs(t, "ada@example.com")
	testkit.WaitFor(t, 5*time.Second, "a state file with the contact", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), "ada@example.com")
	})
	e.upsertIDs(t, "grace@example.com")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), "grace@example.com") {
		t.Fatalf("state file after shutdown lacks the last contact: %v %s", err, b)
	}
}
