package statefile_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
)

// ledger is a Journaled State: objects keyed by id, never deleted.
type ledger struct {
	mu      sync.Mutex
	objs    map[string]string
	dirty   map[string]bool
	changes chan struct{}
}

var _ statefile.Journaled = (*ledger)(nil)

func newLedger() *ledger {
	return &ledger{objs: map[string]string{}, dirty: map[string]bool{}, changes: make(chan struct{}, 1)}
}

func (l *ledger) Set(id, v string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.objs[id], l.dirty[id] = v, true
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

func (l *ledger) Objects() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.objs)
}

func (l *ledger) MarshalState() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return json.Marshal(l.objs)
}

func (l *ledger) MarshalChanges() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.dirty) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(l.dirty))
	for id := range l.dirty {
		out[id] = l.objs[id]
	}
	clear(l.dirty)
	return json.Marshal(out)
}

func (l *ledger) UnmarshalState(b []byte) error {
	var in map[string]string
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	maps.Copy(l.objs, in)
	return nil
}

func (l *ledger) Changes() <-chan struct{} { return l.changes }

// openLedger opens a Keeper for a new ledger on path, closed with the test.
func openLedger(t *testing.T, path string) (*ledger, *statefile.Keeper) {
	t.Helper()
	l := newLedger()
	k, err := statefile.Open(path, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return l, k
}

func mustSave(t *testing.T, k *statefile.Keeper) {
	t.Helper()
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func wantObjects(t *testing.T, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("reloaded %v, want %v", got, want)
	}
}

// TestJournalAppendAndReload: saves append records, not snapshots, and a
// reload (as after kill -9: no Flush) rebuilds the account from them.
func TestJournalAppendAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l, k := openLedger(t, path)
	l.Set("a", "1")
	l.Set("b", "1")
	mustSave(t, k)
	l.Set("a", "2")
	mustSave(t, k)
	mustSave(t, k) // nothing changed: nothing appended
	l.Set("c", "1")
	mustSave(t, k)

	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a save wrote the snapshot (stat: %v), want only journal records", err)
	}
	again, _ := openLedger(t, path)
	wantObjects(t, again.Objects(), l.Objects())
}

// TestJournalIgnoresTornLastRecord: a record cut short by a crash
// mid-append (its save never returned) is dropped on load, and later
// records follow the whole ones, so they load too.
func TestJournalIgnoresTornLastRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	jpath := statefile.JournalPath(path)
	l, k := openLedger(t, path)
	l.Set("a", "1")
	mustSave(t, k)
	whole := fileSize(t, jpath)
	l.Set("a", "2")
	l.Set("b", "2")
	mustSave(t, k)
	if err := os.Truncate(jpath, fileSize(t, jpath)-3); err != nil {
		t.Fatal(err)
	}

	again, k2 := openLedger(t, path)
	wantObjects(t, again.Objects(), map[string]string{"a": "1"})
	if got := fileSize(t, jpath); got != whole {
		t.Errorf("journal of %d bytes after load, want the torn record cut (%d)", got, whole)
	}
	again.Set("c", "3")
	mustSave(t, k2)
	third, _ := openLedger(t, path)
	wantObjects(t, third.Objects(), map[string]string{"a": "1", "c": "3"})
}

// TestJournalCompactionThenReload: Flush folds the journal into the
// snapshot and removes it; later saves start a new journal over it.
func TestJournalCompactionThenReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	jpath := statefile.JournalPath(path)
	l, k := openLedger(t, path)
	for i := range 10 {
		l.Set("k"+strconv.Itoa(i), "v")
		mustSave(t, k)
	}
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(jpath); !os.IsNotExist(err) {
		t.Errorf("journal left after Flush (stat: %v)", err)
	}
	var snap map[string]string
	if err := json.Unmarshal([]byte(readState(t, path)), &snap); err != nil {
		t.Fatal(err)
	}
	wantObjects(t, snap, l.Objects())

	l.Set("k1", "w")
	mustSave(t, k)
	again, _ := openLedger(t, path)
	wantObjects(t, again.Objects(), l.Objects())
}

// TestJournalCrashBetweenSnapshotAndRemoval: the journal names the
// snapshot it extends, so one left behind by a crash after a newer
// snapshot is ignored; replaying it would put back "a": "1" over the
// snapshot's "a": "2", which a returned Flush had made durable.
func TestJournalCrashBetweenSnapshotAndRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	jpath := statefile.JournalPath(path)
	l, k := openLedger(t, path)
	l.Set("a", "1")
	l.Set("b", "1")
	mustSave(t, k)
	stale, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	l.Set("a", "2")
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jpath, stale, 0o644); err != nil { // the crash
		t.Fatal(err)
	}

	again, k2 := openLedger(t, path)
	wantObjects(t, again.Objects(), map[string]string{"a": "2", "b": "1"})
	again.Set("c", "1") // the next save replaces the stale journal
	mustSave(t, k2)
	third, _ := openLedger(t, path)
	wantObjects(t, third.Objects(), map[string]string{"a": "2", "b": "1", "c": "1"})
}

// TestJournalCompactsWhenItOutgrowsTheSnapshot: Save folds the journal
// into a snapshot once it is larger than the last one (past a floor), so
// the journal, and the time to load it, stay bounded.
func TestJournalCompactsWhenItOutgrowsTheSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	jpath := statefile.JournalPath(path)
	l, k := openLedger(t, path)
	big := string(bytes.Repeat([]byte("x"), 64<<10))
	for i := range 40 { // 2.5 MiB of records over one 64 KiB object
		l.Set("a", big+strconv.Itoa(i))
		mustSave(t, k)
	}
	if got := fileSize(t, jpath); got > 2<<20 {
		t.Errorf("journal of %d bytes, want it folded into the snapshot past 1 MiB", got)
	}
	if fileSize(t, path) == 0 {
		t.Error("no snapshot written")
	}
	again, _ := openLedger(t, path)
	wantObjects(t, again.Objects(), l.Objects())
}

// TestJournalSaveCostsTheChangeNotTheAccount: after an account of n
// objects is saved, a save of one changed object appends the same bytes
// whatever n is.
func TestJournalSaveCostsTheChangeNotTheAccount(t *testing.T) {
	appended := map[int]int64{}
	for _, n := range []int{10, 20000} {
		path := filepath.Join(t.TempDir(), "ledger.json")
		jpath := statefile.JournalPath(path)
		l, k := openLedger(t, path)
		for i := range n {
			l.Set("k"+strconv.Itoa(i), "value")
		}
		mustSave(t, k)
		before := fileSize(t, jpath)
		l.Set("k1", "changed")
		mustSave(t, k)
		appended[n] = fileSize(t, jpath) - before
	}
	if appended[10] <= 0 || appended[20000] != appended[10] {
		t.Errorf("one changed object appended %v bytes (by account size), want the same small record", appended)
	}
}

// TestJournalIgnoresAZeroFilledTail: a crash can leave a file extended
// with zeros; a zero frame passes CRC-32C (the checksum of nothing is 0),
// so it must not be read as a record, or the emulator would refuse to
// start.
func TestJournalIgnoresAZeroFilledTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	jpath := statefile.JournalPath(path)
	l, k := openLedger(t, path)
	l.Set("a", "1")
	mustSave(t, k)
	f, err := os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	again, _ := openLedger(t, path)
	wantObjects(t, again.Objects(), map[string]string{"a": "1"})
}

// TestJournalFailedSnapshotKeepsItsChanges: a snapshot unmarks the changes
// it is about to write; when the write fails, the next Save must write a
// snapshot rather than an empty record, or it would report as saved a
// change that is on disk nowhere.
func TestJournalFailedSnapshotKeepsItsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l, k := openLedger(t, path)
	l.Set("a", "1")
	mustSave(t, k)

	// The snapshot cannot land: its path is a folder that is not empty.
	if err := os.MkdirAll(filepath.Join(path, "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.Set("b", "1")
	<-l.Changes() // as if the keeper had seen the signal: Flush only compacts
	if err := k.Flush(); err == nil {
		t.Fatal("Flush succeeded with the snapshot path blocked")
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	mustSave(t, k) // nothing marked changed any more: must snapshot anyway

	again, _ := openLedger(t, path)
	wantObjects(t, again.Objects(), map[string]string{"a": "1", "b": "1"})
}

// TestJournalQuietCompactionIsProportional: a quiet interval folds a small
// account's journal at once, but rewrites a large account (past 1 MiB)
// only once its journal is an eighth of the snapshot, so an account fed in
// bursts does not rewrite itself whole after every burst; a clean stop
// still folds everything.
func TestJournalQuietCompactionIsProportional(t *testing.T) {
	small := filepath.Join(t.TempDir(), "small.json")
	l, k := openLedger(t, small)
	l.Set("a", "1")
	mustSave(t, k)
	if err := statefile.CompactIdle(k); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, statefile.JournalPath(small)); n != 0 {
		t.Errorf("a small account's journal (%d bytes) was not folded when quiet", n)
	}

	large := filepath.Join(t.TempDir(), "large.json")
	jpath := statefile.JournalPath(large)
	l, k = openLedger(t, large)
	obj := string(bytes.Repeat([]byte("x"), 16<<10))
	for i := range 128 { // a 2 MiB snapshot
		l.Set("big"+strconv.Itoa(i), obj)
	}
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	snap := fileSize(t, large)
	if snap < 2<<20 {
		t.Fatalf("snapshot of %d bytes, want over 2 MiB", snap)
	}
	l.Set("big0", obj+"!") // a journal of one object: 1/128 of the account
	mustSave(t, k)
	before := fileSize(t, jpath)
	if err := statefile.CompactIdle(k); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, jpath); got != before || fileSize(t, large) != snap {
		t.Errorf("quiet with a journal of %d bytes over a %d-byte snapshot: journal now %d bytes, snapshot %d; want both untouched",
			before, snap, got, fileSize(t, large))
	}
	for i := 1; fileSize(t, jpath)*8 < snap; i++ { // changes until the journal is an eighth of the snapshot
		l.Set("big"+strconv.Itoa(i), obj+"!")
		mustSave(t, k)
	}
	if err := statefile.CompactIdle(k); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, jpath); n != 0 {
		t.Errorf("a journal an eighth of the snapshot (%d bytes) was not folded when quiet", n)
	}
	l.Set("big1", obj+"?")
	mustSave(t, k)
	if err := k.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := fileSize(t, jpath); n != 0 {
		t.Errorf("Flush left a journal of %d bytes", n)
	}
	again, _ := openLedger(t, large)
	wantObjects(t, again.Objects(), l.Objects())
}
