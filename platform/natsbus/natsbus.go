// Package natsbus connects to NATS and owns the JetStream topology.
//
// Every stream the hub uses (Streams) and every durable consumer its
// services bind to (Durables) is defined here, in one catalogue. One step
// applies it: Migrate, run by `switchyard migrate` (and by `switchyard dev`
// before it starts the services), creates what is missing and updates what
// differs. Services never create or change a stream or a consumer: at
// start they Check that what they need exists with compatible settings,
// and refuse to start, saying to run `switchyard migrate`, when it does
// not — so no service's environment can change another's retention, and a
// service's NATS identity needs no right to create or delete either.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/telemetry"
	"github.com/switchyard/switchyard/proto/wire"
)

// Stream names and the subjects they capture. Subjects are a public contract
// (see proto/wire); stream names are an operational detail.
const (
	StreamStripe  = "STRIPE"
	StreamBilling = "BILLING"
	StreamCRM     = "CRM"
	StreamSupport = "SUPPORT"
	StreamDLQ     = "DLQ"
)

// Options configures the connection and the catalogue: the stream
// settings below are applied by Migrate alone; to a service they are only
// what Check compares the streams with.
type Options struct {
	URL       string
	CredsFile string // NATS_CREDS: a .creds file (JWT + NKey seed); empty for none
	// User and Password (NATS_USER, NATS_PASSWORD or NATS_PASSWORD_FILE)
	// are the service's NATS identity on a server configured from
	// Permissions; a user and password in the URL work too.
	User     string
	Password config.Secret
	Name     string // client name shown in server monitoring

	// Replicas is the stream replica count: 1 for a single server, 3 for a cluster.
	Replicas int
	// DuplicateWindow is JetStream's Nats-Msg-Id dedup window. It is the first
	// line of defence only; the done-effects ledger in PostgreSQL has no expiry.
	DuplicateWindow time.Duration
	// MaxAge bounds how long messages are kept (0 = forever). The streams are
	// the source the projector rebuilds from, so the default keeps everything.
	MaxAge time.Duration
	// DLQMaxBytes bounds the dead letters (default DefaultDLQMaxBytes). They
	// never expire by age, whatever MaxAge says: an open failure waits for a
	// person. A full DLQ refuses new dead letters, and the consumer framework
	// then keeps the failing message and retries it — nothing is dropped.
	DLQMaxBytes int64

	// Explicit names the stream settings above that were given, not
	// defaulted (OptionsFromEnv: the NATS_* variables set). Check reports
	// where the streams differ from these; only Migrate applies settings.
	Explicit []string
	// IdentityConsumer is identity's durable name (IDENTITY_CONSUMER;
	// empty: ConsumerIdentity), after which the catalogue names identity's
	// two consumers.
	IdentityConsumer string

	// FailFast makes publishes fail at once while disconnected instead of
	// being buffered, so the gateway can answer 503 rather than claim success.
	FailFast bool

	Logger *slog.Logger
}

// identityConsumer is identity's durable name: IdentityConsumer, or
// ConsumerIdentity when unset.
func (o Options) identityConsumer() string {
	if o.IdentityConsumer == "" {
		return ConsumerIdentity
	}
	return o.IdentityConsumer
}

// Connect dials NATS with a reconnect policy that never gives up: a service
// outlives broker restarts and reports not-ready while disconnected.
func Connect(_ context.Context, o Options) (*nats.Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.Timeout(5 * time.Second),
		// Callbacks outlive Connect's ctx, so they log without it.
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("nats async error", "error", err)
		}),
	}
	if o.FailFast {
		opts = append(opts, nats.ReconnectBufSize(-1))
	}
	opts = append(opts, o.AuthOptions()...)
	nc, err := nats.Connect(o.URL, opts...)
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		// A parse error quotes the raw URL, credentials and all: drop it.
		return nil, fmt.Errorf("connect nats %s: not a valid URL (percent-encode / ? # %% in a user or password)", config.RedactURL(o.URL))
	}
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", config.RedactURL(o.URL), err)
	}
	return nc, nil
}

// AuthOptions are the client options that present o's credentials: the
// .creds file, or the user and password with that identity's inbox
// prefix (the only inboxes Permissions lets it read). Tools that dial NATS themselves
// (the doctor's probes) use them too.
func (o Options) AuthOptions() []nats.Option {
	var opts []nats.Option
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password.Reveal()), nats.CustomInboxPrefix(InboxPrefix(o.User)))
	}
	return opts
}

// Streams returns the hub's stream definitions for o.
func Streams(o Options) []jetstream.StreamConfig {
	replicas := o.Replicas
	if replicas < 1 {
		replicas = 1
	}
	dup := o.DuplicateWindow
	if dup <= 0 {
		dup = time.Hour
	}
	def := func(name, subject, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			Replicas:    replicas,
			Duplicates:  dup,
			MaxAge:      o.MaxAge,
		}
	}
	return []jetstream.StreamConfig{
		def(StreamStripe, wire.StripeEventsAll, "Verified Stripe webhook events, raw bytes as received"),
		def(StreamBilling, wire.BillingAll, "Domain events keyed by canonical customer"),
		def(StreamCRM, wire.CRMAll, "CRM sync outcomes"),
		def(StreamSupport, wire.SupportAll, "Support automation outcomes"),
		// DLQ holds open dead letters only: replay and discard delete them,
		// so its message count is the number of unresolved failures.
		dlq(def(StreamDLQ, wire.DLQAll, "Dead letters with their reason, per consumer"), o.DLQMaxBytes),
	}
}

// DefaultDLQMaxBytes is the dead letters' size bound unless configured.
const DefaultDLQMaxBytes = 1 << 30

// dlq makes the DLQ stream's settings: no expiry by age (an open failure
// waits for a person, however long), bounded by size, and full means new
// dead letters are refused rather than the oldest ones dropped.
func dlq(c jetstream.StreamConfig, maxBytes int64) jetstream.StreamConfig {
	if maxBytes <= 0 {
		maxBytes = DefaultDLQMaxBytes
	}
	c.MaxAge, c.MaxBytes, c.Discard = 0, maxBytes, jetstream.DiscardNew
	return c
}

// StreamNames lists the hub's streams in definition order.
func StreamNames() []string {
	var out []string
	for _, c := range Streams(Options{}) {
		out = append(out, c.Name)
	}
	return out
}

// LogValue is the loggable form of the options: no credentials, no logger.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", config.RedactURL(o.URL)),
		slog.Bool("credentials_file_set", o.CredsFile != ""),
		slog.String("user", o.User),
		slog.Bool("password_set", o.Password.IsSet()),
		slog.Int("replicas", o.Replicas),
		slog.String("duplicate_window", o.DuplicateWindow.String()),
		slog.String("max_age", o.MaxAge.String()),
		slog.Int64("dlq_max_bytes", o.DLQMaxBytes),
	)
}

// PublishProto publishes m (protobuf, deterministic encoding) on subject
// with msgID as its Nats-Msg-Id, its type's proto full name as its
// Switchyard-Type (wire.HeaderType) and the trace context of ctx, and waits
// for the PubAck. Every outcome and domain event goes out this way, so a
// republish with the same id is deduplicated. Errors are classified.
func PublishProto(ctx context.Context, js jetstream.JetStream, subject, msgID string, m proto.Message) error {
	_, err := PublishProtoFirst(ctx, js, subject, msgID, m)
	return err
}

// PublishProtoFirst is PublishProto that also says whether this publish
// stored the message (false: JetStream already had its id), so metrics
// count each message once.
func PublishProtoFirst(ctx context.Context, js jetstream.JetStream, subject, msgID string, m proto.Message) (bool, error) {
	msg, err := protoMsg(ctx, subject, msgID, m)
	if err != nil {
		return false, err
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return false, errclass.Transient(fmt.Errorf("publish %s: %w", subject, err))
	}
	return !ack.Duplicate, nil
}

// Pending is a message PublishProtoAsync sent, its PubAck still to come.
type Pending struct {
	subject string
	f       jetstream.PubAckFuture
}

// PublishProtoAsync sends m as PublishProto does but does not wait:
// messages sent one after another are stored in that order, and their
// PubAcks travel back together instead of one round trip each. The caller
// must Await every Pending before it acknowledges what they came from;
// the JetStream context should bound PubAcks that never come
// (jetstream.WithPublishAsyncTimeout).
func PublishProtoAsync(ctx context.Context, js jetstream.JetStream, subject, msgID string, m proto.Message) (Pending, error) {
	msg, err := protoMsg(ctx, subject, msgID, m)
	if err != nil {
		return Pending{}, err
	}
	f, err := js.PublishMsgAsync(msg)
	if err != nil {
		return Pending{}, errclass.Transient(fmt.Errorf("publish %s: %w", subject, err))
	}
	return Pending{subject: subject, f: f}, nil
}

// Await waits for p's PubAck and says, as PublishProtoFirst does, whether
// this publish stored the message. Errors are classified.
func (p Pending) Await(ctx context.Context) (bool, error) {
	select {
	case ack := <-p.f.Ok():
		return !ack.Duplicate, nil
	case err := <-p.f.Err():
		return false, errclass.Transient(fmt.Errorf("publish %s: %w", p.subject, err))
	case <-ctx.Done():
		return false, errclass.Transient(fmt.Errorf("publish %s: no PubAck: %w", p.subject, ctx.Err()))
	}
}

// protoMsg is m as the hub publishes it: deterministic protobuf, msgID as
// its Nats-Msg-Id, m's proto full name as its Switchyard-Type and the
// trace context of ctx.
func protoMsg(ctx context.Context, subject, msgID string, m proto.Message) (*nats.Msg, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, errclass.Permanent(fmt.Errorf("encode %s: %w", subject, err))
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
		wire.HeaderMsgID: {msgID},
		wire.HeaderType:  {string(proto.MessageName(m))},
	}}
	telemetry.Inject(ctx, msg.Header)
	return msg, nil
}
