package zendesk_test

import (
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

var _ statefile.State = (*zendesk.Server)(nil)

// openKept starts an emulator whose account is kept in path.
func openKept(t *testing.T, path string, opts zendesk.Options) (*env, *statefile.Keeper) {
	t.Helper()
	e := newEnv(t, opts)
	k, err := statefile.Open(path, e.srv, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e, k
}

// createFor opens a ticket requested by an end user (created on first use).
func (e *env) createFor(t *testing.T, email string) ticket {
	t.Helper()
	return e.create(t, minimal(map[string]any{"requester": map[string]any{"name": "Customer", "email": email}}))
}

// TestStateFileKeepsTicketsAcrossRestarts: a second emulator opened on the
// first one's state file serves its tickets, comments and users (a known
// requester keeps its user id), and new tickets, users and comments get ids
// above every earlier one.
func TestStateFileKeepsTicketsAcrossRestarts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		uniqueIDs bool
	}{
		{"fixed first ids", false},
		{"clock-derived first ids", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "emulators", "zendesk.json")
			first, k := openKept(t, path, zendesk.Options{UniqueIDs: tc.uniqueIDs})
			old := first.createFor(t, "ada@example.com")
			first.call(t, http.MethodPut, "/api/v2/tickets/"+strconv.FormatInt(old.ID, 10)+".json",
				map[string]any{"ticket": map[string]any{"status": "open", "comment": map[string]any{"body": "Looking into it.", "public": false}}})
			oldComments := first.srv.Tickets()[0].Comments
			if err := k.Save(); err != nil {
				t.Fatal(err)
			}

			second, _ := openKept(t, path, zendesk.Options{UniqueIDs: tc.uniqueIDs})
			got := decode[struct {
				Ticket ticket `json:"ticket"`
			}](t, second.call(t, http.MethodGet, "/api/v2/tickets/"+strconv.FormatInt(old.ID, 10)+".json", nil), http.StatusOK).Ticket
			if got.Status != "open" || got.RequesterID != old.RequesterID || got.Subject != old.Subject {
				t.Errorf("restored ticket %+v, want %+v with status open", got, old)
			}
			if c := second.srv.Tickets()[0].Comments; len(c) != 2 || c[1].Body != "Looking into it." {
				t.Errorf("restored comments %+v", c)
			}
			if u, ok := second.srv.UserByEmail("alice@acme.test"); !ok || u.ID != agentAlice || !slices.Equal(u.GroupIDs, []int64{groupBilling}) {
				t.Errorf("seeded agent after restore: %+v %v", u, ok)
			}

			again := second.createFor(t, "ada@example.com")
			if again.RequesterID != old.RequesterID {
				t.Errorf("the same requester email became user %d, was %d", again.RequesterID, old.RequesterID)
			}
			if again.ID <= old.ID {
				t.Errorf("new ticket id %d, want above %d", again.ID, old.ID)
			}
			fresh := second.createFor(t, "grace@example.com")
			for _, u := range first.srv.Users() {
				if fresh.RequesterID <= u.ID {
					t.Errorf("new user id %d, want above every earlier one (%d)", fresh.RequesterID, u.ID)
				}
			}
			newComment := second.srv.Tickets()[1].Comments[0].ID
			for _, c := range oldComments {
				if newComment <= c.ID {
					t.Errorf("new comment id %d, want above %d", newComment, c.ID)
				}
			}
		})
	}
}

// TestUniqueIDsNeverRepeatWithoutState is a kill -9 before any save: the
// next emulator starts with no state file and must not hand out the ticket
// or user ids the first one did, since the hub's database still links them.
func TestUniqueIDsNeverRepeatWithoutState(t *testing.T) {
	clk := &clock{t: t0}
	first := newEnv(t, zendesk.Options{Now: clk.Now, UniqueIDs: true})
	var tickets, users []int64
	for _, m := range []string{"ada@example.com", "grace@example.com"} {
		tk := first.createFor(t, m)
		tickets, users = append(tickets, tk.ID), append(users, tk.RequesterID)
	}
	clk.Advance(time.Millisecond) // the restart; no state was written
	second := newEnv(t, zendesk.Options{Now: clk.Now, UniqueIDs: true})
	for _, m := range []string{"ada@example.com", "alan@example.com"} {
		tk := second.createFor(t, m)
		if slices.Contains(tickets, tk.ID) {
			t.Errorf("the restarted emulator reissued ticket %d (first run: %v)", tk.ID, tickets)
		}
		if slices.Contains(users, tk.RequesterID) {
			t.Errorf("the restarted emulator reissued user %d (first run: %v)", tk.RequesterID, users)
		}
		if tk.ID >= 1<<53 {
			t.Errorf("ticket id %d is past what a JSON number holds exactly", tk.ID)
		}
	}
}
