package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hub is `switchyard dev` running as a child process.
type hub struct {
	proc       *process
	dataDir    string
	ownDir     string // the temporary folder made for this run, if any
	logPath    string
	log        *os.File
	secret     string
	webhookURL string
	natsURL    string
	metrics    map[string]string // service → its /metrics URL
	broker     *process          // the separate NATS server, nil when dev embeds it
}

// process is a child process and its end.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	// Its own process group: a Ctrl-C reaches the soak, which stops its
	// children in order, not all at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// stop sends SIGTERM and waits up to d, then kills.
func (p *process) stop(d time.Duration) (err error, killed bool) {
	select {
	case <-p.exited:
		return p.waitErr, false
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr, false
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return p.waitErr, true
	}
}

// The services whose readiness dev's start waits for, with dev's flag for
// each one's admin address.
var services = []struct{ name, flag string }{
	{"gateway", "--gateway-admin-addr"},
	{"identity", "--identity-addr"},
	{"crm", "--crm-addr"},
	{"support", "--support-addr"},
	{"alerts", "--alerts-addr"},
	{"projector", "--projector-addr"},
}

// hubEnvPrefixes are the variables the hub reads: the soak's hub gets none
// from the caller's environment, so that it runs on its own fresh broker,
// database and the soak's vendors whatever the shell holds.
var hubEnvPrefixes = []string{"NATS_", "DATABASE_URL", "STRIPE_", "HUBSPOT_", "ZENDESK_", "SLACK_", "SUPPORT_",
	"OPS_", "SWITCHYARD_", "GATEWAY_", "IDENTITY_", "CRM_", "ALERTS_", "PROJECTOR_", "OTEL_", "LOG_"}

// startHub builds (unless cfg names one) and starts `switchyard dev` on a
// fresh data folder and free ports, against the soak's vendors v and, with
// cfg.broker "separate", its own NATS server, and waits until every
// service is ready. On error, whatever it started is stopped and a
// temporary folder it made is removed.
func startHub(ctx context.Context, cfg config, v *vendors, stdout io.Writer) (_ *hub, err error) {
	h, err := newHub(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && h.ownDir != "" {
			_ = os.RemoveAll(h.ownDir)
		}
	}()
	binDir := h.binDir()
	bin := cfg.switchyard
	if bin == "" {
		bin = filepath.Join(binDir, "switchyard")
		if err := goBuild(ctx, stdout, bin, "./services/switchyard"); err != nil {
			return nil, err
		}
	}
	if err := h.createLog(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && h.proc == nil {
			h.log.Close()
		}
	}()
	ports, err := freePorts(13)
	if err != nil {
		return nil, err
	}
	args := h.devArgs(ports)
	h.secret = "whsec_soak" + randomHexString(16)
	env := []string{"STRIPE_WEBHOOK_SECRET=" + h.secret, "LOG_LEVEL=warn"}
	if cfg.broker == "separate" {
		if err := h.startSeparateBroker(ctx, stdout, binDir, ports[1]); err != nil {
			return nil, err
		}
		env = append(env, "NATS_URL="+h.natsURL)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(env, hubEnv(v)...)
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if h.proc, err = startProcess(cmd); err != nil {
		return nil, errors.Join(fmt.Errorf("start switchyard dev: %w", err), h.stopBroker())
	}
	if err := h.waitServicesReady(ctx); err != nil {
		return nil, errors.Join(err, h.stop(false, io.Discard))
	}
	return h, nil
}

// newHub is a hub on dataDir, which must not exist yet; with dataDir ""
// it makes a temporary folder (ownDir) and puts the data folder in it.
func newHub(dataDir string) (*hub, error) {
	h := &hub{dataDir: dataDir, metrics: map[string]string{}}
	if h.dataDir == "" {
		var err error
		if h.ownDir, err = os.MkdirTemp("", "switchyard-soak-"); err != nil {
			return nil, err
		}
		h.dataDir = filepath.Join(h.ownDir, "hub")
	} else if _, err := os.Stat(h.dataDir); err == nil {
		return nil, fmt.Errorf("-data %s exists: the soak starts from a fresh data folder", h.dataDir)
	}
	return h, nil
}

// binDir is where the soak builds its binaries: the temporary folder if it
// made one, else beside the data folder.
func (h *hub) binDir() string {
	if h.ownDir != "" {
		return h.ownDir
	}
	return h.dataDir + ".bin"
}

// createLog creates the hub's log file beside its data folder.
func (h *hub) createLog() error {
	if err := os.MkdirAll(filepath.Dir(h.dataDir), 0o755); err != nil {
		return err
	}
	h.logPath = h.dataDir + ".log"
	var err error
	h.log, err = os.Create(h.logPath)
	return err
}

// devArgs are dev's arguments, placing it on ports (13 of them: gateway,
// NATS, ops, three unused vendor emulators, then one admin address per
// service), and record the URLs the soak needs in h.
func (h *hub) devArgs(ports []int) []string {
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	args := []string{"dev", "--data", h.dataDir, "--vendor-limits", "none",
		"--gateway-addr", addr(0), "--nats-port", strconv.Itoa(ports[1]), "--ops-addr", addr(2),
		"--hubspot-addr", addr(3), "--zendesk-addr", addr(4), "--slack-addr", addr(5)} // unused: the vendors are the soak's
	for i, s := range services {
		args = append(args, s.flag, addr(6+i))
		h.metrics[s.name] = "http://" + addr(6+i) + "/metrics"
	}
	h.webhookURL = "http://" + addr(0) + "/webhooks/stripe"
	h.natsURL = "nats://" + addr(1)
	return args
}

// startSeparateBroker builds scripts/bench's natsd into binDir and runs it
// on port, storing beside the data folder, for dev to use instead of its
// embedded server.
func (h *hub) startSeparateBroker(ctx context.Context, stdout io.Writer, binDir string, port int) error {
	natsd := filepath.Join(binDir, "natsd")
	if err := goBuild(ctx, stdout, natsd, "./scripts/bench/cmd/natsd"); err != nil {
		return err
	}
	var err error
	h.broker, err = startBroker(natsd, port, h.dataDir+".nats", h.dataDir+".nats.log")
	return err
}

// hubEnv is the rest of dev's environment: the soak's vendor variables,
// then the caller's environment without the variables the hub reads
// (hubEnvPrefixes).
func hubEnv(v *vendors) []string {
	var env []string
	for k, val := range v.env {
		env = append(env, k+"="+val)
	}
	for _, kv := range os.Environ() {
		if !hasAnyPrefix(kv, hubEnvPrefixes) {
			env = append(env, kv)
		}
	}
	return env
}

// waitServicesReady waits, up to three minutes each, for every service's
// /readyz.
func (h *hub) waitServicesReady(ctx context.Context) error {
	for _, s := range services {
		url := strings.TrimSuffix(h.metrics[s.name], "/metrics") + "/readyz"
		if err := h.waitReady(ctx, url, 3*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func (h *hub) pid() int { return h.proc.cmd.Process.Pid }

// brokerPID is the separate NATS server's pid, 0 when dev embeds it.
func (h *hub) brokerPID() int {
	if h.broker == nil {
		return 0
	}
	return h.broker.cmd.Process.Pid
}

func (h *hub) waitReady(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	c := http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (see %s)", url, d, h.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.proc.exited:
			return fmt.Errorf("switchyard dev exited before it was ready (%v); see %s", h.proc.waitErr, h.logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop ends the hub as Ctrl-C does (SIGTERM, then SIGKILL after a
// minute), then the separate broker, and removes the temporary folder
// after a passing run.
func (h *hub) stop(passed bool, stdout io.Writer) error {
	var err error
	select {
	case <-h.proc.exited:
		err = fmt.Errorf("switchyard dev exited during the soak (%v); see %s", h.proc.waitErr, h.logPath)
	default:
		if werr, killed := h.proc.stop(time.Minute); killed {
			err = fmt.Errorf("switchyard dev did not stop within a minute of SIGTERM; see %s", h.logPath)
		} else if werr != nil {
			err = fmt.Errorf("switchyard dev: %w; see %s", werr, h.logPath)
		}
	}
	h.log.Close()
	err = errors.Join(err, h.stopBroker())
	if passed && err == nil && h.ownDir != "" {
		return os.RemoveAll(h.ownDir)
	}
	fmt.Fprintf(stdout, "soak: the hub's data folder and log are kept: %s, %s\n", h.dataDir, h.logPath)
	return err
}

func (h *hub) stopBroker() error {
	if h.broker == nil {
		return nil
	}
	if err, killed := h.broker.stop(30 * time.Second); killed || err != nil {
		return fmt.Errorf("the separate NATS server did not stop cleanly (killed: %v): %v", killed, err)
	}
	return nil
}

// startBroker runs scripts/bench's natsd (JetStream, file storage) on port
// and waits for its "natsd ready" line.
func startBroker(bin string, port int, store, logPath string) (*process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-port", strconv.Itoa(port), "-store", store)
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	p, err := startProcess(cmd)
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("start natsd: %w", err)
	}
	ready := make(chan bool, 1)
	go func() {
		defer log.Close()
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && strings.HasPrefix(sc.Text(), "natsd ready") {
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if ok {
			return p, nil
		}
	case <-time.After(30 * time.Second):
	}
	err, _ = p.stop(5 * time.Second)
	return nil, fmt.Errorf("natsd not ready within 30s (%v); see %s", err, logPath)
}

// goBuild builds pkg (relative to the repository root) into out.
func goBuild(ctx context.Context, stdout io.Writer, out, pkg string) error {
	fmt.Fprintln(stdout, "soak: go build -o", out, pkg)
	build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build %s (run from the repository root, or set -switchyard): %w", pkg, err)
	}
	return nil
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func randomHexString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
