// Package config reads service configuration from the environment.
//
// Services never call os.Getenv themselves: run() receives a getenv function and
// hands it to a Reader, which parses typed values with defaults, collects every
// problem instead of stopping at the first, and reads secrets either from NAME or
// from the file named by NAME_FILE (the Docker/Kubernetes secrets convention).
// Secret values are held as Secret, which never prints its contents, so a
// config struct can be logged whole with slog.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Secret is a credential value. Its String, GoString and LogValue forms are
// redacted; call Reveal to use it.
type Secret struct{ value string }

// NewSecret wraps s as a Secret.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret has a non-empty value.
func (s Secret) IsSet() bool { return s.value != "" }

// String returns a redacted form so secrets cannot leak through fmt or logs.
func (s Secret) String() string {
	if s.value == "" {
		return "(unset)"
	}
	return "[REDACTED]"
}

// GoString is the %#v form; it is redacted too.
func (s Secret) GoString() string { return s.String() }

// LogValue makes slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps secrets out of JSON dumps.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reader parses environment variables. It records the first error per
// variable; Err returns them all joined. A Reader is not safe for concurrent use.
type Reader struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	errs     []error
}

// NewReader returns a Reader over getenv. os.ReadFile reads *_FILE secrets.
func NewReader(getenv func(string) string) *Reader {
	return &Reader{getenv: getenv, readFile: os.ReadFile}
}

// Err returns every problem found so far, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Fail records a validation problem found by the caller.
func (r *Reader) Fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (r *Reader) raw(name string) string { return strings.TrimSpace(r.getenv(name)) }

// String returns NAME or def when unset.
func (r *Reader) String(name, def string) string {
	if v := r.raw(name); v != "" {
		return v
	}
	return def
}

// Required returns NAME and records an error when it is unset.
func (r *Reader) Required(name string) string {
	v := r.raw(name)
	if v == "" {
		r.Fail(name, "required but not set")
	}
	return v
}

// OneOf returns NAME (or def) and records an error unless it is in allowed.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	v := r.String(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.Fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// Int returns NAME as an integer within [lo, hi], or def when unset.
func (r *Reader) Int(name string, def, lo, hi int) int {
	v := r.raw(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.Fail(name, "%q is not an integer", v)
		return def
	}
	if n < lo || n > hi {
		r.Fail(name, "%d is outside [%d, %d]", n, lo, hi)
		return def
	}
	return n
}

// Duration returns NAME parsed by time.ParseDuration, which must be > 0, or def.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v := r.raw(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.Fail(name, "%q is not a positive duration such as 30s or 5m", v)
		return def
	}
	return d
}

// Bool returns NAME as a boolean (1/0, true/false, yes/no), or def.
func (r *Reader) Bool(name string, def bool) bool {
	switch strings.ToLower(r.raw(name)) {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	default:
		r.Fail(name, "%q is not a boolean", r.raw(name))
		return def
	}
}

// List returns the comma-separated, trimmed, non-empty items of NAME.
func (r *Reader) List(name string) []string { return splitList(r.raw(name)) }

// Secret returns the secret from NAME or from the file named by NAME_FILE.
// Setting both is an error, so a stale value cannot silently win.
func (r *Reader) Secret(name string) Secret {
	v, file := r.raw(name), r.raw(name+"_FILE")
	switch {
	case v != "" && file != "":
		r.Fail(name, "set either %s or %s_FILE, not both", name, name)
		return Secret{}
	case file != "":
		b, err := r.readFile(file)
		if err != nil {
			r.Fail(name+"_FILE", "read secret file: %v", err)
			return Secret{}
		}
		return Secret{value: strings.TrimSpace(string(b))}
	default:
		return Secret{value: v}
	}
}

// SecretList returns the items of a secret (NAME or NAME_FILE) separated by
// commas or line breaks: a secrets file may hold one secret per line, so a
// rotation adds a line and later removes the old one. Blank lines and the
// spaces around each item are ignored.
func (r *Reader) SecretList(name string) []Secret {
	var out []Secret
	for _, line := range strings.FieldsFunc(r.Secret(name).Reveal(), func(c rune) bool { return c == '\n' || c == '\r' }) {
		for _, s := range splitList(line) {
			out = append(out, Secret{value: s})
		}
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Recorder wraps a getenv function and remembers every name asked for, so a
// test can check that a deployment sets no variable the service ignores.
type Recorder struct {
	getenv func(string) string
	mu     sync.Mutex
	names  map[string]bool
}

// NewRecorder returns a Recorder over getenv.
func NewRecorder(getenv func(string) string) *Recorder {
	return &Recorder{getenv: getenv, names: map[string]bool{}}
}

// Getenv looks name up and records it.
func (r *Recorder) Getenv(name string) string {
	r.mu.Lock()
	r.names[name] = true
	r.mu.Unlock()
	return r.getenv(name)
}

// Names returns the sorted names looked up so far.
func (r *Recorder) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// MapEnv returns a getenv function over a fixed map, for tests and for
// composing the in-process dev hub.
func MapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// Overlay returns a getenv that answers from over first, then from base.
func Overlay(base func(string) string, over map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := over[k]; ok {
			return v
		}
		return base(k)
	}
}
