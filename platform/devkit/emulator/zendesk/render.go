package zendesk

import (
	"bytes"
	"encoding/json"
	"html"
	"slices"
	"strconv"
	"strings"
	"time"
)

// timeFormat is how Zendesk writes timestamps: ISO 8601, UTC, seconds.
const timeFormat = "2006-01-02T15:04:05Z"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

func ticketURL(base string, id int64) string {
	return base + "/api/v2/tickets/" + strconv.FormatInt(id, 10) + ".json"
}

type viaJSON struct {
	Channel string `json:"channel"`
	Source  struct {
		From struct{} `json:"from"`
		To   struct{} `json:"to"`
		Rel  *string  `json:"rel"`
	} `json:"source"`
}

type customFieldJSON struct {
	ID    int64           `json:"id"`
	Value json.RawMessage `json:"value"`
}

// ticketJSON is the ticket object in Zendesk's field order. Fields the
// emulator does not model are present with Zendesk's empty values.
type ticketJSON struct {
	URL                  string            `json:"url"`
	ID                   int64             `json:"id"`
	ExternalID           *string           `json:"external_id"`
	Via                  viaJSON           `json:"via"`
	CreatedAt            string            `json:"created_at"`
	UpdatedAt            string            `json:"updated_at"`
	GeneratedTimestamp   int64             `json:"generated_timestamp"`
	Type                 *string           `json:"type"`
	Subject              string            `json:"subject"`
	RawSubject           string            `json:"raw_subject"`
	Description          string            `json:"description"`
	Priority             *string           `json:"priority"`
	Status               string            `json:"status"`
	Recipient            *string           `json:"recipient"`
	RequesterID          int64             `json:"requester_id"`
	SubmitterID          int64             `json:"submitter_id"`
	AssigneeID           *int64            `json:"assignee_id"`
	OrganizationID       *int64            `json:"organization_id"`
	GroupID              *int64            `json:"group_id"`
	CollaboratorIDs      []int64           `json:"collaborator_ids"`
	FollowerIDs          []int64           `json:"follower_ids"`
	EmailCCIDs           []int64           `json:"email_cc_ids"`
	ForumTopicID         *int64            `json:"forum_topic_id"`
	ProblemID            *int64            `json:"problem_id"`
	HasIncidents         bool              `json:"has_incidents"`
	IsPublic             bool              `json:"is_public"`
	DueAt                *string           `json:"due_at"`
	Tags                 []string          `json:"tags"`
	CustomFields         []customFieldJSON `json:"custom_fields"`
	SatisfactionRating   *struct{}         `json:"satisfaction_rating"`
	SharingAgreementIDs  []int64           `json:"sharing_agreement_ids"`
	Fields               []customFieldJSON `json:"fields"`
	FollowupIDs          []int64           `json:"followup_ids"`
	TicketFormID         *int64            `json:"ticket_form_id"`
	BrandID              *int64            `json:"brand_id"`
	AllowChannelback     bool              `json:"allow_channelback"`
	AllowAttachments     bool              `json:"allow_attachments"`
	FromMessagingChannel bool              `json:"from_messaging_channel"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// renderTicket builds the JSON view; the caller holds s.mu (t is live).
func renderTicket(t *Ticket, base string) ticketJSON {
	cf := make([]customFieldJSON, len(t.CustomFields))
	for i, f := range t.CustomFields {
		cf[i] = customFieldJSON{ID: f.ID, Value: slices.Clone(f.Value)}
	}
	return ticketJSON{
		URL:                 ticketURL(base, t.ID),
		ID:                  t.ID,
		ExternalID:          optString(t.ExternalID),
		Via:                 viaJSON{Channel: "api"},
		CreatedAt:           ts(t.CreatedAt),
		UpdatedAt:           ts(t.UpdatedAt),
		GeneratedTimestamp:  t.UpdatedAt.Unix(),
		Type:                optString(t.Type),
		Subject:             t.Subject,
		RawSubject:          t.Subject,
		Description:         t.Description,
		Priority:            optString(t.Priority),
		Status:              t.Status,
		RequesterID:         t.RequesterID,
		SubmitterID:         t.SubmitterID,
		AssigneeID:          optID(t.AssigneeID),
		GroupID:             optID(t.GroupID),
		CollaboratorIDs:     []int64{},
		FollowerIDs:         []int64{},
		EmailCCIDs:          []int64{},
		IsPublic:            t.IsPublic,
		Tags:                slices.Clone(t.Tags),
		CustomFields:        cf,
		SharingAgreementIDs: []int64{},
		Fields:              cf,
		FollowupIDs:         []int64{},
		AllowAttachments:    true,
	}
}

func renderTickets(ts []*Ticket, base string) []ticketJSON {
	out := make([]ticketJSON, len(ts))
	for i, t := range ts {
		out[i] = renderTicket(t, base)
	}
	return out
}

type commentJSON struct {
	ID          int64    `json:"id"`
	Type        string   `json:"type"`
	AuthorID    int64    `json:"author_id"`
	Body        string   `json:"body"`
	HTMLBody    string   `json:"html_body"`
	PlainBody   string   `json:"plain_body"`
	Public      bool     `json:"public"`
	Attachments []string `json:"attachments"`
	Via         viaJSON  `json:"via"`
	CreatedAt   string   `json:"created_at"`
}

func renderComment(c Comment) commentJSON {
	htmlBody := `<div class="zd-comment" dir="auto">` +
		strings.ReplaceAll(html.EscapeString(c.Body), "\n", "<br>") + `</div>`
	return commentJSON{
		ID: c.ID, Type: "Comment", AuthorID: c.AuthorID, Body: c.Body,
		HTMLBody: htmlBody, PlainBody: c.Body, Public: c.Public,
		Attachments: []string{}, Via: viaJSON{Channel: "api"}, CreatedAt: ts(c.CreatedAt),
	}
}

// auditEvent is one event of a ticket audit: the new comment, or a Create
// (on creation) / Change (on update) of one field.
type auditEvent struct {
	ID            int64  `json:"id"`
	Type          string `json:"type"`
	FieldName     string `json:"field_name,omitempty"`
	Value         any    `json:"value,omitempty"`
	PreviousValue any    `json:"previous_value,omitempty"`
	AuthorID      int64  `json:"author_id,omitempty"`
	Body          string `json:"body,omitempty"`
	Public        *bool  `json:"public,omitempty"`
}

type auditJSON struct {
	ID        int64        `json:"id"`
	TicketID  int64        `json:"ticket_id"`
	CreatedAt string       `json:"created_at"`
	AuthorID  int64        `json:"author_id"`
	Via       viaJSON      `json:"via"`
	Events    []auditEvent `json:"events"`
}

// renderAudit describes what a create (prev nil) or update changed, the way
// Zendesk returns an "audit" next to the ticket. The caller holds s.mu.
func (s *Server) renderAudit(t *Ticket, prev *Ticket, author int64, now time.Time) auditJSON {
	s.nextAudit++
	a := auditJSON{ID: s.nextAudit, TicketID: t.ID, CreatedAt: ts(now), AuthorID: author, Via: viaJSON{Channel: "api"}}
	event := func(e auditEvent) {
		if e.ID == 0 {
			s.nextComment++ // events share the comment id sequence, as in Zendesk
			e.ID = s.nextComment
		}
		a.Events = append(a.Events, e)
	}
	if n := len(t.Comments); n > 0 && (prev == nil || len(prev.Comments) < n) {
		c := t.Comments[n-1]
		event(auditEvent{ID: c.ID, Type: "Comment", AuthorID: c.AuthorID, Body: c.Body, Public: &c.Public})
	}
	type field struct {
		name      string
		now, then any
	}
	var old Ticket
	if prev != nil {
		old = *prev
	}
	for _, f := range []field{
		{"subject", t.Subject, old.Subject},
		{"status", t.Status, old.Status},
		{"priority", t.Priority, old.Priority},
		{"type", t.Type, old.Type},
		{"requester_id", t.RequesterID, old.RequesterID},
		{"group_id", t.GroupID, old.GroupID},
		{"assignee_id", t.AssigneeID, old.AssigneeID},
		{"tags", strings.Join(t.Tags, " "), strings.Join(old.Tags, " ")},
	} {
		switch {
		case prev == nil && f.now != f.then:
			event(auditEvent{Type: "Create", FieldName: f.name, Value: f.now})
		case prev != nil && f.now != f.then:
			event(auditEvent{Type: "Change", FieldName: f.name, Value: f.now, PreviousValue: f.then})
		}
	}
	if a.Events == nil {
		a.Events = []auditEvent{}
	}
	return a
}

// mustJSON encodes values built from strings, numbers and raw JSON that
// was validated on the way in; it cannot fail.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Zendesk writes "&" and "<" as is
	if err := enc.Encode(v); err != nil {
		return []byte(`{"error":"InternalError","description":"zendesk emulator: encode: ` +
			strings.ReplaceAll(err.Error(), `"`, `'`) + `"}`)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
