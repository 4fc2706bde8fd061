// Package stripefixture turns recorded Stripe events into a stream of
// distinct, correctly signed webhook deliveries for the load generator. A
// Template is one event; a Set is several, sent round-robin.
//
// Every body is the fixture byte for byte except for the top-level event id,
// which is replaced by a unique id of the same shape ("evt_" + 24
// alphanumerics), so deduplication by event id never short-circuits work.
// Signatures follow Stripe's scheme: v1 = hex(HMAC-SHA256(secret, t + "." +
// body)), sent as "Stripe-Signature: t=<unix>,v1=<hex>".
package stripefixture

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// idSuffixLen is the length of the alphanumeric part of a Stripe event id
// such as evt_1O59vsGgdF1VjufLNnhVwvTi.
const idSuffixLen = 24

// runPrefixLen random characters start every id, so ids from different runs
// differ (JetStream deduplicates Nats-Msg-Id for an hour); the rest encodes
// the sequence number, so ids within a run differ.
const runPrefixLen = 8

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Template is a fixture split around its event id. It is safe for
// concurrent use.
type Template struct {
	head, tail []byte
	runPrefix  string
	eventType  string
	origID     string
}

// Load reads a Stripe event fixture from path.
func Load(path string) (*Template, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fixture: %w", err)
	}
	return Parse(raw)
}

// Parse builds a Template from the JSON of a Stripe event.
func Parse(raw []byte) (*Template, error) {
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("parse fixture: %w", err)
	}
	if ev.ID == "" || ev.Type == "" {
		return nil, errors.New("fixture has no top-level id or type")
	}
	quoted := []byte(strconv.Quote(ev.ID))
	if n := bytes.Count(raw, quoted); n != 1 {
		return nil, fmt.Errorf("fixture id %s occurs %d times, want exactly once", ev.ID, n)
	}
	i := bytes.Index(raw, quoted)
	prefix, err := randomAlnum(runPrefixLen)
	if err != nil {
		return nil, err
	}
	return &Template{
		head:      raw[:i+1], // keep the opening quote
		tail:      raw[i+len(quoted)-1:],
		runPrefix: prefix,
		eventType: ev.Type,
		origID:    ev.ID,
	}, nil
}

// Type is the Stripe event type of the fixture, e.g. "customer.created".
func (t *Template) Type() string { return t.eventType }

// ID returns the event id for sequence number seq: "evt_" followed by
// 24 alphanumerics, unique per (run, seq).
func (t *Template) ID(seq uint64) string {
	var b [4 + idSuffixLen]byte
	copy(b[:], "evt_")
	copy(b[4:], t.runPrefix)
	for i := len(b) - 1; i >= 4+runPrefixLen; i-- {
		b[i] = alphabet[seq%uint64(len(alphabet))]
		seq /= uint64(len(alphabet))
	}
	return string(b[:])
}

// Body returns the fixture with its event id replaced by id.
func (t *Template) Body(id string) []byte {
	b := make([]byte, 0, len(t.head)+len(id)+len(t.tail))
	b = append(b, t.head...)
	b = append(b, id...)
	return append(b, t.tail...)
}

// BodyLen is the length of every body Body returns for an id from ID.
func (t *Template) BodyLen() int { return len(t.head) + 4 + idSuffixLen + len(t.tail) }

// SignatureHeader returns the Stripe-Signature header value for body signed
// with secret at unix time ts.
func SignatureHeader(secret string, ts int64, body []byte) string {
	t := strconv.FormatInt(ts, 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func randomAlnum(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id prefix: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
