package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/services/alerts/slack"
)

// digest is the projector's GET /v1/digest answer (the fields used here).
type digest struct {
	From              time.Time      `json:"from"`
	To                time.Time      `json:"to"`
	StripeEvents      int            `json:"stripe_events"`
	DriftHealed       int            `json:"drift_healed"`
	BillingEvents     int            `json:"billing_events"`
	AutomationsDone   int            `json:"automations_done"`
	AutomationsFailed int            `json:"automations_failed"`
	FailuresOpen      int            `json:"failures_open"`
	CustomersByState  map[string]int `json:"customers_by_state"`
	Problems          []string       `json:"problems"`
}

// Digester posts the daily digest to Slack once a day at a set UTC time:
// events processed, automations done, failures open, drift healed. It reads
// the figures from the projector's status API; the done-effects ledger
// makes each day's digest go out once, across restarts and replicas.
type Digester struct {
	poster   Poster
	pool     *pgxpool.Pool
	ledger   *ledger.Ledger
	at       time.Duration // after midnight UTC
	url      string        // status API base
	token    config.Secret
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	consumer string
	console  slack.Console
}

// ParseDigestAt reads "HH:MM" (UTC).
func ParseDigestAt(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// NewDigester returns a Digester posting at `at` after midnight UTC; the
// digest links to console's failures page when it is set.
func NewDigester(p Poster, pool *pgxpool.Pool, at time.Duration, statusURL string, token config.Secret, console slack.Console, log *slog.Logger) *Digester {
	return &Digester{poster: p, pool: pool, ledger: ledger.New(pool), at: at, url: strings.TrimRight(statusURL, "/"), token: token,
		client: &http.Client{Timeout: 90 * time.Second}, log: log, now: time.Now, consumer: ConsumerName, console: console}
}

// Run posts each day's digest once its time has come, checking every minute.
func (d *Digester) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		d.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (d *Digester) tick(ctx context.Context) {
	now := d.now().UTC()
	day := now.Truncate(24 * time.Hour)
	if now.Before(day.Add(d.at)) {
		return
	}
	key := ledger.Key{Consumer: d.consumer, MessageID: "digest:" + day.Format("2006-01-02"), Effect: "slack.digest"}
	// One replica at a time: the ledger records the post only after it.
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, key.String()).Scan(&mine); err != nil || !mine {
			return err
		}
		// A post in flight finishes even when the service is stopping: cut
		// off after Slack showed it, the ledger would never hear of it and
		// the next start would post the day's digest again. Bounded.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, err := d.ledger.Once(ectx, key, func(ctx context.Context) ([]byte, error) {
			dg, err := d.fetch(ctx)
			if err != nil {
				return nil, err
			}
			return nil, d.poster.Post(ctx, formatDigest(dg, d.console))
		})
		return err
	})
	if err != nil && ctx.Err() == nil {
		d.log.WarnContext(ctx, "daily digest not sent; trying again in a minute", "error", err)
	}
}

func (d *Digester) fetch(ctx context.Context) (digest, error) {
	var dg digest
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url+"/v1/digest", nil)
	if err != nil {
		return dg, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token.Reveal())
	resp, err := d.client.Do(req)
	if err != nil {
		return dg, errclass.Transient(fmt.Errorf("status API: %w", err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return dg, errclass.FromHTTP(resp.StatusCode, resp.Header, fmt.Errorf("status API: GET /v1/digest: %s", resp.Status))
	}
	if err := json.Unmarshal(body, &dg); err != nil {
		return dg, errors.New("status API: GET /v1/digest: not a digest")
	}
	return dg, nil
}

// formatDigest writes the digest. The figures are numbers formatted here;
// every string from the status API (customer states, problems) is data and
// goes through slack.Code; the only link is to the console.
func formatDigest(d digest, console slack.Console) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Switchyard daily digest* (%s → %s UTC)\n", d.From.UTC().Format("Jan 2 15:04"), d.To.UTC().Format("Jan 2 15:04"))
	fmt.Fprintf(&b, "• Stripe events processed: %s", thousands(d.StripeEvents))
	if d.DriftHealed > 0 {
		fmt.Fprintf(&b, " (drift healed: %s missed deliveries published by reconcile)", thousands(d.DriftHealed))
	} else {
		b.WriteString(" (drift healed: none)")
	}
	fmt.Fprintf(&b, "\n• Billing events: %s\n", thousands(d.BillingEvents))
	fmt.Fprintf(&b, "• Automations done: %s (CRM contacts synced, tickets opened); given up: %s\n", thousands(d.AutomationsDone), thousands(d.AutomationsFailed))
	if d.FailuresOpen > 0 {
		where := "ops console → Failures"
		if link := console.Link(where, "console", "failures"); link != "" {
			where = link
		}
		fmt.Fprintf(&b, "• Failures open: %s (%s, or %s)\n", thousands(d.FailuresOpen), where, slack.Code("switchyard dlq list"))
	} else {
		b.WriteString("• Failures open: none\n")
	}
	if len(d.CustomersByState) > 0 {
		states := make([]string, 0, len(d.CustomersByState))
		for s := range d.CustomersByState {
			states = append(states, s)
		}
		sort.Slice(states, func(i, j int) bool {
			return d.CustomersByState[states[i]] > d.CustomersByState[states[j]] || d.CustomersByState[states[i]] == d.CustomersByState[states[j]] && states[i] < states[j]
		})
		parts := make([]string, 0, len(states))
		for _, s := range states {
			parts = append(parts, fmt.Sprintf("%s %s", slack.Code(s), thousands(d.CustomersByState[s])))
		}
		fmt.Fprintf(&b, "• Customers: %s\n", strings.Join(parts, ", "))
	}
	for _, p := range d.Problems {
		fmt.Fprintf(&b, "• Could not read: %s\n", slack.Code(p))
	}
	return strings.TrimRight(b.String(), "\n")
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
