package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/natsbus"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg, reqID string) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.RequestID = code, msg, reqID
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Health answers the health endpoints from the broker's own state: nothing
// here is cached across requests, so a stalled consumer shows immediately.
type Health struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	now func() time.Time

	// The report asks JetStream about every stream and consumer; callers
	// polling it (dashboards, probes) share one report per second so the
	// endpoint cannot be used to load the broker.
	mu       sync.Mutex
	cached   WebhookHealth
	cachedAt time.Time
}

// reportMaxAge is how long a webhook-health report is reused.
const reportMaxAge = time.Second

// StreamHealth is one stream's state in webhook-health.
type StreamHealth struct {
	Present       bool       `json:"present"`
	Messages      uint64     `json:"messages"`
	Bytes         uint64     `json:"bytes"`
	LastMessageAt *time.Time `json:"last_message_at,omitempty"`
	Error         string     `json:"error,omitempty"`
}

// ConsumerHealth is one durable consumer's progress.
type ConsumerHealth struct {
	Stream       string     `json:"stream"`
	Name         string     `json:"name"`
	Pending      uint64     `json:"pending"`
	AckPending   int        `json:"ack_pending"`
	Redelivered  int        `json:"redelivered"`
	LastActiveAt *time.Time `json:"last_active_at,omitempty"`
	Stalled      bool       `json:"stalled"`
}

// WebhookHealth is the body of GET /api/stripe/webhook-health.
type WebhookHealth struct {
	Status              string                  `json:"status"` // ok | degraded | down
	Problems            []string                `json:"problems"`
	Environment         string                  `json:"environment"`
	AcceptsLivemode     bool                    `json:"accepts_livemode"`
	PinnedAPIVersion    string                  `json:"pinned_api_version"`
	SecretsConfigured   int                     `json:"secrets_configured"`
	NATSConnected       bool                    `json:"nats_connected"`
	Streams             map[string]StreamHealth `json:"streams"`
	Consumers           []ConsumerHealth        `json:"consumers"`
	DLQDepth            uint64                  `json:"dlq_depth"`
	LastEventReceivedAt *time.Time              `json:"last_event_received_at,omitempty"`
	CheckedAt           time.Time               `json:"checked_at"`
}

// Report returns the webhook path's health, at most reportMaxAge old.
func (h *Health) Report(ctx context.Context) WebhookHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); now.Sub(h.cachedAt) < reportMaxAge {
		return h.cached
	}
	h.cached = h.report(ctx)
	h.cachedAt = h.now()
	return h.cached
}

func (h *Health) report(ctx context.Context) WebhookHealth {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	rep := WebhookHealth{
		Environment: h.cfg.Env, AcceptsLivemode: h.cfg.AcceptsLivemode(), PinnedAPIVersion: PinnedAPIVersion,
		SecretsConfigured: len(h.cfg.Secrets), NATSConnected: h.nc.IsConnected(),
		Streams: map[string]StreamHealth{}, Consumers: []ConsumerHealth{}, Problems: []string{}, CheckedAt: h.now().UTC(),
	}
	if !rep.NATSConnected {
		rep.Status = "down"
		rep.Problems = append(rep.Problems, "not connected to NATS: webhooks are answered 503")
		return rep
	}
	walk := natsbus.WalkHealth(ctx, h.js, h.now(), h.cfg.StallAfter)
	for _, st := range walk.Streams {
		rep.addStream(st, walk.Consumers, h.cfg.StallAfter)
	}
	rep.DLQDepth = walk.DLQDepth
	rep.LastEventReceivedAt = rep.Streams[natsbus.StreamStripe].LastMessageAt
	switch {
	case len(rep.Problems) == 0:
		rep.Status = "ok"
	case !rep.Streams[natsbus.StreamStripe].Present:
		rep.Status = "down"
	default:
		rep.Status = "degraded"
	}
	return rep
}

// addStream reports one stream of the walk, its consumers (those of
// consumers on it) and their problems.
func (rep *WebhookHealth) addStream(st natsbus.StreamState, consumers []natsbus.ConsumerState, stallAfter time.Duration) {
	if !st.Present {
		rep.Streams[st.Name] = StreamHealth{Error: st.Err.Error()}
		rep.Problems = append(rep.Problems, "stream "+st.Name+" unavailable: "+st.Err.Error())
		return
	}
	sh := StreamHealth{Present: true, Messages: st.Messages, Bytes: st.Bytes}
	if !st.LastMessageAt.IsZero() {
		t := st.LastMessageAt
		sh.LastMessageAt = &t
	}
	rep.Streams[st.Name] = sh
	if st.Name == natsbus.StreamDLQ && st.Messages > 0 {
		rep.Problems = append(rep.Problems, "dead letters waiting: see `switchyard dlq list`")
	}
	for _, c := range consumers {
		if c.Stream != st.Name {
			continue
		}
		ch := ConsumerHealth{Stream: c.Stream, Name: c.Name, Pending: c.Pending, AckPending: c.AckPending, Redelivered: c.Redelivered, Stalled: c.Stalled}
		if !c.LastActive.IsZero() {
			t := c.LastActive
			ch.LastActiveAt = &t
		}
		if c.Stalled {
			rep.Problems = append(rep.Problems, "consumer "+c.Name+" on "+c.Stream+" has work but no delivery within "+stallAfter.String())
		}
		rep.Consumers = append(rep.Consumers, ch)
	}
	if st.ListErr != nil {
		rep.Problems = append(rep.Problems, "list consumers on "+st.Name+": "+st.ListErr.Error())
	}
}

func (h *Health) webhookHealth(w http.ResponseWriter, r *http.Request) {
	rep := h.Report(r.Context())
	status := http.StatusOK
	if rep.Status == "down" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}
