package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/stripesig"
)

// runCLI runs the CLI with env only and returns its outputs.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, config.MapEnv(env), nil, &out, &errOut)
	return out.String(), errOut.String(), code
}

// jsonError parses the one JSON error object of a --json run's stderr.
func jsonError(t *testing.T, stderr string) (code, message string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(stderr))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || dec.More() {
		t.Fatalf("stderr is not one JSON error object (%v): %q", err, stderr)
	}
	return e.Error.Code, e.Error.Message
}

// TestHelpIsPrintedOnceOnStdout: every way of asking for help exits 0 with
// the help on stdout, once, and nothing on stderr.
func TestHelpIsPrintedOnceOnStdout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Exit codes:"},
		{[]string{"--help"}, "Exit codes:"},
		{[]string{"help"}, "Exit codes:"},
		{[]string{"help", "send"}, "switchyard send [flags] FILE|-"},
		{[]string{"send", "-h"}, "switchyard send [flags] FILE|-"},
		{[]string{"dev", "--help"}, "--data-dir string"},
		{[]string{"dlq", "--help"}, "switchyard dlq [command]"},
		{[]string{"dlq", "show", "-h"}, "--payload"},
		{[]string{"trigger", "-h"}, "--override"},
		{[]string{"resend", "-h"}, "switchyard resend [flags] evt_…"},
		{[]string{"status", "-h"}, "Exits 3"},
		{[]string{"version", "-h"}, "switchyard version [flags]"},
		{[]string{"completion", "bash", "-h"}, "bash"},
	} {
		out, errOut, code := runCLI(t, nil, tc.args...)
		if code != exitOK || errOut != "" || !strings.Contains(out, tc.want) || strings.Count(out, "Usage:") != 1 {
			t.Errorf("%v: exit %d, want 0 with the help once on stdout containing %q\nstdout: %s\nstderr: %s", tc.args, code, tc.want, out, errOut)
		}
	}
	out, _, _ := runCLI(t, nil, "--help")
	for _, cmd := range []string{"dev", "migrate", "send", "trigger", "resend", "dlq", "rebuild", "reconcile", "trace", "status", "doctor", "replay-key", "version", "completion"} {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("switchyard --help does not list %s:\n%s", cmd, out)
		}
	}
	if out, _, _ := runCLI(t, nil, "dlq", "show", "-h"); !strings.Contains(out, "Flags:") ||
		strings.Contains(out[strings.Index(out, "Flags:"):], "--note") || strings.Contains(out, "--data ") {
		t.Errorf("dlq show's help lists flags it does not use (--note) or old spellings (--data):\n%s", out)
	}
}

// TestUsageErrors: a wrong command line exits 2 with the reason and the
// usage line on stderr and nothing on stdout; with --json, the reason is
// one JSON object with code "usage".
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"send"}, "want one event FILE"},
		{[]string{"send", "--no-such-flag", "x"}, "unknown flag: --no-such-flag"},
		{[]string{"send", "-n", "0", "x"}, "-n and -c must be at least 1"},
		{[]string{"status", "extra"}, `unexpected argument "extra"`},
		{[]string{"dlq"}, "no subcommand"},
		{[]string{"dlq", "show"}, "want one dead-letter SEQ"},
		{[]string{"dlq", "list", "--class", "bogus"}, `--class "bogus"`},
		{[]string{"trigger"}, "want one event type"},
		{[]string{"trigger", "no.such.event"}, `no event type "no.such.event"`},
		{[]string{"trigger", "customer.created", "--override", "nopath"}, "want PATH=VALUE"},
		{[]string{"resend", "cus_123"}, `"cus_123" is not an event id`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
	} {
		out, errOut, code := runCLI(t, nil, tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "usage: switchyard") {
			t.Errorf("%v: exit %d, want 2 with %q and the usage line on stderr only\nstdout: %s\nstderr: %s", tc.args, code, tc.want, out, errOut)
		}
		if len(tc.args) == 0 || tc.args[0] == "frobnicate" || tc.args[0] == "dlq" && len(tc.args) == 1 {
			continue // no command, or one without --json
		}
		out, errOut, code = runCLI(t, nil, append(tc.args, "--json")...)
		if code != exitUsage || out != "" {
			t.Errorf("%v --json: exit %d, stdout %q; want 2 and nothing on stdout", tc.args, code, out)
			continue
		}
		if c, msg := jsonError(t, errOut); c != codeUsage || !strings.Contains(msg, tc.want) {
			t.Errorf("%v --json: error %s %q, want usage %q", tc.args, c, msg, tc.want)
		}
	}
}

// TestJSONErrorsCarryTheirCode: a command that fails at run time with
// --json prints the error as one JSON object on stderr, coded, and exits 1.
func TestJSONErrorsCarryTheirCode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no ops token", nil, []string{"status", "--json", "--data-dir", dir}, codeUnauthorized},
		{"status API down", map[string]string{"SWITCHYARD_OPS_TOKEN": "tok"}, []string{"trace", "--json", "--ops", "http://127.0.0.1:1", "cus_1"}, codeUnavailable},
		{"no signing secret", nil, []string{"send", "--json", "--data-dir", dir, "-"}, codeInvalid},
		{"gateway down", map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_x"}, []string{"trigger", "--json", "--data-dir", dir, "--webhook-url", "http://127.0.0.1:1/webhooks/stripe", "customer.created"}, codeUnavailable},
		{"no Stripe API", map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_x"}, []string{"resend", "--json", "--data-dir", dir, "evt_1"}, codeInvalid},
	} {
		out, errOut, code := runCLI(t, tc.env, tc.args...)
		if c, msg := jsonError(t, errOut); code != exitFailure || c != tc.want || msg == "" {
			t.Errorf("%s: exit %d, error %s %q; want 1 and %s\nstdout: %s", tc.name, code, c, msg, tc.want, out)
		}
	}
}

// TestOldSpellingsStillWorkWithAWarning: send's --url and --data (now
// --webhook-url and --data-dir) still do what they did, and say what to
// use instead.
func TestOldSpellingsStillWorkWithAWarning(t *testing.T) {
	t.Parallel()
	const secret = "whsec_old_spellings"
	verifier, _ := stripesig.NewVerifier([]string{secret}, 0, nil)
	var verified received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := verifier.Verify(body, r.Header.Get("Stripe-Signature")); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		verified.add(string(body))
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, secretFile), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(file, testkit.StripeEvent(t, "customer.created"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, nil, "send", "--url", srv.URL, "--data", dir, file)
	if code != exitOK || verified.n.Load() != 1 {
		t.Fatalf("send --url --data: exit %d, %d verified\n%s%s", code, verified.n.Load(), out, errOut)
	}
	for _, want := range []string{"--url is deprecated, use --webhook-url", "--data is deprecated, use --data-dir"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not say %q", errOut, want)
		}
	}
	if _, errOut, code := runCLI(t, nil, "send", "--webhook-url", srv.URL, "--data-dir", dir, file); code != exitOK || errOut != "" || verified.n.Load() != 2 {
		t.Errorf("send --webhook-url --data-dir: exit %d, stderr %q, %d verified", code, errOut, verified.n.Load())
	}
	// dlq show's old --data is a switch (now --payload): it takes no value,
	// so the SEQ after it stays the argument (the show then fails to
	// connect: nothing listens on port 1).
	_, errOut, code = runCLI(t, nil, "dlq", "show", "--nats", "nats://127.0.0.1:1", "--data", "5")
	if code != exitFailure || !strings.Contains(errOut, "--data is deprecated, use --payload") || !strings.Contains(errOut, "connect nats://127.0.0.1:1") {
		t.Errorf("dlq show --data 5: exit %d, stderr %q; want the deprecation and a connection failure", code, errOut)
	}
}

// TestVersion: version and --version print the Go version this binary was
// built with, as text and JSON; the VCS stamp is read from the build info.
func TestVersion(t *testing.T) {
	t.Parallel()
	out, errOut, code := runCLI(t, nil, "version", "--json")
	var v versionInfo
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v.Go != runtime.Version() || v.Version == "" {
		t.Fatalf("version --json: exit %d, %+v\n%s%s", code, v, out, errOut)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, code := runCLI(t, nil, args...)
		if code != exitOK || !strings.HasPrefix(out, "switchyard "+v.Version+"\n") || !strings.Contains(out, "go:     "+runtime.Version()) {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}
	got := versionFrom(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261207013800-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-07T01:38:00Z"}, {Key: "vcs.modified", Value: "true"}}})
	want := versionInfo{Version: "v0.0.0-20261207013800-0123456789ab+dirty", Commit: "0123456789abcdef", Date: "2026-12-07T01:38:00Z", Modified: true, Go: "go1.26.8"}
	if got != want {
		t.Errorf("versionFrom = %+v, want %+v", got, want)
	}
}

// TestCompletion: the bash script loads in bash and registers the
// completion; zsh and fish get theirs; dynamic completion (what the
// scripts call) lists the commands, dlq's subcommands and trigger's event
// types.
func TestCompletion(t *testing.T) {
	t.Parallel()
	script, errOut, code := runCLI(t, nil, "completion", "bash")
	if code != exitOK || errOut != "" {
		t.Fatalf("completion bash: exit %d: %s", code, errOut)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to check the bash completion script: install bash")
	}
	path := filepath.Join(t.TempDir(), "switchyard.bash")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := exec.Command(bash, "-c", `source "$1" && complete -p switchyard`, "bash", path).CombinedOutput()
	if err != nil || !strings.Contains(string(loaded), "switchyard") {
		t.Errorf("the bash completion does not load: %v\n%s", err, loaded)
	}
	for _, shell := range []string{"zsh", "fish", "powershell"} {
		if out, _, code := runCLI(t, nil, "completion", shell); code != exitOK || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, no script calling __complete:\n%.300s", shell, code, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", ""}, []string{"dev", "send", "trigger", "resend", "dlq", "status", "doctor", "version", "completion"}},
		{[]string{"__complete", "dlq", ""}, []string{"list", "show", "replay", "discard"}},
		{[]string{"__complete", "trigger", ""}, testkit.StripeEventNames(t)},
		{[]string{"__complete", "send", "--web"}, []string{"--webhook-url"}},
	} {
		out, _, code := runCLI(t, nil, tc.args...)
		lines := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			name, _, _ := strings.Cut(l, "\t")
			lines[name] = true
		}
		for _, w := range tc.want {
			if code != exitOK || !lines[w] {
				t.Errorf("%v: exit %d, %q not offered:\n%s", tc.args, code, w, out)
			}
		}
	}
}
