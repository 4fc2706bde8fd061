package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// The durable consumers of the catalogue, by name. A consumer's name is
// also its dead-letter subject, dlq.<name>. Identity's two are named after
// Options.IdentityConsumer (IDENTITY_CONSUMER), default ConsumerIdentity.
const (
	ConsumerIdentity         = "identity"           // STRIPE: every Stripe event
	ConsumerCRM              = "crm"                // BILLING: contacts to HubSpot
	ConsumerSupport          = "support"            // BILLING: tickets in Zendesk
	ConsumerAlerts           = "alerts"             // DLQ: dead letters to Slack
	ConsumerAlertsCRMRetries = "alerts_crm_retries" // CRM: retry storms
	ConsumerProjector        = "projector"          // BILLING, CRM and SUPPORT: the customer view
)

// IdentityCRMLinks is the name of identity's consumer of CRM outcomes (it
// links customers to their contacts), given identity's own durable name.
func IdentityCRMLinks(identity string) string { return identity + "_crm_links" }

// The settings every durable of the catalogue shares; the consumer
// framework's defaults are the same values.
const (
	// DefaultAckWait is how long the server waits for an ack before it
	// redelivers (a handler working longer is kept alive with InProgress).
	DefaultAckWait = 30 * time.Second
	// DefaultMaxAckPending bounds the messages delivered and not yet acked.
	DefaultMaxAckPending = 1000
)

// Durable is one durable pull consumer of the catalogue: explicit ack,
// delivery from the start of its stream, never given up on by the server
// (MaxDeliver unlimited: the consumer framework dead-letters instead).
type Durable struct {
	Name          string   // durable name
	Stream        string   // the stream it reads
	Subjects      []string // filter; empty = the whole stream
	AckWait       time.Duration
	MaxAckPending int
}

// Config is the JetStream configuration Migrate gives the durable.
func (d Durable) Config() jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       d.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: d.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if cc.AckWait <= 0 {
		cc.AckWait = DefaultAckWait
	}
	if cc.MaxAckPending <= 0 {
		cc.MaxAckPending = DefaultMaxAckPending
	}
	switch len(d.Subjects) {
	case 0:
	case 1:
		cc.FilterSubject = d.Subjects[0] // understood by servers before 2.10 too
	default:
		cc.FilterSubjects = d.Subjects
	}
	return cc
}

func (d Durable) String() string { return "consumer " + d.Name + " on " + d.Stream }

// Durables returns the hub's durable consumers: every one a service binds
// to, in the order Migrate creates them.
func Durables(o Options) []Durable {
	identity := o.identityConsumer()
	def := func(name, stream string, filter ...string) Durable {
		return Durable{Name: name, Stream: stream, Subjects: filter, AckWait: DefaultAckWait, MaxAckPending: DefaultMaxAckPending}
	}
	return []Durable{
		def(identity, StreamStripe, wire.StripeEventsAll),
		def(IdentityCRMLinks(identity), StreamCRM, subjects.CRMContactSynced),
		def(ConsumerCRM, StreamBilling, wire.BillingAll),
		def(ConsumerSupport, StreamBilling, wire.BillingAll),
		def(ConsumerAlerts, StreamDLQ, wire.DLQAll),
		def(ConsumerAlertsCRMRetries, StreamCRM, subjects.CRMContactPendingRetry),
		// The projector reads each of its streams whole; a batch of 500
		// (PROJECTOR_BATCH's default) in hand and one buffered is 1000.
		def(ConsumerProjector, StreamBilling),
		def(ConsumerProjector, StreamCRM),
		def(ConsumerProjector, StreamSupport),
	}
}

// Change is one stream or consumer as Migrate found and left it.
type Change struct {
	Kind   string   `json:"kind"`   // "stream" or "consumer"
	Stream string   `json:"stream"` // the stream, or the consumer's stream
	Name   string   `json:"name"`   // the stream's or the consumer's name
	Action string   `json:"action"` // "created", "updated" or "unchanged"
	Diff   []string `json:"diff,omitempty"`
}

// Migrate actions.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
)

func (c Change) String() string {
	what := "stream " + c.Name
	if c.Kind == "consumer" {
		what = "consumer " + c.Name + " on " + c.Stream
	}
	if len(c.Diff) > 0 {
		return fmt.Sprintf("%s: %s (%s)", what, c.Action, strings.Join(c.Diff, ", "))
	}
	return what + ": " + c.Action
}

// Migrate creates every stream and durable consumer of the catalogue for o
// that does not exist, updates those whose settings differ, and returns
// what it found and did, in catalogue order. It is the one place stream
// and consumer settings are applied: `switchyard migrate` (and `switchyard
// dev`, and the test kit) call it; services only Check.
//
// It is idempotent and safe to run concurrently: a create that loses a race
// finds the winner's stream or consumer and compares it like any other. It
// goes on past a failure and returns every error joined; the consumers of
// a stream it could not create are not attempted.
func Migrate(ctx context.Context, js jetstream.JetStream, o Options) ([]Change, error) {
	var (
		out    []Change
		errs   []error
		failed = map[string]bool{}
	)
	for _, want := range Streams(o) {
		c, err := migrateStream(ctx, js, want)
		if err != nil {
			errs = append(errs, fmt.Errorf("migrate stream %s: %w", want.Name, err))
			failed[want.Name] = true
			continue
		}
		out = append(out, c)
	}
	for _, d := range Durables(o) {
		if failed[d.Stream] {
			continue
		}
		c, err := migrateConsumer(ctx, js, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("migrate %s: %w", d, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func migrateStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (Change, error) {
	c := Change{Kind: "stream", Stream: want.Name, Name: want.Name}
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = js.CreateStream(ctx, want); err == nil {
			c.Action = Created
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return c, err
		}
		s, err = js.Stream(ctx, want.Name) // created meanwhile by another run
	}
	if err != nil {
		return c, err
	}
	c.Diff = streamDiff(s.CachedInfo().Config, want)
	if len(c.Diff) == 0 {
		c.Action = Unchanged
		return c, nil
	}
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return c, fmt.Errorf("update (%s): %w", strings.Join(c.Diff, ", "), err)
	}
	c.Action = Updated
	return c, nil
}

func migrateConsumer(ctx context.Context, js jetstream.JetStream, d Durable) (Change, error) {
	c := Change{Kind: "consumer", Stream: d.Stream, Name: d.Name}
	want := d.Config()
	cons, err := js.Consumer(ctx, d.Stream, d.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if _, err = js.CreateConsumer(ctx, d.Stream, want); err == nil {
			c.Action = Created
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return c, err
		}
		cons, err = js.Consumer(ctx, d.Stream, d.Name) // created meanwhile by another run
	}
	if err != nil {
		return c, err
	}
	c.Diff = consumerDiff(cons.CachedInfo().Config, want)
	if len(c.Diff) == 0 {
		c.Action = Unchanged
		return c, nil
	}
	if _, err := js.UpdateConsumer(ctx, d.Stream, want); err != nil {
		return c, fmt.Errorf("update (%s): %w", strings.Join(c.Diff, ", "), err)
	}
	c.Action = Updated
	return c, nil
}

// streamDiff lists the settings of got that differ from want, as
// "name got → want", for the fields the catalogue sets.
func streamDiff(got, want jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, g, w any) { d = append(d, fmt.Sprintf("%s %v → %v", name, g, w)) }
	if !slices.Equal(got.Subjects, want.Subjects) {
		add("subjects", got.Subjects, want.Subjects)
	}
	if got.Storage != want.Storage {
		add("storage", got.Storage, want.Storage)
	}
	if got.Retention != want.Retention {
		add("retention", got.Retention, want.Retention)
	}
	if got.Discard != want.Discard {
		add("discard", got.Discard, want.Discard)
	}
	if max(got.Replicas, 1) != max(want.Replicas, 1) {
		add("replicas", got.Replicas, want.Replicas)
	}
	if got.Duplicates != want.Duplicates {
		add("duplicate_window", got.Duplicates, want.Duplicates)
	}
	if got.MaxAge != want.MaxAge {
		add("max_age", got.MaxAge, want.MaxAge)
	}
	if limit(got.MaxBytes) != limit(want.MaxBytes) {
		add("max_bytes", limit(got.MaxBytes), limit(want.MaxBytes))
	}
	if got.Description != want.Description {
		add("description", fmt.Sprintf("%q", got.Description), fmt.Sprintf("%q", want.Description))
	}
	return d
}

// consumerDiff is streamDiff for a durable consumer.
func consumerDiff(got, want jetstream.ConsumerConfig) []string {
	var d []string
	add := func(name string, g, w any) { d = append(d, fmt.Sprintf("%s %v → %v", name, g, w)) }
	if g, w := filters(got), filters(want); !slices.Equal(g, w) {
		add("filter", g, w)
	}
	if got.AckPolicy != want.AckPolicy {
		add("ack_policy", got.AckPolicy, want.AckPolicy)
	}
	if got.DeliverPolicy != want.DeliverPolicy {
		add("deliver_policy", got.DeliverPolicy, want.DeliverPolicy)
	}
	if got.AckWait != want.AckWait {
		add("ack_wait", got.AckWait, want.AckWait)
	}
	if limit(int64(got.MaxDeliver)) != limit(int64(want.MaxDeliver)) {
		add("max_deliver", got.MaxDeliver, want.MaxDeliver)
	}
	if got.MaxAckPending != want.MaxAckPending {
		add("max_ack_pending", got.MaxAckPending, want.MaxAckPending)
	}
	return d
}

// limit reads a JetStream limit: zero and negative both mean none.
func limit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// filters is a consumer's filter as one list, whichever field holds it.
func filters(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return c.FilterSubjects
}

// ErrNotMigrated is what Check and Bind return (wrapped in a
// *NotMigratedError naming each problem) when a stream or consumer a
// service needs is missing or incompatible with the catalogue. Services
// refuse to start on it: only `switchyard migrate` fixes it.
var ErrNotMigrated = errors.New("JetStream streams or consumers not migrated")

// NotMigratedError lists what is missing or incompatible.
type NotMigratedError struct {
	Problems []string
	errs     []error // the server's answers, for errors.Is
}

func (e *NotMigratedError) Error() string {
	return strings.Join(e.Problems, "; ") + ": run `switchyard migrate`"
}

// Is makes errors.Is(err, ErrNotMigrated) hold.
func (e *NotMigratedError) Is(target error) bool { return target == ErrNotMigrated }

// Unwrap returns the server's answers (jetstream.ErrStreamNotFound, …).
func (e *NotMigratedError) Unwrap() []error { return e.errs }

func (e *NotMigratedError) add(err error, format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
	if err != nil {
		e.errs = append(e.errs, err)
	}
}

func (e *NotMigratedError) orNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Check verifies, changing nothing, that every hub stream exists with the
// catalogue's subjects, storage and retention, and that each named
// consumer of the catalogue for o (a name the projector uses is checked on
// each of its streams) exists with the catalogue's filter and explicit
// ack. What is missing or incompatible comes back as a *NotMigratedError
// (errors.Is ErrNotMigrated) that names each problem; any other error is
// the server's (unreachable, a timeout).
//
// drift lists the differences Check tolerates: a stream's replicas, max
// age, dedup window or DLQ size bound against the settings o was given
// explicitly (OptionsFromEnv: the NATS_* variables set), and a consumer's
// ack wait or max ack pending against the catalogue's. Services log them;
// nothing but Migrate changes a stream's settings.
func Check(ctx context.Context, js jetstream.JetStream, o Options, consumers ...string) (drift []string, err error) {
	nm := &NotMigratedError{}
	present := map[string]bool{}
	for _, want := range Streams(o) {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			nm.add(err, "stream %s does not exist", want.Name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("check stream %s: %w", want.Name, err)
		}
		present[want.Name] = true
		got := s.CachedInfo().Config
		if !slices.Equal(got.Subjects, want.Subjects) {
			nm.add(nil, "stream %s captures %v, the catalogue %v", want.Name, got.Subjects, want.Subjects)
		}
		if got.Storage != want.Storage {
			nm.add(nil, "stream %s has %v storage, the catalogue %v", want.Name, got.Storage, want.Storage)
		}
		if got.Retention != want.Retention {
			nm.add(nil, "stream %s has %v retention, the catalogue %v", want.Name, got.Retention, want.Retention)
		}
		drift = append(drift, streamDrift(got, want, o.Explicit)...)
	}
	catalogue := Durables(o)
	for _, name := range consumers {
		found := false
		for _, d := range catalogue {
			if d.Name != name {
				continue
			}
			found = true
			if !present[d.Stream] {
				continue // reported with the stream
			}
			cons, err := js.Consumer(ctx, d.Stream, d.Name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				nm.add(err, "%s does not exist", d)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("check %s: %w", d, err)
			}
			got, want := cons.CachedInfo().Config, d.Config()
			for _, p := range incompatible(got, want) {
				nm.add(nil, "%s %s", d, p)
			}
			if got.AckWait != want.AckWait {
				drift = append(drift, fmt.Sprintf("%s waits %v for an ack, the catalogue %v", d, got.AckWait, want.AckWait))
			}
			if got.MaxAckPending != want.MaxAckPending {
				drift = append(drift, fmt.Sprintf("%s allows %d unacknowledged, the catalogue %d", d, got.MaxAckPending, want.MaxAckPending))
			}
		}
		if !found {
			return nil, fmt.Errorf("check: consumer %q is not in the catalogue (natsbus.Durables)", name)
		}
	}
	return drift, nm.orNil()
}

// streamDrift compares the settings the service's environment gave
// explicitly (names of NATS_* variables) with the stream's.
func streamDrift(got, want jetstream.StreamConfig, explicit []string) []string {
	var d []string
	note := func(what string, g, w any, env string) {
		d = append(d, fmt.Sprintf("stream %s has %s %v where %s asks for %v; only `switchyard migrate` changes it", want.Name, what, g, env, w))
	}
	for _, env := range explicit {
		switch env {
		case envReplicas:
			if max(got.Replicas, 1) != max(want.Replicas, 1) {
				note("replicas", got.Replicas, want.Replicas, env)
			}
		case envMaxAge:
			if want.Name != StreamDLQ && got.MaxAge != want.MaxAge {
				note("max age", got.MaxAge, want.MaxAge, env)
			}
		case envDuplicateWindow:
			if got.Duplicates != want.Duplicates {
				note("dedup window", got.Duplicates, want.Duplicates, env)
			}
		case envDLQMaxMB:
			if want.Name == StreamDLQ && limit(got.MaxBytes) != limit(want.MaxBytes) {
				note("max bytes", got.MaxBytes, want.MaxBytes, env)
			}
		}
	}
	return d
}

// incompatible lists why a durable cannot serve as want: a different
// filter (it would hand the service other messages, or miss some), an ack
// policy other than explicit (the framework's acks would mean nothing) or
// a delivery limit (the server would drop what the framework retries).
func incompatible(got, want jetstream.ConsumerConfig) []string {
	var p []string
	if g, w := filters(got), filters(want); !slices.Equal(g, w) {
		p = append(p, fmt.Sprintf("filters %s, the service needs %s", subjectList(g), subjectList(w)))
	}
	if got.AckPolicy != jetstream.AckExplicitPolicy {
		p = append(p, fmt.Sprintf("has ack policy %v, the service needs explicit", got.AckPolicy))
	}
	if got.MaxDeliver > 0 {
		p = append(p, fmt.Sprintf("gives up after %d deliveries, the service needs no limit", got.MaxDeliver))
	}
	return p
}

func subjectList(s []string) string {
	if len(s) == 0 {
		return "the whole stream"
	}
	return strings.Join(s, ", ")
}

// Bind returns the existing durable consumer d.Name on d.Stream after
// checking it can serve d: same filter, explicit ack, no delivery limit.
// A missing or incompatible one is a *NotMigratedError (errors.Is
// ErrNotMigrated); Bind never creates or changes a consumer.
func Bind(ctx context.Context, js jetstream.JetStream, d Durable) (jetstream.Consumer, error) {
	nm := &NotMigratedError{}
	cons, err := js.Consumer(ctx, d.Stream, d.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		nm.add(err, "stream %s does not exist", d.Stream)
		return nil, nm
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		nm.add(err, "%s does not exist", d)
		return nil, nm
	case err != nil:
		return nil, fmt.Errorf("bind %s: %w", d, err)
	}
	for _, p := range incompatible(cons.CachedInfo().Config, d.Config()) {
		nm.add(nil, "%s %s", d, p)
	}
	if err := nm.orNil(); err != nil {
		return nil, err
	}
	return failoverConsumer{cons}, nil
}

// failoverConsumer is a bound durable whose message iterator rides out a
// cluster failover. When the node leading the durable goes away, the pull
// request parked there is lost and no heartbeat arrives; the iterator then
// issues a new pull by itself (to the new leader), but by default its
// Next also returns ErrNoHeartbeat, which a caller taking every error as
// the end stops on — a consumer service exited for good when a JetStream
// node was killed. Nothing is lost by staying silent: unacked messages are
// redelivered after AckWait wherever the durable now lives.
type failoverConsumer struct{ jetstream.Consumer }

func (c failoverConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	return c.Consumer.Messages(append([]jetstream.PullMessagesOpt{jetstream.WithMessagesErrOnMissingHeartbeat(false)}, opts...)...)
}
