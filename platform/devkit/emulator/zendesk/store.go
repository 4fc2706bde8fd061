package zendesk

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// User is a Zendesk user: an agent (seeded, or the authenticating one) or an
// end user created as a ticket requester.
type User struct {
	ID    int64
	Name  string
	Email string
	// Role is "end-user", "agent" or "admin".
	Role string
	// GroupIDs are the groups an agent belongs to; the first is its default
	// group, which a ticket assigned to it without a group_id gets.
	GroupIDs  []int64
	CreatedAt time.Time
}

func (u *User) clone() User {
	c := *u
	c.GroupIDs = slices.Clone(u.GroupIDs)
	return c
}

func (u *User) isAgent() bool { return u.Role == "agent" || u.Role == "admin" }

// Group is a Zendesk agent group.
type Group struct {
	ID   int64
	Name string
}

// Ticket is a stored ticket as the accessors report it. Empty strings and
// zero ids stand for JSON null.
type Ticket struct {
	ID          int64
	ExternalID  string
	Subject     string
	Description string // the first comment's body
	Type        string
	Priority    string
	Status      string
	Tags        []string
	RequesterID int64
	SubmitterID int64
	AssigneeID  int64
	GroupID     int64
	IsPublic    bool
	// CustomFields are stored as sent ({"id":…,"value":…}), unchecked.
	CustomFields []CustomField
	Comments     []Comment
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (t *Ticket) clone() Ticket {
	c := *t
	c.Tags = slices.Clone(t.Tags)
	c.CustomFields = make([]CustomField, len(t.CustomFields))
	for i, f := range t.CustomFields {
		c.CustomFields[i] = CustomField{ID: f.ID, Value: bytes.Clone(f.Value)}
	}
	c.Comments = slices.Clone(t.Comments)
	return c
}

// CustomField is one entry of a ticket's custom_fields.
type CustomField struct {
	ID    int64
	Value json.RawMessage
}

// Comment is a ticket comment; Public false is an internal note.
type Comment struct {
	ID        int64
	AuthorID  int64
	Body      string
	Public    bool
	CreatedAt time.Time
}

// Request is one exchange the emulator answered, for assertions.
type Request struct {
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	// Agent is the authenticated agent's email; empty when the request was
	// not authenticated.
	Agent string
	Body  []byte
	// Status is the HTTP status answered; 0 when no response was written
	// (CrashDropConnection, or a client that went away during latency).
	Status int
}

// AddGroup seeds a group. Its ID must be positive and unused.
func (s *Server) AddGroup(g Group) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.ID <= 0 {
		return fmt.Errorf("zendesk: group %q: id must be positive", g.Name)
	}
	if _, dup := s.groups[g.ID]; dup {
		return fmt.Errorf("zendesk: group %d already exists", g.ID)
	}
	s.groups[g.ID] = &g
	s.dirtyGroups[g.ID] = struct{}{}
	s.changed()
	return nil
}

// AddAgent seeds an agent and returns it as stored. A zero ID is assigned;
// Role defaults to "agent" (it must be "agent" or "admin"); GroupIDs must
// name existing groups; the email must not belong to another user.
func (s *Server) AddAgent(u User) (User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Role == "" {
		u.Role = "agent"
	}
	if !u.isAgent() {
		return User{}, fmt.Errorf("zendesk: agent %q: role %q is not agent or admin", u.Email, u.Role)
	}
	if u.ID < 0 {
		return User{}, fmt.Errorf("zendesk: agent %q: negative id", u.Email)
	}
	if _, dup := s.users[u.ID]; dup && u.ID != 0 {
		return User{}, fmt.Errorf("zendesk: user %d already exists", u.ID)
	}
	if _, dup := s.usersByEmail[strings.ToLower(u.Email)]; dup && u.Email != "" {
		return User{}, fmt.Errorf("zendesk: a user with email %q already exists", u.Email)
	}
	for _, g := range u.GroupIDs {
		if _, ok := s.groups[g]; !ok {
			return User{}, fmt.Errorf("zendesk: agent %q: no group %d", u.Email, g)
		}
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now().UTC()
	}
	u.GroupIDs = slices.Clone(u.GroupIDs)
	stored := s.addUser(u)
	return stored.clone(), nil
}

// addUser stores u, assigning an id when it has none; the caller holds s.mu.
func (s *Server) addUser(u User) *User {
	if u.ID == 0 {
		for s.users[s.nextUser] != nil {
			s.nextUser++
		}
		u.ID = s.nextUser
		s.nextUser++
	}
	p := &u
	s.users[u.ID] = p
	if u.Email != "" {
		s.usersByEmail[strings.ToLower(u.Email)] = u.ID
	}
	s.dirtyUsers[u.ID] = struct{}{}
	s.changed()
	return p
}

// agentFor returns the agent with email, creating it when no user has that
// email; the caller holds s.mu. An existing end user with the email is
// promoted, as making them an agent in Zendesk would.
func (s *Server) agentFor(email string) *User {
	if id, ok := s.usersByEmail[strings.ToLower(email)]; ok {
		u := s.users[id]
		if !u.isAgent() {
			u.Role = "agent"
			s.dirtyUsers[u.ID] = struct{}{}
			s.changed()
		}
		return u
	}
	return s.addUser(User{Name: "Emulator Agent", Email: email, Role: "agent", CreatedAt: s.now().UTC()})
}

// Tickets returns copies of all tickets, by id.
func (s *Server) Tickets() []Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ticketsWhere(func(*Ticket) bool { return true })
}

// Ticket returns a copy of one ticket.
func (s *Server) Ticket(id int64) (Ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		return Ticket{}, false
	}
	return t.clone(), true
}

// TicketsByExternalID returns copies of the tickets whose external_id is v,
// by id. Zendesk does not keep external_id unique, and neither does this.
func (s *Server) TicketsByExternalID(v string) []Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ticketsWhere(func(t *Ticket) bool { return t.ExternalID == v })
}

// ticketsWhere returns matching tickets by id; the caller holds s.mu.
func (s *Server) ticketsWhere(keep func(*Ticket) bool) []Ticket {
	out := []Ticket{}
	for _, id := range slices.Sorted(maps.Keys(s.tickets)) {
		if t := s.tickets[id]; keep(t) {
			out = append(out, t.clone())
		}
	}
	return out
}

// Users returns copies of all users (agents and end users), by id.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.clone())
	}
	slices.SortFunc(out, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// UserByEmail returns a copy of the user with that email (case-insensitive).
func (s *Server) UserByEmail(email string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.usersByEmail[strings.ToLower(email)]
	if !ok {
		return User{}, false
	}
	return s.users[id].clone(), true
}

// Requests returns every exchange answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// SeedTicket creates a ticket from a POST /api/v2/tickets body
// ({"ticket":{…}}) as the authenticating agent, with the same validation and
// defaults as the API (no rate limit, faults or crash hooks). A validation
// failure is a *ValidationError.
func (s *Server) SeedTicket(body []byte) (Ticket, error) {
	in, err := ticketFields(body)
	if err != nil {
		return Ticket{}, fmt.Errorf("zendesk: seed ticket: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	agent := s.agentFor(s.email)
	t, verr := s.createTicket(in, agent, s.now().UTC())
	if verr != nil {
		return Ticket{}, verr
	}
	return t.clone(), nil
}

// ValidationError is the 422 RecordInvalid answer as an error: Details maps
// a field ("priority", "assignee", "base", …) to its problems.
type ValidationError struct {
	Details map[string][]Detail
}

// Detail is one entry of a RecordInvalid details list.
type Detail struct {
	Description string `json:"description"`
	Error       string `json:"error,omitempty"`
}

func (e *ValidationError) Error() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(e.Details)) {
		for _, d := range e.Details[k] {
			parts = append(parts, d.Description)
		}
	}
	return "zendesk: RecordInvalid: " + strings.Join(parts, "; ")
}
