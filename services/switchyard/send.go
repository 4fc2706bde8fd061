package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/stripesig"
)

type sendResult struct {
	N        int             `json:"n"`
	EventID  string          `json:"event_id,omitempty"`
	Status   int             `json:"status"`
	Body     json.RawMessage `json:"body,omitempty"`
	Error    string          `json:"error,omitempty"`
	Duration float64         `json:"duration_ms"`
	// retryAfter is the gateway's Retry-After (503 while NATS is down),
	// for callers that retry.
	retryAfter time.Duration
}

var reEventID = regexp.MustCompile(`"id"\s*:\s*"(evt_[A-Za-z0-9]+)"`)

// sendCmd signs a Stripe event and posts it, for exercising the hub itself.
// It returns an error (exit status 1) unless every request got a 2xx answer.
func sendCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// SWITCHYARD_WEBHOOK_URL: the gateway's webhook URL, where send and reconcile post.
	url := fs.String("url", orDefault(getenv("SWITCHYARD_WEBHOOK_URL"), "http://127.0.0.1:8080/webhooks/stripe"), "gateway webhook URL (env SWITCHYARD_WEBHOOK_URL)")
	secretFlag := fs.String("secret", "", "signing secret whsec_… (default: STRIPE_WEBHOOK_SECRET, else the one `switchyard dev` saved in --data)")
	dataDir := fs.String("data", ".switchyard", "the dev hub's data folder, where it saves a generated secret")
	count := fs.Int("n", 1, "send the event this many times")
	conc := fs.Int("c", 1, "concurrent requests")
	stale := fs.Bool("stale", false, "sign with a timestamp 10 minutes old (expect 400 signature_expired)")
	unsigned := fs.Bool("unsigned", false, "send without a Stripe-Signature header (expect 400 signature_missing)")
	newID := fs.Bool("new-id", false, "give every send a fresh event id (N distinct events instead of N duplicates)")
	asJSON := fs.Bool("json", false, "print results as JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: switchyard send [flags] FILE|-")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *count < 1 || *conc < 1 {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	var body []byte
	var err error
	if fs.Arg(0) == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	secret := *secretFlag
	if secret == "" && !*unsigned {
		if secret, err = webhookSecret(getenv, *dataDir); err != nil {
			return fmt.Errorf("%w (or pass --secret)", err)
		}
	}
	m := reEventID.FindSubmatchIndex(body)
	if *newID && m == nil {
		return fmt.Errorf("--new-id: the event has no \"id\": \"evt_…\" field")
	}

	client := &http.Client{Timeout: 30 * time.Second}
	results := make([]sendResult, *count)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b := body
				if *newID {
					id := fmt.Sprintf("evt_%s%06d", randomAlnum(14), i)
					b = append(append(append([]byte{}, body[:m[2]]...), id...), body[m[3]:]...)
				}
				results[i] = post(ctx, client, *url, b, secret, "", *stale, *unsigned)
				results[i].N = i + 1
			}
		}()
	}
	for i := 0; i < *count; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	failed := 0
	for _, r := range results {
		if r.Status < 200 || r.Status > 299 {
			failed++
		}
	}
	var failure error
	if failed > 0 {
		failure = fmt.Errorf("%d of %d requests did not get a 2xx answer", failed, len(results))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return errors.Join(enc.Encode(results), failure)
	}
	byStatus := map[int]int{}
	for _, r := range results {
		byStatus[r.Status]++
		if r.Error != "" {
			fmt.Fprintf(stdout, "#%d error: %s\n", r.N, r.Error)
			continue
		}
		fmt.Fprintf(stdout, "#%d %d %s (%.1f ms)\n", r.N, r.Status, bytes.TrimSpace(r.Body), r.Duration)
	}
	if *count > 1 {
		var keys []int
		for k := range byStatus {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		var parts []string
		for _, k := range keys {
			name := fmt.Sprint(k)
			if k == 0 {
				name = "transport error"
			}
			parts = append(parts, fmt.Sprintf("%s×%d", name, byStatus[k]))
		}
		fmt.Fprintf(stdout, "sent %d: %s\n", *count, strings.Join(parts, ", "))
	}
	return failure
}

// webhookSecret is the secret the CLI signs with: the first of
// STRIPE_WEBHOOK_SECRET (or _FILE), else the one `switchyard dev` saved in
// dataDir.
func webhookSecret(getenv func(string) string, dataDir string) (string, error) {
	r := config.NewReader(getenv)
	secret := strings.Split(r.Secret("STRIPE_WEBHOOK_SECRET").Reveal(), ",")[0]
	if err := r.Err(); err != nil {
		return "", err
	}
	if secret != "" {
		return secret, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, secretFile))
	if err != nil {
		return "", fmt.Errorf("no signing secret: set STRIPE_WEBHOOK_SECRET, or point --data at the folder where 'switchyard dev' saved one")
	}
	return strings.TrimSpace(string(b)), nil
}

// post signs and posts body; requestID, if set, is sent as X-Request-Id
// (the gateway keeps it in the stored message's Switchyard-Request-Id).
func post(ctx context.Context, c *http.Client, url string, body []byte, secret, requestID string, stale, unsigned bool) sendResult {
	var r sendResult
	if m := reEventID.FindSubmatch(body); m != nil {
		r.EventID = string(m[1])
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "switchyard-send")
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	if !unsigned {
		at := time.Now()
		if stale {
			at = at.Add(-10 * time.Minute)
		}
		req.Header.Set("Stripe-Signature", stripesig.Sign(body, at, secret))
	}
	start := time.Now()
	resp, err := c.Do(req)
	r.Duration = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		r.retryAfter = time.Duration(secs) * time.Second
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Valid(raw) {
		r.Body = raw
	} else {
		r.Body, _ = json.Marshal(string(raw))
	}
	return r
}

func randomAlnum(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}
