// Package statefile keeps an emulator's account in a file between runs, so
// that `switchyard dev` finds the contacts and tickets of its last run next
// to the NATS and PostgreSQL data that refer to them.
//
// A Keeper loads the file once at start and writes it after changes, at
// most once per interval, and at shutdown. Writes are atomic (a temporary
// file in the same folder, fsynced, renamed over the old one, the folder
// fsynced): a crash leaves either the previous state or the new one, never
// a torn file. A crash does lose the changes since the last write, up to
// one interval; emulators that must never reissue an id after such a loss
// derive their first id from the clock (hubspot and zendesk Options.UniqueIDs).
//
// The emulator's request path only signals a change (a non-blocking send on
// a channel of capacity one); copying, encoding and disk I/O happen on the
// Keeper's goroutine.
package statefile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultInterval is the least time between two writes while changes keep
// coming: a burst of requests is one write, not one per request.
const DefaultInterval = time.Second

// State is an emulator whose account can be kept in a file.
type State interface {
	// MarshalState encodes the account. It is called while requests are
	// served and must be safe for concurrent use.
	MarshalState() ([]byte, error)
	// UnmarshalState adds an account that MarshalState encoded. It is
	// called once, before serving.
	UnmarshalState(data []byte) error
	// Changes receives after the account changed. Signals coalesce (the
	// channel holds one), so a reader that drains it and then calls
	// MarshalState has every change up to the drain.
	Changes() <-chan struct{}
}

// Keeper writes one State to one file. Run, Flush and Save are safe for
// concurrent use; writes happen one at a time, newest state last.
type Keeper struct {
	path     string
	state    State
	interval time.Duration

	mu sync.Mutex // one write at a time, so an older snapshot never lands last
}

// Open loads the state saved at path into st, when the file exists, and
// returns a Keeper that saves st there. It creates path's folder. interval
// is the least time between two writes (0 means DefaultInterval). A file
// that cannot be read or decoded is an error that names it: deleting it
// starts the emulator empty.
func Open(path string, st State, interval time.Duration) (*Keeper, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("emulator state folder: %w", err)
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read emulator state: %w", err)
	default:
		if err := st.UnmarshalState(data); err != nil {
			return nil, fmt.Errorf("load emulator state %s (delete it to start empty): %w", path, err)
		}
	}
	return &Keeper{path: path, state: st, interval: interval}, nil
}

// Path is the file the state is kept in.
func (k *Keeper) Path() string { return k.path }

// Run writes the state after each change, at most once per interval, until
// ctx ends; then it writes once more if anything changed since. It returns
// the first failed write's error (the caller decides whether that stops the
// emulator), else nil.
func (k *Keeper) Run(ctx context.Context) error {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return k.Flush()
		case <-k.state.Changes():
		}
		if wait := k.interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return k.Save()
			case <-t.C:
			}
		}
		if err := k.Save(); err != nil {
			return err
		}
		last = time.Now()
	}
}

// Flush writes the state if it changed since the last write. Call it after
// the emulator stopped serving, so the last requests' changes are kept.
func (k *Keeper) Flush() error {
	select {
	case <-k.state.Changes():
		return k.Save()
	default:
		return nil
	}
}

// Save writes the state now.
func (k *Keeper) Save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	data, err := k.state.MarshalState()
	if err != nil {
		return fmt.Errorf("encode emulator state: %w", err)
	}
	if err := WriteFile(k.path, data, 0o644); err != nil {
		return fmt.Errorf("save emulator state: %w", err)
	}
	return nil
}

// WriteFile replaces path with data atomically: it writes a temporary file
// in the same folder, fsyncs it, renames it over path and fsyncs the
// folder, so readers and crashes see the old content or the new, whole.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
