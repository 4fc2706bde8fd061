package hubspot

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
)

// firstContactID is the first record id handed out. It is past the int32
// range on purpose: HubSpot ids are long and must be kept as strings.
const firstContactID = 10000000001

// systemProperties are set by HubSpot on every contact and returned with
// every read.
var systemProperties = []string{"createdate", "hs_object_id", "lastmodifieddate"}

// defaultReadProperties are returned when a read names no properties.
var defaultReadProperties = []string{"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}

type contact struct {
	id        int64
	props     map[string]string // stored values; a cleared property is absent
	createdAt time.Time
	updatedAt time.Time
}

// store is the account's data; guarded by Server.mu.
type store struct {
	contacts map[int64]*contact
	byEmail  map[string]int64
	// byUnique finds a contact by the value of a custom property with
	// hasUniqueValue (key: name, NUL, value): upserts check it on every
	// write, so a scan would cost the whole account each time.
	byUnique map[string]int64
	nextID   int64
	props    map[string]*Property
	groups   map[string]bool

	// The contacts, custom properties and groups changed since the last
	// MarshalChanges; an atomic batch that fails takes its marks back
	// (rollback).
	dirtyContacts map[int64]struct{}
	dirtyProps    map[string]struct{}
	dirtyGroups   map[string]struct{}

	// undo, while an atomic batch runs, records what it changed so that a
	// failed input takes the whole batch back (rollback): the cost is the
	// batch's contacts, not the account's.
	undo *undoLog
}

// undoLog is what an atomic batch changed, as it was before.
type undoLog struct {
	nextID   int64
	contacts map[int64]*contact // a copy of each contact before its first change; nil: the batch created it
	emails   map[string]*int64  // each email index entry before; nil: absent
	uniques  map[string]*int64  // each byUnique entry before; nil: absent
	dirty    map[int64]bool     // whether each contact was dirty before
}

// begin starts recording an atomic batch's changes.
func (st *store) begin() {
	st.undo = &undoLog{nextID: st.nextID, contacts: map[int64]*contact{}, emails: map[string]*int64{}, uniques: map[string]*int64{}, dirty: map[int64]bool{}}
}

// commit keeps the batch's changes.
func (st *store) commit() { st.undo = nil }

// rollback takes back every change since begin.
func (st *store) rollback() {
	u := st.undo
	st.undo = nil
	for id, prev := range u.contacts {
		if prev == nil {
			delete(st.contacts, id)
		} else {
			st.contacts[id] = prev
		}
	}
	for email, prev := range u.emails {
		if prev == nil {
			delete(st.byEmail, email)
		} else {
			st.byEmail[email] = *prev
		}
	}
	for key, prev := range u.uniques {
		if prev == nil {
			delete(st.byUnique, key)
		} else {
			st.byUnique[key] = *prev
		}
	}
	for id, was := range u.dirty {
		if !was {
			delete(st.dirtyContacts, id)
		}
	}
	st.nextID = u.nextID
}

// touch records c and its email entries before the batch first changes them.
func (st *store) touch(c *contact, values map[string]string) {
	u := st.undo
	if u == nil {
		return
	}
	if _, seen := u.contacts[c.id]; !seen {
		cc := *c
		cc.props = maps.Clone(c.props)
		u.contacts[c.id] = &cc
	}
	if _, seen := u.dirty[c.id]; !seen {
		_, was := st.dirtyContacts[c.id]
		u.dirty[c.id] = was
	}
	if v, ok := values["email"]; ok {
		for _, e := range []string{c.props["email"], v} {
			remember(u.emails, st.byEmail, e)
		}
	}
	for name, v := range values {
		if st.unique(name) {
			remember(u.uniques, st.byUnique, uniqueKey(name, c.props[name]))
			remember(u.uniques, st.byUnique, uniqueKey(name, v))
		}
	}
}

// remember records index[key] as it is, the first time key is seen.
func remember(seen map[string]*int64, index map[string]int64, key string) {
	if _, ok := seen[key]; ok || key == "" {
		return
	}
	if id, ok := index[key]; ok {
		seen[key] = &id
	} else {
		seen[key] = nil
	}
}

// unique reports whether name is a custom property with unique values
// (indexed in byUnique; email has its own index).
func (st *store) unique(name string) bool {
	p := st.props[name]
	return p != nil && p.HasUniqueValue && name != "email" && name != "hs_object_id"
}

// uniqueKey is byUnique's key for value of name; "" for no value.
func uniqueKey(name, value string) string {
	if value == "" {
		return ""
	}
	return name + "\x00" + value
}

// indexUnique adds c's unique values to byUnique; unindexUnique takes
// them out.
func (st *store) indexUnique(c *contact) {
	for name, v := range c.props {
		if st.unique(name) && v != "" {
			st.byUnique[uniqueKey(name, v)] = c.id
		}
	}
}

func (st *store) unindexUnique(c *contact) {
	for name, v := range c.props {
		if k := uniqueKey(name, v); st.unique(name) && k != "" && st.byUnique[k] == c.id {
			delete(st.byUnique, k)
		}
	}
}

func newStore() store {
	st := store{
		contacts: make(map[int64]*contact),
		byEmail:  make(map[string]int64),
		byUnique: make(map[string]int64),
		nextID:   firstContactID,
		props:    make(map[string]*Property),
		groups:   make(map[string]bool),

		dirtyContacts: make(map[int64]struct{}),
		dirtyProps:    make(map[string]struct{}),
		dirtyGroups:   make(map[string]struct{}),
	}
	for _, g := range defaultGroups {
		st.groups[g] = true
	}
	for _, p := range defaultProperties() {
		st.props[p.Name] = &p
	}
	return st
}

// findBy returns the contact whose property prop holds value (already
// normalised), or nil. Email and record id are indexed; other unique
// properties are scanned.
func (st *store) findBy(prop, value string) *contact {
	switch prop {
	case "email":
		if id, ok := st.byEmail[value]; ok {
			return st.contacts[id]
		}
		return nil
	case "hs_object_id":
		id, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil
		}
		return st.contacts[id]
	}
	if st.unique(prop) {
		if id, ok := st.byUnique[uniqueKey(prop, value)]; ok {
			return st.contacts[id]
		}
		return nil
	}
	for _, c := range st.contacts {
		if v, ok := c.props[prop]; ok && v == value {
			return c
		}
	}
	return nil
}

// create adds a contact with the system properties set.
func (st *store) create(now time.Time) *contact {
	id := st.nextID
	st.nextID++
	c := &contact{id: id, createdAt: now, updatedAt: now, props: map[string]string{
		"hs_object_id":     strconv.FormatInt(id, 10),
		"createdate":       timestamp(now),
		"lastmodifieddate": timestamp(now),
	}}
	st.contacts[id] = c
	if st.undo != nil {
		st.undo.contacts[id] = nil
	}
	return c
}

// set writes normalised values ("" clears) and keeps the email index.
func (st *store) set(c *contact, values map[string]string, now time.Time) {
	st.touch(c, values)
	for name, v := range values {
		if name == "email" {
			if old, ok := c.props["email"]; ok {
				delete(st.byEmail, old)
			}
			if v != "" {
				st.byEmail[v] = c.id
			}
		}
		if st.unique(name) {
			if k := uniqueKey(name, c.props[name]); k != "" && st.byUnique[k] == c.id {
				delete(st.byUnique, k)
			}
			if v != "" {
				st.byUnique[uniqueKey(name, v)] = c.id
			}
		}
		switch {
		case v == "" && slices.Contains(systemProperties, name):
			// HubSpot's own properties cannot be cleared.
		case v == "":
			delete(c.props, name)
		default:
			c.props[name] = v
		}
	}
	c.updatedAt = now
	c.props["lastmodifieddate"] = timestamp(now)
	st.dirtyContacts[c.id] = struct{}{}
}

// uniqueConflict reports a contact other than self that already holds one
// of the unique values being written (email or a hasUniqueValue property).
func (st *store) uniqueConflict(self *contact, values map[string]string) *inputError {
	for _, name := range slices.Sorted(maps.Keys(values)) {
		v := values[name]
		p := st.props[name]
		if v == "" || (name != "email" && !p.HasUniqueValue) {
			continue
		}
		if owner := st.findBy(name, v); owner != nil && owner != self {
			msg := fmt.Sprintf("Contact already exists. Existing ID: %d", owner.id)
			if name != "email" {
				msg = fmt.Sprintf("A contact with %s '%s' already exists; %s must be unique. Existing ID: %d", name, v, name, owner.id)
			}
			return &inputError{category: categoryConflict, message: msg,
				errors: []errorDetail{{Message: msg, In: name}}}
		}
	}
	return nil
}

// fieldError is one property value HubSpot refuses.
type fieldError struct {
	name    string
	code    string
	message string
}

// inputError is why one batch input failed.
type inputError struct {
	category string
	message  string
	errors   []errorDetail
}

// propertyErrors turns field errors into HubSpot's validation failure: the
// message embeds the legacy validation results as JSON, errors[] carries
// them structured.
func propertyErrors(portalID int64, errs []fieldError) *inputError {
	type result struct {
		IsValid               bool   `json:"isValid"`
		Message               string `json:"message"`
		Error                 string `json:"error"`
		Name                  string `json:"name"`
		LocalizedErrorMessage string `json:"localizedErrorMessage"`
		PortalID              int64  `json:"portalId"`
	}
	results := make([]result, len(errs))
	details := make([]errorDetail, len(errs))
	for i, e := range errs {
		results[i] = result{Message: e.message, Error: e.code, Name: e.name, LocalizedErrorMessage: e.message, PortalID: portalID}
		details[i] = errorDetail{Message: e.message, Code: e.code, Context: map[string][]string{"propertyName": {e.name}}}
	}
	raw, _ := json.Marshal(results) // plain data: cannot fail
	return &inputError{category: categoryValidation, message: "Property values were not valid: " + string(raw), errors: details}
}

// normalize checks value v for property p and returns the form HubSpot
// stores. An empty string clears the property and is always allowed.
func normalize(p *Property, v string) (string, *fieldError) {
	fail := func(code, msg string) (string, *fieldError) {
		return "", &fieldError{name: p.Name, code: code, message: msg}
	}
	if p.ReadOnlyValue {
		return fail("READ_ONLY_VALUE", fmt.Sprintf("%s is a read only property; its value cannot be set", p.Name))
	}
	if v == "" {
		return "", nil
	}
	if p.Name == "email" {
		e := normalizeEmail(v)
		if !validEmail(e) {
			return fail("INVALID_EMAIL", fmt.Sprintf("Email address %s is invalid", v))
		}
		return e, nil
	}
	switch p.Type {
	case "number":
		t := strings.TrimSpace(v)
		f, err := strconv.ParseFloat(t, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fail("INVALID_INTEGER", fmt.Sprintf("%s was not a valid number", p.Name))
		}
		return t, nil
	case "bool":
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return "true", nil
		case "false":
			return "false", nil
		}
		return fail("INVALID_BOOLEAN", fmt.Sprintf("%s was not a valid boolean: %q (use true or false)", p.Name, v))
	case "enumeration":
		parts := []string{v}
		if p.FieldType == "checkbox" { // multiple values, semicolon-separated
			parts = strings.Split(v, ";")
		}
		for i, part := range parts {
			o, ok := findOption(p, strings.TrimSpace(part))
			if !ok {
				return fail("INVALID_OPTION", fmt.Sprintf("%s was not one of the allowed options: [%s]", part, optionList(p)))
			}
			parts[i] = o
		}
		return strings.Join(parts, ";"), nil
	case "date":
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t.Format(time.DateOnly), nil
		}
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			t := time.UnixMilli(ms).UTC()
			if t.Equal(t.Truncate(24 * time.Hour)) {
				return t.Format(time.DateOnly), nil
			}
			return fail("INVALID_DATE", fmt.Sprintf("%s is not at midnight UTC: %s was not a valid date", v, p.Name))
		}
		return fail("INVALID_DATE", fmt.Sprintf("%s was not a valid date: %q", p.Name, v))
	case "datetime":
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			return timestamp(time.UnixMilli(ms)), nil
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return timestamp(t), nil
		}
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return timestamp(t), nil
		}
		return fail("INVALID_DATETIME", fmt.Sprintf("%s was not a valid datetime: %q", p.Name, v))
	}
	return v, nil
}

// findOption matches v to an option's value, or case-insensitively to its
// value or label, and returns the option's value.
func findOption(p *Property, v string) (string, bool) {
	for _, o := range p.Options {
		if o.Value == v {
			return o.Value, true
		}
	}
	for _, o := range p.Options {
		if strings.EqualFold(o.Value, v) || strings.EqualFold(o.Label, v) {
			return o.Value, true
		}
	}
	return "", false
}

func optionList(p *Property) string {
	vals := make([]string, len(p.Options))
	for i, o := range p.Options {
		vals[i] = o.Value
	}
	return strings.Join(vals, ", ")
}

// normalizeEmail is how HubSpot stores an address: trimmed, lower case.
func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// reservedTLDs are names that are not in the IANA root zone (RFC 2606 and
// RFC 6762), which HubSpot's TLD check therefore rejects.
var reservedTLDs = map[string]bool{"test": true, "example": true, "invalid": true, "localhost": true, "local": true}

// validEmail applies HubSpot's documented rules: a valid RFC 2822 address,
// no quotes in the local part, and a domain that ends in a real top-level
// domain. Without the IANA list, a TLD must be letters (or xn-- punycode)
// and not a reserved name.
func validEmail(e string) bool {
	at := strings.LastIndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.ContainsAny(e[:at], "\" ") {
		return false
	}
	if a, err := mail.ParseAddress(e); err != nil || a.Address != e || a.Name != "" {
		return false
	}
	labels := strings.Split(e[at+1:], ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if strings.HasPrefix(tld, "xn--") {
		return len(tld) > 4
	}
	if len(tld) < 2 || reservedTLDs[tld] {
		return false
	}
	for _, r := range tld {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// Contact is a stored contact as the state accessors report it. Properties
// holds every value set, including HubSpot's system properties
// (hs_object_id, createdate, lastmodifieddate).
type Contact struct {
	ID         string
	Properties map[string]string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (c *contact) export() Contact {
	return Contact{
		ID:         strconv.FormatInt(c.id, 10),
		Properties: maps.Clone(c.props),
		CreatedAt:  c.createdAt,
		UpdatedAt:  c.updatedAt,
	}
}

// Contacts returns every contact, oldest (lowest id) first.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Sorted(maps.Keys(s.store.contacts))
	out := make([]Contact, len(ids))
	for i, id := range ids {
		out[i] = s.store.contacts[id].export()
	}
	return out
}

// ContactByEmail returns the contact with that email, compared the way
// HubSpot does (trimmed, case-insensitive).
func (s *Server) ContactByEmail(email string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.store.findBy("email", normalizeEmail(email)); c != nil {
		return c.export(), true
	}
	return Contact{}, false
}

// ContactByID returns the contact with that record id.
func (s *Server) ContactByID(id string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.store.findBy("hs_object_id", id); c != nil {
		return c.export(), true
	}
	return Contact{}, false
}

// SeedContact creates a contact with the given properties, validated as an
// upsert would validate them (defined properties, valid values, unique
// email and unique-value properties).
func (s *Server) SeedContact(props map[string]string) (Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	values := make(map[string]string, len(props))
	for _, name := range slices.Sorted(maps.Keys(props)) {
		p, ok := s.store.props[name]
		if !ok {
			return Contact{}, fmt.Errorf("seed contact: property %q does not exist", name)
		}
		v, ferr := normalize(p, props[name])
		if ferr != nil {
			return Contact{}, fmt.Errorf("seed contact: %s: %s", ferr.code, ferr.message)
		}
		values[name] = v
	}
	if ie := s.store.uniqueConflict(nil, values); ie != nil {
		return Contact{}, fmt.Errorf("seed contact: %s", ie.message)
	}
	now := s.now()
	c := s.store.create(now)
	s.store.set(c, values, now)
	s.changed()
	return c.export(), nil
}
