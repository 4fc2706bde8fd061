package zendesk_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

var _ statefile.Journaled = (*zendesk.Server)(nil)

// TestSaveAppendsOnlyTheChangedTicket: with a journal, a save after one
// ticket update appends that ticket, the same bytes for an account of 5
// tickets or 300 (give or take the digits of ids), and a reload without a snapshot (kill -9) has it.
func TestSaveAppendsOnlyTheChangedTicket(t *testing.T) {
	appended := map[int]int64{}
	for _, n := range []int{5, 300} {
		path := filepath.Join(t.TempDir(), "zendesk.json")
		e, k := openKept(t, path, zendesk.Options{})
		var last ticket
		for i := range n {
			last = e.createFor(t, fmt.Sprintf("c%d@example.com", i))
		}
		if err := k.Save(); err != nil {
			t.Fatal(err)
		}
		jpath := statefile.JournalPath(path)
		before := size(t, jpath)
		e.call(t, http.MethodPut, "/api/v2/tickets/"+strconv.FormatInt(last.ID, 10)+"/tags.json", map[string]any{"tags": []string{"vip"}})
		if err := k.Save(); err != nil {
			t.Fatal(err)
		}
		appended[n] = size(t, jpath) - before
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("a save wrote the whole account (stat: %v)", err)
		}

		again, _ := openKept(t, path, zendesk.Options{})
		tickets := again.srv.Tickets()
		if len(tickets) != n || !slicesEqual(tickets[n-1].Tags, []string{"vip"}) {
			t.Errorf("reloaded %d tickets, last tags %v; want %d, [vip]", len(tickets), tickets[len(tickets)-1].Tags, n)
		}
	}
	// The record differs only by the digits of ids and emails.
	if appended[5] <= 0 || appended[300] > appended[5]+32 || appended[300] > 2048 {
		t.Errorf("one tag change appended %v bytes (by account size), want one small record whatever the size", appended)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// snapshotOnly hides MarshalChanges, so a Keeper saves the whole account
// each time: the cost before the journal.
type snapshotOnly struct{ statefile.State }

// BenchmarkSaveAfterOneTicketChange is one durable save after one ticket's
// tags changed, in accounts of 1k and 50k tickets: a journal record
// against a whole snapshot.
func BenchmarkSaveAfterOneTicketChange(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		for _, mode := range []string{"journal", "snapshot"} {
			b.Run(fmt.Sprintf("tickets=%d/%s", n, mode), func(b *testing.B) {
				srv, err := zendesk.New(zendesk.Options{Email: agentEmail, APIToken: agentToken, RateLimit: -1})
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.UnmarshalState(account(b, n)); err != nil {
					b.Fatal(err)
				}
				var st statefile.State = srv
				if mode == "snapshot" {
					st = snapshotOnly{srv}
				}
				path := filepath.Join(b.TempDir(), "zendesk.json")
				k, err := statefile.Open(path, st, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer k.Close()
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					req := httptest.NewRequest(http.MethodPut, "/api/v2/tickets/"+strconv.Itoa(1+i%n)+"/tags.json",
						strings.NewReader(`{"tags":["t`+strconv.Itoa(i)+`"]}`))
					req.Header.Set("Authorization", agentAuth)
					req.Header.Set("Content-Type", "application/json")
					w := httptest.NewRecorder()
					srv.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("tags: %d %s", w.Code, w.Body)
					}
					b.StartTimer()
					if err := k.Save(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if mode == "snapshot" {
					b.ReportMetric(float64(fileBytes(path)), "B/save")
				} else {
					b.ReportMetric(float64(fileBytes(statefile.JournalPath(path)))/float64(b.N), "B/save")
				}
			})
		}
	}
}

func fileBytes(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// account is a saved account of n tickets shaped like the dev hub's: a
// requester each, one comment, a few tags and an external id.
func account(b *testing.B, n int) []byte {
	b.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type saved struct {
		Version     int              `json:"version"`
		NextTicket  int64            `json:"next_ticket"`
		NextUser    int64            `json:"next_user"`
		NextComment int64            `json:"next_comment"`
		Users       []zendesk.User   `json:"users"`
		Tickets     []zendesk.Ticket `json:"tickets"`
	}
	st := saved{Version: 1, NextTicket: int64(n), NextUser: int64(20001 + n), NextComment: int64(n)}
	for i := 1; i <= n; i++ {
		uid := int64(20000 + i)
		st.Users = append(st.Users, zendesk.User{ID: uid, Name: "Customer", Email: fmt.Sprintf("c%d@example.com", i), Role: "end-user", CreatedAt: now})
		st.Tickets = append(st.Tickets, zendesk.Ticket{
			ID: int64(i), ExternalID: fmt.Sprintf("cus_%014d", i), Subject: "Payment failed for invoice in_1234567890",
			Description: "Invoice in_1234567890 failed: card_declined.", Status: "new", Tags: []string{"billing", "payment_failed"},
			RequesterID: uid, SubmitterID: uid, GroupID: 1, IsPublic: true,
			Comments:  []zendesk.Comment{{ID: int64(i), AuthorID: uid, Body: "Invoice in_1234567890 failed: card_declined.", Public: true, CreatedAt: now}},
			CreatedAt: now, UpdatedAt: now,
		})
	}
	data, err := json.Marshal(st)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
