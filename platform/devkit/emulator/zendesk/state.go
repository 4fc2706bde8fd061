package zendesk

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// stateVersion is the version of the MarshalState encoding; UnmarshalState
// refuses others.
const stateVersion = 1

// savedState is what MarshalState encodes: the account's data and id
// counters, not its credentials, faults, limits or request log.
type savedState struct {
	Version int `json:"version"`
	// The last ticket, comment and audit ids issued, and the next user id.
	NextTicket  int64    `json:"next_ticket"`
	NextUser    int64    `json:"next_user"`
	NextComment int64    `json:"next_comment"`
	NextAudit   int64    `json:"next_audit"`
	Groups      []Group  `json:"groups"`
	Users       []User   `json:"users"`
	Tickets     []Ticket `json:"tickets"`
}

// Changes receives after the account's groups, users or tickets changed
// (what MarshalState encodes). Signals coalesce: the channel holds one. It
// is meant for one reader, such as a statefile.Keeper.
func (s *Server) Changes() <-chan struct{} { return s.changes }

// changed signals Changes without blocking; the caller holds s.mu.
func (s *Server) changed() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// MarshalState encodes the account (groups, users, tickets with their
// comments, and the id counters) for UnmarshalState in a later run. The
// lock is held only to copy; encoding happens outside it.
func (s *Server) MarshalState() ([]byte, error) {
	s.mu.Lock()
	st := savedState{
		Version:    stateVersion,
		NextTicket: s.nextTicket, NextUser: s.nextUser, NextComment: s.nextComment, NextAudit: s.nextAudit,
		Groups:  make([]Group, 0, len(s.groups)),
		Users:   make([]User, 0, len(s.users)),
		Tickets: make([]Ticket, 0, len(s.tickets)),
	}
	for _, g := range s.groups {
		st.Groups = append(st.Groups, *g)
	}
	for _, u := range s.users {
		st.Users = append(st.Users, u.clone())
	}
	for _, t := range s.tickets {
		st.Tickets = append(st.Tickets, t.clone())
	}
	s.mu.Unlock()
	slices.SortFunc(st.Groups, func(a, b Group) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Users, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Tickets, func(a, b Ticket) int { return cmp.Compare(a.ID, b.ID) })
	return json.Marshal(st)
}

// MarshalChanges encodes, in MarshalState's format, the groups, users and
// tickets changed since its last call, with the id counters: a statefile
// journal record that UnmarshalState applies over the account as it was
// (records replace those with the same id). The emulator never deletes
// any, so records need no tombstones. It returns nil when nothing changed.
func (s *Server) MarshalChanges() ([]byte, error) {
	s.mu.Lock()
	if len(s.dirtyGroups) == 0 && len(s.dirtyUsers) == 0 && len(s.dirtyTickets) == 0 {
		s.mu.Unlock()
		return nil, nil
	}
	st := savedState{
		Version:    stateVersion,
		NextTicket: s.nextTicket, NextUser: s.nextUser, NextComment: s.nextComment, NextAudit: s.nextAudit,
		Groups:  make([]Group, 0, len(s.dirtyGroups)),
		Users:   make([]User, 0, len(s.dirtyUsers)),
		Tickets: make([]Ticket, 0, len(s.dirtyTickets)),
	}
	for id := range s.dirtyGroups {
		if g := s.groups[id]; g != nil {
			st.Groups = append(st.Groups, *g)
		}
	}
	for id := range s.dirtyUsers {
		if u := s.users[id]; u != nil {
			st.Users = append(st.Users, u.clone())
		}
	}
	for id := range s.dirtyTickets {
		if t := s.tickets[id]; t != nil {
			st.Tickets = append(st.Tickets, t.clone())
		}
	}
	clear(s.dirtyGroups)
	clear(s.dirtyUsers)
	clear(s.dirtyTickets)
	s.mu.Unlock()
	slices.SortFunc(st.Groups, func(a, b Group) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Users, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Tickets, func(a, b Ticket) int { return cmp.Compare(a.ID, b.ID) })
	return json.Marshal(st)
}

// UnmarshalState adds an account that MarshalState encoded. Saved records
// replace current ones with the same id (users also with the same email),
// so the groups and agents Options seeded stay unless the saved account
// has its own. Ids continue past the saved ones, or from the current
// counters when those are higher (Options.UniqueIDs). Call it before
// serving.
func (s *Server) UnmarshalState(data []byte) error {
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("zendesk state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("zendesk state: version %d, want %d", st.Version, stateVersion)
	}
	for _, g := range st.Groups {
		if g.ID <= 0 {
			return fmt.Errorf("zendesk state: group id %d is not positive", g.ID)
		}
	}
	for _, u := range st.Users {
		if u.ID <= 0 {
			return fmt.Errorf("zendesk state: user id %d is not positive", u.ID)
		}
	}
	for _, t := range st.Tickets {
		if t.ID <= 0 {
			return fmt.Errorf("zendesk state: ticket id %d is not positive", t.ID)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range st.Groups {
		s.groups[g.ID] = &g
	}
	nextUser := max(s.nextUser, st.NextUser)
	for _, u := range st.Users {
		s.dropUser(u.ID)
		if id, ok := s.usersByEmail[strings.ToLower(u.Email)]; ok && u.Email != "" {
			s.dropUser(id)
		}
		u.GroupIDs = slices.Clone(u.GroupIDs)
		s.users[u.ID] = &u
		if u.Email != "" {
			s.usersByEmail[strings.ToLower(u.Email)] = u.ID
		}
		nextUser = max(nextUser, u.ID+1)
	}
	nextTicket, nextComment := max(s.nextTicket, st.NextTicket), max(s.nextComment, st.NextComment)
	for _, t := range st.Tickets {
		t := t.clone()
		if t.Tags == nil {
			t.Tags = []string{}
		}
		s.tickets[t.ID] = &t
		nextTicket = max(nextTicket, t.ID)
		for _, c := range t.Comments {
			nextComment = max(nextComment, c.ID)
		}
	}
	s.nextUser, s.nextTicket, s.nextComment = nextUser, nextTicket, nextComment
	s.nextAudit = max(s.nextAudit, st.NextAudit)
	return nil
}

// dropUser removes a user and its email index entry; the caller holds s.mu.
func (s *Server) dropUser(id int64) {
	u, ok := s.users[id]
	if !ok {
		return
	}
	if key := strings.ToLower(u.Email); u.Email != "" && s.usersByEmail[key] == id {
		delete(s.usersByEmail, key)
	}
	delete(s.users, id)
}
