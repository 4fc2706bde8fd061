package gateway

import (
	"context"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Results of a webhook request, the bounded label set of webhooks_received.
const (
	resultAccepted         = "accepted"
	resultDuplicate        = "duplicate"
	resultMethod           = "method_not_allowed"
	resultTooLarge         = "payload_too_large"
	resultBodyRead         = "body_read_error"
	resultSigMissing       = "signature_missing"
	resultSigMalformed     = "signature_malformed"
	resultSigInvalid       = "signature_invalid"
	resultSigExpired       = "signature_expired"
	resultSigFuture        = "signature_from_future"
	resultInvalidJSON      = "invalid_json"
	resultInvalidEvent     = "invalid_event"
	resultLivemodeRejected = "livemode_rejected"
	resultUnavailable      = "store_unavailable"
)

var allResults = []string{
	resultAccepted, resultDuplicate, resultMethod, resultTooLarge, resultBodyRead,
	resultSigMissing, resultSigMalformed, resultSigInvalid, resultSigExpired, resultSigFuture,
	resultInvalidJSON, resultInvalidEvent, resultLivemodeRejected, resultUnavailable,
}

type metrics struct {
	received   metric.Int64Counter
	byResult   map[string]metric.AddOption // precomputed attribute sets: no allocation per request
	ackLatency metric.Float64Histogram
	mismatch   metric.Int64Counter
	livemode   metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("github.com/switchyard/switchyard/services/gateway")
	received, err := m.Int64Counter("switchyard_gateway_webhooks_received",
		metric.WithDescription("Stripe webhook requests by result"))
	if err != nil {
		return nil, err
	}
	ack, err := m.Float64Histogram("switchyard_gateway_ack_latency",
		metric.WithUnit("s"),
		metric.WithDescription("Time from request received to JetStream PubAck, for stored events"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
	if err != nil {
		return nil, err
	}
	mismatch, err := m.Int64Counter("switchyard_gateway_api_version_mismatch",
		metric.WithDescription("Accepted events whose api_version differs from the pinned stripe-go version"))
	if err != nil {
		return nil, err
	}
	livemode, err := m.Int64Counter("switchyard_gateway_livemode_rejected",
		metric.WithDescription("Events rejected by the environment guard, by the event's livemode"))
	if err != nil {
		return nil, err
	}
	out := &metrics{received: received, ackLatency: ack, mismatch: mismatch, livemode: livemode, byResult: map[string]metric.AddOption{}}
	for _, r := range allResults {
		out.byResult[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", r)))
		out.received.Add(context.Background(), 0, out.byResult[r]) // every result's series exists from the start
	}
	return out, nil
}
