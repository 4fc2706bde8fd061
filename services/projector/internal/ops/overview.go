package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/projector/client"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// Overview is the status API's document (client.Overview).
type Overview = client.Overview

// ConsumerLag is the status API's document (client.ConsumerLag).
type ConsumerLag = client.ConsumerLag

// overviewTTL is how long an overview is served before it is read again:
// page views and status calls in a burst cost one read.
const overviewTTL = 3 * time.Second

// stallAfter is how long a durable consumer may have work waiting with
// nothing delivered or acked before the overview calls it stalled.
const stallAfter = 5 * time.Minute

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
	if v, err := migrations.StoredViewVersion(ctx, c.pool); err == nil && v != view.ViewVersion {
		p := fmt.Sprintf("the projection holds views of version %d, this build writes %d: its rebuild from the streams is running", v, view.ViewVersion)
		if e := c.rebuildFailed.Load(); e != nil {
			p = fmt.Sprintf("the projection holds views of version %d, this build writes %d, and its rebuild failed (the old views keep serving until switchyard rebuild succeeds): %s", v, view.ViewVersion, *e)
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
func Gather(ctx context.Context, js jetstream.JetStream, store *view.Store, dlq *deadletter.Store, gatewayMetricsURL string) Overview {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o := Overview{At: time.Now().UTC(), WebhookResults: map[string]int64{}, DLQByClass: map[string]int{}, CustomersByState: map[string]int{},
		Streams: map[string]uint64{}, Consumers: []ConsumerLag{}, Problems: []string{}}
	problem := func(format string, args ...any) { o.Problems = append(o.Problems, fmt.Sprintf(format, args...)) }

	// Problems keep the walk's order: a stream's, then its consumers'.
	now := time.Now()
	health := natsbus.WalkHealth(ctx, js, now, stallAfter)
	for _, st := range health.Streams {
		if !st.Present {
			problem("stream %s: %v", st.Name, st.Err)
			continue
		}
		o.Streams[st.Name] = st.Messages
		if st.Name == natsbus.StreamStripe {
			// The stream's LastTime, not st.LastMessageAt: a purged stream
			// still tells when its last event arrived.
			o.LastEventAt = st.Stream.CachedInfo().State.LastTime.UTC()
			var err error
			if o.IntakeLastHour, err = storedSince(ctx, st.Stream, time.Hour); err != nil {
				problem("intake rate: %v", err)
			}
			if o.IntakeLast5m, err = storedSince(ctx, st.Stream, 5*time.Minute); err != nil {
				problem("intake rate: %v", err)
			}
		}
		for _, c := range health.Consumers {
			if c.Stream != st.Name || !c.Durable {
				continue // another stream's, or a reader's ordered consumer
			}
			o.Consumers = append(o.Consumers, ConsumerLag{Stream: c.Stream, Name: c.Name, Pending: c.Pending, AckPending: c.AckPending, Redelivered: c.Redelivered, LastActive: c.LastActive})
			// The projector's rule, not c.Stalled: a consumer that never
			// ran with work waiting is stalled at once, not stallAfter
			// after its creation.
			if c.Waiting() > 0 && now.Sub(c.LastActive) > stallAfter {
				problem("consumer %s on %s has %d messages waiting and nothing delivered for %s", c.Name, c.Stream, c.Waiting(), ago(c.LastActive))
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

	if err := store.OutcomeFigures(ctx, &o); err != nil {
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
	defer view.DropConsumer(ctx, s, cons)
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.NumPending), nil
}

// webhookMetric is the gateway's counter of webhook requests by result.
const webhookMetric = "switchyard_gateway_webhooks_received_total"

// maxMetricsBody bounds a gateway scrape (the gateway's whole /metrics is
// tens of KiB): a bigger body is an error, never a silently cut one.
const maxMetricsBody = 8 << 20

// metricsAccept asks for the Prometheus text format, or the delimited
// protobuf one; both decode the same. OpenMetrics is not asked for: its
// exemplars and _created series are not in the text parser's grammar.
const metricsAccept = `text/plain;version=0.0.4;q=1,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5`

// webhookResults adds the gateway's switchyard_gateway_webhooks_received_total
// at url, summed by its result label, to into. The body is decoded with the
// Prometheus exposition parser in the format its Content-Type names; a body
// that does not parse, a series without a result, or a value that is not a
// count is an error and adds nothing.
func webhookResults(ctx context.Context, url string, into map[string]int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", metricsAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(body) > maxMetricsBody {
		return fmt.Errorf("body larger than %d bytes", maxMetricsBody)
	}
	got, err := parseWebhookResults(resp.Header, body)
	if err != nil {
		return err
	}
	for result, n := range got {
		into[result] += n
	}
	return nil
}

// parseWebhookResults decodes a scrape in the format header's Content-Type
// names and returns webhookMetric's values by result.
func parseWebhookResults(header http.Header, body []byte) (map[string]int64, error) {
	format := expfmt.ResponseFormat(header)
	switch format.FormatType() {
	case expfmt.TypeTextPlain, expfmt.TypeProtoDelim:
	default:
		return nil, fmt.Errorf("the Content-Type %q is not the Prometheus text or protobuf format", header.Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	out := map[string]int64{}
	seen := map[string]bool{} // label sets: a series given twice is malformed
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("malformed metrics: %w", err)
		}
		if mf.GetName() != webhookMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_UNTYPED:
				v = m.GetUntyped().GetValue()
			default:
				return nil, fmt.Errorf("%s is a %s, want a counter", webhookMetric, strings.ToLower(mf.GetType().String()))
			}
			var result string
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					result = l.GetValue()
				}
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			if result == "" {
				return nil, fmt.Errorf("%s has a series without a result label", webhookMetric)
			}
			slices.Sort(labels)
			key := strings.Join(labels, ",")
			if seen[key] {
				return nil, fmt.Errorf("%s{%s} is given twice", webhookMetric, key)
			}
			seen[key] = true
			if v < 0 || v != math.Trunc(v) || v > math.MaxInt64/2 { // also NaN and ±Inf
				return nil, fmt.Errorf("%s{result=%q} = %v, not a count", webhookMetric, result, v)
			}
			out[result] += int64(v)
		}
	}
}
