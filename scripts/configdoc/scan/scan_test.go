package scan_test

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/switchyard/switchyard/scripts/configdoc/scan"
)

const service = `package demo

import (
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
)

type Config struct {
	Addr string // DEMO_ADDR: health listener
	Wait time.Duration
}

func load(getenv func(string) string) Config {
	r := config.NewReader(getenv)
	c := Config{
		Addr: r.String("DEMO_ADDR", ":9000"),
		// how long to wait
		Wait: r.Duration("DEMO_WAIT", 5*time.Second),
	}
	_ = r.Secret("DEMO_TOKEN") // the vendor token
	_ = r.Required("DEMO_URL") // DEMO_URL: where the vendor is
	_ = natsbus.FromEnv(r)
	return c
}
`

const helper = `package natsbus

import "github.com/switchyard/switchyard/platform/config"

const envURL = "DEMO_NATS_URL"

// FromEnv reads:
//
//	DEMO_NATS_URL  the broker,
//	               comma-separated
//	DEMO_USER      the identity
func FromEnv(r *config.Reader) string {
	return login(r, "DEMO_USER", "operator") + r.String(envURL, "nats://x")
}

func login(r *config.Reader, userVar, def string) string {
	return r.String(userVar, def)
}
`

const cli = `package main

func run(getenv func(string) string) {
	url := orDefault(getenv("DEMO_OPS_URL"), "http://127.0.0.1:8090") // the status API
	_ = getenv("DEMO_KEY") + getenv("DEMO_KEY_FILE") // a key
	_ = url
}
`

func TestScanFindsEveryRead(t *testing.T) {
	fsys := fstest.MapFS{
		"services/demo/run.go":        {Data: []byte(service)},
		"services/demo/run_test.go":   {Data: []byte("package demo\n\nfunc f(getenv func(string) string) { getenv(\"IGNORED\") }\n")},
		"platform/natsbus/env.go":     {Data: []byte(helper)},
		"services/switchyard/send.go": {Data: []byte(cli)},
	}
	got, err := scan.Scan(fsys, "services", "platform")
	if err != nil {
		t.Fatal(err)
	}
	want := []scan.Section{
		{Title: "demo", Dir: "services/demo", Vars: []scan.Var{
			{Name: "DEMO_ADDR", Kind: "string", Default: `":9000"`, Files: []string{"services/demo/run.go"}, Description: "health listener"},
			{Name: "DEMO_NATS_URL", Kind: "string", Default: `"nats://x"`, Files: []string{"platform/natsbus/env.go"}, Description: "the broker, comma-separated"},
			{Name: "DEMO_TOKEN", Kind: "secret", Secret: true, Files: []string{"services/demo/run.go"}, Description: "the vendor token"},
			{Name: "DEMO_URL", Kind: "string", Required: true, Files: []string{"services/demo/run.go"}, Description: "where the vendor is"},
			{Name: "DEMO_USER", Kind: "string", Default: `"operator"`, Files: []string{"platform/natsbus/env.go"}, Description: "the identity"},
			{Name: "DEMO_WAIT", Kind: "duration", Default: "5*time.Second", Files: []string{"services/demo/run.go"}, Description: "how long to wait"},
		}},
		{Title: "switchyard send", Dir: "services/switchyard", Vars: []scan.Var{
			{Name: "DEMO_KEY", Kind: "string", Secret: true, Files: []string{"services/switchyard/send.go"}, Description: "a key"},
			{Name: "DEMO_OPS_URL", Kind: "string", Default: `"http://127.0.0.1:8090"`, Files: []string{"services/switchyard/send.go"}, Description: "the status API"},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if n := scan.Count(got); n != 8 {
		t.Errorf("Count = %d, want 8", n)
	}

	var b strings.Builder
	if err := scan.Render(&b, got); err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		"| `DEMO_ADDR` | string | `:9000` |  | health listener |",
		"| `DEMO_TOKEN` | secret | — | yes (`DEMO_TOKEN_FILE`) | the vendor token |",
		"| `DEMO_URL` | string | — (required) |  | where the vendor is |",
		"## switchyard send",
	} {
		if !strings.Contains(b.String(), row) {
			t.Errorf("rendered document lacks %q", row)
		}
	}
}
