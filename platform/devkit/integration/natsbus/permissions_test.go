package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/natsembed"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
)

// secured is an embedded server whose only users are the permissions
// catalogue's identities (password: "<identity>-pw") and "root", which
// may do anything and seeds the streams; migrated by the migrate identity.
type secured struct {
	url string
	o   natsbus.Options
}

func startSecured(t *testing.T) secured {
	t.Helper()
	o := natsbus.Options{}
	users := []natsembed.User{{Name: "root", Password: "root-pw", Publish: []string{">"}, Subscribe: []string{">"}}}
	for _, p := range natsbus.Permissions(o) {
		users = append(users, natsembed.User{Name: p.Identity, Password: p.Identity + "-pw", Publish: p.Publish, Subscribe: p.Subscribe})
	}
	s, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	sec := secured{url: s.ClientURL(), o: o}
	_, js, _ := sec.connect(t, natsbus.IdentityMigrate)
	if _, err := natsbus.Migrate(ctxT(t), js, o); err != nil {
		t.Fatalf("migrate as %s: %v", natsbus.IdentityMigrate, err)
	}
	_, root, _ := sec.connect(t, "root")
	for _, subj := range []string{"stripe.events.test", "billing.customer.upserted", "crm.contact.synced",
		"crm.contact.pending_retry", "support.ticket.opened", "dlq.test"} {
		if _, err := root.Publish(ctxT(t), subj, []byte("seed")); err != nil {
			t.Fatalf("seed %s: %v", subj, err)
		}
	}
	return sec
}

// connect logs in as user; violations receives the permission errors the
// server reports asynchronously (a refused publish or subscribe).
func (s secured) connect(t *testing.T, user string) (*nats.Conn, jetstream.JetStream, <-chan error) {
	t.Helper()
	violations := make(chan error, 64)
	u, _ := url.Parse(s.url)
	u.User = url.UserPassword(user, user+"-pw")
	opts := []nats.Option{nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case violations <- err:
			default:
			}
		}
	})}
	if user != "root" {
		opts = append(opts, nats.CustomInboxPrefix(natsbus.InboxPrefix(user)))
	}
	nc, err := nats.Connect(u.String(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, violations
}

// refusedPublish publishes subject as nc and waits for the server's
// permissions violation naming it.
func refusedPublish(t *testing.T, nc *nats.Conn, violations <-chan error, subject string) {
	t.Helper()
	if err := nc.Publish(subject, []byte("forbidden")); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	select {
	case err := <-violations:
		if !strings.Contains(err.Error(), subject) {
			t.Errorf("violation %q does not name %s", err, subject)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("publish to %s as %s was not refused", subject, nc.Opts.User)
	}
}

func TestPermissionsAnonymousRefused(t *testing.T) {
	t.Parallel()
	s := startSecured(t)
	nc, err := nats.Connect(s.url, nats.NoReconnect())
	if err == nil {
		nc.Close()
		t.Fatal("anonymous connect succeeded")
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("anonymous connect: %v, want an authorization violation", err)
	}
}

func TestPermissionsRefusals(t *testing.T) {
	t.Parallel()
	s := startSecured(t)
	ctx := ctxT(t)
	tests := []struct {
		identity string
		subject  string
	}{
		{natsbus.IdentityGateway, "billing.x"},
		{natsbus.IdentityGateway, "dlq.identity"},
		{natsbus.IdentityCRM, "stripe.events.x"},
		{natsbus.IdentityCRM, "billing.customer.upserted"},
		{natsbus.IdentityCRM, "$JS.API.STREAM.DELETE." + natsbus.StreamStripe},
		{natsbus.IdentityIdentity, "$JS.API.STREAM.PURGE." + natsbus.StreamStripe},
		{natsbus.IdentityIdentity, "billing.doctor.probe"},
		{natsbus.IdentityOperator, "billing.x"},
		{natsbus.IdentitySupport, "$JS.API.CONSUMER.DELETE." + natsbus.StreamBilling + "." + natsbus.ConsumerCRM},
		{natsbus.IdentityAlerts, "$JS.API.STREAM.UPDATE." + natsbus.StreamDLQ},
		{natsbus.IdentityProjector, "billing.x"},
		{natsbus.IdentityProjector, "$JS.API.STREAM.DELETE." + natsbus.StreamDLQ},
		// Replays come only from the operator: the projector may neither
		// publish one nor delete a dead letter.
		{natsbus.IdentityProjector, "stripe.events.charge.failed"},
		{natsbus.IdentityProjector, "billing.payment.failed"},
		{natsbus.IdentityProjector, "crm.contact.failed"},
		{natsbus.IdentityProjector, "support.ticket.failed"},
		{natsbus.IdentityProjector, "$JS.API.STREAM.MSG.DELETE." + natsbus.StreamDLQ},
		{natsbus.IdentityOperator, "$JS.API.STREAM.DELETE." + natsbus.StreamDLQ},
		{natsbus.IdentityOperator, "dlq.crm"},
		// Only the operator sends link commands, and only identity answers.
		{natsbus.IdentityProjector, wire.OpsLinkCustomer},
		{natsbus.IdentityGateway, wire.OpsLinkCustomer},
		{natsbus.IdentityCRM, wire.OpsLinkReplyPrefix + "x"},
		{natsbus.IdentityOperator, wire.OpsLinkReplyPrefix + "x"},
	}
	for _, tt := range tests {
		t.Run(tt.identity+" "+tt.subject, func(t *testing.T) {
			nc, _, violations := s.connect(t, tt.identity)
			refusedPublish(t, nc, violations, tt.subject)
		})
	}
	// Nobody reads another identity's inboxes, where its deliveries land.
	for _, subj := range []string{"_INBOX.>", natsbus.InboxPrefix(natsbus.IdentityCRM) + ".>", ">"} {
		nc, _, violations := s.connect(t, natsbus.IdentityGateway)
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-violations:
			if !strings.Contains(err.Error(), "Subscription") {
				t.Errorf("subscribe %s: %v, want a subscription violation", subj, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("gateway subscribed to %s", subj)
		}
	}
	// Through the JetStream client too: the stream survives crm's delete.
	_, js, _ := s.connect(t, natsbus.IdentityCRM)
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := js.DeleteStream(dctx, natsbus.StreamStripe); err == nil {
		t.Error("crm deleted stream STRIPE")
	}
	_, root, _ := s.connect(t, "root")
	if _, err := root.Stream(ctx, natsbus.StreamStripe); err != nil {
		t.Errorf("stream STRIPE after crm's delete: %v", err)
	}
}

// TestPermissionsEnough proves each identity can do its job with nothing
// more: check the topology, bind to its durables, fetch, ack, dead-letter
// and publish its own subjects.
func TestPermissionsEnough(t *testing.T) {
	t.Parallel()
	s := startSecured(t)
	owns := map[string]string{
		natsbus.IdentityGateway:  "stripe.events.customer.created",
		natsbus.IdentityIdentity: "billing.customer.upserted",
		natsbus.IdentityCRM:      "crm.contact.synced",
		natsbus.IdentitySupport:  "support.ticket.opened",
		natsbus.IdentityOperator: "billing.payment.failed",
	}
	consumes := map[string][]string{
		natsbus.IdentityIdentity:  {natsbus.ConsumerIdentity, natsbus.IdentityCRMLinks(natsbus.ConsumerIdentity)},
		natsbus.IdentityCRM:       {natsbus.ConsumerCRM},
		natsbus.IdentitySupport:   {natsbus.ConsumerSupport},
		natsbus.IdentityAlerts:    {natsbus.ConsumerAlerts, natsbus.ConsumerAlertsCRMRetries},
		natsbus.IdentityProjector: {natsbus.ConsumerProjector},
	}
	for _, p := range natsbus.Permissions(s.o) {
		if p.Identity == natsbus.IdentityMigrate {
			continue
		}
		t.Run(p.Identity, func(t *testing.T) {
			ctx := ctxT(t)
			_, js, _ := s.connect(t, p.Identity)
			if _, err := natsbus.Check(ctx, js, s.o, consumes[p.Identity]...); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if subj, ok := owns[p.Identity]; ok {
				if _, err := js.Publish(ctx, subj, []byte("x")); err != nil {
					t.Errorf("publish %s: %v", subj, err)
				}
			}
			for _, d := range natsbus.Durables(s.o) {
				if !slices.Contains(consumes[p.Identity], d.Name) {
					continue
				}
				cons, err := natsbus.Bind(ctx, js, d)
				if err != nil {
					t.Fatalf("Bind %s: %v", d, err)
				}
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
				if err != nil {
					t.Fatalf("fetch %s: %v", d, err)
				}
				n := 0
				for m := range batch.Messages() {
					n++
					if err := m.DoubleAck(ctx); err != nil {
						t.Errorf("ack on %s: %v", d, err)
					}
				}
				if err := batch.Error(); err != nil || n != 1 {
					t.Errorf("fetch %s: %d messages, %v", d, n, err)
				}
				if _, err := js.Publish(ctx, "dlq."+d.Name, []byte("dead")); err != nil {
					t.Errorf("dead letter for %s: %v", d, err)
				}
			}
		})
	}
	t.Run("projector and operator read every stream with ordered consumers", func(t *testing.T) {
		for _, id := range []string{natsbus.IdentityProjector, natsbus.IdentityOperator} {
			ctx := ctxT(t)
			_, js, _ := s.connect(t, id)
			for _, name := range natsbus.StreamNames() {
				st, err := js.Stream(ctx, name)
				if err != nil {
					t.Fatalf("%s: stream %s: %v", id, name, err)
				}
				oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
				if err != nil {
					t.Fatalf("%s: ordered consumer on %s: %v", id, name, err)
				}
				if _, err := oc.Next(jetstream.FetchMaxWait(3 * time.Second)); err != nil {
					t.Errorf("%s: next on %s: %v", id, name, err)
				}
				if _, err := st.GetMsg(ctx, 1); err != nil {
					t.Errorf("%s: get message 1 of %s: %v", id, name, err)
				}
			}
		}
	})
	t.Run("gateway and projector list consumers", func(t *testing.T) {
		for _, id := range []string{natsbus.IdentityGateway, natsbus.IdentityProjector} {
			ctx := ctxT(t)
			_, js, _ := s.connect(t, id)
			st, err := js.Stream(ctx, natsbus.StreamBilling)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for range st.ListConsumers(ctx).Info() {
				n++
			}
			if n == 0 {
				t.Errorf("%s lists no consumers on BILLING", id)
			}
		}
	})
	t.Run("only the operator replays and discards dead letters", func(t *testing.T) {
		ctx := ctxT(t)
		_, js, _ := s.connect(t, natsbus.IdentityOperator)
		for _, subj := range []string{"stripe.events.charge.failed", "billing.payment.failed", "crm.contact.failed", "support.ticket.failed"} {
			if _, err := js.Publish(ctx, subj, []byte("replayed")); err != nil {
				t.Errorf("operator: replay to %s: %v", subj, err)
			}
		}
		st, err := js.Stream(ctx, natsbus.StreamDLQ)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteMsg(ctx, 1); err != nil {
			t.Errorf("operator: delete dead letter 1: %v", err)
		}
		// The operator's link command reaches identity, whose answer
		// reaches the operator (opscmd's subjects).
		inc, _, _ := s.connect(t, natsbus.IdentityIdentity)
		sub, err := inc.Subscribe(wire.OpsLinkCustomer, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		_ = inc.Flush()
		onc, _, _ := s.connect(t, natsbus.IdentityOperator)
		reply, err := onc.SubscribeSync(wire.OpsLinkReplyPrefix + "t1")
		if err != nil {
			t.Fatal(err)
		}
		if err := onc.PublishMsg(&nats.Msg{Subject: wire.OpsLinkCustomer, Reply: wire.OpsLinkReplyPrefix + "t1", Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if m, err := reply.NextMsg(5 * time.Second); err != nil || string(m.Data) != "ok" {
			t.Errorf("operator: link command round trip: %v", err)
		}
		// The projector reads the dead letters but cannot delete one.
		_, pjs, _ := s.connect(t, natsbus.IdentityProjector)
		pst, err := pjs.Stream(ctx, natsbus.StreamDLQ)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pst.GetMsg(ctx, 2); err != nil {
			t.Errorf("projector: read dead letter 2: %v", err)
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := pst.DeleteMsg(dctx, 2); err == nil {
			t.Error("projector deleted dead letter 2")
		}
		if _, err := st.GetMsg(ctx, 2); err != nil {
			t.Errorf("dead letter 2 after the projector's delete: %v", err)
		}
	})
}

func TestPermissionForUnknown(t *testing.T) {
	t.Parallel()
	if _, err := natsbus.PermissionFor(natsbus.Options{}, "billing"); err == nil {
		t.Error("PermissionFor an unknown identity succeeded")
	}
	p, err := natsbus.PermissionFor(natsbus.Options{}, natsbus.IdentityMigrate)
	if err != nil || len(p.Publish) != 1 || p.Publish[0] != "$JS.API.>" {
		t.Errorf("migrate = %+v, %v; want $JS.API.>", p, err)
	}
}

// TestConnectAsIdentity reads a service's identity the way compose gives
// it (NATS_USER and NATS_PASSWORD_FILE) and connects with it; a wrong
// password is refused.
func TestConnectAsIdentity(t *testing.T) {
	t.Parallel()
	s := startSecured(t)
	pwFile := filepath.Join(t.TempDir(), "nats_password")
	if err := os.WriteFile(pwFile, []byte("crm-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := config.NewReader(config.MapEnv(map[string]string{"NATS_URL": s.url, "NATS_USER": "crm", "NATS_PASSWORD_FILE": pwFile}))
	o := natsbus.OptionsFromEnv(r, "crm")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if o.User != "crm" || o.Password.Reveal() != "crm-pw" {
		t.Fatalf("user %q, password from file %q", o.User, o.Password.Reveal())
	}
	if strings.Contains(fmt.Sprint(o.LogValue()), "crm-pw") {
		t.Error("LogValue shows the password")
	}
	nc, err := natsbus.Connect(ctxT(t), o)
	if err != nil {
		t.Fatalf("Connect as crm: %v", err)
	}
	nc.Close()
	o.Password = config.NewSecret("wrong")
	if nc, err := natsbus.Connect(ctxT(t), o); err == nil {
		nc.Close()
		t.Error("Connect with a wrong password succeeded")
	}
}
