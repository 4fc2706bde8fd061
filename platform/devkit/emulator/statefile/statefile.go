// Package statefile keeps an emulator's account in a file between runs, so
// that `switchyard dev` finds the contacts and tickets of its last run next
// to the NATS and PostgreSQL data that refer to them.
//
// A Keeper loads the file once at start and writes it after changes, at
// most once per interval, and at shutdown. Snapshot writes are atomic (a
// temporary file in the same folder, fsynced, renamed over the old one, the
// folder fsynced): a crash leaves either the previous state or the new one,
// never a torn file.
//
// A State that also implements Journaled is saved in O(changes), not
// O(account): Save appends one record holding only the objects changed
// since the last save to <file>.journal and fsyncs it. Loading reads the
// snapshot, then applies the journal's records in order; a torn last
// record (a crash mid-append) is dropped, as the save it belonged to never
// returned. The journal starts with the SHA-256 of the snapshot it extends;
// when it outgrows the snapshot, when the account has been quiet for an
// interval (Run; for an account past 1 MiB only once the journal is an
// eighth of the snapshot) and at Flush, the Keeper folds it into a new
// snapshot and removes it. A crash after the new snapshot is renamed into place but
// before the journal is removed leaves a journal whose hash names the old
// snapshot: loading ignores it, since the new snapshot holds all of it.
// (Replaying it instead would not be harmless: records reapply older
// versions, and HubSpot's email index makes an old record drop a contact
// that took the email since.)
//
// A crash loses what no Save has returned for yet; durable callers (the
// dev hub answers a change only after Save) lose nothing they confirmed.
// Emulators that must never reissue an id after such a loss derive their
// first id from the clock (hubspot and zendesk Options.UniqueIDs).
//
// The emulator's request path only signals a change (a non-blocking send on
// a channel of capacity one); copying, encoding and disk I/O happen in
// Save, on the caller's goroutine or the Keeper's.
package statefile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultInterval is the least time between two writes while changes keep
// coming: a burst of requests is one write, not one per request.
const DefaultInterval = time.Second

// minCompact is the journal size below which it is not folded into the
// snapshot for size alone: with a small account, a snapshot per few
// records would cost more than the journal saves.
const minCompact = 1 << 20

// State is an emulator whose account can be kept in a file.
type State interface {
	// MarshalState encodes the account. It is called while requests are
	// served and must be safe for concurrent use.
	MarshalState() ([]byte, error)
	// UnmarshalState adds an account that MarshalState encoded. It is
	// called once, before serving (and once per journal record, in order,
	// for a Journaled state).
	UnmarshalState(data []byte) error
	// Changes receives after the account changed. Signals coalesce (the
	// channel holds one), so a reader that drains it and then calls
	// MarshalState has every change up to the drain.
	Changes() <-chan struct{}
}

// Journaled is a State that can encode only what changed, so that a save
// costs O(changes) instead of O(account).
type Journaled interface {
	State
	// MarshalChanges encodes, in MarshalState's format, the objects that
	// changed since its last call (whole objects, keyed by id, so applying
	// a record with UnmarshalState replaces them: idempotent, last wins)
	// and the id counters; nil when nothing changed. Every change made
	// before the call is in it or in an earlier one. Objects are never
	// deleted (else records would need tombstones). It must be safe for
	// concurrent use with requests.
	MarshalChanges() ([]byte, error)
}

// Keeper writes one State to one file. Run, Flush, Save and Close are safe
// for concurrent use; writes happen one at a time, newest state last.
type Keeper struct {
	path     string
	state    State
	journal  Journaled // nil: every save is a snapshot
	interval time.Duration

	mu       sync.Mutex // one write at a time, so an older snapshot never lands last
	base     [sha256.Size]byte
	snapSize int64
	jf       *os.File // the journal, open for appending; nil until the first record
	jsize    int64    // bytes of the journal on disk (header included); 0: none
	resnap   bool     // an append failed: the next save writes a snapshot
}

// journalMagic starts a journal, before the SHA-256 of its snapshot.
const journalMagic = "statefile-journal-v1\n"

const headerSize = int64(len(journalMagic) + sha256.Size)

// frame is a record's prefix: payload length and CRC-32C, little-endian.
const frameSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// JournalPath is where the journal of the snapshot at path is kept.
func JournalPath(path string) string { return path + ".journal" }

// Open loads the state saved at path into st, when the file exists, and
// returns a Keeper that saves st there. For a Journaled st it then applies
// the journal's records. It creates path's folder. interval is the least
// time between two writes (0 means DefaultInterval). A file that cannot be
// read or decoded is an error that names it: deleting it starts the
// emulator empty (or from the snapshot alone, for the journal).
func Open(path string, st State, interval time.Duration) (*Keeper, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("emulator state folder: %w", err)
	}
	k := &Keeper{path: path, state: st, interval: interval}
	k.journal, _ = st.(Journaled)
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
	k.base, k.snapSize = sha256.Sum256(data), int64(len(data))
	if k.journal != nil {
		if err := k.replay(); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// replay applies the journal's records, when it extends the snapshot that
// was loaded, and cuts a torn last record off so appends follow whole ones.
func (k *Keeper) replay() error {
	jpath := JournalPath(k.path)
	data, err := os.ReadFile(jpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("read emulator journal: %w", err)
	}
	if int64(len(data)) < headerSize || string(data[:len(journalMagic)]) != journalMagic ||
		!bytes.Equal(data[len(journalMagic):headerSize], k.base[:]) {
		return nil // torn at creation, or stale: the snapshot holds it all
	}
	off := headerSize
	for {
		rec, ok := nextRecord(data[off:])
		if !ok {
			break
		}
		if err := k.state.UnmarshalState(rec); err != nil {
			return fmt.Errorf("load emulator journal %s (delete it to start from the snapshot): %w", jpath, err)
		}
		off += frameSize + int64(len(rec))
	}
	if off < int64(len(data)) {
		if err := os.Truncate(jpath, off); err != nil {
			return fmt.Errorf("cut torn emulator journal record: %w", err)
		}
	}
	k.jsize = off
	return nil
}

// nextRecord is the whole record at the start of b; false when b holds
// none (empty, or a record torn by a crash mid-append).
func nextRecord(b []byte) ([]byte, bool) {
	if len(b) < frameSize {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	sum := binary.LittleEndian.Uint32(b[4:])
	// Save never writes an empty record, and a zero-filled tail (a crash can
	// extend a file with zeros) would pass the checksum: CRC-32C of nothing
	// is 0.
	if n == 0 || uint64(len(b)-frameSize) < uint64(n) {
		return nil, false
	}
	rec := b[frameSize : frameSize+int(n)]
	if crc32.Checksum(rec, castagnoli) != sum {
		return nil, false
	}
	return rec, true
}

// Path is the file the state is kept in.
func (k *Keeper) Path() string { return k.path }

// Run writes the state after each change, at most once per interval, until
// ctx ends; then it writes once more if anything changed since. A journal
// is folded into the snapshot once the account has been quiet for an
// interval (a large account's only once it is worth it: compactIdle), so
// the snapshot alone holds an idle emulator's account. It
// returns the first failed write's error (the caller decides whether that
// stops the emulator), else nil.
func (k *Keeper) Run(ctx context.Context) error {
	var (
		last  time.Time
		quiet *time.Timer
		idle  <-chan time.Time // fires an interval after the last save
	)
	defer func() {
		if quiet != nil {
			quiet.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return k.Flush()
		case <-idle:
			idle = nil
			if err := k.compactIdle(); err != nil {
				return err
			}
			continue
		case <-k.state.Changes():
		}
		if wait := k.interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(k.Save(), k.compact())
			case <-t.C:
			}
		}
		if err := k.Save(); err != nil {
			return err
		}
		last = time.Now()
		if k.journal != nil {
			if quiet == nil {
				quiet = time.NewTimer(k.interval)
			} else {
				quiet.Reset(k.interval)
			}
			idle = quiet.C
		}
	}
}

// Flush writes the state if it changed since the last write, and folds a
// journal into the snapshot, so that after a clean stop the snapshot alone
// holds the account. Call it after the emulator stopped serving, so the
// last requests' changes are kept.
func (k *Keeper) Flush() error {
	select {
	case <-k.state.Changes():
		if err := k.Save(); err != nil {
			return err
		}
	default:
	}
	return k.compact()
}

// Save writes the changes made before the call: for a Journaled state one
// journal record, fsynced (a snapshot when the journal has outgrown the
// last one); for others, the whole state. When it returns nil, the changes
// survive a crash.
func (k *Keeper) Save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.journal == nil || k.resnap {
		return k.snapshot()
	}
	rec, err := k.journal.MarshalChanges()
	if err != nil {
		k.resnap = true // the changes may be unmarked already: only a snapshot holds them
		return fmt.Errorf("encode emulator changes: %w", err)
	}
	if len(rec) == 0 {
		return nil
	}
	if err := k.appendRecord(rec); err != nil {
		// The journal may end torn, and rec's changes are no longer
		// marked: only a snapshot holds them now.
		k.closeJournal()
		k.jsize = 0
		if serr := k.snapshot(); serr != nil {
			k.resnap = true
			return errors.Join(fmt.Errorf("append emulator journal: %w", err), serr)
		}
		return nil
	}
	if k.jsize > max(k.snapSize, minCompact) {
		// rec is durable, so this call's changes are saved whatever the
		// compaction does; a failed one leaves resnap set, and the next
		// Save writes the snapshot (and reports its error) before it
		// answers anyone.
		_ = k.snapshot()
	}
	return nil
}

// compactIdle is compact for a quiet account, when folding is worth its
// cost: a snapshot writes the whole account, so a large one (past
// minCompact) is rewritten only once its journal is an eighth of it. An
// account that goes quiet between bursts (a dev hub fed in rounds) then
// pays for its snapshots in proportion to its changes, not once per burst
// — at 333,000 Zendesk tickets one snapshot was seconds of CPU, and the
// emulator answered nothing meanwhile. Loading replays at most that
// eighth; Flush, at a clean stop, still folds everything.
func (k *Keeper) compactIdle() error {
	k.mu.Lock()
	worth := k.resnap || k.snapSize < minCompact || k.jsize*idleFold >= k.snapSize
	k.mu.Unlock()
	if !worth {
		return nil
	}
	return k.compact()
}

// idleFold: a quiet account's journal is folded once it is 1/idleFold of
// the snapshot (see compactIdle).
const idleFold = 8

// compact folds a journal that holds records into a new snapshot.
func (k *Keeper) compact() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.journal == nil || (k.jsize <= headerSize && !k.resnap) {
		return nil
	}
	return k.snapshot()
}

// Close closes the journal; the Keeper must not be used after.
func (k *Keeper) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closeJournal()
}

func (k *Keeper) closeJournal() error {
	if k.jf == nil {
		return nil
	}
	err := k.jf.Close()
	k.jf = nil
	return err
}

// appendRecord appends rec to the journal and fsyncs it, starting the
// journal (for the snapshot on disk) when there is none; the caller holds
// k.mu.
func (k *Keeper) appendRecord(rec []byte) error {
	jpath := JournalPath(k.path)
	if k.jf == nil {
		if k.jsize == 0 {
			header := append([]byte(journalMagic), k.base[:]...)
			if err := WriteFile(jpath, header, 0o644); err != nil {
				return err
			}
			k.jsize = headerSize
		}
		f, err := os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		k.jf = f
	}
	buf := make([]byte, frameSize, frameSize+len(rec))
	binary.LittleEndian.PutUint32(buf, uint32(len(rec)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(rec, castagnoli))
	buf = append(buf, rec...)
	if _, err := k.jf.Write(buf); err != nil {
		return err
	}
	if err := k.jf.Sync(); err != nil {
		return err
	}
	k.jsize += int64(len(buf))
	return nil
}

// snapshot writes the whole state and, for a Journaled state, removes the
// journal it replaces; the caller holds k.mu.
func (k *Keeper) snapshot() (err error) {
	defer func() {
		if err != nil {
			// The changes were unmarked before the write failed: until a
			// snapshot lands, no journal record can hold them.
			k.resnap = true
		}
	}()
	if k.journal != nil {
		// What is marked changed now is in the snapshot below; unmarking
		// it first keeps the next record small. A change after this call
		// may be in both, which is harmless: records replace whole objects.
		if _, err := k.journal.MarshalChanges(); err != nil {
			return fmt.Errorf("encode emulator changes: %w", err)
		}
	}
	data, err := k.state.MarshalState()
	if err != nil {
		return fmt.Errorf("encode emulator state: %w", err)
	}
	if err := WriteFile(k.path, data, 0o644); err != nil {
		return fmt.Errorf("save emulator state: %w", err)
	}
	k.base, k.snapSize, k.resnap = sha256.Sum256(data), int64(len(data)), false
	if k.journal == nil {
		return nil
	}
	// From here a crash leaves a journal naming the previous snapshot,
	// which loading ignores.
	_ = k.closeJournal()
	k.jsize = 0
	if err := os.Remove(JournalPath(k.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove folded emulator journal: %w", err)
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
