package zendesk_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	tests := []struct {
		name       string
		auth       string
		wantStatus int
	}{
		{"api token", agentAuth, 200},
		{"email is case-insensitive", basic("Support-Bot@ACME.test", agentToken), 200},
		{"no header", "", 401},
		{"wrong token", basic(agentEmail, "nope"), 401},
		{"other agent's email", basic("alice@acme.test", agentToken), 401},
		{"password auth (no /token)", "Basic " + base64.StdEncoding.EncodeToString([]byte(agentEmail+":"+agentToken)), 401},
		{"empty token", basic(agentEmail, ""), 401},
		{"bearer", "Bearer " + agentToken, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.callAs(t, tt.auth, http.MethodGet, "/api/v2/tickets.json", nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 401 && string(r.body) != `{"error":"Couldn't authenticate you"}` {
				t.Errorf("401 body = %s", r.body)
			}
		})
	}
}

func TestForbiddenAndRotatedCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{Forbidden: true})
	r := e.call(t, http.MethodGet, "/api/v2/tickets.json", nil)
	var body struct{ Error, Description string }
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 403 || body.Error != "Forbidden" || body.Description == "" {
		t.Fatalf("forbidden agent: %d %s", r.status, r.body)
	}
	if r := e.call(t, http.MethodPost, "/api/v2/tickets.json", map[string]any{"ticket": minimal(nil)}); r.status != 403 {
		t.Fatalf("forbidden create: %d", r.status)
	}
	if n := len(e.srv.Tickets()); n != 0 {
		t.Fatalf("forbidden create stored %d tickets", n)
	}
	e.srv.SetForbidden(false)
	if r := e.call(t, http.MethodGet, "/api/v2/tickets.json", nil); r.status != 200 {
		t.Fatalf("after SetForbidden(false): %d", r.status)
	}

	e.srv.SetCredentials("new-bot@acme.test", "rotated")
	if r := e.call(t, http.MethodGet, "/api/v2/tickets.json", nil); r.status != 401 {
		t.Fatalf("old token after rotation: %d, want 401", r.status)
	}
	tk := e.createAs(t, basic("new-bot@acme.test", "rotated"))
	u, ok := e.srv.UserByEmail("new-bot@acme.test")
	if !ok || u.Role != "agent" || tk.SubmitterID != u.ID {
		t.Fatalf("rotated agent %+v ok=%v, ticket submitter %d", u, ok, tk.SubmitterID)
	}
}

func (e *env) createAs(t *testing.T, auth string) ticket {
	t.Helper()
	r := e.callAs(t, auth, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": minimal(nil)})
	return decode[struct {
		Ticket ticket `json:"ticket"`
	}](t, r, http.StatusCreated).Ticket
}

func TestCreateAndShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	body := map[string]any{"ticket": map[string]any{
		"subject":     "Dispute opened: du_123",
		"comment":     map[string]any{"body": "Amount: 49.00 EUR\nPlan: pro", "public": false},
		"priority":    "urgent",
		"type":        "incident",
		"tags":        []string{"Stripe", "dispute", "stripe"},
		"external_id": "evt_1:dispute-rule",
		"group_id":    groupRisk,
		"requester":   map[string]any{"name": "Jane Customer", "email": "jane@example.com"},
		"custom_fields": []map[string]any{
			{"id": 27642, "value": "cus_ABC"},
		},
		"unknown_attribute": "ignored, as Zendesk does",
	}}
	r := e.call(t, http.MethodPost, "/api/v2/tickets", body)
	created := decode[struct {
		Ticket ticket          `json:"ticket"`
		Audit  json.RawMessage `json:"audit"`
	}](t, r, http.StatusCreated)
	tk := created.Ticket

	wantURL := fmt.Sprintf("%s/api/v2/tickets/%d.json", e.url, tk.ID)
	if tk.ID != 1 || tk.URL != wantURL || r.header.Get("Location") != wantURL {
		t.Errorf("id %d url %q Location %q, want 1 and %q", tk.ID, tk.URL, r.header.Get("Location"), wantURL)
	}
	jane, ok := e.srv.UserByEmail("jane@example.com")
	if !ok || jane.Role != "end-user" || jane.Name != "Jane Customer" {
		t.Fatalf("requester user = %+v, %v", jane, ok)
	}
	bot, _ := e.srv.UserByEmail(agentEmail)
	checks := []struct {
		what      string
		got, want any
	}{
		{"subject", tk.Subject, "Dispute opened: du_123"},
		{"description", tk.Description, "Amount: 49.00 EUR\nPlan: pro"},
		{"status", tk.Status, "new"},
		{"priority", *tk.Priority, "urgent"},
		{"type", *tk.Type, "incident"},
		{"tags", tk.Tags, []string{"stripe", "dispute"}},
		{"external_id", *tk.ExternalID, "evt_1:dispute-rule"},
		{"group_id", *tk.GroupID, int64(groupRisk)},
		{"assignee_id", tk.AssigneeID, (*int64)(nil)},
		{"requester_id", tk.RequesterID, jane.ID},
		{"submitter_id", tk.SubmitterID, bot.ID},
		{"is_public", tk.IsPublic, false},
		{"created_at", tk.CreatedAt, "2026-03-01T10:00:15Z"},
		{"custom field", string(tk.CustomFields[0].Value), `"cus_ABC"`},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(string(created.Audit), `"type":"Comment"`) {
		t.Errorf("audit lacks the comment event: %s", created.Audit)
	}

	// Show returns the same ticket.
	shown := decode[struct {
		Ticket ticket `json:"ticket"`
	}](t, e.call(t, http.MethodGet, "/api/v2/tickets/1.json", nil), 200).Ticket
	if !reflect.DeepEqual(shown, tk) {
		t.Errorf("show = %+v\nwant   %+v", shown, tk)
	}
	// Comments carry the body and visibility.
	comments := decode[struct {
		Comments []struct {
			Body     string `json:"body"`
			Public   bool   `json:"public"`
			AuthorID int64  `json:"author_id"`
		} `json:"comments"`
		Count int `json:"count"`
	}](t, e.call(t, http.MethodGet, "/api/v2/tickets/1/comments.json", nil), 200)
	if comments.Count != 1 || comments.Comments[0].Public || comments.Comments[0].AuthorID != bot.ID {
		t.Errorf("comments = %+v", comments)
	}

	// The same requester email reuses the user.
	again := e.create(t, minimal(map[string]any{"requester": map[string]any{"name": "J.", "email": "JANE@example.com"}}))
	if again.RequesterID != jane.ID {
		t.Errorf("second ticket requester %d, want existing %d", again.RequesterID, jane.ID)
	}
	// No requester: the agent is the requester.
	own := e.create(t, minimal(nil))
	if own.RequesterID != bot.ID || own.Priority != nil || own.Type != nil || own.ExternalID != nil {
		t.Errorf("minimal ticket = %+v", own)
	}

	// State accessors agree.
	got, ok := e.srv.Ticket(1)
	if !ok || got.ExternalID != "evt_1:dispute-rule" || len(got.Comments) != 1 || got.Comments[0].Public {
		t.Errorf("Ticket(1) = %+v, %v", got, ok)
	}
	if n := len(e.srv.Tickets()); n != 3 {
		t.Errorf("Tickets() has %d, want 3", n)
	}
	var posts int
	for _, req := range e.srv.Requests() {
		if req.Method == http.MethodPost && req.Status == 201 && req.Agent == agentEmail {
			posts++
		}
	}
	if posts != 3 {
		t.Errorf("Requests() shows %d successful creates, want 3", posts)
	}
}

func TestShowNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	for _, path := range []string{"/api/v2/tickets/42.json", "/api/v2/tickets/abc", "/api/v2/tickets/42/tags"} {
		r := e.call(t, http.MethodGet, path, nil)
		if r.status != 404 || string(r.body) != `{"error":"RecordNotFound","description":"Not found"}` {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	r := e.call(t, http.MethodGet, "/api/v2/ticketz", nil)
	if r.status != 404 || !strings.Contains(string(r.body), "InvalidEndpoint") {
		t.Errorf("unknown endpoint: %d %s", r.status, r.body)
	}
	e.create(t, minimal(nil))
	if r := e.call(t, http.MethodDelete, "/api/v2/tickets/1", nil); r.status != http.StatusNotImplemented {
		t.Errorf("DELETE ticket: %d, want 501 (not emulated)", r.status)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ticket  map[string]any
		wantKey string // a details key
		wantErr string // its error code
	}{
		{"invalid priority", minimal(map[string]any{"priority": "critical"}), "priority", "InvalidValue"},
		{"invalid type", minimal(map[string]any{"type": "bug"}), "type", "InvalidValue"},
		{"invalid status", minimal(map[string]any{"status": "done"}), "status", "InvalidValue"},
		{"priority not a string", minimal(map[string]any{"priority": 3}), "priority", "InvalidValue"},
		{"no comment", map[string]any{"subject": "x"}, "base", "BlankValue"},
		{"blank comment body", map[string]any{"comment": map[string]any{"body": "  "}}, "base", "BlankValue"},
		{"unknown group", minimal(map[string]any{"group_id": 777}), "group", "InvalidValue"},
		{"unknown assignee", minimal(map[string]any{"assignee_id": 777}), "assignee", "InvalidValue"},
		{"malformed assignee id", minimal(map[string]any{"assignee_id": -1}), "assignee", "InvalidValue"},
		{"assignee outside group", minimal(map[string]any{"group_id": groupRisk, "assignee_id": agentAlice}), "assignee", ""},
		{"requester without name", minimal(map[string]any{"requester": map[string]any{"email": "new@example.com"}}), "requester", "TooShort"},
		{"requester bad email", minimal(map[string]any{"requester": map[string]any{"name": "N", "email": "not-an-email"}}), "requester", "InvalidFormat"},
		{"tags not strings", minimal(map[string]any{"tags": []int{1}}), "tags", "InvalidValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, zendesk.Options{})
			r := e.call(t, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": tt.ticket})
			got := decode[recordInvalid](t, r, http.StatusUnprocessableEntity)
			if got.Error != "RecordInvalid" || got.Description != "Record validation errors" {
				t.Errorf("envelope = %q %q", got.Error, got.Description)
			}
			ds := got.Details[tt.wantKey]
			if len(ds) == 0 || ds[0].Error != tt.wantErr || ds[0].Description == "" {
				t.Errorf("details = %s, want %q with error %q", r.body, tt.wantKey, tt.wantErr)
			}
			if n := len(e.srv.Tickets()); n != 0 {
				t.Errorf("invalid create stored %d tickets", n)
			}
			if _, ok := e.srv.UserByEmail("new@example.com"); ok {
				t.Errorf("invalid create created a requester")
			}
		})
	}

	t.Run("all problems at once", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, zendesk.Options{})
		r := e.call(t, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": map[string]any{
			"priority": "p1", "type": "bug", "group_id": 1,
		}})
		got := decode[recordInvalid](t, r, http.StatusUnprocessableEntity)
		for _, k := range []string{"priority", "type", "group", "base"} {
			if len(got.Details[k]) == 0 {
				t.Errorf("details lack %q: %s", k, r.body)
			}
		}
		if got.Details["priority"][0].Description != "Priority: is invalid" {
			t.Errorf("priority detail = %+v", got.Details["priority"])
		}
	})
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	tests := []struct {
		name, body, wantError string
	}{
		{"not JSON", `{"ticket":`, "InvalidJSON"},
		{"no ticket key", `{"subject":"x"}`, "ParameterMissing"},
		{"ticket not an object", `{"ticket":"x"}`, "ParameterMissing"},
	}
	for _, tt := range tests {
		r := e.call(t, http.MethodPost, "/api/v2/tickets", tt.body)
		var b struct{ Error string }
		if err := json.Unmarshal(r.body, &b); err != nil || r.status != 400 || b.Error != tt.wantError {
			t.Errorf("%s: %d %s, want 400 %s", tt.name, r.status, r.body, tt.wantError)
		}
	}
}

func TestAssignment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	// An assignee brings its default group and opens the ticket.
	tk := e.create(t, minimal(map[string]any{"assignee_id": agentBob}))
	if *tk.AssigneeID != agentBob || *tk.GroupID != groupRisk || tk.Status != "open" {
		t.Errorf("assigned ticket: assignee %v group %v status %s", tk.AssigneeID, tk.GroupID, tk.Status)
	}
	// A member of the named group is fine.
	tk = e.create(t, minimal(map[string]any{"assignee_id": agentBob, "group_id": groupBilling}))
	if *tk.GroupID != groupBilling {
		t.Errorf("group %v, want billing", *tk.GroupID)
	}
	// An agent without groups leaves group_id null.
	tk = e.create(t, minimal(map[string]any{"assignee_id": agentCarol}))
	if tk.GroupID != nil {
		t.Errorf("group %v, want null", *tk.GroupID)
	}
}

func TestExternalIDLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	first := e.create(t, minimal(map[string]any{"external_id": "evt_9:refund"}))
	e.create(t, minimal(map[string]any{"external_id": "evt_9:other"}))
	second := e.create(t, minimal(map[string]any{"external_id": "evt_9:refund"}))

	type list struct {
		Tickets      []ticket `json:"tickets"`
		Count        int      `json:"count"`
		NextPage     *string  `json:"next_page"`
		PreviousPage *string  `json:"previous_page"`
	}
	got := decode[list](t, e.call(t, http.MethodGet, "/api/v2/tickets.json?external_id=evt_9%3Arefund", nil), 200)
	if got.Count != 2 || len(got.Tickets) != 2 || got.Tickets[0].ID != first.ID || got.Tickets[1].ID != second.ID {
		t.Errorf("by external_id: %+v", got)
	}
	if got.NextPage != nil || got.PreviousPage != nil {
		t.Errorf("pages = %v %v, want null", got.NextPage, got.PreviousPage)
	}
	none := e.call(t, http.MethodGet, "/api/v2/tickets?external_id=evt_404", nil)
	if n := decode[list](t, none, 200); n.Count != 0 || n.Tickets == nil {
		t.Errorf("no match: %s", none.body)
	}
	if acc := e.srv.TicketsByExternalID("evt_9:refund"); len(acc) != 2 || acc[0].ID != first.ID {
		t.Errorf("TicketsByExternalID = %+v", acc)
	}
}

func TestTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	tk := e.create(t, minimal(map[string]any{"tags": []string{"Billing", "Needs Review", "billing", " vip ", "stripe_dispute"}}))
	want := []string{"billing", "needs", "review", "vip", "stripe_dispute"}
	if !reflect.DeepEqual(tk.Tags, want) {
		t.Fatalf("normalised tags = %q, want %q", tk.Tags, want)
	}
	path := fmt.Sprintf("/api/v2/tickets/%d/tags.json", tk.ID)
	tagsOf := func(r response) []string {
		t.Helper()
		return decode[struct {
			Tags []string `json:"tags"`
		}](t, r, 200).Tags
	}
	steps := []struct {
		method string
		tags   []string
		want   []string
	}{
		{http.MethodPut, []string{"VIP", "churn-risk"}, []string{"billing", "needs", "review", "vip", "stripe_dispute", "churn-risk"}},
		{http.MethodDelete, []string{"needs", "review", "absent"}, []string{"billing", "vip", "stripe_dispute", "churn-risk"}},
		{http.MethodPost, []string{"only"}, []string{"only"}},
		{http.MethodGet, nil, []string{"only"}},
	}
	for _, st := range steps {
		var body any
		if st.tags != nil {
			body = map[string]any{"tags": st.tags}
		}
		if got := tagsOf(e.call(t, st.method, path, body)); !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s tags %q: %q, want %q", st.method, st.tags, got, st.want)
		}
	}
	if r := e.call(t, http.MethodPut, path, `{}`); r.status != 400 {
		t.Errorf("add without tags: %d, want 400", r.status)
	}

	// PUT on the ticket replaces tags entirely; additional_tags and
	// remove_tags edit them.
	update := func(fields map[string]any) ticket {
		t.Helper()
		r := e.call(t, http.MethodPut, fmt.Sprintf("/api/v2/tickets/%d.json", tk.ID), map[string]any{"ticket": fields})
		return decode[struct {
			Ticket ticket `json:"ticket"`
		}](t, r, 200).Ticket
	}
	if got := update(map[string]any{"tags": []string{"a", "b"}}).Tags; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("PUT ticket tags = %q, want replaced", got)
	}
	if got := update(map[string]any{"additional_tags": []string{"c"}, "remove_tags": []string{"a"}}).Tags; !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("additional/remove = %q", got)
	}

	// Closed tickets refuse tag changes.
	update(map[string]any{"status": "closed"})
	r := e.call(t, http.MethodPut, path, map[string]any{"tags": []string{"late"}})
	if got := decode[recordInvalid](t, r, 422); len(got.Details["status"]) == 0 {
		t.Errorf("closed ticket tag add: %s", r.body)
	}
	if got, _ := e.srv.Ticket(tk.ID); !reflect.DeepEqual(got.Tags, []string{"b", "c"}) {
		t.Errorf("closed ticket tags changed to %q", got.Tags)
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	tk := e.create(t, minimal(map[string]any{"priority": "low"}))
	path := fmt.Sprintf("/api/v2/tickets/%d", tk.ID)

	e.clock.Advance(90 * time.Second)
	r := e.call(t, http.MethodPut, path, map[string]any{"ticket": map[string]any{
		"status": "pending", "priority": "high",
		"comment": map[string]any{"body": "Retry scheduled.", "public": false},
	}})
	got := decode[struct {
		Ticket ticket `json:"ticket"`
		Audit  struct {
			Events []struct {
				Type          string `json:"type"`
				FieldName     string `json:"field_name"`
				Value         any    `json:"value"`
				PreviousValue any    `json:"previous_value"`
			} `json:"events"`
		} `json:"audit"`
	}](t, r, 200)
	if got.Ticket.Status != "pending" || *got.Ticket.Priority != "high" || got.Ticket.UpdatedAt != "2026-03-01T10:01:45Z" {
		t.Errorf("updated = %+v", got.Ticket)
	}
	if got.Ticket.Description != tk.Description {
		t.Errorf("description changed to %q; it stays the first comment", got.Ticket.Description)
	}
	var sawPriority bool
	for _, ev := range got.Audit.Events {
		if ev.Type == "Change" && ev.FieldName == "priority" && ev.Value == "high" && ev.PreviousValue == "low" {
			sawPriority = true
		}
	}
	if !sawPriority {
		t.Errorf("audit lacks the priority change: %s", r.body)
	}
	stored, _ := e.srv.Ticket(tk.ID)
	if len(stored.Comments) != 2 || stored.Comments[1].Body != "Retry scheduled." || stored.Comments[1].Public {
		t.Errorf("comments = %+v", stored.Comments)
	}

	// An invalid update changes nothing.
	r = e.call(t, http.MethodPut, path, map[string]any{"ticket": map[string]any{"status": "pending", "priority": "asap", "comment": map[string]any{"body": "x"}}})
	decode[recordInvalid](t, r, 422)
	if after, _ := e.srv.Ticket(tk.ID); !reflect.DeepEqual(after, stored) {
		t.Errorf("invalid update changed the ticket:\n%+v\n%+v", after, stored)
	}
	// Priority null clears it.
	r = e.call(t, http.MethodPut, path, `{"ticket":{"priority":null}}`)
	if got := decode[struct {
		Ticket ticket `json:"ticket"`
	}](t, r, 200); got.Ticket.Priority != nil {
		t.Errorf("priority null: %v", *got.Ticket.Priority)
	}
	// Closed tickets cannot be updated.
	e.call(t, http.MethodPut, path, `{"ticket":{"status":"closed"}}`)
	r = e.call(t, http.MethodPut, path, `{"ticket":{"status":"open"}}`)
	if got := decode[recordInvalid](t, r, 422); got.Details["status"][0].Description != "Status: closed prevents ticket update" {
		t.Errorf("update closed: %s", r.body)
	}
}

func TestCursorPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	for i := range 7 {
		e.create(t, minimal(map[string]any{"subject": fmt.Sprintf("t%d", i+1)}))
	}
	type page struct {
		Tickets []ticket `json:"tickets"`
		Meta    struct {
			HasMore      bool    `json:"has_more"`
			AfterCursor  *string `json:"after_cursor"`
			BeforeCursor *string `json:"before_cursor"`
		} `json:"meta"`
		Links struct {
			Next *string `json:"next"`
			Prev *string `json:"prev"`
		} `json:"links"`
	}
	ids := func(p page) (out []int64) {
		for _, tk := range p.Tickets {
			out = append(out, tk.ID)
		}
		return out
	}
	get := func(u string) page {
		t.Helper()
		return decode[page](t, e.call(t, http.MethodGet, strings.TrimPrefix(u, e.url), nil), 200)
	}

	var seen [][]int64
	p := get("/api/v2/tickets.json?page[size]=3")
	for {
		seen = append(seen, ids(p))
		if !p.Meta.HasMore {
			break
		}
		if p.Links.Next == nil || !strings.HasPrefix(*p.Links.Next, e.url+"/api/v2/tickets.json?") {
			t.Fatalf("links.next = %v", p.Links.Next)
		}
		p = get(*p.Links.Next)
	}
	if want := [][]int64{{1, 2, 3}, {4, 5, 6}, {7}}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("pages = %v, want %v", seen, want)
	}
	// Following next past the end gives an empty last page.
	if end := get(*p.Links.Next); len(end.Tickets) != 0 || end.Meta.HasMore || end.Links.Next != nil {
		t.Errorf("past the end: %+v", end)
	}
	// Going back from the last page.
	back := get(*p.Links.Prev)
	if got := ids(back); !reflect.DeepEqual(got, []int64{4, 5, 6}) || !back.Meta.HasMore {
		t.Errorf("prev page = %v has_more %v", got, back.Meta.HasMore)
	}
	// Cursor pagination combines with the external_id filter.
	for _, body := range []string{"a", "b"} {
		if _, err := e.srv.SeedTicket([]byte(`{"ticket":{"external_id":"dup","comment":{"body":"` + body + `"}}}`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(get("/api/v2/tickets?external_id=dup&page[size]=1")); !reflect.DeepEqual(got, []int64{8}) {
		t.Errorf("filtered cursor page = %v", got)
	}

	for _, bad := range []string{"page[size]=101", "page[size]=0", "page[size]=x", "page[after]=bogus!", "page[after]=a&page[before]=b"} {
		r := e.call(t, http.MethodGet, "/api/v2/tickets.json?"+bad, nil)
		if r.status != 400 || !strings.Contains(string(r.body), "InvalidPaginationParameter") {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}

	// Offset pagination, the default without page[size].
	type offset struct {
		Tickets  []ticket `json:"tickets"`
		Count    int      `json:"count"`
		NextPage *string  `json:"next_page"`
		PrevPage *string  `json:"previous_page"`
	}
	o := decode[offset](t, e.call(t, http.MethodGet, "/api/v2/tickets.json?per_page=4&page=2", nil), 200)
	if len(o.Tickets) != 4 || o.Tickets[0].ID != 5 || o.Count != 9 || o.NextPage == nil || o.PrevPage == nil {
		t.Errorf("offset page 2 = %d tickets from %d, count %d, next %v prev %v", len(o.Tickets), o.Tickets[0].ID, o.Count, o.NextPage, o.PrevPage)
	}
}

func TestSeedTicketValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	_, err := e.srv.SeedTicket([]byte(`{"ticket":{"priority":"p0","comment":{"body":"x"}}}`))
	var verr *zendesk.ValidationError
	if !errors.As(err, &verr) || len(verr.Details["priority"]) != 1 {
		t.Fatalf("err = %v, want *ValidationError on priority", err)
	}
	if _, err := e.srv.SeedTicket([]byte(`nope`)); err == nil {
		t.Fatal("non-JSON seed accepted")
	}
}

func TestNewValidatesSeeds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts zendesk.Options
	}{
		{"agent in unknown group", zendesk.Options{Agents: []zendesk.User{{Email: "a@x.test", GroupIDs: []int64{5}}}}},
		{"duplicate group", zendesk.Options{Groups: []zendesk.Group{{ID: 1}, {ID: 1}}}},
		{"duplicate agent email", zendesk.Options{Agents: []zendesk.User{{Email: "a@x.test"}, {Email: "A@x.test"}}}},
		{"end-user role", zendesk.Options{Agents: []zendesk.User{{Email: "a@x.test", Role: "end-user"}}}},
	}
	for _, tt := range tests {
		if _, err := zendesk.New(tt.opts); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
	if _, err := zendesk.New(zendesk.Options{}); err != nil {
		t.Errorf("zero Options: %v", err)
	}
}
