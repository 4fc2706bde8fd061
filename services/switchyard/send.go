package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
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

	"github.com/spf13/cobra"

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

// sendOptions are the parsed flags of `switchyard send`.
type sendOptions struct {
	url      string
	secret   string
	dataDir  string
	count    int
	conc     int
	stale    bool
	unsigned bool
	newID    bool
	asJSON   bool
	file     string // the event file, or "-" for stdin
}

// newSendCmd is `switchyard send`.
func newSendCmd(c *cliIO) *cobra.Command {
	var o sendOptions
	cmd := &cobra.Command{
		Use:   "send [flags] FILE|-",
		Short: "sign a Stripe event JSON and POST it to the gateway",
		Long: `Signs a Stripe event (a file, or - for stdin) with the webhook secret and
POSTs it to the gateway, as Stripe delivers it. Exits 1 unless every request
got a 2xx answer. For a fresh event of a type the hub handles, see trigger;
to deliver an event again from the Stripe API, see resend.`,
		Example: `  switchyard send platform/devkit/testkit/fixtures/stripe/events/invoice.paid.json
  switchyard send -n 10 -c 10 event.json        # 10 concurrent duplicates: one stored
  switchyard send --new-id -n 100 event.json    # 100 distinct events`,
		Args: exactArgs(1, "one event FILE or - for stdin"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.count < 1 || o.conc < 1 {
				return usageErrorf("-n and -c must be at least 1")
			}
			o.file = args[0]
			return sendCmd(cmd.Context(), o, c.getenv, c.stdin, c.stdout)
		},
	}
	fs := cmd.Flags()
	webhookURLFlag(fs, &o.url, c.getenv, true)
	fs.StringVar(&o.secret, "secret", "", "the `whsec_...` signing secret (default: STRIPE_WEBHOOK_SECRET, else the one 'switchyard dev' saved in --data-dir)")
	dataDirFlag(fs, &o.dataDir, "the dev hub's data folder, where it saves a generated secret", true)
	fs.IntVarP(&o.count, "count", "n", 1, "send the event this many times")
	fs.IntVarP(&o.conc, "concurrency", "c", 1, "concurrent requests")
	fs.BoolVar(&o.stale, "stale", false, "sign with a timestamp 10 minutes old (expect 400 signature_expired)")
	fs.BoolVar(&o.unsigned, "unsigned", false, "send without a Stripe-Signature header (expect 400 signature_missing)")
	fs.BoolVar(&o.newID, "new-id", false, "give every send a fresh event id (N distinct events instead of N duplicates)")
	jsonFlag(fs, &o.asJSON)
	return cmd
}

// sendCmd signs a Stripe event and posts it, for exercising the hub itself.
// It returns an error (exit status 1) unless every request got a 2xx answer.
func sendCmd(ctx context.Context, opts sendOptions, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	body, err := readEvent(opts.file, stdin)
	if err != nil {
		return withCode(codeInvalid, fmt.Errorf("read event: %w", err))
	}
	secret := opts.secret
	if secret == "" && !opts.unsigned {
		if secret, err = webhookSecret(getenv, opts.dataDir); err != nil {
			return withCode(codeInvalid, fmt.Errorf("%w (or pass --secret)", err))
		}
	}
	idAt := reEventID.FindSubmatchIndex(body)
	if opts.newID && idAt == nil {
		return withCode(codeInvalid, fmt.Errorf("--new-id: the event has no \"id\": \"evt_…\" field"))
	}
	results := sendAll(ctx, opts, body, idAt, secret)
	failure := failedSends(results)
	if opts.asJSON {
		return errors.Join(writeJSON(stdout, results), failure)
	}
	printSendResults(stdout, results, opts.count)
	return failure
}

// readEvent reads the event from file, or from stdin when file is "-".
func readEvent(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(file)
}

// sendAll posts body opts.count times over opts.conc workers and returns the
// results in send order. With opts.newID each send gets a fresh event id,
// spliced in at idAt (reEventID's submatch index into body).
func sendAll(ctx context.Context, opts sendOptions, body []byte, idAt []int, secret string) []sendResult {
	client := &http.Client{Timeout: 30 * time.Second}
	results := make([]sendResult, opts.count)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < opts.conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b := body
				if opts.newID {
					b = withEventID(body, idAt, fmt.Sprintf("evt_%s%06d", randomAlnum(14), i))
				}
				results[i] = post(ctx, client, opts.url, b, secret, "", opts.stale, opts.unsigned)
				results[i].N = i + 1
			}
		}()
	}
	for i := 0; i < opts.count; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

// withEventID returns a copy of body with the id at idAt (reEventID's
// submatch index) replaced by id; body itself is not modified.
func withEventID(body []byte, idAt []int, id string) []byte {
	return append(append(append([]byte{}, body[:idAt[2]]...), id...), body[idAt[3]:]...)
}

// failedSends is the command's error: nil when every result got a 2xx
// answer, else how many did not (invalid when the gateway refused one,
// unavailable when there was no answer or a 5xx).
func failedSends(results []sendResult) error {
	failed, refused := 0, 0
	first := ""
	for _, r := range results {
		if r.Status < 200 || r.Status > 299 {
			failed++
			if first == "" && r.Error != "" {
				first = fmt.Sprintf("#%d: %s", r.N, r.Error)
			} else if first == "" {
				first = fmt.Sprintf("#%d: %d %s", r.N, r.Status, bytes.TrimSpace(r.Body))
			}
		}
		if r.Status >= 400 && r.Status < 500 {
			refused++
		}
	}
	if failed == 0 {
		return nil
	}
	code := codeUnavailable // no answer, or 5xx: retry later
	if refused > 0 {
		code = codeInvalid // the gateway refused it: sending again will not help
	}
	return withCode(code, fmt.Errorf("%d of %d requests did not get a 2xx answer (first %s)", failed, len(results), first))
}

// printSendResults prints one line per result and, when more than one event
// was sent, a summary of the answers by status.
func printSendResults(stdout io.Writer, results []sendResult, count int) {
	byStatus := map[int]int{}
	for _, r := range results {
		byStatus[r.Status]++
		if r.Error != "" {
			fmt.Fprintf(stdout, "#%d error: %s\n", r.N, r.Error)
			continue
		}
		fmt.Fprintf(stdout, "#%d %d %s (%.1f ms)\n", r.N, r.Status, bytes.TrimSpace(r.Body), r.Duration)
	}
	if count > 1 {
		fmt.Fprintf(stdout, "sent %d: %s\n", count, statusSummary(byStatus))
	}
}

// statusSummary renders counts by status in ascending status order, like
// "202×3, 400×1"; status 0 (no answer) reads "transport error".
func statusSummary(byStatus map[int]int) string {
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
	return strings.Join(parts, ", ")
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
		return "", fmt.Errorf("no signing secret: set STRIPE_WEBHOOK_SECRET, or point --data-dir at the folder where 'switchyard dev' saved one")
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
