package opsauth

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time              { return c.t }
func (c *clock) add(d time.Duration)         { c.t = c.t.Add(d) }
func newClock() *clock                       { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func tok(i int) string                       { return fmt.Sprintf("guess-%02d-0123456789abcdef", i) }
func (t *Throttle) allowed(a, k string) bool { _, ok := t.Check(a, k); return ok }

// TestThrottlePerAddress: ten failures from one address in a minute lock
// that address out, whatever token it sends next, until the oldest leaves
// the window; Retry-After says when; other addresses are unaffected.
func TestThrottlePerAddress(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(10, time.Minute, c.now)
	for i := range 10 {
		if !th.allowed("203.0.113.7", tok(i)) {
			t.Fatalf("attempt %d refused before the limit", i+1)
		}
		th.Fail("203.0.113.7", tok(i))
		c.add(time.Second)
	}
	// 10 s after the first failure: 50 s to go.
	wait, ok := th.Check("203.0.113.7", "the-right-token-0123456789abcdef")
	if ok || wait != 50*time.Second {
		t.Fatalf("Check after 10 failures = %v, %v; want refused for 50s", wait, ok)
	}
	if !th.allowed("198.51.100.9", tok(99)) {
		t.Fatal("another address refused")
	}
	c.add(49*time.Second + 500*time.Millisecond)
	if wait, ok := th.Check("203.0.113.7", ""); ok || wait != time.Second {
		t.Fatalf("half a second before the window ends: %v, %v; want refused for 1s (rounded up)", wait, ok)
	}
	c.add(500 * time.Millisecond)
	if !th.allowed("203.0.113.7", "") {
		t.Fatal("still refused once the oldest failure left the window")
	}
}

// TestThrottlePerToken: one wrong token presented ten times from ten
// addresses is refused from an eleventh; other tokens from there are not.
func TestThrottlePerToken(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(10, time.Minute, c.now)
	const revoked = "revoked-token-0123456789abcdef"
	for i := range 10 {
		th.Fail(fmt.Sprintf("192.0.2.%d", i+1), revoked)
	}
	if wait, ok := th.Check("192.0.2.200", revoked); ok || wait != time.Minute {
		t.Fatalf("the token from a new address: %v, %v; want refused for 1m", wait, ok)
	}
	if !th.allowed("192.0.2.200", "another-token-0123456789abcdef") {
		t.Fatal("another token from a new address refused")
	}
}

// TestThrottleGroupsIPv6By64: one host picks any address in its /64.
func TestThrottleGroupsIPv6By64(t *testing.T) {
	t.Parallel()
	th := NewThrottle(3, time.Minute, newClock().now)
	for i := range 3 {
		th.Fail(fmt.Sprintf("2001:db8:1:2::%x", i+1), tok(i))
	}
	if th.allowed("2001:db8:1:2:ffff::1", tok(9)) {
		t.Fatal("another address in the same /64 let in")
	}
	if !th.allowed("2001:db8:1:3::1", tok(9)) {
		t.Fatal("another /64 refused")
	}
}

// TestThrottleNeverHoldsTokens: the table holds fingerprints, not tokens or
// any part of them, and stays bounded.
func TestThrottleNeverHoldsTokens(t *testing.T) {
	t.Parallel()
	c := newClock()
	th := NewThrottle(10, time.Minute, c.now)
	const presented = "s3cr3t-0123456789abcdefghij"
	th.Fail("192.0.2.1", presented)
	for k := range th.fails {
		if strings.Contains(k, presented[:6]) || strings.Contains(k, presented[len(presented)-6:]) {
			t.Fatalf("throttle key %q holds the token", k)
		}
	}
	for i := range maxKeys + 100 {
		th.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "")
	}
	if n := len(th.fails); n > maxKeys {
		t.Fatalf("%d keys, want at most %d", n, maxKeys)
	}
}
