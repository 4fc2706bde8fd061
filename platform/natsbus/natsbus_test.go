package natsbus_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/testkit"
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

func TestProvision(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.NATS(t).Connect(t)
	o := natsbus.Options{Replicas: 1, DuplicateWindow: 2 * time.Minute}

	if err := natsbus.Provision(ctx, js, o); err != nil {
		t.Fatalf("first Provision: %v", err)
	}
	checkTopology(t, ctx, js, 1, 2*time.Minute)
	created := map[string]time.Time{}
	for name := range hubStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		created[name] = s.CachedInfo().Created
	}
	// Some data must survive a re-provision untouched.
	if _, err := js.Publish(ctx, "billing.invoice.paid", []byte("{}")); err != nil {
		t.Fatal(err)
	}

	if err := natsbus.Provision(ctx, js, o); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	checkTopology(t, ctx, js, 1, 2*time.Minute)
	var names []string
	for n := range js.StreamNames(ctx).Name() {
		names = append(names, n)
	}
	if len(names) != len(hubStreams) {
		t.Errorf("streams after two Provisions = %v, want exactly the %d hub streams", names, len(hubStreams))
	}
	for name, at := range created {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !s.CachedInfo().Created.Equal(at) {
			t.Errorf("%s was recreated by the second Provision", name)
		}
	}
	s, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("BILLING holds %d messages after re-provision, want 1", n)
	}

	// A changed definition is applied as an update.
	o.DuplicateWindow = 10 * time.Minute
	if err := natsbus.Provision(ctx, js, o); err != nil {
		t.Fatalf("Provision with a new duplicate window: %v", err)
	}
	checkTopology(t, ctx, js, 1, 10*time.Minute)
}

func TestStreamsDefaults(t *testing.T) {
	t.Parallel()
	for _, cfg := range natsbus.Streams(natsbus.Options{}) {
		if cfg.Replicas != 1 || cfg.Duplicates != time.Hour || cfg.MaxAge != 0 {
			t.Errorf("%s with zero Options: replicas %d, duplicates %v, max age %v; want 1, 1h, 0",
				cfg.Name, cfg.Replicas, cfg.Duplicates, cfg.MaxAge)
		}
		if hubStreams[cfg.Name] == "" {
			t.Errorf("unexpected stream %s", cfg.Name)
		}
	}
	if n := len(natsbus.Streams(natsbus.Options{})); n != len(hubStreams) {
		t.Errorf("Streams returns %d definitions, want %d", n, len(hubStreams))
	}
	for _, cfg := range natsbus.Streams(natsbus.Options{Replicas: 3, MaxAge: 720 * time.Hour}) {
		want := 720 * time.Hour
		if cfg.Name == natsbus.StreamDLQ {
			want = 0 // dead letters never expire by age
		}
		if cfg.Replicas != 3 || cfg.MaxAge != want {
			t.Errorf("%s: replicas %d, max age %v; want 3, %v", cfg.Name, cfg.Replicas, cfg.MaxAge, want)
		}
	}
}

func TestCheckStreams(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, js := testkit.NATS(t).Connect(t)

	err := natsbus.CheckStreams(ctx, js)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("CheckStreams before Provision: %v, want ErrStreamNotFound", err)
	}
	for name := range hubStreams {
		if !strings.Contains(err.Error(), "stream "+name) {
			t.Errorf("CheckStreams before Provision does not name %s: %v", name, err)
		}
	}

	if err := natsbus.Provision(ctx, js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := natsbus.CheckStreams(ctx, js); err != nil {
		t.Fatalf("CheckStreams after Provision: %v", err)
	}

	if err := js.DeleteStream(ctx, natsbus.StreamCRM); err != nil {
		t.Fatal(err)
	}
	err = natsbus.CheckStreams(ctx, js)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("CheckStreams after deleting CRM: %v, want ErrStreamNotFound", err)
	}
	if !strings.Contains(err.Error(), "stream CRM") {
		t.Errorf("error does not name the missing stream: %v", err)
	}
	for _, other := range []string{natsbus.StreamStripe, natsbus.StreamBilling, natsbus.StreamSupport, natsbus.StreamDLQ} {
		if strings.Contains(err.Error(), "stream "+other+":") {
			t.Errorf("error names %s, which exists: %v", other, err)
		}
	}
}

// TestProvisionExternal provisions the separate nats-server process (an older
// server than the embedded one). That server is shared with other test runs,
// so this test only creates or updates, with the defaults every service uses,
// and deletes nothing.
func TestProvisionExternal(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, _, js := testkit.ExternalNATS(t)
	o := natsbus.OptionsFromEnv(config.NewReader(config.MapEnv(nil)), "natsbus-test")
	for i := range 2 {
		if err := natsbus.Provision(ctx, js, o); err != nil {
			t.Fatalf("Provision %d on the external server: %v", i+1, err)
		}
	}
	if err := natsbus.CheckStreams(ctx, js); err != nil {
		t.Fatalf("CheckStreams on the external server: %v", err)
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
	_, js := testkit.NATS(t).Connect(t)
	o := natsbus.Options{Replicas: 1, DuplicateWindow: time.Minute, MaxAge: time.Hour, DLQMaxBytes: 4 << 10}
	if err := natsbus.Provision(ctx, js, o); err != nil {
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
