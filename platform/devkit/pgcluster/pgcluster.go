// Package pgcluster runs a private PostgreSQL server from the machine's own
// binaries (initdb, postgres), for `switchyard dev` and tests when no
// DATABASE_URL is given. It listens on 127.0.0.1 only, with trust auth, and
// fsync off: it is for disposable local data, never for production. Its
// commits survive the death of any process (the server's included), not
// the machine's.
//
// PostgreSQL refuses to run as root; when the caller is root the server runs
// as the `postgres` system user, which owns the data directory.
package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running private server.
type Cluster struct {
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan error
}

// FindBinDir locates the directory holding initdb and postgres: PG_BINDIR,
// then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin, then PATH.
func FindBinDir(getenv func(string) string) (string, error) {
	var tried []string
	check := func(dir string) bool {
		tried = append(tried, dir)
		_, err := os.Stat(filepath.Join(dir, "initdb"))
		return err == nil
	}
	// PG_BINDIR: the folder holding initdb and postgres for a private cluster (unset: found automatically)
	if d := getenv("PG_BINDIR"); d != "" && check(d) {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); check(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if check(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found (tried %v and PATH); install them (Debian: apt-get install postgresql) or set DATABASE_URL", tried)
}

func pgVersion(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises dir if it holds no cluster yet and starts a server on a
// free 127.0.0.1 port (or port, when > 0). It returns once the server accepts
// connections.
//
// The server dies with the process that started it, even one killed with
// SIGKILL (on Linux: the kernel sends it SIGQUIT, PostgreSQL's immediate
// shutdown, and the next start replays the WAL). A server of dir left
// running by a process that is gone is stopped first; a postmaster.pid
// whose server is gone is removed. A server of dir whose starter still
// runs is an error that names both.
func Start(ctx context.Context, dir string, port int, getenv func(string) string) (*Cluster, error) {
	bin, err := FindBinDir(getenv)
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	if dir, err = prepareDataDir(ctx, bin, dir, cred); err != nil {
		return nil, err
	}
	if port <= 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	c, err := launch(bin, dir, port, cred)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// prepareDataDir makes dir ready for a server: placed where cred's user
// can reach it, created and owned by that user, symlinks resolved, any
// leftover server of it reclaimed, and initialized on first use. It
// returns the directory to run the server in.
func prepareDataDir(ctx context.Context, bin, dir string, cred *syscall.Credential) (string, error) {
	dir, err := place(dir, cred)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", fmt.Errorf("pgcluster: chown data dir: %w", err)
		}
	}
	// /proc names a process's working directory with symlinks resolved.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if err := reclaim(ctx, dir); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		if err := initdb(ctx, bin, dir, cred); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// launch starts postgres on dir and port, logging to dir/server.log, tied
// to this process (see Start). It does not wait for the server to accept
// connections.
func launch(bin, dir string, port int, cred *syscall.Credential) (*Cluster, error) {
	logFile, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	// The started server holds its own descriptor of the log.
	defer logFile.Close()
	if cred != nil {
		_ = os.Chown(logFile.Name(), int(cred.Uid), int(cred.Gid))
	}
	// The starter's pid, for reclaim to tell an orphan (its parent is no
	// longer the starter) from a server in use. Written before the server
	// starts, so no server of ours runs without it.
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	// fsync off: disposable data need not survive the machine crashing.
	// synchronous_commit stays on: with fsync off it costs a write(2) per
	// commit, and it is what makes a commit outlive the server's own death
	// (a kill -9, or the immediate shutdown when the hub dies); off, the
	// last commits wait in shared memory for the WAL writer and die with it,
	// and a ledger that forgets an acked effect redoes it.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C to the terminal reaches us, and we stop the
	// server in order instead of it dying mid-write. Dying with us is
	// startTied's job (the group shields it from the terminal only).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	c := &Cluster{Dir: dir, Port: port, cmd: cmd}
	if c.done, err = startTied(cmd, syscall.SIGQUIT); err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	return c, nil
}

// waitReady polls until the server accepts connections. If the server
// exits first, the error carries the end of its log; if ctx ends or 30s
// pass first, the server is stopped.
func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case werr := <-c.done:
			log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
			return fmt.Errorf("pgcluster: postgres exited (%v): %s", werr, lastLines(log))
		case <-ctx.Done():
			_ = c.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = c.Stop()
			return fmt.Errorf("pgcluster: server not accepting connections after 30s: %w", err)
		}
	}
}

// Processes returns the ids of the running processes of the server Start
// runs for dir: its postmaster and backends. It sees only processes the
// caller may inspect (every one, as root), and none on systems other than
// Linux. Tests use it to prove a server did not outlive its starter.
func Processes(dir string) ([]int, error) {
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	if dir, err = place(dir, cred); err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return serverProcs(dir), nil
}

// ownerFile, in the data directory, holds the pid of the process that
// started the server (PostgreSQL ignores files it does not know there).
const ownerFile = "switchyard-owner.pid"

// place returns where the cluster for dir lives: dir itself (absolute), or,
// when the server runs as the postgres user and that user cannot reach dir
// (say, a checkout under /root), a stable per-dir place it can reach.
func place(dir string, cred *syscall.Credential) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if cred == nil || reachable(filepath.Dir(dir), cred) {
		return dir, nil
	}
	sum := sha256.Sum256([]byte(dir))
	base := filepath.Join(os.TempDir(), "switchyard-pg-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	return filepath.Join(base, "data"), nil
}

// initdb makes a new cluster in dir. It runs in a sibling folder renamed
// into place when done, so an initdb killed half way (with its starter)
// leaves no half cluster that looks whole: the next start begins again.
func initdb(ctx context.Context, bin, dir string, cred *syscall.Credential) error {
	tmp := dir + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("pgcluster: remove an unfinished initdb: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if cred != nil {
		if err := os.Chown(tmp, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgcluster: chown data dir: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", tmp, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	done, err := startTied(cmd, syscall.SIGKILL)
	if err == nil {
		err = <-done
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("pgcluster: initdb: %w: %s", err, lastLines([]byte(out.String())))
	}
	// dir is the empty folder Start made, or one that holds files but no
	// cluster: never delete those.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("pgcluster: %s holds files but no cluster (no PG_VERSION); move it away to start a new one: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// URL returns a connection URL for database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Stop asks the server for a fast shutdown and waits for it; after 20s it
// orders an immediate one (SIGQUIT: the postmaster takes its backends
// down with it, where SIGKILL would leave them running).
func (c *Cluster) Stop() error {
	if c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-c.done:
		c.done <- err
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	return fmt.Errorf("pgcluster: postgres did not stop within 20s; stopped at once (SIGQUIT)")
}

func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root needs a 'postgres' system user to own the server: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachable reports whether the user in cred can traverse every directory
// from / down to dir.
func reachable(dir string, cred *syscall.Credential) bool {
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			return false
		}
		mode := st.Mode
		ok := mode&0o001 != 0 ||
			(st.Gid == cred.Gid && mode&0o010 != 0) ||
			(st.Uid == cred.Uid && mode&0o100 != 0)
		if !ok {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on, for a
// child process or a service under test to bind a moment later. It picks
// below the kernel's ephemeral range (32768 and up on Linux): a port the
// kernel handed out with :0 is free again once probed, and the next outgoing
// connection on this machine may take it as its local port before the caller
// binds ("address already in use"). Random picks below the range collide
// only with another caller choosing the same port in the same instant.
func FreePort() (int, error) {
	for i := 0; i < 50; i++ {
		port := 20000 + mrand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
