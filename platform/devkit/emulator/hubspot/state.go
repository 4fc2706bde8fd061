package hubspot

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// stateVersion is the version of the MarshalState encoding; UnmarshalState
// refuses others.
const stateVersion = 1

// savedState is what MarshalState encodes: the account's data, not its
// tokens, faults, limits or request counts.
type savedState struct {
	Version int   `json:"version"`
	NextID  int64 `json:"next_id"`
	// Groups and Properties are the custom ones; HubSpot's defaults come
	// from the code.
	Groups     []string       `json:"groups"`
	Properties []Property     `json:"properties"`
	Contacts   []savedContact `json:"contacts"`
}

type savedContact struct {
	ID         int64             `json:"id"`
	Properties map[string]string `json:"properties"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
}

// Changes receives after the account's contacts, custom properties or
// groups changed (what MarshalState encodes). Signals coalesce: the channel
// holds one. It is meant for one reader, such as a statefile.Keeper.
func (s *Server) Changes() <-chan struct{} { return s.changes }

// changed signals Changes without blocking; the caller holds s.mu.
func (s *Server) changed() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// MarshalState encodes the account (contacts, custom properties and
// groups, and the next record id) for UnmarshalState in a later run. The
// lock is held only to copy; encoding happens outside it.
func (s *Server) MarshalState() ([]byte, error) {
	defaults := make(map[string]bool)
	for _, g := range defaultGroups {
		defaults[g] = true
	}
	s.mu.Lock()
	st := savedState{Version: stateVersion, NextID: s.store.nextID, Contacts: make([]savedContact, 0, len(s.store.contacts))}
	for _, c := range s.store.contacts {
		st.Contacts = append(st.Contacts, savedContact{ID: c.id, Properties: maps.Clone(c.props), CreatedAt: c.createdAt, UpdatedAt: c.updatedAt})
	}
	for _, p := range s.store.props {
		if !p.HubSpotDefined {
			st.Properties = append(st.Properties, *p)
		}
	}
	for g := range s.store.groups {
		if !defaults[g] {
			st.Groups = append(st.Groups, g)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(st.Contacts, func(a, b savedContact) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Properties, func(a, b Property) int { return cmp.Compare(a.Name, b.Name) })
	slices.Sort(st.Groups)
	return json.Marshal(st)
}

// MarshalChanges encodes, in MarshalState's format, the contacts, custom
// properties and groups changed since its last call, with the next record
// id: a statefile journal record that UnmarshalState applies over the
// account as it was (contacts and properties replace those with the same
// id or name). The emulator never deletes any, so records need no
// tombstones. It returns nil when nothing changed.
func (s *Server) MarshalChanges() ([]byte, error) {
	s.mu.Lock()
	st := &s.store
	if len(st.dirtyContacts) == 0 && len(st.dirtyProps) == 0 && len(st.dirtyGroups) == 0 {
		s.mu.Unlock()
		return nil, nil
	}
	out := savedState{Version: stateVersion, NextID: st.nextID, Contacts: make([]savedContact, 0, len(st.dirtyContacts))}
	for id := range st.dirtyContacts {
		if c := st.contacts[id]; c != nil {
			out.Contacts = append(out.Contacts, savedContact{ID: c.id, Properties: maps.Clone(c.props), CreatedAt: c.createdAt, UpdatedAt: c.updatedAt})
		}
	}
	for name := range st.dirtyProps {
		if p := st.props[name]; p != nil && !p.HubSpotDefined {
			p := *p
			p.Options = slices.Clone(p.Options)
			out.Properties = append(out.Properties, p)
		}
	}
	for g := range st.dirtyGroups {
		out.Groups = append(out.Groups, g)
	}
	clear(st.dirtyContacts)
	clear(st.dirtyProps)
	clear(st.dirtyGroups)
	s.mu.Unlock()
	slices.SortFunc(out.Contacts, func(a, b savedContact) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(out.Properties, func(a, b Property) int { return cmp.Compare(a.Name, b.Name) })
	slices.Sort(out.Groups)
	return json.Marshal(out)
}

// UnmarshalState adds an account that MarshalState encoded, replacing
// contacts with the same record id or email and properties with the same
// name. Record ids continue past the saved ones, or from the current
// counter when that is higher (Options.UniqueIDs). Call it before serving.
func (s *Server) UnmarshalState(data []byte) error {
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("hubspot state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("hubspot state: version %d, want %d", st.Version, stateVersion)
	}
	for _, c := range st.Contacts {
		if c.ID <= 0 {
			return fmt.Errorf("hubspot state: contact id %d is not positive", c.ID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range st.Groups {
		s.store.groups[g] = true
	}
	for _, p := range st.Properties {
		if p.HubSpotDefined {
			continue
		}
		p.Options = slices.Clone(p.Options)
		s.store.props[p.Name] = &p
	}
	next := max(s.store.nextID, st.NextID)
	for _, sc := range st.Contacts {
		c := &contact{id: sc.ID, props: maps.Clone(sc.Properties), createdAt: sc.CreatedAt, updatedAt: sc.UpdatedAt}
		if c.props == nil {
			c.props = make(map[string]string)
		}
		if old := s.store.contacts[c.id]; old != nil {
			delete(s.store.byEmail, old.props["email"])
			s.store.unindexUnique(old)
		}
		if email, ok := c.props["email"]; ok {
			if other, taken := s.store.byEmail[email]; taken {
				if o := s.store.contacts[other]; o != nil {
					s.store.unindexUnique(o)
				}
				delete(s.store.contacts, other)
			}
			s.store.byEmail[email] = c.id
		}
		s.store.contacts[c.id] = c
		s.store.indexUnique(c)
		next = max(next, c.id+1)
	}
	s.store.nextID = next
	return nil
}
