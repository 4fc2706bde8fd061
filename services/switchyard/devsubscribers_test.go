package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// TestSubscriberOnTheDevHub is a developer's path from `make run` to a
// running subscriber: `switchyard subscriber try_dev` against the running
// dev hub (its embedded NATS, no nats.conf to edit) creates the durable,
// saves a login in the data folder and prints the environment to run with;
// dev lets that login in without a restart, with only the subscriber's
// permissions; it reads the hub's events from its consumer; and once the
// subscriber is removed from the data folder, dev refuses it again.
func TestSubscriberOnTheDevHub(t *testing.T) {
	ports := freePorts(t, 12)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	natsURL := "nats://" + addr(11)
	data := filepath.Join(t.TempDir(), "hub")
	env := config.MapEnv(map[string]string{"DATABASE_URL": testkit.Postgres(t), "LOG_LEVEL": "warn", "STRIPE_WEBHOOK_SECRET": devStripeTestSecret})
	args := []string{"dev", "--data-dir", data, "--nats-port", strconv.Itoa(ports[11]), "--gateway-addr", addr(0), "--gateway-admin-addr", addr(10),
		"--identity-addr", addr(1), "--crm-addr", addr(2), "--hubspot-addr", addr(3), "--support-addr", addr(4), "--zendesk-addr", addr(5),
		"--alerts-addr", addr(6), "--slack-addr", addr(7), "--projector-addr", addr(8), "--ops-addr", addr(9)}
	startDevInProcess(t, args, env, 90*time.Second)
	ctx := context.Background()

	out, errOut, code := runCLI(t, map[string]string{"NATS_URL": natsURL}, "subscriber", "try_dev", "--data-dir", data)
	if code != exitOK || !strings.Contains(out, "consumer try_dev on BILLING: created") {
		t.Fatalf("subscriber: exit %d\n%s%s", code, out, errOut)
	}
	line := regexp.MustCompile(`NATS_URL=(\S+) NATS_USER=try_dev NATS_PASSWORD_FILE=(\S+) SUBSCRIBER_NAME=try_dev`).FindStringSubmatch(out)
	if line == nil || line[1] != natsURL {
		t.Fatalf("no environment to run the subscriber with (want NATS_URL=%s …):\n%s", natsURL, out)
	}
	pw, err := os.ReadFile(line[2])
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(line[2]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the password file: %v, want mode 0600", err)
	}
	login := func() (*nats.Conn, error) {
		return nats.Connect(natsURL, nats.UserInfo("try_dev", strings.TrimSpace(string(pw))),
			nats.CustomInboxPrefix(natsbus.InboxPrefix("try_dev")), nats.MaxReconnects(0))
	}
	var nc *nats.Conn
	testkit.WaitFor(t, 10*time.Second, "the subscriber's login on the running dev hub", func() bool {
		nc, err = login()
		return err == nil
	})
	defer nc.Close()

	(&devStripeHub{gateway: addr(0)}).postSigned(t, "customer.created", testkit.StripeEvent(t, "customer.created"))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, natsbus.StreamBilling, "try_dev")
	if err != nil {
		t.Fatalf("the subscriber reads its consumer: %v", err)
	}
	if f := cons.CachedInfo().Config.FilterSubject; f != "billing.>" {
		t.Errorf("the consumer's filter is %q, want the whole stream said as billing.> (the examples' default)", f)
	}
	var got jetstream.Msg
	testkit.WaitFor(t, 30*time.Second, "a billing event on try_dev", func() bool {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			got = m
		}
		return got != nil
	})
	if got.Subject() != "billing.customer.upserted" {
		t.Errorf("first message on %s, want billing.customer.upserted", got.Subject())
	}
	if err := got.DoubleAck(ctx); err != nil {
		t.Errorf("ack: %v", err)
	}
	if _, err := js.Stream(ctx, natsbus.StreamStripe); err == nil {
		t.Error("the subscriber read the STRIPE stream's info")
	}

	if err := os.RemoveAll(filepath.Join(data, devSubscribersDir, "try_dev")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "dev refusing the removed subscriber", func() bool {
		c, err := login()
		if err == nil {
			c.Close()
		}
		return err != nil && !nc.IsConnected()
	})
}
