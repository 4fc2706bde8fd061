package stripeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	defaultListLimit = 10
	maxListLimit     = 100
	maxTypes         = 20
)

// eventQuery is a parsed GET /v1/events query.
type eventQuery struct {
	limit         int
	startingAfter string
	endingBefore  string
	typ           string
	types         []string
	created       map[string]int64 // "", "gt", "gte", "lt", "lte"
	delivery      *bool
}

var (
	typesKey   = regexp.MustCompile(`^types(\[\d*\])?$`)
	createdKey = regexp.MustCompile(`^created(\[(gt|gte|lt|lte)\])?$`)
)

func parseEventQuery(q url.Values) (*eventQuery, *apiError) {
	eq := &eventQuery{limit: defaultListLimit, created: map[string]int64{}}
	for _, k := range sortedKeys(q) {
		vals := q[k]
		v := vals[len(vals)-1]
		if e := unsupported(k); e != nil {
			return nil, e
		}
		if !knownEventParam(k) {
			return nil, unknownParam(k)
		}
		if v == "" {
			return nil, emptyParam(k)
		}
		switch {
		case k == "limit":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, invalidInteger(k, v)
			}
			if n < 1 || n > maxListLimit {
				return nil, &apiError{Type: typeInvalidRequest, Param: k,
					Message: fmt.Sprintf("Invalid limit: must be between 1 and %d", maxListLimit)}
			}
			eq.limit = n
		case k == "starting_after":
			eq.startingAfter = v
		case k == "ending_before":
			eq.endingBefore = v
		case k == "type":
			eq.typ = v
		case k == "delivery_success":
			if v != "true" && v != "false" {
				return nil, &apiError{Type: typeInvalidRequest, Param: k, Message: "Invalid boolean: " + v}
			}
			b := v == "true"
			eq.delivery = &b
		case typesKey.MatchString(k):
			for _, t := range vals {
				if t == "" {
					return nil, emptyParam(k)
				}
				eq.types = append(eq.types, t)
			}
		case createdKey.MatchString(k):
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, invalidInteger(k, v)
			}
			eq.created[createdKey.FindStringSubmatch(k)[2]] = n
		}
	}
	if eq.startingAfter != "" && eq.endingBefore != "" {
		return nil, onlyOneOf("ending_before", "starting_after")
	}
	if eq.typ != "" && len(eq.types) > 0 {
		return nil, onlyOneOf("type", "types")
	}
	if len(eq.types) > maxTypes {
		return nil, &apiError{Type: typeInvalidRequest, Param: "types",
			Message: fmt.Sprintf("Invalid array: types must contain at most %d elements, but %d were given.", maxTypes, len(eq.types))}
	}
	return eq, nil
}

func knownEventParam(k string) bool {
	switch k {
	case "limit", "starting_after", "ending_before", "type", "delivery_success":
		return true
	}
	return typesKey.MatchString(k) || createdKey.MatchString(k)
}

func (s *Server) listEvents(c *call, q url.Values) {
	eq, e := parseEventQuery(q)
	if e != nil {
		c.fail(http.StatusBadRequest, e)
		return
	}
	page, hasMore, e := s.eventPage(c, eq)
	if e != nil {
		c.fail(http.StatusNotFound, e)
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, raw := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(raw)
	}
	fmt.Fprintf(&b, `],"has_more":%t,"url":"/v1/events"}`, hasMore)
	c.ok(b.Bytes())
}

// eventPage selects one page. The cursor's place is taken among all events
// the key's mode can see, before filtering, so a cursor stays valid whatever
// the filters are; the page is then the limit matching events after it
// (starting_after) or immediately before it (ending_before), newest first.
func (s *Server) eventPage(c *call, eq *eventQuery) ([]json.RawMessage, bool, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var visible []*storedEvent
	for _, e := range s.sortedEvents() {
		if e.livemode == (c.mode == modeLive) {
			visible = append(visible, e)
		}
	}
	candidates := visible
	for _, cur := range []struct{ param, id string }{{"starting_after", eq.startingAfter}, {"ending_before", eq.endingBefore}} {
		if cur.id == "" {
			continue
		}
		i := slices.IndexFunc(visible, func(e *storedEvent) bool { return e.id == cur.id })
		if i < 0 {
			return nil, false, noSuch(kindEvent, cur.id, cur.param, c.mode, false)
		}
		if cur.param == "starting_after" {
			candidates = visible[i+1:]
		} else {
			candidates = visible[:i]
		}
	}

	oldest := c.now.Add(-EventRetention).Unix()
	var matched []*storedEvent
	for _, e := range candidates {
		if e.created >= oldest && eq.matches(e) {
			matched = append(matched, e)
		}
	}
	hasMore := len(matched) > eq.limit
	if hasMore {
		if eq.endingBefore != "" {
			matched = matched[len(matched)-eq.limit:]
		} else {
			matched = matched[:eq.limit]
		}
	}
	out := make([]json.RawMessage, len(matched))
	for i, e := range matched {
		out[i] = e.raw
	}
	return out, hasMore, nil
}

func (eq *eventQuery) matches(e *storedEvent) bool {
	if eq.typ != "" && !globMatch(eq.typ, e.typ) {
		return false
	}
	if len(eq.types) > 0 && !slices.Contains(eq.types, e.typ) {
		return false
	}
	if eq.delivery != nil && e.delivered != *eq.delivery {
		return false
	}
	for op, n := range eq.created {
		ok := true
		switch op {
		case "":
			ok = e.created == n
		case "gt":
			ok = e.created > n
		case "gte":
			ok = e.created >= n
		case "lt":
			ok = e.created < n
		case "lte":
			ok = e.created <= n
		}
		if !ok {
			return false
		}
	}
	return true
}

// globMatch reports whether name matches pattern, where * stands for any run
// of characters (dots included: customer.* matches
// customer.subscription.created).
func globMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return strings.HasSuffix(name, last)
}

// unsupported refuses the parameters Stripe accepts but the emulator does
// not emulate, so a caller depending on them finds out.
func unsupported(k string) *apiError {
	if k == "expand" || strings.HasPrefix(k, "expand[") {
		return &apiError{Type: typeInvalidRequest, Param: k,
			Message: "stripeapi: expand is not emulated; objects are returned as stored"}
	}
	return nil
}

func sortedKeys(q url.Values) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func emptyParam(k string) *apiError {
	return &apiError{Type: typeInvalidRequest, Code: "parameter_invalid_empty", Param: k,
		Message: fmt.Sprintf("You passed an empty string for '%[1]s'. We assume empty values are an attempt "+
			"to unset a parameter; however '%[1]s' cannot be unset. You should remove '%[1]s' from your "+
			"request or supply a non-empty value.", k)}
}

func unknownParam(k string) *apiError {
	return &apiError{Type: typeInvalidRequest, Code: "parameter_unknown", Param: k,
		Message: "Received unknown parameter: " + k}
}

func invalidInteger(k, v string) *apiError {
	return &apiError{Type: typeInvalidRequest, Code: "parameter_invalid_integer", Param: k,
		Message: "Invalid integer: " + v}
}

func onlyOneOf(a, b string) *apiError {
	return &apiError{Type: typeInvalidRequest, Param: a,
		Message: fmt.Sprintf("You may only specify one of these parameters: %s, %s.", a, b)}
}
