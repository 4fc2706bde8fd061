package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stack []string // innermost first
		want  string
	}{
		{name: "a response written to the socket", stack: []string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.Syscall", "internal/poll.(*FD).Write", "net.(*conn).Write", "bufio.(*Writer).Flush", "net/http.(*response).finishRequest", "net/http.(*conn).serve"}, want: "syscalls: HTTP server"},
		{name: "NATS's flusher writing", stack: []string{"syscall.Syscall", "net.(*conn).Write", "bufio.(*Writer).Flush", "github.com/nats-io/nats.go.(*Conn).flusher"}, want: "syscalls: NATS client"},
		{name: "the scheduler parking", stack: []string{"runtime.futex", "runtime.futexsleep", "runtime.notesleep", "runtime.stopm", "runtime.findRunnable", "runtime.schedule"}, want: "syscalls: scheduler and runtime"},
		{name: "a memmove in encoding/json is JSON's", stack: []string{"runtime.memmove", "encoding/json.(*decodeState).literalStore", "github.com/stripe/stripe-go/v76/webhook.constructEvent", "main.(*handler).ServeHTTP", "net/http.(*conn).serve"}, want: "JSON"},
		{name: "the Stripe event scanner", stack: []string{"github.com/switchyard/switchyard/platform/stripescan.(*scanner).string", "github.com/switchyard/switchyard/platform/stripescan.Scan", "github.com/switchyard/switchyard/services/gateway.(*Webhook).ServeHTTP"}, want: "JSON"},
		{name: "SHA-256", stack: []string{"crypto/internal/fips140/sha256.blockSHANI", "crypto/hmac.(*hmac).Write", "github.com/switchyard/switchyard/platform/stripesig.Verify", "github.com/switchyard/switchyard/services/gateway.(*Webhook).ServeHTTP"}, want: "signature (HMAC-SHA256, header)"},
		{name: "the textbook's signature header", stack: []string{"strings.Split", "github.com/stripe/stripe-go/v76/webhook.parseSignatureHeader", "main.(*handler).ServeHTTP"}, want: "signature (HMAC-SHA256, header)"},
		{name: "allocation wins over its caller", stack: []string{"runtime.nextFreeFast", "runtime.mallocgc", "encoding/json.Unmarshal"}, want: groupAlloc},
		{name: "a GC worker", stack: []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, want: groupGC},
		{name: "a GC worker's futex is GC", stack: []string{"runtime.futex", "runtime.gcBgMarkWorker"}, want: groupGC},
		{name: "strconv in the handler", stack: []string{"strconv.Itoa", "github.com/switchyard/switchyard/services/gateway.(*Webhook).message", "net/http.(*conn).serve"}, want: "handler (the rest)"},
		{name: "header parsing", stack: []string{"strings.IndexByte", "net/textproto.(*Reader).ReadMIMEHeader", "net/http.readRequest"}, want: "HTTP server"},
		{name: "a span", stack: []string{"runtime.mapassign", "go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).SetAttributes", "github.com/switchyard/switchyard/services/gateway.(*Webhook).ServeHTTP"}, want: "telemetry (metrics, tracing)"},
		{name: "the scheduler", stack: []string{"runtime.findRunnable", "runtime.schedule", "runtime.mcall"}, want: groupRuntime},
		{name: "a module no group names", stack: []string{"runtime.memmove", "github.com/klauspost/compress/s2.encodeBlock"}, want: groupOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := classify(tt.stack); got != tt.want {
				t.Errorf("classify = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRunOnARealProfile: a profile of this test's own busy loop sums to
// its samples, every group with its share.
func TestRunOnARealProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cpu.pprof")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	var sink int
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		sink += len(strings.Repeat("x", 64))
	}
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"-per-request", "100", file}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"of CPU sampled over", "group", "share", "cpu_us/req", "%"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if sink == 0 {
		t.Fatal("the loop did not run")
	}
}
