package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startTied starts cmd so that the kernel sends it sig when this process
// dies, however it dies (kill -9 included), and returns a channel that gets
// cmd.Wait's result. cmd.SysProcAttr must be set.
//
// Linux sends the parent-death signal when the thread that forked the
// child exits, not the process: a goroutine that started it and then moved
// on would leave the child tied to a thread the Go runtime may retire. So
// the goroutine that starts cmd stays locked to its thread until cmd has
// exited.
func startTied(cmd *exec.Cmd, sig syscall.Signal) (chan error, error) {
	cmd.SysProcAttr.Pdeathsig = sig
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// serverProcs returns the running postgres processes whose working
// directory is dir: a server's postmaster and backends all work in its data
// directory. Processes the caller may not inspect are not seen; zombies
// (no working directory any more) neither.
func serverProcs(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if isServerOf(pid, dir) == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// errNotServer says a live process is not a PostgreSQL server of the
// directory in question.
var errNotServer = errors.New("not a PostgreSQL process of this directory")

// isServerOf returns nil when pid is a postgres process working in dir,
// errNotServer when it is another process, fs.ErrNotExist when no process
// has the pid (or only a zombie), and another error when pid cannot be
// inspected (another user's process, for a caller that is not root).
func isServerOf(pid int, dir string) error {
	proc := "/proc/" + strconv.Itoa(pid)
	cwd, err := os.Readlink(proc + "/cwd")
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(proc); errors.Is(err, fs.ErrNotExist) {
			return fs.ErrNotExist
		}
		// A zombie, or a process exiting: no working directory left.
		if state, _, _ := procStat(pid); state == "Z" || state == "X" {
			return fs.ErrNotExist
		}
		return errNotServer
	}
	if err != nil {
		return err
	}
	if cwd != dir {
		return errNotServer
	}
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return err
	}
	// "postgres (deleted)" after an upgrade replaced the binary.
	if !strings.HasPrefix(filepath.Base(exe), "postgres") {
		return errNotServer
	}
	return nil
}

// procStat returns the state and parent pid of pid from /proc/<pid>/stat.
func procStat(pid int) (state string, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err
}

// cmdline is pid's command line for an error message.
func cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return "unknown command"
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// reclaim makes dir free for a new server after whatever stopped the last
// one:
//
//   - no postmaster.pid: nothing to do;
//   - the postmaster.pid's pid is a server of dir whose starter still runs
//     (its parent is the pid in ownerFile): an error naming both, dir is in use;
//   - it is a server of dir whose starter is gone (an orphan: a hub killed
//     before its server was tied to it, or an older switchyard): a fast
//     shutdown, then an immediate one;
//   - backends left by a postmaster killed with SIGKILL (they keep its
//     shared memory, and PostgreSQL refuses to start while they run): an
//     immediate shutdown each;
//   - the pid is gone, or another program's now: the file is removed
//     (PostgreSQL refuses to start while the pid in it is alive, whatever
//     the process).
//
// Only postgres processes working in dir are ever signalled; a pid that
// cannot be inspected is an error, never a guess.
func reclaim(ctx context.Context, dir string) error {
	pidPath := filepath.Join(dir, "postmaster.pid")
	b, err := os.ReadFile(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	if pid > 0 {
		switch err := isServerOf(pid, dir); {
		case err == nil:
			_, ppid, _ := procStat(pid)
			owner := readOwner(dir)
			// Without an owner file (a server an older switchyard started)
			// only init's adoption tells an orphan.
			if (owner != 0 && ppid == owner) || (owner == 0 && ppid != 1) {
				return fmt.Errorf("pgcluster: %s is in use by PostgreSQL (pid %d), started by pid %d (%s), which still runs: stop it, or use another data folder", dir, pid, ppid, cmdline(ppid))
			}
			_ = syscall.Kill(pid, syscall.SIGINT) // fast shutdown: clean, no recovery at next start
			if !waitGone(ctx, dir, 10*time.Second) {
				_ = syscall.Kill(pid, syscall.SIGQUIT)
			}
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotServer):
		default:
			return fmt.Errorf("pgcluster: %s names pid %d, which this user cannot inspect (%v); if it is no PostgreSQL of %s, remove the file", pidPath, pid, err, dir)
		}
	}
	for _, p := range serverProcs(dir) {
		_ = syscall.Kill(p, syscall.SIGQUIT)
	}
	if !waitGone(ctx, dir, 10*time.Second) {
		return fmt.Errorf("pgcluster: PostgreSQL processes %v of %s did not stop; stop them, or use another data folder", serverProcs(dir), dir)
	}
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pgcluster: remove stale %s: %w", pidPath, err)
	}
	return nil
}

// waitGone polls until no postgres process works in dir, for at most d.
func waitGone(ctx context.Context, dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for len(serverProcs(dir)) > 0 {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// readOwner returns the pid in dir's ownerFile, 0 when there is none.
func readOwner(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
