package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
)

// TestSlackErrorsFailsTheShareAsked: --vendor-errors 0.1 makes about one
// Slack post in ten answer 429 (with Retry-After) or 500, which the alerts
// service retries; the others are stored as ever.
func TestSlackErrorsFailsTheShareAsked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		p             float64
		lo, hi        int // failures among the posts
		wantEachClass bool
	}{
		{name: "off", p: 0, lo: 0, hi: 0},
		{name: "ten percent", p: 0.1, lo: 140, hi: 260, wantEachClass: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sl, err := slackemu.New(slackemu.Options{RateLimit: -1})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(slackErrors(sl, tc.p, vendorErrorSeed))
			defer srv.Close()
			const posts = 2000
			statuses := map[int]int{}
			for range posts {
				req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+sl.Path(), bytes.NewReader([]byte(`{"text":"soak"}`)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Errorf("an injected 429 without Retry-After")
				}
			}
			failed := posts - statuses[http.StatusOK]
			if failed < tc.lo || failed > tc.hi {
				t.Errorf("%d of %d posts failed, want %d to %d: %v", failed, posts, tc.lo, tc.hi, statuses)
			}
			if retryable := statuses[http.StatusTooManyRequests] + statuses[http.StatusInternalServerError]; retryable != failed {
				t.Errorf("failures other than 429 and 500: %v", statuses)
			}
			if tc.wantEachClass && (statuses[http.StatusTooManyRequests] == 0 || statuses[http.StatusInternalServerError] == 0) {
				t.Errorf("want both 429 and 500 among the failures: %v", statuses)
			}
			if got, want := len(sl.Messages()), statuses[http.StatusOK]; got != want {
				t.Errorf("Slack stored %d messages, want %d (one per 200, none per failure)", got, want)
			}
		})
	}
}

// TestDevRejectsAVendorErrorShareOutsideZeroToOne: a share of 1 or more
// (every request failing) or a negative one is a usage error, before dev
// starts anything.
func TestDevRejectsAVendorErrorShareOutsideZeroToOne(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"1", "1.5", "-0.1", "NaN"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			dir := filepath.Join(t.TempDir(), "hub")
			code := run(context.Background(), []string{"dev", "--data-dir", dir, "--vendor-errors", v}, func(string) string { return "" }, nil, io.Discard, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), "want a share in [0, 1)") {
				t.Fatalf("dev --vendor-errors %s: exit %d, want %d; stderr: %s", v, code, exitUsage, stderr.String())
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("dev created %s before refusing its flags", dir)
			}
		})
	}
}
