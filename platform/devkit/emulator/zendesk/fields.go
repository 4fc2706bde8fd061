package zendesk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// fields is a JSON object kept raw, so that "absent" and "null" differ (an
// update changes only what it names, and null clears).
type fields map[string]json.RawMessage

// errInvalidJSON wraps a body that is not JSON.
type errInvalidJSON struct{ err error }

func (e errInvalidJSON) Error() string { return "invalid JSON: " + e.err.Error() }

// envelope decodes body as {"<key>":{…}}. A missing or non-object key is
// errNoTicketKey-like: Rails' ParameterMissing.
func envelope(body []byte, key string) (fields, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, errInvalidJSON{err}
	}
	raw, ok := env[key]
	if !ok || isNull(raw) {
		return nil, fmt.Errorf("param is missing or the value is empty: %s", key)
	}
	var f fields
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return nil, fmt.Errorf("param is missing or the value is empty: %s", key)
	}
	return f, nil
}

func ticketFields(body []byte) (fields, error) {
	f, err := envelope(body, "ticket")
	if err != nil && !errors.As(err, new(errInvalidJSON)) {
		return nil, errNoTicketKey
	}
	return f, err
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str reads a string field. set is false when the key is absent; null reads
// as "" with set true; a number reads as its literal (Zendesk coerces);
// anything else is not ok.
func (f fields) str(key string) (val string, set, ok bool) {
	raw, present := f[key]
	if !present {
		return "", false, true
	}
	if isNull(raw) {
		return "", true, true
	}
	if err := json.Unmarshal(raw, &val); err == nil {
		return val, true, true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), true, true
	}
	return "", true, false
}

// id reads an id field: a JSON integer or a string of digits; null is 0.
func (f fields) id(key string) (val int64, set, ok bool) {
	raw, present := f[key]
	if !present {
		return 0, false, true
	}
	return parseID(raw)
}

func parseID(raw json.RawMessage) (val int64, set, ok bool) {
	if isNull(raw) {
		return 0, true, true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		v, err := strconv.ParseInt(n.String(), 10, 64)
		return v, true, err == nil && v > 0
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		v, err := strconv.ParseInt(s, 10, 64)
		return v, true, err == nil && v > 0
	}
	return 0, true, false
}

// boolean reads a boolean field, def when absent or null.
func (f fields) boolean(key string, def bool) (bool, bool) {
	raw, present := f[key]
	if !present || isNull(raw) {
		return def, true
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return def, false
	}
	return b, true
}

// object reads a nested object field; nil when absent or null.
func (f fields) object(key string) (fields, bool) {
	raw, present := f[key]
	if !present || isNull(raw) {
		return nil, true
	}
	var o fields
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, false
	}
	return o, true
}

// tagList reads a tags value: an array of strings or, as Zendesk also
// takes, one space-separated string. set is false when the key is absent.
func (f fields) tagList(key string) (tags []string, set, ok bool) {
	raw, present := f[key]
	if !present {
		return nil, false, true
	}
	if isNull(raw) {
		return []string{}, true, true
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return normalizeTags(list), true, true
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return normalizeTags([]string{one}), true, true
	}
	return nil, true, false
}

// normalizeTags does what Zendesk does to tags it stores: lower-case, split
// on white space (a tag cannot hold a space; "Needs Review" becomes the two
// tags "needs" and "review" — join words with underscores to keep them
// together), drop empties and duplicates, keep first-seen order.
func normalizeTags(in []string) []string {
	out := []string{}
	for _, tag := range in {
		for _, word := range strings.FieldsFunc(strings.ToLower(tag), unicode.IsSpace) {
			if !slices.Contains(out, word) {
				out = append(out, word)
			}
		}
	}
	return out
}

func addTags(have, add []string) []string {
	out := slices.Clone(have)
	for _, t := range add {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func removeTags(have, remove []string) []string {
	return slices.DeleteFunc(slices.Clone(have), func(t string) bool { return slices.Contains(remove, t) })
}

// customFields reads custom_fields: [{"id":…,"value":…}].
func (f fields) customFields(key string) (out []CustomField, set, ok bool) {
	raw, present := f[key]
	if !present {
		return nil, false, true
	}
	if isNull(raw) {
		return []CustomField{}, true, true
	}
	var list []struct {
		ID    json.RawMessage `json:"id"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, true, false
	}
	for _, e := range list {
		id, _, idOK := parseID(e.ID)
		if !idOK || id == 0 {
			return nil, true, false
		}
		v := bytes.Clone(e.Value)
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		out = append(out, CustomField{ID: id, Value: v})
	}
	return out, true, true
}

// details collects RecordInvalid details by field.
type details map[string][]Detail

func (d details) add(key, description, code string) {
	d[key] = append(d[key], Detail{Description: description, Error: code})
}

func (d details) invalid(key, label string) {
	d.add(key, label+": is invalid", "InvalidValue")
}

var (
	priorities = []string{"urgent", "high", "normal", "low"}
	types      = []string{"problem", "incident", "question", "task"}
	statuses   = []string{"new", "open", "pending", "hold", "solved", "closed"}
)

// enum reads an optional enumerated field into *dst; null clears it unless
// nullable is false.
func (f fields) enum(d details, key, label string, allowed []string, nullable bool, dst *string) {
	v, set, ok := f.str(key)
	switch {
	case !set:
	case !ok, v != "" && !slices.Contains(allowed, v), v == "" && !nullable:
		d.invalid(key, label)
	default:
		*dst = v
	}
}
