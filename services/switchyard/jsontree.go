package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// jsonNode is a decoded JSON value that keeps its objects' key order, so an
// event edited by trigger reads like the Stripe payload it came from.
// Exactly one of members (an object), elems (an array) or scalar is used.
type jsonNode struct {
	object  bool
	array   bool
	members []jsonMember
	elems   []*jsonNode
	scalar  json.RawMessage // a string, number, true, false or null, as JSON
}

type jsonMember struct {
	key string
	val *jsonNode
}

// parseJSONTree decodes one JSON value (and nothing after it).
func parseJSONTree(b []byte) (*jsonNode, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := decodeNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return n, nil
}

func decodeNode(dec *json.Decoder) (*jsonNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &jsonNode{object: t == '{', array: t == '['}
		for dec.More() {
			var key string
			if n.object {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key = k.(string)
			}
			v, err := decodeNode(dec)
			if err != nil {
				return nil, err
			}
			if n.object {
				n.members = append(n.members, jsonMember{key, v})
			} else {
				n.elems = append(n.elems, v)
			}
		}
		_, err := dec.Token() // the closing delimiter
		return n, err
	case json.Number:
		return &jsonNode{scalar: json.RawMessage(t)}, nil
	default: // string, bool, nil
		return scalarNode(t), nil
	}
}

// scalarNode is a node of a string, bool or nil, encoded as Stripe does
// (no HTML escaping of <, > and &).
func scalarNode(v any) *jsonNode {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings, bools and nil always encode
	return &jsonNode{scalar: bytes.TrimSuffix(b.Bytes(), []byte("\n"))}
}

// get is the member key of an object node (nil if absent or not an object).
func (n *jsonNode) get(key string) *jsonNode {
	if n == nil || !n.object {
		return nil
	}
	for _, m := range n.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// put sets member key of an object node, in place if present, else last.
func (n *jsonNode) put(key string, v *jsonNode) {
	for i, m := range n.members {
		if m.key == key {
			n.members[i].val = v
			return
		}
	}
	n.members = append(n.members, jsonMember{key, v})
}

// str is a string scalar's value, and whether n is one.
func (n *jsonNode) str() (string, bool) {
	if n == nil || len(n.scalar) == 0 || n.scalar[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(n.scalar, &s) == nil
}

// walk calls fn on every node under n (n included), parents first, with
// the member key that holds it ("" for array elements and the root).
func (n *jsonNode) walk(key string, fn func(key string, n *jsonNode)) {
	fn(key, n)
	for _, m := range n.members {
		m.val.walk(m.key, fn)
	}
	for _, e := range n.elems {
		e.walk("", fn)
	}
}

// setPath sets the value at a dot path under n. Every segment but the last
// must exist (an object member, or an index into an array); the last may
// add a member to an existing object. Numeric segments index arrays.
func (n *jsonNode) setPath(path string, v *jsonNode) error {
	segs := strings.Split(path, ".")
	cur := n
	for i, seg := range segs {
		last := i == len(segs)-1
		at := strings.Join(segs[:i+1], ".")
		switch {
		case seg == "":
			return fmt.Errorf("%q: empty path segment", path)
		case cur.object:
			if last {
				cur.put(seg, v)
				return nil
			}
			next := cur.get(seg)
			if next == nil {
				return fmt.Errorf("%q: %s does not exist (only a leaf under an existing object may be added)", path, at)
			}
			cur = next
		case cur.array:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(cur.elems) {
				return fmt.Errorf("%q: %s: want an index from 0 to %d into the list", path, at, len(cur.elems)-1)
			}
			if last {
				cur.elems[idx] = v
				return nil
			}
			cur = cur.elems[idx]
		default:
			return fmt.Errorf("%q: %s is %s, not an object or list: set it whole", path, strings.Join(segs[:i], "."), cur.scalar)
		}
	}
	return nil
}

// marshal writes n as indented JSON, as Stripe sends webhooks.
func (n *jsonNode) marshal() []byte {
	var compact bytes.Buffer
	n.write(&compact)
	var out bytes.Buffer
	_ = json.Indent(&out, compact.Bytes(), "", "  ") // valid by construction
	out.WriteByte('\n')
	return out.Bytes()
}

func (n *jsonNode) write(b *bytes.Buffer) {
	switch {
	case n.object:
		b.WriteByte('{')
		for i, m := range n.members {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(m.key)
			b.Write(k)
			b.WriteByte(':')
			m.val.write(b)
		}
		b.WriteByte('}')
	case n.array:
		b.WriteByte('[')
		for i, e := range n.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			e.write(b)
		}
		b.WriteByte(']')
	default:
		b.Write(n.scalar)
	}
}
