package stripeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// EmulatorEventsPath is the emulator's own write endpoint, not part of
// Stripe's API: POST an event JSON there to store it with the object it
// carries, as if Stripe had created and delivered it (see the package doc).
const EmulatorEventsPath = "/_emulator/events"

// EmulatorObjectsPath is the emulator's write endpoint for objects, not part
// of Stripe's API: POST an object's JSON there (customer, subscription,
// invoice, charge, payment_intent or product, named by its "object" field)
// to store it as Stripe would hold it, as if it had been created through
// the API. `switchyard trigger` registers the objects a made-up event
// names this way, so the hub's refetches find them.
const EmulatorObjectsPath = "/_emulator/objects"

// Serves reports whether the emulator stores and serves objects of kind
// (the "object" field: "customer", "charge", …).
func Serves(kind string) bool {
	return kind != kindWebhookEndpoint && slices.Contains(servedKinds, kind)
}

// maxEventBytes bounds the body of a POST to an emulator endpoint; Stripe's largest event
// payloads are well under it.
const maxEventBytes = 1 << 20

// registerEvent answers POST /_emulator/events: it stores the event
// (delivered) and the object it carries (SeedFromEvent), once per event
// id. The same bytes again answer 200 again; other bytes under a stored id
// are a 409, as an event id names one event forever.
func (s *Server) registerEvent(c *call, r *http.Request) {
	body, ok := postedBody(c, r, "an event")
	if !ok {
		return
	}
	id, e := checkEvent(body, c.mode)
	if e != nil {
		c.fail(http.StatusBadRequest, e)
		return
	}

	s.registering.Lock()
	defer s.registering.Unlock()
	s.mu.Lock()
	old := s.events[id]
	var stored []byte
	if old != nil {
		stored = old.raw
	}
	s.mu.Unlock()
	switch {
	case old != nil && bytes.Equal(stored, body):
		c.ok(stored)
		return
	case old != nil:
		c.fail(http.StatusConflict, &apiError{Type: "idempotency_error", Param: "id",
			Message: fmt.Sprintf("stripeapi: event %s is stored already with other content; an event id names one event, so post it with a new id", id)})
		return
	}
	if err := s.SeedFromEvent(body); err != nil {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Message: err.Error()})
		return
	}
	c.ok(body)
}

// registerObject answers POST /_emulator/objects: it stores the object
// (the latest version wins, as an object changes over its life) and says
// it back. The key's mode must be the object's (livemode).
func (s *Server) registerObject(c *call, r *http.Request) {
	body, ok := postedBody(c, r, "an object")
	if !ok {
		return
	}
	var head struct {
		Object string `json:"object"`
	}
	if json.Unmarshal(body, &head) != nil || !Serves(head.Object) {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Param: "object",
			Message: fmt.Sprintf("stripeapi: want a JSON object whose \"object\" is one of %v", slices.DeleteFunc(slices.Clone(servedKinds), func(k string) bool { return !Serves(k) }))})
		return
	}
	o, _, err := parseObject(body, head.Object)
	if err != nil {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Message: err.Error()})
		return
	}
	if o.livemode != (c.mode == modeLive) {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Param: "livemode",
			Message: fmt.Sprintf("stripeapi: a %s mode object, and a %s mode key was used to register it", modeOf(o.livemode), c.mode)})
		return
	}
	if err := s.put(head.Object, body); err != nil {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Message: err.Error()})
		return
	}
	c.ok(body)
}

// postedBody reads the body of a POST to an emulator endpoint, what
// saying what it holds ("an event"); any other method, an unreadable body
// or one over maxEventBytes is answered here (ok false).
func postedBody(c *call, r *http.Request, what string) (body []byte, ok bool) {
	if r.Method != http.MethodPost {
		c.w.Header().Set("Allow", http.MethodPost)
		c.fail(http.StatusMethodNotAllowed, &apiError{Type: typeInvalidRequest,
			Message: fmt.Sprintf("stripeapi: %s %s: this emulator endpoint takes POST with %s's JSON", r.Method, r.URL.Path, what)})
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBytes+1))
	if err != nil {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Message: "stripeapi: could not read the request body: " + err.Error()})
		return nil, false
	}
	if len(body) > maxEventBytes {
		c.fail(http.StatusRequestEntityTooLarge, &apiError{Type: typeInvalidRequest,
			Message: fmt.Sprintf("stripeapi: %s larger than %d bytes", what, maxEventBytes)})
		return nil, false
	}
	return body, true
}

// checkEvent validates a posted event the way Stripe validates parameters,
// naming the offending field in param, and returns its id.
func checkEvent(body []byte, m mode) (string, *apiError) {
	invalid := func(param, format string, args ...any) *apiError {
		return &apiError{Type: typeInvalidRequest, Param: param, Message: "stripeapi: " + fmt.Sprintf(format, args...)}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return "", invalid("", "the body is not a JSON object (want a Stripe event): %v", err)
	}
	var id, object, typ string
	if json.Unmarshal(fields["id"], &id) != nil || id == "" {
		return "", invalid("id", "the event has no string id")
	}
	if json.Unmarshal(fields["object"], &object) != nil || object != kindEvent {
		return id, invalid("object", "%s: object must be \"event\"", id)
	}
	if json.Unmarshal(fields["type"], &typ) != nil || typ == "" {
		return id, invalid("type", "event %s has no string type", id)
	}
	var created int64
	if json.Unmarshal(fields["created"], &created) != nil || created <= 0 {
		return id, invalid("created", "event %s has no created time (Unix seconds)", id)
	}
	var live bool
	if v, ok := fields["livemode"]; ok && json.Unmarshal(v, &live) != nil {
		return id, invalid("livemode", "event %s: livemode is not a boolean", id)
	}
	if live != (m == modeLive) {
		return id, invalid("livemode", "event %s is a %s mode event, and a %s mode key was used to register it", id, modeOf(live), m)
	}
	var data struct {
		Object map[string]json.RawMessage `json:"object"`
	}
	if json.Unmarshal(fields["data"], &data) != nil || data.Object == nil {
		return id, invalid("data[object]", "event %s has no data.object (a JSON object)", id)
	}
	var objectID string
	if json.Unmarshal(data.Object["id"], &objectID) != nil || objectID == "" {
		return id, invalid("data[object][id]", "event %s: data.object has no string id", id)
	}
	return id, nil
}

func modeOf(live bool) mode {
	if live {
		return modeLive
	}
	return modeTest
}
