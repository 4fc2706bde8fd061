package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
)

// read runs f over a Reader built on env and returns what f returned and the
// Reader's joined error.
func read[T any](t *testing.T, env map[string]string, f func(*config.Reader) T) (T, error) {
	t.Helper()
	r := config.NewReader(config.MapEnv(env))
	v := f(r)
	return v, r.Err()
}

// checkErr fails the test unless err is nil exactly when wantErr is "", and
// otherwise mentions wantErr.
func checkErr(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case wantErr != "" && err == nil:
		t.Fatalf("error = nil, want one mentioning %q", wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Fatalf("error = %q, want it to mention %q", err, wantErr)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "unset gives default", env: nil, want: "def"},
		{name: "blank gives default", env: map[string]string{"X": "   "}, want: "def"},
		{name: "set is trimmed", env: map[string]string{"X": "  value \n"}, want: "value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, tt.env, func(r *config.Reader) string { return r.String("X", "def") })
			checkErr(t, err, "")
			if got != tt.want {
				t.Fatalf("String = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "set", env: map[string]string{"X": "v"}, want: "v"},
		{name: "unset", env: nil, wantErr: "X: required but not set"},
		{name: "blank counts as unset", env: map[string]string{"X": " "}, wantErr: "X: required but not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, tt.env, func(r *config.Reader) string { return r.Required("X") })
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("Required = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOneOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "unset gives default", want: "json"},
		{name: "allowed value", env: map[string]string{"FMT": "text"}, want: "text"},
		{name: "value outside the set falls back to default", env: map[string]string{"FMT": "xml"}, want: "json", wantErr: `FMT: "xml" is not one of json, text`},
		{name: "match is case-sensitive", env: map[string]string{"FMT": "JSON"}, want: "json", wantErr: `"JSON" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, tt.env, func(r *config.Reader) string { return r.OneOf("FMT", "json", "json", "text") })
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("OneOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		want    int
		wantErr string
	}{
		{name: "unset gives default", value: "", want: 3},
		{name: "in range", value: "7", want: 7},
		{name: "lower bound inclusive", value: "1", want: 1},
		{name: "upper bound inclusive", value: "10", want: 10},
		{name: "below range", value: "0", want: 3, wantErr: "N: 0 is outside [1, 10]"},
		{name: "above range", value: "11", want: 3, wantErr: "N: 11 is outside [1, 10]"},
		{name: "not a number", value: "ten", want: 3, wantErr: `N: "ten" is not an integer`},
		{name: "float", value: "2.5", want: 3, wantErr: "is not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, map[string]string{"N": tt.value}, func(r *config.Reader) int { return r.Int("N", 3, 1, 10) })
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("Int = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		want    time.Duration
		wantErr string
	}{
		{name: "unset gives default", value: "", want: time.Minute},
		{name: "seconds", value: "30s", want: 30 * time.Second},
		{name: "compound", value: "1h30m", want: 90 * time.Minute},
		{name: "zero is rejected", value: "0s", want: time.Minute, wantErr: `D: "0s" is not a positive duration`},
		{name: "negative is rejected", value: "-5s", want: time.Minute, wantErr: "not a positive duration"},
		{name: "missing unit is rejected", value: "30", want: time.Minute, wantErr: `"30" is not a positive duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, map[string]string{"D": tt.value}, func(r *config.Reader) time.Duration { return r.Duration("D", time.Minute) })
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("Duration = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		def     bool
		want    bool
		wantErr string
	}{
		{name: "unset gives default true", value: "", def: true, want: true},
		{name: "unset gives default false", value: "", def: false, want: false},
		{name: "1", value: "1", want: true},
		{name: "true mixed case", value: "True", want: true},
		{name: "yes", value: "yes", want: true},
		{name: "on", value: "ON", want: true},
		{name: "0", value: "0", def: true, want: false},
		{name: "false", value: "false", def: true, want: false},
		{name: "no", value: "no", def: true, want: false},
		{name: "off", value: "off", def: true, want: false},
		{name: "garbage keeps default", value: "maybe", def: true, want: true, wantErr: `B: "maybe" is not a boolean`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, map[string]string{"B": tt.value}, func(r *config.Reader) bool { return r.Bool("B", tt.def) })
			checkErr(t, err, tt.wantErr)
			if got != tt.want {
				t.Fatalf("Bool = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{name: "unset", value: "", want: nil},
		{name: "one", value: "a", want: []string{"a"}},
		{name: "trimmed, empty items dropped", value: " a , b,, c ,", want: []string{"a", "b", "c"}},
		{name: "only commas", value: ",,,", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, map[string]string{"L": tt.value}, func(r *config.Reader) []string { return r.List("L") })
			checkErr(t, err, "")
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("List = %q, want %q", got, tt.want)
			}
		})
	}
}

// writeFile writes content to a new file in a per-test directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecret(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "whsec_from_file\n")
	missing := filepath.Join(t.TempDir(), "does-not-exist")
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "unset", env: nil, want: ""},
		{name: "from NAME", env: map[string]string{"KEY": "whsec_from_env"}, want: "whsec_from_env"},
		{name: "from NAME_FILE, trailing newline trimmed", env: map[string]string{"KEY_FILE": file}, want: "whsec_from_file"},
		{name: "both set", env: map[string]string{"KEY": "a", "KEY_FILE": file}, wantErr: "KEY: set either KEY or KEY_FILE, not both"},
		{name: "unreadable file names NAME_FILE", env: map[string]string{"KEY_FILE": missing}, wantErr: "KEY_FILE: read secret file"},
		{name: "file is a directory", env: map[string]string{"KEY_FILE": t.TempDir()}, wantErr: "KEY_FILE:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := read(t, tt.env, func(r *config.Reader) config.Secret { return r.Secret("KEY") })
			checkErr(t, err, tt.wantErr)
			if got.Reveal() != tt.want {
				t.Fatalf("Secret = %q, want %q", got.Reveal(), tt.want)
			}
			if got.IsSet() != (tt.want != "") {
				t.Fatalf("IsSet = %v for %q", got.IsSet(), tt.want)
			}
		})
	}
}

// TestSecretList: a secrets file holds one secret per line (or a
// comma-separated list), so a rotation is one more line in the file.
func TestSecretList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		file string // content of KEYS_FILE, when set
		want []string
	}{
		{name: "comma-separated in a file", file: "whsec_new, whsec_old\n", want: []string{"whsec_new", "whsec_old"}},
		{name: "one per line", file: "whsec_new\nwhsec_old\n", want: []string{"whsec_new", "whsec_old"}},
		{name: "blank lines and spaces ignored", file: "\n  whsec_new  \n\n\twhsec_old\t\n\n", want: []string{"whsec_new", "whsec_old"}},
		{name: "CRLF line ends", file: "whsec_new\r\nwhsec_old\r\n", want: []string{"whsec_new", "whsec_old"}},
		{name: "lines and commas mixed", file: "whsec_a,whsec_b\nwhsec_c\n", want: []string{"whsec_a", "whsec_b", "whsec_c"}},
		{name: "comma-separated in the variable", env: map[string]string{"KEYS": "whsec_new,whsec_old"}, want: []string{"whsec_new", "whsec_old"}},
		{name: "only blank lines", file: "\n \n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if env == nil {
				env = map[string]string{"KEYS_FILE": writeFile(t, tt.file)}
			}
			got, err := read(t, env, func(r *config.Reader) []config.Secret { return r.SecretList("KEYS") })
			checkErr(t, err, "")
			var revealed []string
			for _, s := range got {
				revealed = append(revealed, s.Reveal())
			}
			if !reflect.DeepEqual(revealed, tt.want) {
				t.Fatalf("SecretList = %q, want %q", revealed, tt.want)
			}
		})
	}
}

// TestErrorsJoined checks that one Reader reports every problem at once, so an
// operator fixes a deployment in one round instead of one variable per restart.
func TestErrorsJoined(t *testing.T) {
	t.Parallel()
	r := config.NewReader(config.MapEnv(map[string]string{
		"PORT":       "http",
		"TIMEOUT":    "soon",
		"MODE":       "chaos",
		"DEBUG":      "perhaps",
		"TOKEN":      "a",
		"TOKEN_FILE": "/nonexistent",
	}))
	r.Required("DATABASE_URL")
	r.Int("PORT", 8080, 1, 65535)
	r.Duration("TIMEOUT", time.Second)
	r.OneOf("MODE", "live", "live", "test")
	r.Bool("DEBUG", false)
	r.Secret("TOKEN")
	r.Fail("CUSTOM", "must be %s", "sensible")
	err := r.Err()
	if err == nil {
		t.Fatal("Err = nil, want every problem")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Err is %T, want an errors.Join result", err)
	}
	if got := len(joined.Unwrap()); got != 7 {
		t.Fatalf("Err holds %d errors, want 7:\n%v", got, err)
	}
	for _, name := range []string{"DATABASE_URL:", "PORT:", "TIMEOUT:", "MODE:", "DEBUG:", "TOKEN:", "CUSTOM: must be sensible"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Err does not mention %s:\n%v", name, err)
		}
	}
}

func TestErrNilWhenAllValid(t *testing.T) {
	t.Parallel()
	r := config.NewReader(config.MapEnv(map[string]string{"A": "x", "N": "5"}))
	r.Required("A")
	r.Int("N", 0, 0, 10)
	if err := r.Err(); err != nil {
		t.Fatalf("Err = %v, want nil", err)
	}
}

// TestSecretNeverPrinted checks every way a value commonly reaches a log or a
// dump: the fmt verbs, JSON, and slog's JSON handler, both alone and inside a
// config struct.
func TestSecretNeverPrinted(t *testing.T) {
	t.Parallel()
	const value = "sk_live_do_not_print_me"
	s := config.NewSecret(value)
	type cfg struct {
		Addr   string
		APIKey config.Secret
		Keys   []config.Secret
	}
	c := cfg{Addr: ":8080", APIKey: s, Keys: []config.Secret{s}}

	render := map[string]func() string{
		"%v":                  func() string { return fmt.Sprintf("%v", s) },
		"%s":                  func() string { return fmt.Sprintf("key=%s", s) },
		"%+v":                 func() string { return fmt.Sprintf("%+v", s) },
		"%#v":                 func() string { return fmt.Sprintf("%#v", s) },
		"%q":                  func() string { return fmt.Sprintf("%q", s) },
		"Println":             func() string { return fmt.Sprintln(s) },
		"struct %v":           func() string { return fmt.Sprintf("%v", c) },
		"struct %+v":          func() string { return fmt.Sprintf("%+v", c) },
		"struct %#v":          func() string { return fmt.Sprintf("%#v", c) },
		"pointer to struct":   func() string { return fmt.Sprintf("%+v", &c) },
		"json.Marshal":        func() string { return mustJSON(t, s) },
		"json.Marshal struct": func() string { return mustJSON(t, c) },
		"slog JSON": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "key", s, "cfg", c, "any", slog.AnyValue(s))
			return buf.String()
		},
		"slog text": func() string {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "key", s, "cfg", c)
			return buf.String()
		},
	}
	for name, f := range render {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := f()
			if strings.Contains(out, value) || strings.Contains(out, "do_not_print") {
				t.Fatalf("%s leaked the secret: %s", name, out)
			}
			if !strings.Contains(out, "[REDACTED]") {
				t.Fatalf("%s shows no redacted marker: %s", name, out)
			}
		})
	}
	if s.Reveal() != value {
		t.Fatalf("Reveal = %q, want the value", s.Reveal())
	}
}

func TestUnsetSecretPrintsUnset(t *testing.T) {
	t.Parallel()
	var s config.Secret
	if got := fmt.Sprint(s); got != "(unset)" {
		t.Fatalf("unset secret prints %q, want (unset)", got)
	}
	if s.IsSet() {
		t.Fatal("zero Secret reports IsSet")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	rec := config.NewRecorder(config.MapEnv(map[string]string{"B": "2", "A": "1"}))
	r := config.NewReader(rec.Getenv)
	if got := r.String("B", ""); got != "2" {
		t.Fatalf("through the Recorder B = %q, want 2", got)
	}
	r.Int("UNSET", 0, 0, 1)
	r.Secret("TOKEN")
	r.String("B", "") // asked twice, recorded once
	want := []string{"B", "TOKEN", "TOKEN_FILE", "UNSET"}
	if got := rec.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names = %q, want %q", got, want)
	}
}

func TestOverlay(t *testing.T) {
	t.Parallel()
	base := config.MapEnv(map[string]string{"A": "base-a", "B": "base-b", "C": "base-c"})
	get := config.Overlay(base, map[string]string{"A": "over-a", "C": ""})
	tests := []struct {
		name string
		key  string
		want string
	}{
		{name: "overlay wins", key: "A", want: "over-a"},
		{name: "falls through to base", key: "B", want: "base-b"},
		{name: "overlay with empty value unsets", key: "C", want: ""},
		{name: "missing in both", key: "D", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := get(tt.key); got != tt.want {
				t.Fatalf("Overlay(%s) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}
