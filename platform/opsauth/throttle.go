package opsauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"sync"
	"time"
)

// Throttle limits failed authentications on the ops surface, counted per
// client address (IPv6 by its /64, which one host can pick addresses from)
// and per presented token: once limit failures fall within window, either
// key is refused until the oldest of them leaves the window. A guesser is
// slowed per address; one wrong token presented from many addresses (a
// leaked, revoked token in a fleet of scripts) is slowed per token.
//
// A token is held only as a fingerprint: the first 8 bytes of its
// HMAC-SHA256 under a key made at random for this Throttle, so neither the
// token nor a hash that could be checked against guesses is stored.
//
// The table is bounded (maxKeys); past that the expired keys go first,
// then arbitrary ones. A Throttle is safe for concurrent use.
type Throttle struct {
	limit  int
	window time.Duration
	now    func() time.Time
	key    []byte
	shared FailureLog // nil: this process's table alone

	mu    sync.Mutex
	fails map[string][]time.Time // key → its latest failures, oldest first, at most limit
}

// FailureLog keeps failed authentications where every replica of the ops
// surface counts them (PostgreSQL, in the projector), so a guesser is not
// given a fresh budget per replica or by a restart.
type FailureLog interface {
	// Failures returns, for each key, its failures at or after since,
	// oldest first, at most the newest limit.
	Failures(ctx context.Context, keys []string, since time.Time, limit int) (map[string][]time.Time, error)
	// Record adds a failure at at for each key.
	Record(ctx context.Context, keys []string, at time.Time) error
}

// Shared makes t count in log, with fingerprints under key (the same on
// every replica, and secret: Tokens.ThrottleKey). When log fails, t falls
// back to its own table, so throttling never stops.
func (t *Throttle) Shared(log FailureLog, key []byte) *Throttle {
	t.shared, t.key = log, key
	return t
}

// sharedTimeout bounds a FailureLog call on the authentication path.
const sharedTimeout = 2 * time.Second

// maxKeys bounds a Throttle's table.
const maxKeys = 10000

// NewThrottle returns a Throttle allowing limit failures per window for each
// address and each token; now may be nil (time.Now).
func NewThrottle(limit int, window time.Duration, now func() time.Time) *Throttle {
	if now == nil {
		now = time.Now
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails on supported platforms
	return &Throttle{limit: max(limit, 1), window: window, now: now, key: key, fails: map[string][]time.Time{}}
}

// Check reports whether an attempt from addr presenting token ("" when
// none was presented) may go ahead; when it may not, retryAfter is how long
// until it may (at least a second).
func (t *Throttle) Check(addr, token string) (retryAfter time.Duration, ok bool) {
	now := t.now()
	keys := t.keys(addr, token)
	var shared map[string][]time.Time
	if t.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		var err error
		if shared, err = t.shared.Failures(ctx, keys, now.Add(-t.window), t.limit); err != nil {
			shared = nil // this process's own count decides
		}
		cancel()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		fs := t.recent(k, now)
		if s, ok := shared[k]; ok && len(s) > len(fs) {
			fs = s
		}
		if len(fs) < t.limit {
			continue
		}
		if wait := fs[len(fs)-t.limit].Add(t.window).Sub(now); wait > retryAfter {
			retryAfter = wait
		}
	}
	if retryAfter == 0 {
		return 0, true
	}
	// Whole seconds, rounded up: a client that waits as told is let in.
	return max((retryAfter + time.Second - 1).Truncate(time.Second), time.Second), false
}

// Fail records a failed attempt from addr presenting token.
func (t *Throttle) Fail(addr, token string) {
	now := t.now()
	keys := t.keys(addr, token)
	if t.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		_ = t.shared.Record(ctx, keys, now) // on failure, the own table still counts it
		cancel()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		fs := t.recent(k, now)
		if fs == nil && len(t.fails) >= maxKeys {
			t.evict(now)
		}
		fs = append(fs, now)
		if len(fs) > t.limit {
			fs = fs[len(fs)-t.limit:]
		}
		t.fails[k] = fs
	}
}

// keys are the table keys of an attempt: its address, and its token's
// fingerprint when a token was presented.
func (t *Throttle) keys(addr, token string) []string {
	ks := make([]string, 0, 2)
	if addr != "" {
		ks = append(ks, "addr "+addrKey(addr))
	}
	if token != "" {
		m := hmac.New(sha256.New, t.key)
		m.Write([]byte(token))
		ks = append(ks, "token "+hex.EncodeToString(m.Sum(nil)[:8]))
	}
	return ks
}

// recent returns k's failures within the window, dropping the rest.
func (t *Throttle) recent(k string, now time.Time) []time.Time {
	fs := t.fails[k]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= t.window {
		i++
	}
	if i == len(fs) {
		delete(t.fails, k)
		return nil
	}
	if i > 0 {
		fs = fs[i:]
		t.fails[k] = fs
	}
	return fs
}

// evict makes room in a full table: expired keys first, then any.
func (t *Throttle) evict(now time.Time) {
	for k, fs := range t.fails {
		if len(fs) == 0 || now.Sub(fs[len(fs)-1]) >= t.window {
			delete(t.fails, k)
		}
	}
	for k := range t.fails {
		if len(t.fails) < maxKeys {
			return
		}
		delete(t.fails, k)
	}
}

// addrKey groups IPv6 clients by /64, where one host can pick addresses.
func addrKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
