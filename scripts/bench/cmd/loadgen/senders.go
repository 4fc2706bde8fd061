package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
	"github.com/switchyard/switchyard/scripts/bench/internal/stripestream"
)

// httpSender posts signed Stripe events over keep-alive connections.
type httpSender struct {
	client *http.Client
	url    string
	secret string
	set    *stripefixture.Set
}

func newHTTPSender(cfg config, set *stripefixture.Set) *httpSender {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.concurrency,
		MaxIdleConnsPerHost: cfg.concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &httpSender{
		client: &http.Client{Transport: transport, Timeout: cfg.timeout},
		url:    cfg.url,
		secret: cfg.secret,
		set:    set,
	}
}

// send signs at send time, so signatures stay fresh however long a request
// waited in the generator's queue. Signing one body costs microseconds,
// which is cheaper than keeping a pipeline of pre-signed bodies fresh.
func (h *httpSender) send(ctx context.Context, seq uint64) (string, bool) {
	tmpl := h.set.For(seq)
	body := tmpl.Body(tmpl.ID(seq))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return "request_error", false
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", stripefixture.SignatureHeader(h.secret, time.Now().Unix(), body))
	resp, err := h.client.Do(req)
	if err != nil {
		return classify(err), false
	}
	// Drain so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return strconv.Itoa(resp.StatusCode), resp.StatusCode >= 200 && resp.StatusCode < 300
}

// jetStreamSender publishes synchronously to the STRIPE stream, on subject
// stripe.events.<type> of each event: the floor under any webhook handler
// that acknowledges after the PubAck.
type jetStreamSender struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects []string // by template index, see stripefixture.Set.Index
	timeout  time.Duration
	set      *stripefixture.Set
}

func newJetStreamSender(ctx context.Context, cfg config, set *stripefixture.Set) (*jetStreamSender, error) {
	subjects := make([]string, set.Len())
	for i := range subjects {
		subjects[i] = stripestream.SubjectPrefix + set.For(uint64(i)).Type()
	}
	nc, err := nats.Connect(cfg.natsURL, nats.Name("loadgen"))
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	s := &jetStreamSender{nc: nc, subjects: subjects, timeout: cfg.timeout, set: set}
	if s.js, err = jetstream.New(nc); err != nil {
		return s, fmt.Errorf("jetstream: %w", err)
	}
	if err := stripestream.Ensure(ctx, s.js); err != nil {
		return s, err
	}
	return s, nil
}

func (s *jetStreamSender) send(ctx context.Context, seq uint64) (string, bool) {
	tmpl := s.set.For(seq)
	id := tmpl.ID(seq)
	msg := &nats.Msg{
		Subject: s.subjects[s.set.Index(seq)],
		Data:    tmpl.Body(id),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, msg)
	switch {
	case err != nil:
		return classify(err), false
	case ack.Duplicate:
		return "duplicate", false // ids are unique, so this is a generator bug
	default:
		return "puback", true
	}
}

func (s *jetStreamSender) close() error {
	return s.nc.Drain()
}

// classify maps a transport error to a short code for the report.
func classify(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return "no_responders"
	default:
		return "conn_error"
	}
}

// requireLoopbackURL refuses any target that is not on this machine's
// loopback interface: load must never leave the host.
func requireLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address", host)
}
