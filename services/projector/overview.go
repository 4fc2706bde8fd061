package projector

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
)

// Overview is the pipeline's health on one screen; also what
// `switchyard status` prints. A figure that could not be read is left
// zero and its problem listed in Problems.
type Overview struct {
	At                time.Time         `json:"at"`
	IntakeLastHour    int               `json:"intake_last_hour"`           // Stripe events stored
	IntakeLast5m      int               `json:"intake_last_5m"`             // Stripe events stored
	LastEventAt       time.Time         `json:"last_event_at"`              // newest Stripe event stored
	WebhookResults    map[string]int64  `json:"webhook_results"`            // gateway counts by result since it started
	WebhookFailures   int64             `json:"webhook_failures"`           // of those, not accepted and not duplicate
	Consumers         []ConsumerLag     `json:"consumers"`                  // every durable consumer
	DLQByClass        map[string]int    `json:"dlq_by_class"`               // open dead letters
	DLQTotal          int               `json:"dlq_total"`                  // open failures
	CRMSynced24h      int               `json:"crm_synced_24h"`             // crm.contact.synced in the last 24 h
	CRMFailed24h      int               `json:"crm_failed_24h"`             // crm.contact.failed
	CRMRetries24h     int               `json:"crm_retries_24h"`            // crm.contact.pending_retry
	CRMSuccessRate    float64           `json:"crm_success_rate"`           // synced / (synced + failed), 1 with none
	Tickets24h        int               `json:"tickets_24h"`                // support.ticket.opened
	TicketFailed24h   int               `json:"ticket_failed_24h"`          // support.ticket.failed
	TicketLatencyP50  float64           `json:"ticket_latency_p50_seconds"` // Stripe event received → ticket open
	TicketLatencyP95  float64           `json:"ticket_latency_p95_seconds"`
	TicketsTimed      int               `json:"tickets_timed_24h"`  // tickets the latencies cover (0: the latencies are not known)
	CustomersByState  map[string]int    `json:"customers_by_state"` // primary state's kind, evaluated now → customers
	Streams           map[string]uint64 `json:"streams"`            // messages per stream
	Problems          []string          `json:"problems"`
	Healthy           bool              `json:"healthy"` // no problems, nothing stalled, no open failures
	JaegerConfigured  bool              `json:"-"`
	GatewayConfigured bool              `json:"-"`
}

// ConsumerLag is one durable consumer's backlog.
type ConsumerLag struct {
	Stream      string    `json:"stream"`
	Name        string    `json:"name"`
	Pending     uint64    `json:"pending"`     // stored, not yet delivered
	AckPending  int       `json:"ack_pending"` // delivered, not yet acked
	Redelivered int       `json:"redelivered"`
	LastActive  time.Time `json:"last_active"`
}

// overviewTTL is how long an overview is served before it is read again:
// page views and status calls in a burst cost one read.
const overviewTTL = 3 * time.Second

// gatherOverview reads every figure; it never fails as a whole.
func (c *Console) gatherOverview(ctx context.Context) Overview {
	c.overviewMu.Lock()
	defer c.overviewMu.Unlock()
	if time.Since(c.overviewAt) < overviewTTL {
		return c.overviewV
	}
	o := Gather(ctx, c.js, c.store, c.dlq, c.gatewayURL)
	o.JaegerConfigured, o.GatewayConfigured = c.jaeger != "", c.gatewayURL != ""
	// A projection of another view version is being rebuilt at start, or
	// its rebuild failed (on any replica: the version is in the database).
	if v, err := StoredViewVersion(ctx, c.pool); err == nil && v != ViewVersion {
		p := fmt.Sprintf("the projection holds views of version %d, this build writes %d: its rebuild from the streams is running", v, ViewVersion)
		if e := c.rebuildFailed.Load(); e != nil {
			p = fmt.Sprintf("the projection holds views of version %d, this build writes %d, and its rebuild failed (the old views keep serving until switchyard rebuild succeeds): %s", v, ViewVersion, *e)
		}
		o.Problems = append(o.Problems, p)
		o.Healthy = false
	}
	c.overviewV, c.overviewAt = o, time.Now()
	return o
}

// Gather reads the overview from NATS, the projection and the gateway's
// metrics (gatewayMetricsURL, optional: one URL per gateway replica,
// comma-separated, whose figures are summed).
func Gather(ctx context.Context, js jetstream.JetStream, store *Store, dlq *deadletter.Store, gatewayMetricsURL string) Overview {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o := Overview{At: time.Now().UTC(), WebhookResults: map[string]int64{}, DLQByClass: map[string]int{}, CustomersByState: map[string]int{},
		Streams: map[string]uint64{}, Consumers: []ConsumerLag{}, Problems: []string{}}
	problem := func(format string, args ...any) { o.Problems = append(o.Problems, fmt.Sprintf(format, args...)) }

	for _, name := range natsbus.StreamNames() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			problem("stream %s: %v", name, err)
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			problem("stream %s: %v", name, err)
			continue
		}
		o.Streams[name] = info.State.Msgs
		if name == natsbus.StreamStripe {
			o.LastEventAt = info.State.LastTime.UTC()
			var err error
			if o.IntakeLastHour, err = storedSince(ctx, s, time.Hour); err != nil {
				problem("intake rate: %v", err)
			}
			if o.IntakeLast5m, err = storedSince(ctx, s, 5*time.Minute); err != nil {
				problem("intake rate: %v", err)
			}
		}
		for ci := range s.ListConsumers(ctx).Info() {
			if ci.Config.Durable == "" {
				continue
			}
			l := ConsumerLag{Stream: name, Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered}
			if ci.Delivered.Last != nil {
				l.LastActive = ci.Delivered.Last.UTC()
			}
			if ci.AckFloor.Last != nil && ci.AckFloor.Last.After(l.LastActive) {
				l.LastActive = ci.AckFloor.Last.UTC()
			}
			o.Consumers = append(o.Consumers, l)
			if l.Pending+uint64(l.AckPending) > 0 && time.Since(l.LastActive) > 5*time.Minute {
				problem("consumer %s on %s has %d messages waiting and nothing delivered for %s", l.Name, l.Stream, l.Pending+uint64(l.AckPending), ago(l.LastActive))
			}
		}
	}
	slices.SortFunc(o.Consumers, func(a, b ConsumerLag) int { return strings.Compare(a.Stream+"/"+a.Name, b.Stream+"/"+b.Name) })

	if entries, err := dlq.List(ctx, deadletter.Filter{}, nil); err != nil {
		problem("dead letters: %v", err)
	} else {
		for _, e := range entries {
			o.DLQByClass[e.Class.String()]++
		}
		o.DLQTotal = len(entries)
	}

	if err := store.outcomeFigures(ctx, &o); err != nil {
		problem("projection: %v", err)
	}
	if gatewayMetricsURL != "" {
		// One URL per gateway replica: the figures are their sum.
		for _, u := range strings.Split(gatewayMetricsURL, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			if err := webhookResults(ctx, u, o.WebhookResults); err != nil {
				problem("gateway metrics at %s: %v", u, err)
			}
		}
		for result, n := range o.WebhookResults {
			if result != "accepted" && result != "duplicate" {
				o.WebhookFailures += n
			}
		}
	}
	o.Healthy = len(o.Problems) == 0 && o.DLQTotal == 0
	return o
}

// storedSince counts a stream's messages stored in the last d, with an
// ephemeral headers-only consumer that is never read.
func storedSince(ctx context.Context, s jetstream.Stream, d time.Duration) (int, error) {
	start := time.Now().Add(-d)
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start, HeadersOnly: true})
	if err != nil {
		return 0, err
	}
	defer dropConsumer(ctx, s, cons)
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.NumPending), nil
}

// dropConsumer deletes an ordered consumer once read, rather than leaving
// it to the server's inactivity timeout.
func dropConsumer(ctx context.Context, s jetstream.Stream, cons jetstream.Consumer) {
	if ci := cons.CachedInfo(); ci != nil {
		_ = s.DeleteConsumer(context.WithoutCancel(ctx), ci.Name)
	}
}

// outcomeFigures reads the automation figures of the last 24 hours from
// the projection.
func (s *Store) outcomeFigures(ctx context.Context, o *Overview) error {
	rows, err := s.pool.Query(ctx, `SELECT subject, count(*) FROM `+s.t.events+`
		WHERE occurred_at > now() - interval '24 hours' AND subject = ANY($1) GROUP BY subject`,
		[]string{subjects.CRMContactSynced, subjects.CRMContactFailed, subjects.CRMContactPendingRetry, subjects.SupportTicketOpened, subjects.SupportTicketFailed})
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var subj string
		var n int
		if err := rows.Scan(&subj, &n); err != nil {
			return err
		}
		switch subj {
		case subjects.CRMContactSynced:
			o.CRMSynced24h = n
		case subjects.CRMContactFailed:
			o.CRMFailed24h = n
		case subjects.CRMContactPendingRetry:
			o.CRMRetries24h = n
		case subjects.SupportTicketOpened:
			o.Tickets24h = n
		case subjects.SupportTicketFailed:
			o.TicketFailed24h = n
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// A vendor outage under way: CRM retries in the last minutes and no
	// contact synced since the newest of them (syncs are delayed, not
	// lost; the problem clears once syncs go through again).
	var retries5m int
	var lastRetry, lastSync *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE subject = $1), max(occurred_at) FILTER (WHERE subject = $1), max(occurred_at) FILTER (WHERE subject = $2)
		FROM `+s.t.events+` WHERE occurred_at > now() - interval '5 minutes' AND subject IN ($1, $2)`,
		subjects.CRMContactPendingRetry, subjects.CRMContactSynced).Scan(&retries5m, &lastRetry, &lastSync); err != nil {
		return err
	}
	if retries5m > 0 && (lastSync == nil || lastSync.Before(*lastRetry)) {
		since := "in the last 5 minutes"
		if lastSync != nil {
			since = "since " + lastSync.UTC().Format("15:04:05 UTC")
		}
		o.Problems = append(o.Problems, fmt.Sprintf("CRM sync is failing: %d retries in the last 5 minutes and no contact synced %s (HubSpot down or rate limiting?); syncs are delayed, not lost", retries5m, since))
	}
	o.CRMSuccessRate = 1
	if total := o.CRMSynced24h + o.CRMFailed24h; total > 0 {
		o.CRMSuccessRate = float64(o.CRMSynced24h) / float64(total)
	}
	// Ticket latency: from the hub's receipt of the Stripe event (not from
	// Stripe's created: an event can arrive days later, through Stripe's
	// retries or reconcile) to the ticket's outcome. Events received before
	// receipt times were recorded are left out.
	var p50, p95 *float64
	if err := s.pool.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.95) WITHIN GROUP (ORDER BY d), count(*)
		FROM (SELECT greatest(extract(epoch FROM t.occurred_at - b.received_at), 0) AS d
			FROM `+s.t.events+` t JOIN `+s.t.sources+` src ON src.event_id = t.event_id JOIN `+s.t.events+` b ON b.event_id = src.source_id
			WHERE t.subject = $1 AND t.occurred_at > now() - interval '24 hours' AND b.received_at IS NOT NULL) l`, subjects.SupportTicketOpened).Scan(&p50, &p95, &o.TicketsTimed); err != nil {
		return err
	}
	if p50 != nil {
		o.TicketLatencyP50 = *p50
	}
	if p95 != nil {
		o.TicketLatencyP95 = *p95
	}
	// States by kind, evaluated now: the stored kind is as of the events,
	// so a scheduled retry whose date has passed counts as overdue (the
	// rule View.Evaluate applies to one customer).
	states, err := s.pool.Query(ctx, `SELECT CASE WHEN state = $1 AND (view->'last_payment'->>'next_attempt_at')::timestamptz <= now()
		THEN $2 ELSE state END, count(*) FROM `+s.t.customers+` GROUP BY 1`, KindRetryScheduled, KindRetryOverdue)
	if err != nil {
		return err
	}
	defer states.Close()
	if o.CustomersByState == nil {
		o.CustomersByState = map[string]int{}
	}
	for states.Next() {
		var state string
		var n int
		if err := states.Scan(&state, &n); err != nil {
			return err
		}
		o.CustomersByState[state] = n
	}
	return states.Err()
}

// webhookResults reads switchyard_gateway_webhooks_received_total by
// result from the gateway's Prometheus text.
func webhookResults(ctx context.Context, url string, into map[string]int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	const metric = "switchyard_gateway_webhooks_received_total{"
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, metric), "} ")
		if !ok {
			continue
		}
		_, after, ok := strings.Cut(labels, `result="`)
		if !ok {
			continue
		}
		result, _, _ := strings.Cut(after, `"`)
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			continue
		}
		into[result] += int64(f)
	}
	return sc.Err()
}
