package main

// What every command shares, in production builds too (dev.go is left out of
// those by the nodev tag): exit codes, usage errors and how errors are
// printed (text, or JSON with --json), the one spelling of each shared flag,
// how a command finds the dev hub's files and logs in to NATS, and small
// address helpers.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// Exit codes, documented in `switchyard --help` and docs/operations.md.
const (
	exitOK        = 0
	exitFailure   = 1 // the command ran and failed
	exitUsage     = 2 // a wrong command, flag or argument: nothing was done
	exitUnhealthy = 3 // status or doctor ran and found the hub unhealthy / not ready
)

// Error codes of the JSON error object, {"error":{"code","message"}}.
const (
	codeUsage        = "usage"
	codeInvalid      = "invalid"      // the input or a vendor refused it as invalid
	codeNotFound     = "not_found"    // what was named does not exist
	codeUnauthorized = "unauthorized" // a key or token was refused
	codeUnavailable  = "unavailable"  // a service did not answer: retry later
	codeUnhealthy    = "unhealthy"    // status/doctor: the checks ran and some failed
	codeInternal     = "internal"     // anything else
)

// errUsage marks usage errors: errors.Is(err, errUsage) holds for every
// *usageError.
var errUsage = errors.New("usage")

// usageError is a wrong command line, with what is wrong.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

// codedError gives an error its code in the JSON error vocabulary.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code string, err error) error { return &codedError{code: code, err: err} }

// errorCode classifies err into the JSON error vocabulary; unknown is
// internal.
func errorCode(err error) string {
	var coded *codedError
	var urlErr *url.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, errUsage):
		return codeUsage
	case errors.As(err, &coded):
		return coded.code
	case errors.Is(err, errUnhealthy), errors.Is(err, errNotReady):
		return codeUnhealthy
	case errors.Is(err, deadletter.ErrNotFound):
		return codeNotFound
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrNoServers),
		errors.As(err, &urlErr), errors.As(err, &opErr):
		return codeUnavailable
	}
	return codeInternal
}

// exitCode is the process exit code for an error's code.
func exitCode(code string) int {
	switch code {
	case codeUsage:
		return exitUsage
	case codeUnhealthy:
		return exitUnhealthy
	}
	return exitFailure
}

// cliIO is what a run gives its commands: the environment and the streams.
type cliIO struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// fail prints err once, on stderr: as the JSON error object when cmd was
// asked for --json, else as text (with the usage line for a usage error);
// and returns the exit code.
func (c *cliIO) fail(cmd *cobra.Command, args []string, err error) int {
	code := errorCode(err)
	if jsonRequested(cmd, args) {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		e.Error.Code, e.Error.Message = code, err.Error()
		b, _ := json.Marshal(e)
		fmt.Fprintf(c.stderr, "%s\n", b)
		return exitCode(code)
	}
	fmt.Fprintf(c.stderr, "%s: %v\n", cmd.CommandPath(), err)
	if code == codeUsage {
		fmt.Fprintf(c.stderr, "usage: %s\nRun '%s --help' for its flags.\n", cmd.UseLine(), cmd.CommandPath())
	}
	return exitCode(code)
}

// jsonRequested reports whether --json was given to cmd: parsed, or on the
// command line when parsing stopped before it.
func jsonRequested(cmd *cobra.Command, args []string) bool {
	f := cmd.Flags().Lookup("json")
	if f == nil {
		return false
	}
	if f.Changed {
		return f.Value.String() == "true"
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// exactArgs is cobra.ExactArgs as a usage error naming what is wanted.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

// deprecatedAnnotation marks a hidden flag as the old spelling of another.
const deprecatedAnnotation = "switchyard-deprecated-for"

// oldSpelling keeps old, hidden, as another name of the flag current
// (same value), warned about when used: flag names have one meaning across
// commands, and scripts written for the old ones keep working for now.
func oldSpelling(fs *pflag.FlagSet, old, current string) {
	f := fs.Lookup(current)
	fs.Var(f.Value, old, "deprecated: use --"+current)
	o := fs.Lookup(old)
	o.NoOptDefVal = f.NoOptDefVal
	o.Hidden = true
	o.Annotations = map[string][]string{deprecatedAnnotation: {current}}
}

// warnDeprecated prints one line per old spelling used on cmd's line.
func warnDeprecated(cmd *cobra.Command, stderr io.Writer) {
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if cur := f.Annotations[deprecatedAnnotation]; len(cur) == 1 {
			fmt.Fprintf(stderr, "%s: --%s is deprecated, use --%s\n", cmd.CommandPath(), f.Name, cur[0])
		}
	})
}

// Flags every command spells the same way.

// dataDirFlag declares --data-dir (the dev hub's data folder) and the old
// --data spelling where a command had it.
func dataDirFlag(fs *pflag.FlagSet, p *string, usage string, hadData bool) {
	fs.StringVar(p, "data-dir", ".switchyard", usage)
	if hadData {
		oldSpelling(fs, "data", "data-dir")
	}
}

// webhookURLFlag declares --webhook-url (env SWITCHYARD_WEBHOOK_URL), where
// send, trigger, resend and reconcile post, and the old --url spelling.
func webhookURLFlag(fs *pflag.FlagSet, p *string, getenv func(string) string, hadURL bool) {
	// SWITCHYARD_WEBHOOK_URL: the gateway's webhook URL, where send and reconcile post.
	fs.StringVar(p, "webhook-url", orDefault(getenv("SWITCHYARD_WEBHOOK_URL"), "http://127.0.0.1:8080/webhooks/stripe"), "the gateway's webhook URL (env SWITCHYARD_WEBHOOK_URL)")
	if hadURL {
		oldSpelling(fs, "url", "webhook-url")
	}
}

// natsFlag declares --nats (env NATS_URL, else the dev hub's server).
func natsFlag(fs *pflag.FlagSet, p *string, getenv func(string) string) {
	fs.StringVar(p, "nats", orDefault(getenv("NATS_URL"), "nats://127.0.0.1:4223"), "NATS URL (env NATS_URL; the default is the dev hub's)")
}

// opsFlag declares --ops (env SWITCHYARD_OPS_URL), the projector's status API.
func opsFlag(fs *pflag.FlagSet, p *string, getenv func(string) string) {
	fs.StringVar(p, "ops", orDefault(getenv("SWITCHYARD_OPS_URL"), "http://127.0.0.1:8090"), "the projector's status API (env SWITCHYARD_OPS_URL)")
}

// jsonFlag declares --json.
func jsonFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "json", false, "print JSON on stdout (errors: a JSON object on stderr)")
}

// secretFile is where `dev` keeps a generated signing secret, in its data
// folder, and where `send` finds it.
const secretFile = "webhook-secret"

// natsUsersDir is the folder, in the data folder, where `dev` keeps the
// password of each NATS identity of the embedded server, one file per
// identity named after it (a NATS_PASSWORD_FILE), so restarts and the CLI
// (operator) find them.
const natsUsersDir = "nats-users"

// cliNATS is how a CLI command logs in to NATS: the credentials in the
// environment (NATS_USER with NATS_PASSWORD[_FILE], or NATS_CREDS), else
// the operator identity the dev hub saved in dataDir, else none.
func cliNATS(getenv func(string) string, dataDir string) ([]nats.Option, error) {
	if getenv("NATS_USER") != "" || getenv("NATS_CREDS") != "" {
		r := config.NewReader(getenv)
		o := natsbus.OptionsFromEnv(r, "switchyard-cli")
		if err := r.Err(); err != nil {
			return nil, err
		}
		return o.AuthOptions(), nil
	}
	path := filepath.Join(dataDir, natsUsersDir, natsbus.IdentityOperator)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no dev hub here: connect without credentials
	}
	if err != nil {
		return nil, fmt.Errorf("the dev hub's operator NATS identity: %w", err)
	}
	return []nats.Option{nats.UserInfo(natsbus.IdentityOperator, strings.TrimSpace(string(b))),
		nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityOperator))}, nil
}

// randomHex is n random bytes in hex; crypto/rand never fails on
// supported platforms.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func waitReady(ctx context.Context, url string, d time.Duration) error {
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
			return fmt.Errorf("%s not ready within %s", url, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// dialAddr turns a listen address into one to connect to: ":8080" and
// "0.0.0.0:8080" are reached on 127.0.0.1.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// writeJSON writes v to w as a command's --json result: indented, one
// value, a newline after it.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
