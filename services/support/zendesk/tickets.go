package zendesk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/platform/errclass"
)

// Ticket is the part of a Zendesk ticket the hub reads. Empty strings and
// zero ids stand for JSON null.
type Ticket struct {
	ID          int64
	URL         string // the API URL of the ticket
	ExternalID  string
	Subject     string
	Status      string
	Priority    string
	Type        string
	Tags        []string
	GroupID     int64
	AssigneeID  int64
	RequesterID int64
	CreatedAt   time.Time
}

// NewTicket is a ticket to create. Body becomes the first comment, which is
// private (an internal note): it is written for agents, and it is plain
// text: comment.body, never html_body (there is no field for HTML, on
// purpose: text from outside is never markup). Values from outside go in
// through Value; CreateTicket applies the length limits (MaxSubject,
// MaxBody, MaxName), cutting visibly rather than failing.
type NewTicket struct {
	// ExternalID is the hub's key for the ticket, e.g. "<event id>/<rule>".
	// Required by EnsureTicket.
	ExternalID string
	Subject    string
	Body       string
	// Priority is urgent|high|normal|low; Type problem|incident|question|task;
	// "" leaves them unset.
	Priority string
	Type     string
	// Tags are stored lower-cased and split on white space by Zendesk; join
	// words with underscores.
	Tags       []string
	GroupID    int64 // 0: none
	AssigneeID int64 // 0: none
	// Requester is the customer the ticket is about; nil makes the API
	// agent the requester. Zendesk creates an unknown requester as an end
	// user, which needs a name.
	Requester *Requester
}

// Requester identifies a ticket's requester.
type Requester struct {
	Name  string
	Email string
}

type ticketJSON struct {
	ID          int64    `json:"id"`
	URL         string   `json:"url"`
	ExternalID  *string  `json:"external_id"`
	Subject     string   `json:"subject"`
	Status      string   `json:"status"`
	Priority    *string  `json:"priority"`
	Type        *string  `json:"type"`
	Tags        []string `json:"tags"`
	GroupID     *int64   `json:"group_id"`
	AssigneeID  *int64   `json:"assignee_id"`
	RequesterID int64    `json:"requester_id"`
	CreatedAt   string   `json:"created_at"`
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (t ticketJSON) ticket() Ticket {
	created, _ := time.Parse(time.RFC3339, t.CreatedAt)
	return Ticket{
		ID:          t.ID,
		URL:         t.URL,
		ExternalID:  deref(t.ExternalID),
		Subject:     t.Subject,
		Status:      t.Status,
		Priority:    deref(t.Priority),
		Type:        deref(t.Type),
		Tags:        t.Tags,
		GroupID:     deref(t.GroupID),
		AssigneeID:  deref(t.AssigneeID),
		RequesterID: t.RequesterID,
		CreatedAt:   created,
	}
}

// maxPages bounds FindByExternalID's pagination (100 tickets a page); an
// external_id shared by more tickets than that is a bug upstream.
const maxPages = 10

// FindByExternalID returns every ticket with the external_id, by id
// ascending (external_id is not unique in Zendesk). It reads the list
// endpoint, which is consistent at once, not search, which lags. A 404
// reads as none; other failures are classified (see package doc).
func (c *Client) FindByExternalID(ctx context.Context, externalID string) ([]Ticket, error) {
	if externalID == "" {
		return nil, errclass.Permanent(errors.New("zendesk: find tickets: empty external_id"))
	}
	op := "find tickets by external_id " + externalID
	target := "/api/v2/tickets.json?" + url.Values{"external_id": {externalID}, "per_page": {"100"}}.Encode()
	var out []Ticket
	for range maxPages {
		var page struct {
			Tickets  []ticketJSON `json:"tickets"`
			NextPage *string      `json:"next_page"`
		}
		status, err := c.do(ctx, op, http.MethodGet, target, nil, &page)
		if status == http.StatusNotFound {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, t := range page.Tickets {
			// Guard against a server that ignores the filter.
			if deref(t.ExternalID) == externalID {
				out = append(out, t.ticket())
			}
		}
		if page.NextPage == nil || *page.NextPage == "" || len(page.Tickets) == 0 {
			slices.SortFunc(out, func(a, b Ticket) int { return cmp.Compare(a.ID, b.ID) })
			return out, nil
		}
		target = *page.NextPage
	}
	return nil, fmt.Errorf("zendesk: %s: more than %d pages", op, maxPages)
}

type createBody struct {
	Ticket createTicketJSON `json:"ticket"`
}

type createTicketJSON struct {
	Subject    string         `json:"subject,omitempty"`
	Comment    commentJSON    `json:"comment"`
	Priority   string         `json:"priority,omitempty"`
	Type       string         `json:"type,omitempty"`
	Tags       []string       `json:"tags,omitempty"`
	ExternalID string         `json:"external_id,omitempty"`
	GroupID    int64          `json:"group_id,omitempty"`
	AssigneeID int64          `json:"assignee_id,omitempty"`
	Requester  *requesterJSON `json:"requester,omitempty"`
}

// commentJSON is the first comment. It has no html_body on purpose
// (TestTicketsArePlainText): the hub never sends markup.
type commentJSON struct {
	Body   string `json:"body"`
	Public bool   `json:"public"`
}

type requesterJSON struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

// CreateTicket creates a ticket unconditionally. It is not idempotent: a
// retry after a lost answer creates a second ticket. Use EnsureTicket.
//
// The subject, body and requester name are normalised first (clean
// UTF-8, no control or bidi characters, the limits above): the same
// NewTicket always sends the same ticket.
//
// 422 (invalid fields) is Permanent and names the fields, never their
// values; see the package doc for the other classes.
func (c *Client) CreateTicket(ctx context.Context, t NewTicket) (Ticket, error) {
	t = normalize(t)
	op := "create ticket"
	if t.ExternalID != "" {
		op += " (external_id " + t.ExternalID + ")"
	}
	if t.Requester != nil {
		op += " for " + mask(t.Requester.Email)
	}
	if strings.TrimSpace(t.Body) == "" {
		return Ticket{}, errclass.Permanent(fmt.Errorf("zendesk: %s: empty body", op))
	}
	body := createBody{Ticket: createTicketJSON{
		Subject:    t.Subject,
		Comment:    commentJSON{Body: t.Body, Public: false},
		Priority:   t.Priority,
		Type:       t.Type,
		Tags:       t.Tags,
		ExternalID: t.ExternalID,
		GroupID:    t.GroupID,
		AssigneeID: t.AssigneeID,
	}}
	if r := t.Requester; r != nil {
		body.Ticket.Requester = &requesterJSON{Name: r.Name, Email: r.Email}
	}
	var resp struct {
		Ticket ticketJSON `json:"ticket"`
	}
	if _, err := c.do(ctx, op, http.MethodPost, "/api/v2/tickets.json", body, &resp); err != nil {
		return Ticket{}, err
	}
	if resp.Ticket.ID == 0 {
		return Ticket{}, fmt.Errorf("zendesk: %s: answer has no ticket id", op)
	}
	return resp.Ticket.ticket(), nil
}

// Prior is what an earlier attempt at a ticket may have done: the caller
// knows (package support decides it from the delivery count, replays and
// its own record of attempts); EnsureTicket spends requests by it.
type Prior int

const (
	// MaybeSent: an earlier attempt may have reached Zendesk (a redelivery,
	// a replay, a create whose answer was lost), so the external_id is
	// looked up before any create: one request when found, two otherwise.
	// It is the zero value: a caller that does not say gets the safe path.
	MaybeSent Prior = iota
	// NeverSent: no earlier attempt can have sent this ticket, so it is
	// created at once: one request, the requester inline.
	NeverSent
)

// EnsureTicket returns the ticket with t.ExternalID, creating it only when
// none exists: created reports whether this call created it. With
// MaybeSent it looks the external_id up first; when several tickets share
// it (left by an earlier race), the oldest (the lowest id) is returned and
// none is created. With NeverSent it creates without looking: the caller
// vouches that no earlier attempt sent it.
//
// Exactly-once contract: EnsureTicket itself is lookup-then-create, not
// atomic, and it never retries within a call. If a create's answer is lost
// after Zendesk stored the ticket (a dropped connection, a timeout or a
// 5xx after the request was sent), the call returns a Transient error; the
// caller's retry must pass MaybeSent, and its lookup finds the stored
// ticket and returns it (created false) instead of creating a second one.
// A 429 is refused unprocessed, but the retry cannot tell, so it looks up
// too. The lookup uses the list endpoint, which sees a new ticket at once.
// Two concurrent calls for the same external_id can still both create, so
// callers must not run them concurrently per external_id (the support
// service's ledger serializes them, and records the ticket once created);
// any duplicate is then harmless, as the oldest wins.
func (c *Client) EnsureTicket(ctx context.Context, t NewTicket, prior Prior) (ticket Ticket, created bool, err error) {
	if t.ExternalID == "" {
		return Ticket{}, false, errclass.Permanent(errors.New("zendesk: ensure ticket: empty external_id"))
	}
	if prior != NeverSent {
		found, err := c.FindByExternalID(ctx, t.ExternalID)
		if err != nil {
			return Ticket{}, false, fmt.Errorf("ensure ticket: %w", err)
		}
		if len(found) > 0 {
			return found[0], false, nil
		}
	}
	ticket, err = c.CreateTicket(ctx, t)
	if err != nil {
		return Ticket{}, false, fmt.Errorf("ensure ticket: %w", err)
	}
	return ticket, true, nil
}
