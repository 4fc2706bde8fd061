package pgcluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
)

// starterEnv names the data directory a re-executed test binary runs a
// cluster in (TestHelperStarter), standing in for `switchyard dev`.
const starterEnv = "PGCLUSTER_TEST_STARTER_DIR"

// TestHelperStarter is not a test: run by TestServerDiesWithItsStarter in a
// child process, it starts a cluster, writes a row, says "ready" and waits
// to be killed.
func TestHelperStarter(t *testing.T) {
	dir := os.Getenv(starterEnv)
	if dir == "" {
		t.Skip("helper process for TestServerDiesWithItsStarter")
	}
	ctx := context.Background()
	c, err := pgcluster.Start(ctx, dir, 0, os.Getenv)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err == nil {
		_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY); INSERT INTO probe VALUES (1)`)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {}
}

// tempDataDir returns a data directory in a new temporary folder that the
// postgres user can reach (the server runs as postgres when tests run as
// root).
func tempDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range processes(t, filepath.Join(dir, "data")) {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
		_ = os.RemoveAll(dir)
	})
	return filepath.Join(dir, "data")
}

func processes(t *testing.T, dir string) []int {
	t.Helper()
	pids, err := pgcluster.Processes(dir)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitNoServer polls until no process of dir's server runs, for at most d.
func waitNoServer(t *testing.T, dir string, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		pids := processes(t, dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: PostgreSQL processes %v of %s still run after %s", what, pids, dir, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServerDiesWithItsStarter is `kill -9` of `switchyard dev`: a process
// that started a cluster is killed, and the server must go with it (not
// linger as an orphan holding the data directory); the next Start on the
// directory finds the data written before the kill.
func TestServerDiesWithItsStarter(t *testing.T) {
	t.Parallel()
	dir := tempDataDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStarter$", "-test.v")
	cmd.Env = append(os.Environ(), starterEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); l == "ready" || strings.HasPrefix(l, "error:") {
				ready <- l
			}
		}
		close(ready)
	}()
	select {
	case l := <-ready:
		if l != "ready" {
			t.Fatalf("the starter process: %s\nThis test needs the PostgreSQL server binaries (Debian: apt-get install postgresql, or set PG_BINDIR).", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the starter process did not start its cluster within 60s")
	}
	if len(processes(t, dir)) == 0 {
		t.Fatal("Processes finds no server while the starter's cluster runs")
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitNoServer(t, dir, 10*time.Second, "after kill -9 of the process that started the server")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgcluster.Start(ctx, dir, 0, os.Getenv)
	if err != nil {
		t.Fatalf("Start after the starter was killed: %v", err)
	}
	defer c.Stop()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM probe`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the restart the row written before the kill reads %d, %v; want 1", n, err)
	}
}

// startOrphan starts a server of dir the way a starter that is gone left
// it: through a shell that exits at once, so the postmaster is adopted by
// init (or a subreaper) and tied to nothing. It returns the postmaster's
// pid and the dead shell's.
func startOrphan(t *testing.T, dir string) (pid, starter int) {
	t.Helper()
	bin, err := pgcluster.FindBinDir(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("/bin/sh", "-c", `"$0" "$@" >>"$PGDATA_LOG" 2>&1 </dev/null & echo $!`,
		filepath.Join(bin, "postgres"), "-D", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=")
	sh.Env = append(os.Environ(), "PGDATA_LOG="+filepath.Join(dir, "server.log"))
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		sh.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("start an orphan server: %v", err)
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
		t.Fatalf("orphan pid %q: %v", out, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
		if first, _, _ := strings.Cut(string(b), "\n"); first == strconv.Itoa(pid) && slices.Contains(processes(t, dir), pid) {
			return pid, sh.Process.Pid
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("the orphan server (pid %d) did not start:\n%s", pid, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// initCluster makes a cluster in dir with a row in table probe, and stops it.
func initCluster(t *testing.T, ctx context.Context, dir string) {
	t.Helper()
	c, err := pgcluster.Start(ctx, dir, 0, os.Getenv)
	if err != nil {
		t.Fatalf("Start: %v\nThis test needs the PostgreSQL server binaries (Debian: apt-get install postgresql, or set PG_BINDIR).", err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE probe (id int PRIMARY KEY); INSERT INTO probe VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
}

// checkProbe starts dir's cluster and checks the row initCluster wrote.
func checkProbe(t *testing.T, ctx context.Context, dir, what string) {
	t.Helper()
	c, err := pgcluster.Start(ctx, dir, 0, os.Getenv)
	if err != nil {
		t.Fatalf("Start %s: %v", what, err)
	}
	defer c.Stop()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM probe`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("Start %s: probe holds %d rows (%v), want 1", what, n, err)
	}
}

// TestStartRecoversAStaleCluster is the next `make run` after a kill -9
// that left the data directory behind: a server whose starter is gone is
// stopped, a postmaster.pid naming a dead process or an unrelated one is
// removed (and the unrelated process left alone), and a server whose
// starter still runs is an error that says so.
func TestStartRecoversAStaleCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	dir := tempDataDir(t)
	initCluster(t, ctx, dir)
	pidFile := filepath.Join(dir, "postmaster.pid")

	t.Run("orphaned server", func(t *testing.T) {
		pid, starter := startOrphan(t, dir)
		if err := os.WriteFile(filepath.Join(dir, pgcluster.OwnerFile), []byte(strconv.Itoa(starter)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		checkProbe(t, ctx, dir, "with an orphaned server holding the directory")
		if slices.Contains(processes(t, dir), pid) {
			t.Errorf("the orphaned postmaster %d still runs", pid)
		}
	})

	t.Run("postmaster.pid of a dead process", func(t *testing.T) {
		pid, _ := startOrphan(t, dir)
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		// The server dies without removing its file, as after a power cut.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitNoServer(t, dir, 10*time.Second, "SIGKILL of the postmaster")
		if err := os.WriteFile(pidFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		checkProbe(t, ctx, dir, "with the postmaster.pid of a dead server")
	})

	t.Run("postmaster.pid naming an unrelated process", func(t *testing.T) {
		other := exec.Command("sleep", "60")
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
		pid, _ := startOrphan(t, dir)
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitNoServer(t, dir, 10*time.Second, "SIGKILL of the postmaster")
		// The dead server's pid, reused by another program.
		_, rest, _ := strings.Cut(string(b), "\n")
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)+"\n"+rest), 0o600); err != nil {
			t.Fatal(err)
		}
		checkProbe(t, ctx, dir, "with a postmaster.pid naming an unrelated process")
		if err := other.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("the unrelated process %d named in postmaster.pid was signalled: %v", other.Process.Pid, err)
		}
	})

	t.Run("server in use", func(t *testing.T) {
		c, err := pgcluster.Start(ctx, dir, 0, os.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		_, err = pgcluster.Start(ctx, dir, 0, os.Getenv)
		if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
			t.Fatalf("a second Start on a directory in use: %v; want an error naming this process (%d) as the server's starter", err, os.Getpid())
		}
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatalf("the first server stopped serving after the refused second Start: %v", err)
		}
		_ = conn.Close(ctx)
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("out of time")
	}
}
