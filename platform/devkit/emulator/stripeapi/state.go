package stripeapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// stateVersion is the version of the MarshalState encoding; UnmarshalState
// refuses others.
const stateVersion = 1

// objectKey names one stored object.
type objectKey struct{ kind, id string }

// savedState is what MarshalState encodes: the account's objects and
// events, not its keys, faults, limits or request log. Raw JSON is kept as
// a string, so an event's bytes come back exactly as they were stored.
type savedState struct {
	Version int           `json:"version"`
	Seq     int64         `json:"seq"`
	Objects []savedObject `json:"objects"`
	Events  []savedEvent  `json:"events"`
}

type savedObject struct {
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Livemode bool   `json:"livemode"`
	AsOf     int64  `json:"as_of"`
	Gone     bool   `json:"gone,omitempty"`
	Raw      string `json:"raw"`
}

type savedEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Created   int64  `json:"created"`
	Livemode  bool   `json:"livemode"`
	Delivered bool   `json:"delivered"`
	Seq       int64  `json:"seq"`
	Raw       string `json:"raw"`
}

// Changes receives after an object or event was stored or changed (what
// MarshalState encodes). Signals coalesce: the channel holds one. It is
// meant for one reader, such as a statefile.Keeper.
func (s *Server) Changes() <-chan struct{} { return s.changes }

// changed signals Changes without blocking; the caller holds s.mu.
func (s *Server) changed() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// MarshalState encodes every stored object and event for UnmarshalState in
// a later run (statefile.State). The lock is held only to copy.
func (s *Server) MarshalState() ([]byte, error) {
	s.mu.Lock()
	st := savedState{Version: stateVersion, Seq: s.seq, Objects: []savedObject{}, Events: []savedEvent{}}
	for kind, m := range s.objects {
		for id, o := range m {
			st.Objects = append(st.Objects, saveObject(kind, id, o))
		}
	}
	for _, e := range s.events {
		st.Events = append(st.Events, saveEvent(e))
	}
	s.mu.Unlock()
	return encodeState(st)
}

// MarshalChanges encodes, in MarshalState's format, the objects and events
// stored or changed since its last call, whole: a
// statefile journal record that UnmarshalState applies over the snapshot.
// It returns nil when nothing changed.
func (s *Server) MarshalChanges() ([]byte, error) {
	s.mu.Lock()
	if len(s.dirtyObjects) == 0 && len(s.dirtyEvents) == 0 {
		s.mu.Unlock()
		return nil, nil
	}
	st := savedState{Version: stateVersion, Seq: s.seq, Objects: []savedObject{}, Events: []savedEvent{}}
	for k := range s.dirtyObjects {
		if o := s.objects[k.kind][k.id]; o != nil {
			st.Objects = append(st.Objects, saveObject(k.kind, k.id, o))
		}
	}
	for id := range s.dirtyEvents {
		if e := s.events[id]; e != nil {
			st.Events = append(st.Events, saveEvent(e))
		}
	}
	clear(s.dirtyObjects)
	clear(s.dirtyEvents)
	s.mu.Unlock()
	return encodeState(st)
}

// UnmarshalState adds what MarshalState or MarshalChanges encoded: each
// object and event replaces the stored one with its id (last wins), so
// applying a journal's records in order rebuilds the account. Nothing it
// adds is marked as a change.
func (s *Server) UnmarshalState(data []byte) error {
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("stripeapi: state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("stripeapi: state version %d, want %d", st.Version, stateVersion)
	}
	type loaded struct {
		kind, id string
		o        *storedObject
	}
	objects := make([]loaded, 0, len(st.Objects))
	for _, so := range st.Objects {
		o, kind, err := parseObject([]byte(so.Raw), so.Kind)
		if err != nil {
			return fmt.Errorf("stripeapi: state: %w", err)
		}
		var head struct {
			ID string `json:"id"`
		}
		if _ = json.Unmarshal(o.raw, &head); head.ID != so.ID {
			return fmt.Errorf("stripeapi: state: %s %s holds the JSON of %q", kind, so.ID, head.ID)
		}
		o.livemode, o.asOf, o.gone = so.Livemode, so.AsOf, so.Gone
		objects = append(objects, loaded{kind, so.ID, o})
	}
	events := make([]*storedEvent, 0, len(st.Events))
	for _, se := range st.Events {
		h, err := parseEvent([]byte(se.Raw))
		if err != nil {
			return fmt.Errorf("stripeapi: state: %w", err)
		}
		if h.ID != se.ID {
			return fmt.Errorf("stripeapi: state: event %s holds the JSON of %s", se.ID, h.ID)
		}
		events = append(events, &storedEvent{id: se.ID, typ: se.Type, created: se.Created, livemode: se.Livemode,
			delivered: se.Delivered, seq: se.Seq, raw: []byte(se.Raw)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range objects {
		m := s.objects[x.kind]
		if m == nil {
			m = make(map[string]*storedObject)
			s.objects[x.kind] = m
		}
		m[x.id] = x.o
	}
	for _, e := range events {
		s.events[e.id] = e
		s.seq = max(s.seq, e.seq)
	}
	s.seq = max(s.seq, st.Seq)
	return nil
}

func saveObject(kind, id string, o *storedObject) savedObject {
	return savedObject{Kind: kind, ID: id, Livemode: o.livemode, AsOf: o.asOf, Gone: o.gone, Raw: string(o.raw)}
}

func saveEvent(e *storedEvent) savedEvent {
	return savedEvent{ID: e.id, Type: e.typ, Created: e.created, Livemode: e.livemode, Delivered: e.delivered, Seq: e.seq, Raw: string(e.raw)}
}

// encodeState sorts st (so equal accounts encode to equal bytes) and
// encodes it; the caller no longer holds the lock.
func encodeState(st savedState) ([]byte, error) {
	slices.SortFunc(st.Objects, func(a, b savedObject) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	slices.SortFunc(st.Events, func(a, b savedEvent) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("stripeapi: encode state: %w", err)
	}
	return b, nil
}
