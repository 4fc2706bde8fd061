package stripeapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Object kinds the emulator stores and serves, as Stripe names them in the
// "object" field.
const (
	kindCustomer      = "customer"
	kindSubscription  = "subscription"
	kindInvoice       = "invoice"
	kindCharge        = "charge"
	kindProduct       = "product"
	kindPaymentIntent = "payment_intent"
	kindEvent         = "event"
)

var servedKinds = []string{kindCustomer, kindSubscription, kindInvoice, kindCharge, kindPaymentIntent, kindProduct, kindWebhookEndpoint}

type storedObject struct {
	raw      json.RawMessage
	livemode bool
	// asOf is the event time (or, for Put, the server time) this version is
	// from; SeedFromEvent never replaces it with an older event's object.
	asOf int64
	// gone marks a product deleted by a product.deleted event: Stripe
	// answers 404 for it, and the mark keeps an older event seeded later
	// from bringing it back.
	gone bool
}

func (o *storedObject) sameAs(p *storedObject) bool {
	return o.livemode == p.livemode && o.asOf == p.asOf && o.gone == p.gone && bytes.Equal(o.raw, p.raw)
}

type storedEvent struct {
	id        string
	typ       string
	created   int64
	livemode  bool
	delivered bool
	seq       int64 // insertion order, breaks ties in created
	raw       json.RawMessage
}

// Event is a stored event as Events reports it.
type Event struct {
	ID        string
	Type      string
	Created   int64
	Livemode  bool
	Delivered bool
	Raw       json.RawMessage
}

// PutCustomer stores a customer, replacing one with the same id. obj is JSON
// (json.RawMessage, []byte or string) or any value encoding/json marshals to
// a JSON object, e.g. map[string]any. It needs a string "id"; a missing
// "object" is filled in, a different one is an error.
func (s *Server) PutCustomer(obj any) error { return s.put(kindCustomer, obj) }

// PutSubscription stores a subscription; see PutCustomer.
func (s *Server) PutSubscription(obj any) error { return s.put(kindSubscription, obj) }

// PutInvoice stores an invoice; see PutCustomer.
func (s *Server) PutInvoice(obj any) error { return s.put(kindInvoice, obj) }

// PutCharge stores a charge; see PutCustomer.
func (s *Server) PutCharge(obj any) error { return s.put(kindCharge, obj) }

// PutPaymentIntent stores a payment intent; see PutCustomer.
func (s *Server) PutPaymentIntent(obj any) error { return s.put(kindPaymentIntent, obj) }

// PutProduct stores a product; see PutCustomer. Webhooks name a price's
// product by id only (it is expanded only on request), so the product's
// name is known only to a product put here or seeded from a product.*
// event.
func (s *Server) PutProduct(obj any) error { return s.put(kindProduct, obj) }

// Put stores an object of any served kind, taken from its "object" field
// (customer, subscription, invoice, charge, payment_intent, product or
// webhook_endpoint).
func (s *Server) Put(obj any) error { return s.put("", obj) }

func (s *Server) put(kind string, obj any) error {
	raw, err := toJSON(obj)
	if err != nil {
		return err
	}
	o, k, err := parseObject(raw, kind)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o.asOf = s.now().Unix()
	s.store(k, o)
	return nil
}

// store saves o under kind; the caller holds s.mu.
func (s *Server) store(kind string, o *storedObject) {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(o.raw, &head) // checked by parseObject
	m := s.objects[kind]
	if m == nil {
		m = make(map[string]*storedObject)
		s.objects[kind] = m
	}
	if cur := m[head.ID]; cur != nil && cur.sameAs(o) {
		return // nothing changes: nothing to save
	}
	m[head.ID] = o
	s.dirtyObjects[objectKey{kind, head.ID}] = true
	s.changed()
}

// AddEvent stores an event envelope (it needs "id", "object":"event", "type"
// and "created"). delivered=false makes it one that delivery_success=false
// lists (pending or failed at some endpoint). Adding an id again replaces the
// event but keeps its original place among events created in the same second.
func (s *Server) AddEvent(raw []byte, delivered bool) error {
	_, err := s.addEvent(raw, delivered)
	return err
}

func (s *Server) addEvent(raw []byte, delivered bool) (*eventHead, error) {
	h, err := parseEvent(raw)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &storedEvent{
		id: h.ID, typ: h.Type, created: *h.Created, livemode: h.Livemode,
		delivered: delivered, raw: bytes.Clone(raw),
	}
	if old, ok := s.events[h.ID]; ok {
		if old.delivered == delivered && bytes.Equal(old.raw, e.raw) {
			return h, nil // nothing changes: nothing to save
		}
		e.seq = old.seq
	} else {
		s.seq++
		e.seq = s.seq
	}
	s.events[h.ID] = e
	s.dirtyEvents[h.ID] = true
	s.changed()
	return h, nil
}

// SetDelivered changes whether an event counts as delivered (see AddEvent).
func (s *Server) SetDelivered(id string, delivered bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok {
		return fmt.Errorf("stripeapi: no event %q", id)
	}
	e.delivered = delivered
	s.dirtyEvents[id] = true
	s.changed()
	return nil
}

// SeedFromEvent stores the event as delivered and upserts its data.object
// into the collection its "object" names, unless that object already holds a
// version from a later event (seeding order does not matter, like Stripe's
// delivery order). Objects of kinds the emulator does not serve (disputes,
// checkout sessions, …) are not stored. A customer.deleted event leaves the
// stub Stripe returns for a deleted customer; after a product.deleted event
// the product is 404, as on Stripe (only a product without prices can be
// deleted, so a subscription's product never is).
func (s *Server) SeedFromEvent(raw []byte) error {
	h, err := s.addEvent(raw, true)
	if err != nil {
		return err
	}
	if len(h.Data.Object) == 0 {
		return fmt.Errorf("stripeapi: event %s has no data.object", h.ID)
	}
	var head struct {
		Object string `json:"object"`
		ID     string `json:"id"`
	}
	if err := json.Unmarshal(h.Data.Object, &head); err != nil {
		return fmt.Errorf("stripeapi: event %s data.object: %w", h.ID, err)
	}
	if !slices.Contains(servedKinds, head.Object) {
		return nil
	}
	objRaw := []byte(h.Data.Object)
	if h.Type == "customer.deleted" {
		objRaw, _ = json.Marshal(struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Deleted bool   `json:"deleted"`
		}{head.ID, kindCustomer, true})
	}
	o, kind, err := parseObject(objRaw, head.Object)
	if err != nil {
		return fmt.Errorf("stripeapi: event %s data.object: %w", h.ID, err)
	}
	o.asOf = *h.Created
	if h.Type == "customer.deleted" {
		o.livemode = h.Livemode
	}
	o.gone = h.Type == "product.deleted"
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.objects[kind][head.ID]; cur != nil && cur.asOf > o.asOf {
		return nil
	}
	s.store(kind, o)
	return nil
}

// Object returns the stored JSON of one object, kind being its "object" name
// (customer, subscription, invoice, charge, payment_intent, product,
// webhook_endpoint).
func (s *Server) Object(kind, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[kind][id]
	if !ok || o.gone {
		return nil, false
	}
	return bytes.Clone(o.raw), true
}

// Objects returns copies of all stored objects of a kind, by id.
func (s *Server) Objects(kind string) map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.objects[kind]))
	for id, o := range s.objects[kind] {
		if !o.gone {
			out[id] = bytes.Clone(o.raw)
		}
	}
	return out
}

// Events returns every stored event, of both modes and any age, in list
// order: newest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	sorted := s.sortedEvents()
	out := make([]Event, len(sorted))
	for i, e := range sorted {
		out[i] = Event{
			ID: e.id, Type: e.typ, Created: e.created, Livemode: e.livemode,
			Delivered: e.delivered, Raw: bytes.Clone(e.raw),
		}
	}
	return out
}

// sortedEvents orders events newest first: by created, then by insertion
// (created has one-second resolution). The caller holds s.mu.
func (s *Server) sortedEvents() []*storedEvent {
	all := slices.Collect(maps.Values(s.events))
	slices.SortFunc(all, func(a, b *storedEvent) int {
		if c := cmp.Compare(b.created, a.created); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	return all
}

func (s *Server) lookupObject(kind, id string, m mode) (raw json.RawMessage, otherMode bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[kind][id]
	if !ok || o.gone {
		return nil, false
	}
	if o.livemode != (m == modeLive) {
		return nil, true
	}
	return bytes.Clone(o.raw), false
}

func (s *Server) lookupEvent(id string, m mode, now time.Time) (raw json.RawMessage, otherMode bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.events[id]
	if !ok || e.created < now.Add(-EventRetention).Unix() {
		return nil, false
	}
	if e.livemode != (m == modeLive) {
		return nil, true
	}
	return bytes.Clone(e.raw), false
}

type eventHead struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Type     string `json:"type"`
	Created  *int64 `json:"created"`
	Livemode bool   `json:"livemode"`
	Data     struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

func parseEvent(raw []byte) (*eventHead, error) {
	var h eventHead
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("stripeapi: event: %w", err)
	}
	switch {
	case h.ID == "":
		return nil, errors.New("stripeapi: event has no id")
	case h.Object != kindEvent:
		return nil, fmt.Errorf("stripeapi: %s: object is %q, want \"event\"", h.ID, h.Object)
	case h.Type == "":
		return nil, fmt.Errorf("stripeapi: event %s has no type", h.ID)
	case h.Created == nil:
		return nil, fmt.Errorf("stripeapi: event %s has no created", h.ID)
	}
	return &h, nil
}

// parseObject checks raw is a JSON object with an id and, when want is set,
// the right "object" (filling it in when absent). It returns the object and
// its kind.
func parseObject(raw []byte, want string) (*storedObject, string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, "", fmt.Errorf("stripeapi: object is not a JSON object: %v", err)
	}
	var id, kind string
	var live bool
	if err := json.Unmarshal(fields["id"], &id); err != nil || id == "" {
		return nil, "", errors.New("stripeapi: object has no string id")
	}
	if v, ok := fields["object"]; ok {
		if err := json.Unmarshal(v, &kind); err != nil {
			return nil, "", fmt.Errorf("stripeapi: %s: object field is not a string", id)
		}
	}
	if v, ok := fields["livemode"]; ok {
		if err := json.Unmarshal(v, &live); err != nil {
			return nil, "", fmt.Errorf("stripeapi: %s: livemode is not a boolean", id)
		}
	}
	switch {
	case kind == "" && want == "":
		return nil, "", fmt.Errorf("stripeapi: %s has no object field; use the Put method of its kind", id)
	case kind == "":
		fields["object"], _ = json.Marshal(want)
		kind = want
		var err error
		if raw, err = json.Marshal(fields); err != nil {
			return nil, "", fmt.Errorf("stripeapi: %s: %w", id, err)
		}
	case want != "" && kind != want:
		return nil, "", fmt.Errorf("stripeapi: %s is a %q, not a %q", id, kind, want)
	case !slices.Contains(servedKinds, kind):
		return nil, "", fmt.Errorf("stripeapi: %s: kind %q is not emulated (only %v)", id, kind, servedKinds)
	}
	if _, ok := fields["secret"]; ok && kind == kindWebhookEndpoint {
		// Stripe shows an endpoint's signing secret only when creating it.
		delete(fields, "secret")
		var err error
		if raw, err = json.Marshal(fields); err != nil {
			return nil, "", fmt.Errorf("stripeapi: %s: %w", id, err)
		}
	}
	return &storedObject{raw: bytes.Clone(raw), livemode: live}, kind, nil
}

func toJSON(obj any) ([]byte, error) {
	switch v := obj.(type) {
	case json.RawMessage:
		return v, nil
	case []byte:
		return v, nil
	case string:
		return []byte(v), nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("stripeapi: encode object: %w", err)
		}
		return b, nil
	}
}
