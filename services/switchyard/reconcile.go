package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/event"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/stripeerr"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector/client"
)

const reconcileLong = `Closes the loop with Stripe: lists Stripe's events created since now minus --since
(at most 30 days, which is what Stripe keeps) and posts every one the hub never
stored to the gateway's webhook URL, signed like Stripe, with the event's JSON as
the Events API returned it. The gateway verifies, validates, applies the
environment guard and deduplicates (Nats-Msg-Id = event id) as for any webhook,
so a second run, or a run racing Stripe's own retries, stores nothing twice.
Prints what was healed, per event and per Stripe customer; exit status 1 if any
event could not be published. --every D runs now and then every D until stopped,
logging each run's totals as a JSON line to stderr.

Environment: STRIPE_API_KEY (or _FILE; a restricted key with Events: read),
STRIPE_API_BASE, NATS_URL, STRIPE_WEBHOOK_SECRET (else the one 'switchyard dev'
saved in --data-dir), SWITCHYARD_WEBHOOK_URL.`

// stripeEventRetention is how far back Stripe lists events.
const stripeEventRetention = 30 * 24 * time.Hour

// storedScanMargin widens the scan of the STRIPE stream before the window's
// start. The gateway stores an event when it receives it, which is after
// Stripe created it, so only clock skew between Stripe and the hub can put a
// stored event before its created time; an hour covers any sane skew and
// costs a few more headers.
const storedScanMargin = time.Hour

// Stripe's documented read limits (requests per second per account and
// mode). Reconcile is backfill sharing the account's budget with the hub's
// own refetches and the team's application, so it takes half.
const (
	stripeLiveReadLimit = 100
	stripeTestReadLimit = 25
	stripeReadShare     = 0.5
)

// reconcileConfig is one reconcile's settings, flags and environment together.
type reconcileConfig struct {
	since           time.Duration
	undeliveredOnly bool
	dryRun          bool
	pageSize        int
	webhookURL      string
	secret          string
}

// missedEvent is one listed event the hub had not stored, and what
// publishing it did.
type missedEvent struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Created  time.Time `json:"created"`
	Customer string    `json:"customer"` // Stripe customer id; "" when the event names none (a dispute names only its charge)
	// Status: published (the gateway stored it), duplicate (the gateway
	// already had it: it arrived after the scan), failed, or would_publish
	// (--dry-run).
	Status        string `json:"status"`
	GatewayStatus int    `json:"gateway_status,omitempty"` // the gateway's HTTP status
	Error         string `json:"error,omitempty"`
}

// customerHealed counts the healed events of one Stripe customer.
type customerHealed struct {
	Customer string `json:"customer"`
	Events   int    `json:"events"`
}

// reconcileReport is one run's result; --json prints it as is.
type reconcileReport struct {
	Since           time.Time `json:"since"`
	Until           time.Time `json:"until"`
	UndeliveredOnly bool      `json:"undelivered_only"`
	DryRun          bool      `json:"dry_run"`
	// Listed = AlreadyStored + Missing; Missing = Published + Duplicate +
	// Failed, except in a dry run, which publishes none of them.
	Listed         int              `json:"listed"`
	AlreadyStored  int              `json:"already_stored"`
	Missing        int              `json:"missing"`
	Published      int              `json:"published"`
	Duplicate      int              `json:"duplicate"`
	Failed         int              `json:"failed"`
	StripeRequests int              `json:"stripe_requests"`
	StripeRetries  int              `json:"stripe_retries"`
	Seconds        float64          `json:"seconds"`
	Events         []missedEvent    `json:"events"`
	Customers      []customerHealed `json:"customers"`
}

// newReconcileCmd is `switchyard reconcile`.
func newReconcileCmd(c *cliIO) *cobra.Command {
	var f reconcileFlags
	var since string
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "publish the Stripe events the hub missed (Events API, last 30 days)",
		Long:  reconcileLong,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(since); err != nil {
				return err
			}
			return reconcileCmd(cmd.Context(), f, c.getenv, c.stdout, c.stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&since, "since", "72h", "list events created this long ago or later (Go duration, or Nd for days; at most 30d)")
	fs.BoolVar(&f.cfg.undeliveredOnly, "undelivered-only", false, "list only events Stripe has not delivered to every endpoint (delivery_success=false)")
	fs.BoolVar(&f.cfg.dryRun, "dry-run", false, "show what would be published, publish nothing")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as one JSON document (--every logs JSON lines instead)")
	fs.DurationVar(&f.every, "every", 0, "run now and then every D until stopped (a service); 0 runs once")
	fs.IntVar(&f.cfg.pageSize, "page-size", 100, "events per Events API request (1-100)")
	natsFlag(fs, &f.natsURL, c.getenv)
	webhookURLFlag(fs, &f.cfg.webhookURL, c.getenv, true)
	dataDirFlag(fs, &f.dataDir, "the dev hub's data folder, where it saves a generated signing secret and its operator NATS identity", true)
	return cmd
}

func reconcileCmd(ctx context.Context, f reconcileFlags, getenv func(string) string, stdout, stderr io.Writer) error {
	rec, cfg, closeNATS, err := newReconciler(getenv, f)
	if err != nil {
		return err
	}
	defer closeNATS()
	if f.every == 0 {
		return reconcileOnce(ctx, rec, cfg, stdout, f.asJSON)
	}
	return rec.schedule(ctx, cfg, f.every, slog.New(slog.NewJSONHandler(stderr, nil)))
}

// reconcileFlags are reconcile's command line.
type reconcileFlags struct {
	cfg     reconcileConfig // without the signing secret
	asJSON  bool
	every   time.Duration
	natsURL string
	dataDir string
}

// check reads --since and checks the other flags (a usage error saying
// what is wrong).
func (f *reconcileFlags) check(since string) error {
	var err error
	if f.cfg.since, err = parseSince(since); err != nil {
		return &usageError{msg: err.Error()}
	}
	if f.cfg.pageSize < 1 || f.cfg.pageSize > 100 {
		return usageErrorf("--page-size must be between 1 and 100")
	}
	if f.every < 0 {
		return usageErrorf("--every must not be negative")
	}
	return nil
}

// newReconciler reads the Stripe key (and, unless a dry run, the webhook
// signing secret) and connects to NATS.
func newReconciler(getenv func(string) string, f reconcileFlags) (*reconciler, reconcileConfig, func(), error) {
	cfg := f.cfg
	r := config.NewReader(getenv)
	key := r.Secret("STRIPE_API_KEY")
	base := r.String("STRIPE_API_BASE", stripe.APIURL)
	if emu, err := readDevStripeEmulator(f.dataDir); !key.IsSet() && err == nil {
		// The dev hub's Stripe emulator, as for its signing secret.
		key, base = config.NewSecret(emu.APIKey), emu.URL
	}
	if !key.IsSet() {
		r.Fail("STRIPE_API_KEY", "required: a Stripe key that may read events (restricted key with Events: read), or STRIPE_API_KEY_FILE (or run 'switchyard dev', whose Stripe emulator --data names)")
	}
	if err := r.Err(); err != nil {
		return nil, cfg, nil, withCode(codeInvalid, err)
	}
	if !cfg.dryRun {
		var err error
		if cfg.secret, err = webhookSecret(getenv, f.dataDir); err != nil {
			return nil, cfg, nil, err
		}
	}
	auth, err := cliNATS(getenv, f.dataDir)
	if err != nil {
		return nil, cfg, nil, err
	}
	nc, err := nats.Connect(f.natsURL, append(auth, nats.Name("switchyard-reconcile"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, cfg, nil, fmt.Errorf("connect %s: %w", f.natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, cfg, nil, err
	}
	return &reconciler{
		events:  newEventLister(key.Reveal(), base, cfg.pageSize),
		js:      js,
		webhook: &http.Client{Timeout: 30 * time.Second},
		now:     time.Now,
	}, cfg, nc.Close, nil
}

// reconcileOnce runs one reconciliation and prints its report, also when
// interrupted while publishing (what was done); events that could not be
// published fail the command.
func reconcileOnce(ctx context.Context, rec *reconciler, cfg reconcileConfig, stdout io.Writer, asJSON bool) error {
	rep, err := rec.run(ctx, cfg)
	if rep != nil {
		err = errors.Join(printReconcile(stdout, rep, asJSON), err)
	}
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d of %d missing events could not be published", rep.Failed, rep.Missing)
	}
	return nil
}

// parseSince reads a Go duration or a whole number of days ("30d").
func parseSince(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("--since %q: not a duration such as 72h or 7d", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("--since %q: not a duration such as 72h or 7d", s)
		}
	}
	switch {
	case d <= 0:
		return 0, fmt.Errorf("--since %q: must be positive", s)
	case d > stripeEventRetention:
		return 0, fmt.Errorf("--since %q: at most 30d, as Stripe keeps events for 30 days", s)
	}
	return d, nil
}

// reconciler compares Stripe's events with the STRIPE stream and posts the
// missing ones to the gateway. Runs must not overlap (schedule never does).
type reconciler struct {
	events  *eventLister
	js      jetstream.JetStream
	webhook *http.Client
	now     func() time.Time
}

// schedule runs now and every interval until ctx ends, one run at a time: a
// run longer than the interval delays the next instead of overlapping it.
// Failed runs are logged and retried at the next tick, except for rejected
// credentials, which no tick can fix.
func (r *reconciler) schedule(ctx context.Context, cfg reconcileConfig, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := r.run(ctx, cfg)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.ErrorContext(ctx, "reconcile run failed", "error", err)
			if errclass.Of(err) == errclass.ClassAuth {
				return err
			}
		default:
			for _, e := range rep.Events {
				lvl := slog.LevelInfo
				if e.Status == "failed" {
					lvl = slog.LevelWarn
				}
				attrs := []any{"event_id", e.ID, "event_type", e.Type, "customer_id", e.Customer, "status", e.Status, "gateway_status", e.GatewayStatus}
				if e.Error != "" {
					attrs = append(attrs, "error", e.Error)
				}
				log.Log(ctx, lvl, "reconcile event", attrs...)
			}
			log.InfoContext(ctx, "reconcile run", "since", rep.Since, "undelivered_only", rep.UndeliveredOnly, "dry_run", rep.DryRun,
				"listed", rep.Listed, "already_stored", rep.AlreadyStored, "missing", rep.Missing, "published", rep.Published,
				"duplicate", rep.Duplicate, "failed", rep.Failed, "stripe_requests", rep.StripeRequests, "stripe_retries", rep.StripeRetries,
				"seconds", rep.Seconds)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// run reconciles once. Stripe is listed before the stream is read, so an
// event delivered meanwhile is seen as stored rather than posted again (and
// if it is posted again, the gateway's dedup answers duplicate).
func (r *reconciler) run(ctx context.Context, cfg reconcileConfig) (*reconcileReport, error) {
	began := r.now()
	rep := &reconcileReport{Since: began.Add(-cfg.since).UTC().Truncate(time.Second), Until: began.UTC(), UndeliveredOnly: cfg.undeliveredOnly, DryRun: cfg.dryRun}
	stream, err := r.js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		return nil, fmt.Errorf("%s stream: %w", natsbus.StreamStripe, err)
	}
	if maxAge := stream.CachedInfo().Config.MaxAge; maxAge > 0 && cfg.since+storedScanMargin > maxAge {
		// Events the stream has aged out cannot be told from missed ones;
		// posting them again would store them twice.
		return nil, fmt.Errorf("the %s stream keeps messages for %s: --since must be at most %s",
			natsbus.StreamStripe, maxAge, maxAge-storedScanMargin)
	}

	listed, st, err := r.events.list(ctx, rep.Since, cfg.undeliveredOnly)
	rep.StripeRequests, rep.StripeRetries = st.requests, st.retries
	if err != nil {
		return nil, err
	}
	stored, err := storedEventIDs(ctx, r.js, stream, rep.Since.Add(-storedScanMargin))
	if err != nil {
		return nil, err
	}
	rep.Listed = len(listed)
	rep.Events = []missedEvent{}
	perCustomer := map[string]int{}
	for _, ev := range listed {
		if stored[ev.ID] {
			rep.AlreadyStored++
			continue
		}
		rep.Missing++
		h := missedEvent{ID: ev.ID, Type: ev.Type, Created: time.Unix(ev.Created, 0).UTC(), Customer: ev.Customer}
		if cfg.dryRun {
			h.Status = "would_publish"
			perCustomer[h.Customer]++
		} else {
			r.publish(ctx, cfg, ev.Raw, &h)
			switch h.Status {
			case "published":
				rep.Published++
				perCustomer[h.Customer]++
			case "duplicate":
				rep.Duplicate++
			default:
				rep.Failed++
			}
		}
		rep.Events = append(rep.Events, h)
	}
	rep.Customers = []customerHealed{}
	for c, n := range perCustomer {
		rep.Customers = append(rep.Customers, customerHealed{Customer: c, Events: n})
	}
	slices.SortFunc(rep.Customers, func(a, b customerHealed) int {
		return cmp.Or(cmp.Compare(b.Events, a.Events), cmp.Compare(a.Customer, b.Customer))
	})
	rep.Seconds = r.now().Sub(began).Seconds()
	return rep, ctx.Err()
}

// publish posts one event to the gateway, retrying what may succeed later
// (no answer, 429, 5xx: the gateway answers 503 while NATS is down), with
// jittered exponential backoff and never sooner than the gateway's
// Retry-After. Each attempt is signed afresh, so a retry is never stale.
func (r *reconciler) publish(ctx context.Context, cfg reconcileConfig, raw []byte, h *missedEvent) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 250*time.Millisecond, 5*time.Second, 30*time.Second
	b.Reset()
	for {
		res := post(ctx, r.webhook, cfg.webhookURL, raw, cfg.secret, client.ReconcileRequestPrefix+h.ID, false, false)
		h.GatewayStatus, h.Error = res.Status, ""
		if res.Status >= 200 && res.Status <= 299 {
			var ack struct {
				Duplicate bool `json:"duplicate"`
			}
			_ = json.Unmarshal(res.Body, &ack)
			h.Status = "published"
			if ack.Duplicate {
				h.Status = "duplicate"
			}
			return
		}
		h.Status = "failed"
		h.Error = gatewayError(res)
		retryable := res.Status == 0 || res.Status == http.StatusTooManyRequests || res.Status >= 500
		wait := b.NextBackOff()
		if !retryable || wait == backoff.Stop || lifecycle.Sleep(ctx, max(wait, res.retryAfter)) != nil {
			return
		}
	}
}

// gatewayError is the gateway's short reason, or the transport error.
func gatewayError(res sendResult) string {
	if res.Error != "" {
		return res.Error
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(res.Body, &e) == nil && e.Error.Code != "" {
		return e.Error.Code + ": " + e.Error.Message
	}
	return oneLine(string(res.Body), 200)
}

// storedEventIDs returns the Nats-Msg-Id of every STRIPE stream message
// stored since from, up to the stream's last message when the scan began.
// It reads headers only, through an ordered consumer, and ends when the
// consumer has nothing pending (an empty stream, a deleted tail and a window
// with no messages all end at once).
func storedEventIDs(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, from time.Time) (map[string]bool, error) {
	ids := map[string]bool{}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s stream: %w", natsbus.StreamStripe, err)
	}
	if info.State.Msgs == 0 {
		return ids, nil
	}
	last := info.State.LastSeq
	oc, err := js.OrderedConsumer(ctx, natsbus.StreamStripe, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.StripeEventsAll},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
		HeadersOnly:    true,
		// A scan that dies leaves no consumer behind for long.
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("read %s stream: %w", natsbus.StreamStripe, err)
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, fmt.Errorf("read %s stream: %w", natsbus.StreamStripe, err)
	}
	defer func() {
		// Stopping leaves the server's consumer to its inactivity timer;
		// a scan every few minutes (--every) would pile them up.
		it.Stop()
		if ci := oc.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = js.DeleteConsumer(dctx, natsbus.StreamStripe, ci.Name)
			cancel()
		}
	}()
	ci, err := oc.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s stream: %w", natsbus.StreamStripe, err)
	}
	if ci.NumPending == 0 && ci.Delivered.Consumer == 0 {
		return ids, nil // nothing stored since from
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			// Nothing arrived: either all is read (the last message was
			// deleted, so no metadata said so) or the server is slow.
			if ci, err := oc.Info(ctx); err == nil && ci.NumPending == 0 {
				return ids, nil
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s stream: %w", natsbus.StreamStripe, err)
		}
		if id := msg.Headers().Get(wire.HeaderMsgID); id != "" {
			ids[id] = true
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("read %s stream: %w", natsbus.StreamStripe, err)
		}
		if md.Sequence.Stream >= last || md.NumPending == 0 {
			return ids, nil
		}
	}
}

// listedEvent is one event from Stripe's list, with its bytes as returned.
type listedEvent struct {
	ID       string
	Type     string
	Created  int64
	Customer string
	Raw      json.RawMessage
}

// eventLister lists Stripe's events through stripe-go, which expresses
// every filter reconcile needs (created[gte], delivery_success, cursor
// pagination). stripe-go's own retries are off: it retries neither a
// rate_limit 429 nor honours Retry-After, so retries happen here, behind a
// client-side limiter.
type eventLister struct {
	client     event.Client
	keyMode    string // stripeerr.KeyMode of the key, named in refusals
	limiter    *rate.Limiter
	pageSize   int64
	maxElapsed time.Duration
}

func newEventLister(key, base string, pageSize int) *eventLister {
	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(base),
		MaxNetworkRetries: stripe.Int64(0),
		HTTPClient:        &http.Client{Timeout: 30 * time.Second},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	mode := stripeerr.KeyMode(key)
	limit := float64(stripeTestReadLimit)
	if mode == "live" {
		limit = stripeLiveReadLimit
	}
	return &eventLister{
		client:     event.Client{B: b, Key: key},
		keyMode:    mode,
		limiter:    rate.NewLimiter(rate.Limit(limit*stripeReadShare), 1),
		pageSize:   int64(pageSize),
		maxElapsed: 2 * time.Minute,
	}
}

type listStats struct{ requests, retries int }

// list returns the events created at or after since, oldest first.
func (l *eventLister) list(ctx context.Context, since time.Time, undeliveredOnly bool) ([]listedEvent, listStats, error) {
	var st listStats
	var out []listedEvent
	seen := map[string]bool{}
	cursor := ""
	for {
		p := &stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}}
		p.Limit = stripe.Int64(l.pageSize)
		p.Single = true
		if undeliveredOnly {
			p.DeliverySuccess = stripe.Bool(false)
		}
		if cursor != "" {
			p.StartingAfter = stripe.String(cursor)
		}
		page, err := l.page(ctx, p, &st)
		if err != nil {
			return nil, st, err
		}
		for _, ev := range page.events {
			if !seen[ev.ID] { // a page boundary never repeats one, but be sure
				seen[ev.ID] = true
				out = append(out, ev)
			}
		}
		if !page.hasMore || len(page.events) == 0 {
			break
		}
		cursor = page.events[len(page.events)-1].ID
	}
	slices.Reverse(out) // Stripe lists newest first
	return out, st, nil
}

type eventPage struct {
	events  []listedEvent
	hasMore bool
}

// page fetches one page, waiting for the limiter before every attempt and
// retrying 429, 5xx and network failures with backoff (at least as long as
// a Retry-After asks; also 409 and Stripe-Should-Retry: true, as Stripe
// documents). 401/403 and other 4xx end the run.
func (l *eventLister) page(ctx context.Context, p *stripe.EventListParams, st *listStats) (eventPage, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 500*time.Millisecond, 30*time.Second, l.maxElapsed
	b.Reset()
	for {
		if err := l.limiter.Wait(ctx); err != nil {
			return eventPage{}, err
		}
		st.requests++
		p.Context = ctx
		it := l.client.List(p)
		err := it.Err()
		if err == nil {
			return decodePage(it.EventList())
		}
		if ctx.Err() != nil {
			return eventPage{}, ctx.Err()
		}
		err = fmt.Errorf("stripe: GET /v1/events: %w", stripeerr.Classify(err, l.keyMode))
		if se := (*stripe.Error)(nil); errors.As(err, &se) && se.HTTPStatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w (a restricted key needs Events: read)", err)
		}
		if errclass.Of(err) != errclass.ClassTransient {
			return eventPage{}, err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return eventPage{}, fmt.Errorf("gave up after %d attempts in %s: %w", st.requests, l.maxElapsed, err)
		}
		wait = max(wait, errclass.RetryHint(err))
		st.retries++
		if err := lifecycle.Sleep(ctx, wait); err != nil {
			return eventPage{}, err
		}
	}
}

// decodePage takes each event's bytes from the raw answer: stripe-go's
// decoded Event does not keep them, and the gateway must get the event as
// Stripe wrote it.
func decodePage(list *stripe.EventList) (eventPage, error) {
	if list.LastResponse == nil {
		return eventPage{}, errors.New("stripe: GET /v1/events: no response")
	}
	var page struct {
		Data    []json.RawMessage `json:"data"`
		HasMore bool              `json:"has_more"`
	}
	if err := json.Unmarshal(list.LastResponse.RawJSON, &page); err != nil {
		return eventPage{}, fmt.Errorf("stripe: GET /v1/events: decode: %w", err)
	}
	out := eventPage{hasMore: page.HasMore}
	for _, raw := range page.Data {
		var head struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Created int64  `json:"created"`
			Data    struct {
				Object struct {
					Object   string          `json:"object"`
					ID       string          `json:"id"`
					Customer json.RawMessage `json:"customer"`
				} `json:"object"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" {
			return eventPage{}, fmt.Errorf("stripe: GET /v1/events: an event does not decode: %v", err)
		}
		ev := listedEvent{ID: head.ID, Type: head.Type, Created: head.Created, Raw: bytes.TrimSpace(raw)}
		obj := head.Data.Object
		if obj.Object == "customer" {
			ev.Customer = obj.ID
		} else {
			ev.Customer = customerID(obj.Customer)
		}
		out.events = append(out.events, ev)
	}
	return out, nil
}

// customerID reads an object's customer field: an id, an expanded customer
// object, or null.
func customerID(raw json.RawMessage) string {
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var obj struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &obj)
	return obj.ID
}

// printReconcile writes the report as text or as one JSON document.
func printReconcile(w io.Writer, rep *reconcileReport, asJSON bool) error {
	if asJSON {
		return writeJSON(w, rep)
	}
	verb, done := "healed", "healed"
	if rep.DryRun {
		verb, done = "would publish", "to heal"
	}
	scope := "events"
	if rep.UndeliveredOnly {
		scope = "undelivered events"
	}
	fmt.Fprintf(w, "Stripe listed %d %s created since %s; %d already stored, %d missing.\n",
		rep.Listed, scope, rep.Since.Format(time.RFC3339), rep.AlreadyStored, rep.Missing)
	if len(rep.Events) > 0 {
		fmt.Fprintf(w, "\n%s:\n", strings.ToUpper(verb[:1])+verb[1:])
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  EVENT\tTYPE\tCREATED\tCUSTOMER\tSTATUS")
		for _, e := range rep.Events {
			status := strings.ReplaceAll(e.Status, "_", " ")
			if e.GatewayStatus != 0 {
				status += fmt.Sprintf(" (gateway %d)", e.GatewayStatus)
			}
			if e.Error != "" {
				status += ": " + e.Error
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.ID, e.Type, e.Created.Format(time.RFC3339), orDefault(e.Customer, "-"), status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rep.Customers) > 0 {
		fmt.Fprintf(w, "\nPer Stripe customer:\n")
		for _, c := range rep.Customers {
			name := c.Customer
			if name == "" {
				name = "(no customer in the event)"
			}
			fmt.Fprintf(w, "  %s: %d event%s %s\n", name, c.Events, plural(c.Events), done)
		}
	}
	_, err := fmt.Fprintf(w, "\nTotals: listed %d, already stored %d, published %d, duplicate %d, failed %d (%d Stripe request%s with %d retried, %.1fs)\n",
		rep.Listed, rep.AlreadyStored, rep.Published, rep.Duplicate, rep.Failed,
		rep.StripeRequests, plural(rep.StripeRequests), rep.StripeRetries, rep.Seconds)
	return err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
