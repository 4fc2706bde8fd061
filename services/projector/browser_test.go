package projector_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/testkit"
)

// chromium finds the headless browser the console test drives.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the console's browser test: install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM to a Chrome binary")
	return ""
}

// artifacts is where the browser test saves its screenshots:
// SWITCHYARD_TEST_ARTIFACTS, else .artifacts/console at the repository root.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHYARD_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// A founder's session in a real browser: log in, find a customer by
// email and read the timeline, open a failure, dry-run its replay, replay
// it and see it resolved. Screenshots of each step are saved.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromium(t)
	f := newConsoleFixture(t)
	dir := artifacts(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first run starts the browser and must not carry a deadline.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		sctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}

	step("open the console", chromedp.Navigate(f.api+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	shot("01-login.png")
	step("log in", chromedp.SendKeys(chromedp.ID("token"), operateToken), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("open-failures")))
	shot("02-overview.png")
	if got := strings.TrimSpace(text("#open-failures")); got != "1" {
		t.Fatalf("overview shows %q open failures, want 1", got)
	}

	step("find the customer by email", chromedp.Navigate(f.api+"/console/customers"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), f.email), chromedp.Click(chromedp.ID("search")), chromedp.WaitVisible(chromedp.ID("timeline")))
	shot("03-customer.png")
	timeline := text("#timeline")
	for _, want := range []string{"Customer details updated", "Subscription started", "billing.customer.upserted"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
	sctx, cancel := context.WithDeadline(ctx, deadline)
	traceLinks, err := chromedp.Run(sctx, chromedp.Evaluate[int](`document.querySelectorAll('#timeline a[href^="http://jaeger.example:16686/trace/"]').length`))
	cancel()
	if err != nil || traceLinks == 0 {
		t.Errorf("the timeline has no Jaeger trace links (%d, %v)", traceLinks, err)
	}

	step("open the failure", chromedp.Navigate(f.api+"/console/failures"), chromedp.WaitVisible(chromedp.ID("failures")),
		chromedp.Click(chromedp.CSS(`#failures a[href="/console/failures/`+itoa(f.seq)+`"]`)), chromedp.WaitVisible(chromedp.ID("dry-run")))
	shot("04-failure.png")
	if !strings.Contains(text("#reason"), "not set up in the provisioning service") {
		t.Error("the failure page does not show the reason")
	}
	step("dry-run the replay", chromedp.Click(chromedp.ID("dry-run")), chromedp.WaitVisible(chromedp.ID("plan")))
	shot("05-dry-run.png")
	if plan := text("#plan"); !strings.Contains(plan, "A replay will publish the original") || !strings.Contains(plan, "for consumer fulfilment only") {
		t.Errorf("dry run says:\n%s", plan)
	}
	if _, err := deadletterGet(f, f.seq); err != nil || f.handled.Load() != 0 {
		t.Fatalf("the dry run changed something: %v, handled %d", err, f.handled.Load())
	}

	f.healthy.Store(true) // the founder fixed the plan in the provisioning service
	step("replay", chromedp.Click(chromedp.ID("replay")), chromedp.WaitVisible(chromedp.ID("status")))
	shot("06-resolved.png")
	if got := text("#status"); got != "resolved" {
		t.Fatalf("status after replay = %q, want resolved", got)
	}
	testkit.WaitFor(t, 20*time.Second, "the replayed message handled", func() bool { return f.handled.Load() == 1 })
	if _, err := deadletterGet(f, f.seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("dead letter after replay: %v", err)
	}
	if n := countAudit(t, f); n != 1 {
		t.Fatalf("%d audit records, want the one replay", n)
	}
	t.Logf("screenshots in %s", dir)
}
