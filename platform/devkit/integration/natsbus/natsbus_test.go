package natsbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// hubStreams is the topology the hub relies on: stream → its one subject.
var hubStreams = map[string]string{
	natsbus.StreamStripe:  "stripe.events.>",
	natsbus.StreamBilling: "billing.>",
	natsbus.StreamCRM:     "crm.>",
	natsbus.StreamSupport: "support.>",
	natsbus.StreamDLQ:     "dlq.>",
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkTopology asserts every hub stream exists with the expected settings.
func checkTopology(t *testing.T, ctx context.Context, js jetstream.JetStream, replicas int, dup time.Duration) {
	t.Helper()
	for name, subject := range hubStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		cfg := s.CachedInfo().Config
		if len(cfg.Subjects) != 1 || cfg.Subjects[0] != subject {
			t.Errorf("%s subjects = %v, want [%s]", name, cfg.Subjects, subject)
		}
		if cfg.Storage != jetstream.FileStorage {
			t.Errorf("%s storage = %v, want file", name, cfg.Storage)
		}
		if cfg.Replicas != replicas {
			t.Errorf("%s replicas = %d, want %d", name, cfg.Replicas, replicas)
		}
		if cfg.Duplicates != dup {
			t.Errorf("%s duplicate window = %v, want %v", name, cfg.Duplicates, dup)
		}
		if cfg.Retention != jetstream.LimitsPolicy {
			t.Errorf("%s retention = %v, want limits", name, cfg.Retention)
		}
	}
}

// TestMigrate: a first Migrate creates the catalogue, a second changes
// nothing and says so, a changed setting is applied as an update (the
// stream not recreated, its messages kept), and nothing else is made.
func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.EmptyNATS(t).Connect(t)
	o := natsbus.Options{Replicas: 1, DuplicateWindow: 2 * time.Minute}

	changes, err := natsbus.Migrate(ctx, js, o)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	wantCount := len(hubStreams) + len(natsbus.Durables(o))
	if got := actions(changes); got[natsbus.Created] != wantCount || len(changes) != wantCount {
		t.Fatalf("first Migrate: %v, want %d created", changes, wantCount)
	}
	checkTopology(t, ctx, js, 1, 2*time.Minute)
	checkConsumers(t, ctx, js, o)
	created := map[string]time.Time{}
	for name := range hubStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		created[name] = s.CachedInfo().Created
	}
	// Some data must survive a re-migration untouched.
	if _, err := js.Publish(ctx, "billing.invoice.paid", []byte("{}")); err != nil {
		t.Fatal(err)
	}

	changes, err = natsbus.Migrate(ctx, js, o)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if got := actions(changes); got[natsbus.Unchanged] != wantCount {
		t.Fatalf("second Migrate: %v, want all %d unchanged", changes, wantCount)
	}
	checkTopology(t, ctx, js, 1, 2*time.Minute)
	var names []string
	for n := range js.StreamNames(ctx).Name() {
		names = append(names, n)
	}
	if len(names) != len(hubStreams) {
		t.Errorf("streams after two Migrates = %v, want exactly the %d hub streams", names, len(hubStreams))
	}
	for name, at := range created {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !s.CachedInfo().Created.Equal(at) {
			t.Errorf("%s was recreated by the second Migrate", name)
		}
	}
	s, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("BILLING holds %d messages after re-migration, want 1", n)
	}

	// A changed definition is applied as an update, and reported as one.
	o.DuplicateWindow = 10 * time.Minute
	changes, err = natsbus.Migrate(ctx, js, o)
	if err != nil {
		t.Fatalf("Migrate with a new duplicate window: %v", err)
	}
	checkTopology(t, ctx, js, 1, 10*time.Minute)
	for _, c := range changes {
		want := natsbus.Unchanged
		if c.Kind == "stream" {
			want = natsbus.Updated
		}
		if c.Action != want {
			t.Errorf("%v, want %s", c, want)
		}
		if c.Kind == "stream" && (len(c.Diff) != 1 || !strings.Contains(c.Diff[0], "duplicate_window 2m0s → 10m0s")) {
			t.Errorf("%s diff %q, want the duplicate window 2m0s → 10m0s", c.Name, c.Diff)
		}
	}

	// A consumer changed behind the catalogue's back is put back.
	cfg := natsbus.Durables(o)[0].Config()
	cfg.AckWait = time.Second
	if _, err := js.UpdateConsumer(ctx, natsbus.StreamStripe, cfg); err != nil {
		t.Fatal(err)
	}
	changes, err = natsbus.Migrate(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(changes); got[natsbus.Updated] != 1 || got[natsbus.Unchanged] != wantCount-1 {
		t.Errorf("Migrate after a consumer's ack wait changed: %v, want that consumer updated", changes)
	}
	checkConsumers(t, ctx, js, o)
}

func actions(cs []natsbus.Change) map[string]int {
	n := map[string]int{}
	for _, c := range cs {
		n[c.Action]++
	}
	return n
}

// checkConsumers asserts every durable of the catalogue exists as Durables says.
func checkConsumers(t *testing.T, ctx context.Context, js jetstream.JetStream, o natsbus.Options) {
	t.Helper()
	for _, d := range natsbus.Durables(o) {
		c, err := js.Consumer(ctx, d.Stream, d.Name)
		if err != nil {
			t.Errorf("%s: %v", d, err)
			continue
		}
		cfg := c.CachedInfo().Config
		if cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.DeliverPolicy != jetstream.DeliverAllPolicy ||
			cfg.AckWait != natsbus.DefaultAckWait || cfg.MaxAckPending != natsbus.DefaultMaxAckPending || cfg.MaxDeliver != -1 {
			t.Errorf("%s: %+v, want explicit ack, deliver all, ack wait %v, max ack pending %d, no delivery limit",
				d, cfg, natsbus.DefaultAckWait, natsbus.DefaultMaxAckPending)
		}
		got := cfg.FilterSubjects
		if cfg.FilterSubject != "" {
			got = []string{cfg.FilterSubject}
		}
		if !slices.Equal(got, d.Subjects) {
			t.Errorf("%s filters %v, want %v", d, got, d.Subjects)
		}
	}
}

// TestDurables holds the catalogue to the consumers the services run: a
// name, stream and filter each, and IDENTITY_CONSUMER renames identity's two.
func TestDurables(t *testing.T) {
	t.Parallel()
	key := func(d natsbus.Durable) string { return d.Stream + "/" + d.Name + " " + strings.Join(d.Subjects, ",") }
	var got []string
	for _, d := range natsbus.Durables(natsbus.Options{}) {
		got = append(got, key(d))
	}
	want := []string{
		"STRIPE/identity stripe.events.>",
		"CRM/identity_crm_links crm.contact.synced",
		"BILLING/crm billing.>",
		"BILLING/support billing.>",
		"DLQ/alerts dlq.>",
		"CRM/alerts_crm_retries crm.contact.pending_retry",
		"BILLING/projector ",
		"CRM/projector ",
		"SUPPORT/projector ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Durables = %q, want %q", got, want)
	}
	renamed := natsbus.Durables(natsbus.Options{IdentityConsumer: "identity_eu"})
	if renamed[0].Name != "identity_eu" || renamed[1].Name != "identity_eu_crm_links" {
		t.Errorf("with IdentityConsumer identity_eu: %s, %s", renamed[0], renamed[1])
	}
}

// TestMigrateConcurrently: several migrations at once (replicas of the
// migrate job, or a deploy overlapping a `make run`) all succeed and leave
// one catalogue.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := testkit.EmptyNATS(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		_, js := b.Connect(t)
		go func() { _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); errs <- err }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	_, js := b.Connect(t)
	checkTopology(t, ctx, js, 1, time.Hour)
	checkConsumers(t, ctx, js, natsbus.Options{})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.EmptyNATS(t).Connect(t)
	all := []string{natsbus.ConsumerIdentity, natsbus.IdentityCRMLinks(natsbus.ConsumerIdentity), natsbus.ConsumerCRM,
		natsbus.ConsumerSupport, natsbus.ConsumerAlerts, natsbus.ConsumerAlertsCRMRetries, natsbus.ConsumerProjector}

	_, err := natsbus.Check(ctx, js, natsbus.Options{}, natsbus.ConsumerCRM)
	if !errors.Is(err, natsbus.ErrNotMigrated) || !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("Check before Migrate: %v, want ErrNotMigrated and ErrStreamNotFound", err)
	}
	for name := range hubStreams {
		if !strings.Contains(err.Error(), "stream "+name+" does not exist") {
			t.Errorf("Check before Migrate does not name %s: %v", name, err)
		}
	}
	if !strings.HasSuffix(err.Error(), ": run `switchyard migrate`") {
		t.Errorf("Check's error does not say what to do: %v", err)
	}

	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}
	if drift, err := natsbus.Check(ctx, js, natsbus.Options{}, all...); err != nil || len(drift) != 0 {
		t.Fatalf("Check after Migrate: %v, drift %q", err, drift)
	}

	// A missing stream and a missing consumer, named each.
	if err := js.DeleteStream(ctx, natsbus.StreamSupport); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, natsbus.StreamBilling, natsbus.ConsumerCRM); err != nil {
		t.Fatal(err)
	}
	_, err = natsbus.Check(ctx, js, natsbus.Options{}, natsbus.ConsumerCRM, natsbus.ConsumerSupport)
	if !errors.Is(err, natsbus.ErrNotMigrated) || !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("Check after deleting SUPPORT and crm: %v, want ErrNotMigrated", err)
	}
	for _, want := range []string{"stream SUPPORT does not exist", "consumer crm on BILLING does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check's error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "support on BILLING") || strings.Contains(err.Error(), "stream STRIPE") {
		t.Errorf("Check's error names what exists: %v", err)
	}
	if _, err := natsbus.Check(ctx, js, natsbus.Options{}, natsbus.ConsumerIdentity); !errors.Is(err, natsbus.ErrNotMigrated) {
		t.Errorf("Check of identity with SUPPORT missing: %v, want ErrNotMigrated (every service needs every stream)", err)
	}
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}

	// Incompatible settings: a consumer with another filter or ack policy,
	// a stream in memory. Each is an error, changed by nobody.
	cfg := natsbus.Durables(natsbus.Options{})[2].Config() // crm
	cfg.FilterSubject = "billing.invoice.>"
	if _, err := js.UpdateConsumer(ctx, natsbus.StreamBilling, cfg); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, natsbus.StreamDLQ, natsbus.ConsumerAlerts); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, natsbus.StreamDLQ, jetstream.ConsumerConfig{Durable: natsbus.ConsumerAlerts, FilterSubject: "dlq.>", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	_, err = natsbus.Check(ctx, js, natsbus.Options{}, all...)
	for _, want := range []string{
		"consumer crm on BILLING filters billing.invoice.>, the service needs billing.>",
		"consumer alerts on DLQ has ack policy AckNone, the service needs explicit",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check = %v, want it to say %q", err, want)
		}
	}
	if c, _ := js.Consumer(ctx, natsbus.StreamBilling, natsbus.ConsumerCRM); c.CachedInfo().Config.FilterSubject != "billing.invoice.>" {
		t.Error("Check changed the consumer")
	}
}

// TestCheckReportsDriftWithoutFixingIt: a service whose environment asks for
// other stream settings than the streams have is told, and the streams keep
// theirs; settings it was not given are not compared.
func TestCheckReportsDriftWithoutFixingIt(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.NATS(t).Connect(t)

	o := natsbus.OptionsFromEnv(config.NewReader(config.MapEnv(map[string]string{"NATS_STREAM_MAX_AGE": "1h"})), "svc")
	drift, err := natsbus.Check(ctx, js, o, natsbus.ConsumerCRM)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(drift) != len(hubStreams)-1 {
		t.Errorf("drift = %q, want one line per stream but the DLQ", drift)
	}
	for _, d := range drift {
		if !strings.Contains(d, "max age 0s where NATS_STREAM_MAX_AGE asks for 1h0m0s; only `switchyard migrate` changes it") {
			t.Errorf("drift line %q", d)
		}
	}
	s, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.MaxAge != 0 {
		t.Errorf("STRIPE max age %v after Check, want 0", s.CachedInfo().Config.MaxAge)
	}

	// Replicas 3 in the literal, not from the environment: not compared.
	if drift, err := natsbus.Check(ctx, js, natsbus.Options{Replicas: 3}); err != nil || len(drift) != 0 {
		t.Errorf("Check with unasked-for settings: %v, drift %q; want none", err, drift)
	}
}

// TestBind: the consumer framework's bind finds a migrated durable, and
// refuses a missing or incompatible one with the migrate message.
func TestBind(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.NATS(t).Connect(t)
	crm := natsbus.Durables(natsbus.Options{})[2]
	if c, err := natsbus.Bind(ctx, js, crm); err != nil || c.CachedInfo().Name != natsbus.ConsumerCRM {
		t.Fatalf("Bind crm: %v", err)
	}
	tests := []struct {
		name string
		d    natsbus.Durable
		want string
	}{
		{name: "missing", d: natsbus.Durable{Name: "nobody", Stream: natsbus.StreamBilling}, want: "consumer nobody on BILLING does not exist: run `switchyard migrate`"},
		{name: "no stream", d: natsbus.Durable{Name: "crm", Stream: "NOPE"}, want: "stream NOPE does not exist: run `switchyard migrate`"},
		{name: "other filter", d: natsbus.Durable{Name: "crm", Stream: natsbus.StreamBilling, Subjects: []string{"billing.invoice.>"}},
			want: "consumer crm on BILLING filters billing.>, the service needs billing.invoice.>: run `switchyard migrate`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := natsbus.Bind(ctx, js, tt.d)
			if !errors.Is(err, natsbus.ErrNotMigrated) || err.Error() != tt.want {
				t.Errorf("Bind = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestMigrateExternal migrates the separate nats-server process (an older
// server than the embedded one). That server is shared with other test
// runs, so this test only creates or updates, with the defaults, and
// deletes nothing.
func TestMigrateExternal(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, _, js := testkit.ExternalNATS(t)
	o := natsbus.OptionsFromEnv(config.NewReader(config.MapEnv(nil)), "natsbus-test")
	for i := range 2 {
		if _, err := natsbus.Migrate(ctx, js, o); err != nil {
			t.Fatalf("Migrate %d on the external server: %v", i+1, err)
		}
	}
	if _, err := natsbus.Check(ctx, js, o, natsbus.ConsumerIdentity, natsbus.ConsumerProjector); err != nil {
		t.Fatalf("Check on the external server: %v", err)
	}
	checkTopology(t, ctx, js, 1, time.Hour)
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		want     natsbus.Options
		wantErrs []string
	}{
		{
			name: "defaults",
			want: natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
		},
		{
			name: "all set",
			env: map[string]string{
				"NATS_URL": "nats://n1:4222,nats://n2:4222", "NATS_CREDS": "/run/secrets/hub.creds",
				"NATS_STREAM_REPLICAS": "3", "NATS_DUPLICATE_WINDOW": "2m", "NATS_STREAM_MAX_AGE": "720h",
			},
			want: natsbus.Options{
				URL: "nats://n1:4222,nats://n2:4222", CredsFile: "/run/secrets/hub.creds", Name: "svc",
				Replicas: 3, DuplicateWindow: 2 * time.Minute, MaxAge: 720 * time.Hour,
			},
		},
		{
			name:     "user without a password",
			env:      map[string]string{"NATS_USER": "crm"},
			want:     natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
			wantErrs: []string{"NATS_PASSWORD: NATS_USER crm is set without NATS_PASSWORD or NATS_PASSWORD_FILE"},
		},
		{
			name:     "password without a user",
			env:      map[string]string{"NATS_PASSWORD": "pw"},
			want:     natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
			wantErrs: []string{"NATS_USER: a NATS password is set without NATS_USER"},
		},
		{
			name:     "user and creds file",
			env:      map[string]string{"NATS_USER": "crm", "NATS_PASSWORD": "pw", "NATS_CREDS": "/run/secrets/hub.creds"},
			want:     natsbus.Options{URL: "nats://127.0.0.1:4222", CredsFile: "/run/secrets/hub.creds", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
			wantErrs: []string{"NATS_USER: set either NATS_USER or NATS_CREDS, not both"},
		},
		{
			name: "max age 0 keeps forever",
			env:  map[string]string{"NATS_STREAM_MAX_AGE": "0"},
			want: natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
		},
		{
			name: "max age 0s keeps forever too",
			env:  map[string]string{"NATS_STREAM_MAX_AGE": "0s"},
			want: natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
		},
		{
			name:     "replicas out of range",
			env:      map[string]string{"NATS_STREAM_REPLICAS": "7"},
			want:     natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
			wantErrs: []string{"NATS_STREAM_REPLICAS: 7 is outside [1, 5]"},
		},
		{
			name: "several bad values reported together",
			env: map[string]string{
				"NATS_STREAM_REPLICAS": "three", "NATS_DUPLICATE_WINDOW": "-1s", "NATS_STREAM_MAX_AGE": "forever",
			},
			want: natsbus.Options{URL: "nats://127.0.0.1:4222", Name: "svc", Replicas: 1, DuplicateWindow: time.Hour},
			wantErrs: []string{
				`NATS_STREAM_REPLICAS: "three" is not an integer`,
				`NATS_DUPLICATE_WINDOW: "-1s" is not a positive duration`,
				`NATS_STREAM_MAX_AGE: "forever" is not a positive duration`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := config.NewReader(config.MapEnv(tt.env))
			got := natsbus.OptionsFromEnv(r, "svc")
			err := r.Err()
			if len(tt.wantErrs) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(tt.wantErrs) > 0 && err == nil {
				t.Fatalf("no error, want %q", tt.wantErrs)
			}
			for _, s := range tt.wantErrs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if got.URL != tt.want.URL || got.CredsFile != tt.want.CredsFile || got.Name != tt.want.Name ||
				got.Replicas != tt.want.Replicas || got.DuplicateWindow != tt.want.DuplicateWindow ||
				got.MaxAge != tt.want.MaxAge || got.FailFast || got.Logger != nil {
				t.Fatalf("OptionsFromEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOptionsLogValueRedactsCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		secrets  []string // must not appear
		wantHost string   // must still appear, when the URL is well formed
	}{
		{name: "user and password", url: "nats://hub:s3cretpw@nats.internal:4222", secrets: []string{"s3cretpw"}, wantHost: "nats.internal:4222"},
		{name: "token", url: "nats://t0kenvalue@nats.internal:4222", secrets: []string{"t0kenvalue"}, wantHost: "nats.internal:4222"},
		{name: "escaped password", url: "nats://hub:p%40ssw0rd@nats.internal:4222", secrets: []string{"p%40ssw0rd", "p@ssw0rd"}, wantHost: "nats.internal:4222"},
		{name: "at sign in password", url: "nats://hub:p@ssw0rd@nats.internal:4222", secrets: []string{"ssw0rd"}, wantHost: "nats.internal:4222"},
		{
			name: "list of URLs", url: "nats://a:pw0001@n1:4222, nats://b:pw0002@n2:4222,nats://n3:4222",
			secrets: []string{"pw0001", "pw0002"}, wantHost: "n3:4222",
		},
		// Passwords url.Parse cannot read must not be printed as they are.
		{name: "slash in password", url: "nats://hub:pa/ss0rd@nats.internal:4222", secrets: []string{"pa/ss0rd", "ss0rd"}},
		{name: "hash in password", url: "nats://hub:pa#ss0rd@nats.internal:4222", secrets: []string{"pa#ss0rd", "ss0rd"}},
		{name: "question mark in password", url: "nats://hub:pa?ss0rd@nats.internal:4222", secrets: []string{"pa?ss0rd", "ss0rd"}},
		{name: "bad escape in password", url: "nats://hub:pa%zzss0rd@nats.internal:4222", secrets: []string{"pa%zzss0rd", "ss0rd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := natsbus.Options{URL: tt.url, CredsFile: "/run/secrets/hub.creds", Replicas: 1, DuplicateWindow: time.Hour}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("nats", "nats", o)
			out := buf.String()
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Fatalf("LogValue leaks %q: %s", s, out)
				}
			}
			if tt.wantHost != "" && !strings.Contains(out, tt.wantHost) {
				t.Errorf("LogValue lost the host %s: %s", tt.wantHost, out)
			}
			if strings.Contains(out, "hub.creds") || !strings.Contains(out, `"credentials_file_set":true`) {
				t.Errorf("LogValue should say a creds file is set without naming it: %s", out)
			}
		})
	}
}

// TestConnectErrorRedactsCredentials checks the error a service logs when it
// cannot connect does not carry the password from NATS_URL, whether the server
// is unreachable or the URL cannot even be parsed.
func TestConnectErrorRedactsCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		wantHost bool
	}{
		{name: "unreachable", url: "nats://hub:s3cretpw@127.0.0.1:1", wantHost: true},
		{name: "slash in password", url: "nats://hub:s3/cretpw@127.0.0.1:1"},
		{name: "hash in password", url: "nats://hub:s3#cretpw@127.0.0.1:1"},
		{name: "bad escape in password", url: "nats://hub:s3%zzcretpw@127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := natsbus.Connect(ctxT(t), natsbus.Options{URL: tt.url, Name: "test"})
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			for _, s := range []string{"s3", "cretpw"} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("Connect error leaks %q: %v", s, err)
				}
			}
			if !strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Errorf("Connect error does not name the server: %v", err)
			}
		})
	}
}

func TestConnectFailFast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failFast bool
		wantErr  error
	}{
		{name: "fail fast refuses while disconnected", failFast: true, wantErr: nats.ErrReconnectBufExceeded},
		{name: "default buffers while disconnected", failFast: false, wantErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := testkit.NATS(t)
			nc, err := natsbus.Connect(ctxT(t), natsbus.Options{URL: b.URL, Name: "failfast-test", FailFast: tt.failFast})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			t.Cleanup(nc.Close)
			if err := nc.Publish("billing.test", []byte("connected")); err != nil {
				t.Fatalf("Publish while connected: %v", err)
			}

			b.Shutdown()
			testkit.WaitFor(t, 10*time.Second, "the client to notice the outage", func() bool { return nc.Status() == nats.RECONNECTING })

			err = nc.Publish("billing.test", []byte("during outage"))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Publish during outage: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// Dead letters never expire by age, whatever retention the other streams
// have, and a full DLQ refuses the next dead letter instead of dropping the
// oldest one (the consumer framework then keeps the failing message).
func TestDLQNeverExpiresAndRefusesWhenFull(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.EmptyNATS(t).Connect(t)
	o := natsbus.Options{Replicas: 1, DuplicateWindow: time.Minute, MaxAge: time.Hour, DLQMaxBytes: 4 << 10}
	if _, err := natsbus.Migrate(ctx, js, o); err != nil {
		t.Fatal(err)
	}
	for name := range hubStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		switch want := time.Hour; {
		case name == natsbus.StreamDLQ && (cfg.MaxAge != 0 || cfg.MaxBytes != 4<<10 || cfg.Discard != jetstream.DiscardNew):
			t.Errorf("DLQ: max age %v, max bytes %d, discard %v; want no age limit, 4096 bytes, discard new", cfg.MaxAge, cfg.MaxBytes, cfg.Discard)
		case name != natsbus.StreamDLQ && cfg.MaxAge != want:
			t.Errorf("%s: max age %v, want %v", name, cfg.MaxAge, want)
		}
	}
	body := bytes.Repeat([]byte("x"), 1000)
	stored := 0
	for i := range 10 {
		if _, err := js.Publish(ctx, "dlq.crm", body, jetstream.WithMsgID(strings.Repeat("d", i+1))); err != nil {
			break
		}
		stored++
	}
	s, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored == 0 || stored == 10 || info.State.FirstSeq != 1 || int(info.State.Msgs) != stored {
		t.Fatalf("%d of 10 dead letters stored, DLQ holds %d from sequence %d; want the first ones kept and the rest refused", stored, info.State.Msgs, info.State.FirstSeq)
	}
}

// TestOptionsFromEnvExplicit: Options.Explicit names the stream settings
// the environment gave, so Check compares only what a service was told.
func TestOptionsFromEnvExplicit(t *testing.T) {
	t.Parallel()
	o := natsbus.OptionsFromEnv(config.NewReader(config.MapEnv(map[string]string{
		"NATS_URL": "nats://n1:4222", "NATS_STREAM_REPLICAS": "1", "NATS_STREAM_MAX_AGE": "0", "NATS_DLQ_MAX_MB": "64",
	})), "svc")
	if want := []string{"NATS_STREAM_REPLICAS", "NATS_STREAM_MAX_AGE", "NATS_DLQ_MAX_MB"}; !slices.Equal(o.Explicit, want) {
		t.Errorf("Explicit = %q, want %q", o.Explicit, want)
	}
	if o := natsbus.OptionsFromEnv(config.NewReader(config.MapEnv(nil)), "svc"); len(o.Explicit) != 0 {
		t.Errorf("Explicit with nothing set = %q, want none", o.Explicit)
	}
}
