// Package stripesig signs and verifies Stripe webhook signatures.
//
// The header format and the order of checks follow stripe-go v76's webhook
// package exactly (see shared/fixtures/stripe/stripe-go-webhook-notes.md):
// parse the header, check the timestamp, then compare every v1 signature
// against every configured secret in constant time. Two deliberate
// differences: several secrets are accepted at once (rotation), and a
// timestamp further in the future than the tolerance is rejected too.
//
// Verify never parses the body; it works on the exact bytes received.
package stripesig

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors returned by ParseHeader and Verify. Each maps to one HTTP answer.
var (
	ErrNotSigned        = errors.New("no Stripe-Signature header")
	ErrInvalidHeader    = errors.New("malformed Stripe-Signature header")
	ErrNoValidSignature = errors.New("no valid signature for any configured secret")
	ErrTooOld           = errors.New("signature timestamp older than the tolerance")
	ErrTooNew           = errors.New("signature timestamp further in the future than the tolerance")
)

// DefaultTolerance is Stripe's recommended and stripe-go's default tolerance.
const DefaultTolerance = 5 * time.Minute

// Header is a parsed Stripe-Signature header.
type Header struct {
	Timestamp    int64
	HasTimestamp bool
	V1           [][]byte // decoded v1 signatures; undecodable ones are dropped
}

// ParseHeader parses "t=<unix>,v1=<hex>[,v1=<hex>…]" with stripe-go's rules:
// parts are not trimmed, each must hold exactly one '=', t must be a base-10
// integer, a later t wins, unknown schemes (v0, " v1") and non-hex v1 values
// are skipped, and a header with no decodable v1 is ErrNoValidSignature.
func ParseHeader(h string) (Header, error) {
	var out Header
	if h == "" {
		return out, ErrNotSigned
	}
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.IndexByte(v, '=') >= 0 {
			return Header{}, ErrInvalidHeader
		}
		switch k {
		case "t":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Header{}, ErrInvalidHeader
			}
			out.Timestamp, out.HasTimestamp = ts, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				continue
			}
			out.V1 = append(out.V1, sig)
		}
	}
	if len(out.V1) == 0 {
		return Header{}, ErrNoValidSignature
	}
	return out, nil
}

// Verifier checks signatures against one or more secrets. It is safe for
// concurrent use.
type Verifier struct {
	macs      []*sync.Pool // one pool of HMAC states per secret
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier returns a Verifier for secrets with the given tolerance
// (DefaultTolerance when 0). now may be nil (time.Now).
func NewVerifier(secrets []string, tolerance time.Duration, now func() time.Time) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("stripesig: at least one secret is required")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{tolerance: tolerance, now: now}
	for _, s := range secrets {
		key := []byte(s)
		v.macs = append(v.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	return v, nil
}

// Verify checks header against body. It returns the parsed header on success.
func (v *Verifier) Verify(body []byte, header string) (Header, error) {
	h, err := ParseHeader(header)
	if err != nil {
		return h, err
	}
	if !h.HasTimestamp {
		return h, ErrTooOld
	}
	age := v.now().Sub(time.Unix(h.Timestamp, 0))
	if age > v.tolerance {
		return h, ErrTooOld
	}
	if -age > v.tolerance {
		return h, ErrTooNew
	}
	var ts [20]byte
	prefix := strconv.AppendInt(ts[:0], h.Timestamp, 10)
	var sum [sha256.Size]byte
	for _, pool := range v.macs {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		mac.Write(prefix)
		mac.Write([]byte{'.'})
		mac.Write(body)
		expected := mac.Sum(sum[:0])
		pool.Put(mac)
		for _, sig := range h.V1 {
			if hmac.Equal(expected, sig) {
				return h, nil
			}
		}
	}
	return h, ErrNoValidSignature
}

// Compute returns the raw v1 signature of body at timestamp t.
func Compute(t int64, body []byte, secret string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(strconv.AppendInt(nil, t, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// Sign returns a Stripe-Signature header for body at time t, with one v1
// signature per secret (as Stripe sends while a secret is being rolled).
func Sign(body []byte, t time.Time, secrets ...string) string {
	var b bytes.Buffer
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(t.Unix(), 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(Compute(t.Unix(), body, s)))
	}
	return b.String()
}
