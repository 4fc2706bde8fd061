// Package pgcluster runs a private PostgreSQL server from the machine's own
// binaries (initdb, postgres), for `switchyard dev` and tests when no
// DATABASE_URL is given. It listens on 127.0.0.1 only, with trust auth, and
// fsync off: it is for disposable local data, never for production.
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
func Start(ctx context.Context, dir string, port int, getenv func(string) string) (*Cluster, error) {
	bin, err := FindBinDir(getenv)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	if cred != nil && !reachable(filepath.Dir(dir), cred) {
		// The postgres user cannot reach dir (say, a checkout under /root):
		// keep the cluster in a stable per-dir place it can reach instead.
		sum := sha256.Sum256([]byte(dir))
		base := filepath.Join(os.TempDir(), "switchyard-pg-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(base, 0o755); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		dir = filepath.Join(base, "data")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgcluster: chown data dir: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgcluster: initdb: %w: %s", err, lastLines(out))
		}
	}
	if port <= 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	defer logFile.Close()
	if cred != nil {
		_ = os.Chown(logFile.Name(), int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C to the terminal reaches us, and we stop the
	// server in order instead of it dying mid-write.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c := &Cluster{Dir: dir, Port: port, cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return c, nil
		}
		select {
		case werr := <-c.done:
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return nil, fmt.Errorf("pgcluster: postgres exited (%v): %s", werr, lastLines(log))
		case <-ctx.Done():
			_ = c.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = c.Stop()
			return nil, fmt.Errorf("pgcluster: server not accepting connections after 30s: %w", err)
		}
	}
}

// URL returns a connection URL for database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Stop asks the server for a fast shutdown and waits for it.
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
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("pgcluster: postgres did not stop within 20s; killed")
	}
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
