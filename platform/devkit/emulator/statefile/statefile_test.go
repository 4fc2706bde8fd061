package statefile_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// counter is a State: one number, and how often it was encoded.
type counter struct {
	mu      sync.Mutex
	n       int
	encoded int
	changes chan struct{}
}

func newCounter() *counter { return &counter{changes: make(chan struct{}, 1)} }

func (c *counter) Add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

func (c *counter) Encoded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.encoded
}

func (c *counter) MarshalState() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.encoded++
	return []byte(strconv.Itoa(c.n)), nil
}

func (c *counter) UnmarshalState(b []byte) error {
	n, err := strconv.Atoi(string(b))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = n
	return err
}

func (c *counter) Changes() <-chan struct{} { return c.changes }

func readState(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRunWritesABurstOnce: the first change is written at once; a burst
// within the interval after it is one more write, at shutdown at the
// latest, holding the burst's last state.
func TestRunWritesABurstOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emulators", "counter.json")
	c := newCounter()
	k, err := statefile.Open(path, c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()

	c.Add()
	testkit.WaitFor(t, 5*time.Second, "the first change written", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && string(b) == "1"
	})
	for range 100 {
		c.Add()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := c.Encoded(), 2; got != want {
		t.Errorf("%d writes for a change and a burst of 100 within the interval, want %d", got, want)
	}
	if got := readState(t, path); got != "101" {
		t.Errorf("state file %q after shutdown, want 101", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the folder holds %v, want only the state file (no temporary files left)", entries)
	}
}

// TestOpenLoadsSavedState: a second Keeper on the same path starts from
// the saved state; Flush writes only when something changed.
func TestOpenLoadsSavedState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter.json")
	first := newCounter()
	k, err := statefile.Open(path, first, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Flush without a change wrote the file (stat: %v)", err)
	}
	first.Add()
	first.Add()
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}

	second := newCounter()
	if _, err := statefile.Open(path, second, 0); err != nil {
		t.Fatal(err)
	}
	if second.n != 2 {
		t.Errorf("loaded %d, want 2", second.n)
	}
}

// TestOpenNamesAnUnreadableStateFile: a file the emulator cannot decode
// stops the start with an error that names it and says how to recover.
func TestOpenNamesAnUnreadableStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counter.json")
	if err := os.WriteFile(path, []byte("not a number"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := statefile.Open(path, newCounter(), 0)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("Open = %v, want an error naming %s", err, path)
	}
}

func TestWriteFileReplacesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	for _, content := range []string{"a long first version", "short"} {
		if err := statefile.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := readState(t, path); got != content {
			t.Errorf("file holds %q, want %q", got, content)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600", fi.Mode(), err)
	}
}
