package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
)

const subscriberLong = `Gives a subscriber outside the hub (docs/subscribing.md) what it needs and
nothing more. It creates or updates the subscriber's durable pull consumer
NAME on the stream (explicit ack, 30 s ack wait, 1000 unacknowledged at
most, never given up on by the server), and prints the NATS user NAME for
the server's configuration (nats.conf, authorization.users): it may read
that consumer and its own inboxes (_INBOX_NAME), and publish nothing else.
The subscriber may not create its consumer itself: a client that may create
one may give it a push deliver subject, and the server would then publish
the stream's messages there on its behalf.

NAME is the subscriber's NATS user and durable consumer: one subject token
(letters, digits, - and _), not a hub identity.

Creating consumers takes the migrate identity: NATS_URL (default
nats://127.0.0.1:4222) with NATS_USER=migrate and NATS_PASSWORD[_FILE], or
NATS_CREDS; without them, the dev hub's migrate identity in --data-dir
(NATS_URL defaulting to the dev hub's nats://127.0.0.1:4223). Against the
dev hub there is no nats.conf to edit: the subscriber's password is saved in
--data-dir/subscribers/NAME/, 'switchyard dev' (make run) lets it log in
within a second, and the command prints the environment to run it with.
`

// subscriberOptions are subscriber's flags.
type subscriberOptions struct {
	stream, filter, deliver, dataDir string
	confOnly                         bool
}

// newSubscriberCmd is `switchyard subscriber`.
func newSubscriberCmd(c *cliIO) *cobra.Command {
	var o subscriberOptions
	cmd := &cobra.Command{
		Use:   "subscriber NAME",
		Short: "a subscriber's durable consumer and least-privilege NATS user",
		Long:  subscriberLong,
		Args:  exactArgs(1, "the subscriber's NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return subscriberCmd(cmd.Context(), o, args[0], c.getenv, c.stdout)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.stream, "stream", natsbus.StreamBilling, "the stream it reads: BILLING, CRM, SUPPORT or DLQ")
	fs.StringVar(&o.filter, "filter", "", "the subjects it reads (default: the whole stream, e.g. billing.>)")
	fs.StringVar(&o.deliver, "deliver", "all", "where a new consumer starts: all, new, or an RFC 3339 time; fixed once it exists (delete the consumer to change it)")
	fs.BoolVar(&o.confOnly, "conf-only", false, "only print the nats.conf user, connect to nothing")
	dataDirFlag(fs, &o.dataDir, "the dev hub's data folder, for its migrate identity", true)
	return cmd
}

// subscriberCmd is `switchyard subscriber NAME`.
func subscriberCmd(ctx context.Context, o subscriberOptions, name string, getenv func(string) string, stdout io.Writer) error {
	var subjects []string
	if o.filter != "" {
		subjects = []string{o.filter}
	} else {
		// The whole stream, said as its subjects (billing.>), which is what
		// the examples' SUBSCRIBER_FILTER defaults to.
		for _, sc := range natsbus.Streams(natsbus.Options{}) {
			if sc.Name == o.stream && len(sc.Subjects) == 1 {
				subjects = sc.Subjects
			}
		}
	}
	d, err := natsbus.SubscriberDurable(name, o.stream, subjects...)
	if err != nil {
		return withCode(codeInvalid, err)
	}
	perm, err := natsbus.SubscriberPermissions(name, o.stream)
	if err != nil {
		return withCode(codeInvalid, err)
	}
	cfg := d.Config()
	switch o.deliver {
	case "all":
	case "new":
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	default:
		t, err := time.Parse(time.RFC3339, o.deliver)
		if err != nil {
			return withCode(codeInvalid, fmt.Errorf("--deliver %q: want all, new or an RFC 3339 time", o.deliver))
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if !o.confOnly {
		action, url, devHub, err := createSubscriberDurable(ctx, getenv, o.dataDir, d.Stream, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "consumer %s on %s: %s\n\n", d.Name, d.Stream, action)
		if devHub {
			// The dev hub's embedded server has no nats.conf to edit: it
			// loads the subscriber's login from the data folder.
			sub, err := saveDevSubscriber(o.dataDir, name, d.Stream)
			if err != nil {
				return err
			}
			pwFile, err := filepath.Abs(sub.PasswordFile)
			if err != nil {
				pwFile = sub.PasswordFile
			}
			fmt.Fprintf(stdout, "# the dev hub (switchyard dev) lets %s log in within a second, with only these permissions:\n", name)
			fmt.Fprintf(stdout, "NATS_URL=%s NATS_USER=%s NATS_PASSWORD_FILE=%s SUBSCRIBER_NAME=%s\n\n", url, name, pwFile, name)
		}
	}
	fmt.Fprintf(stdout, "# nats.conf, in authorization { users: [ ... ] }; the password in %s\n", subscriberPasswordVar(name))
	fmt.Fprint(stdout, natsConfUser(perm, subscriberPasswordVar(name)))
	return nil
}

// subscriberPasswordVar is the environment variable the printed nats.conf
// user reads its password from, as the hub's own identities do.
func subscriberPasswordVar(name string) string {
	return "NATS_PASSWORD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// natsConfUser is p as one entry of nats.conf's authorization users, in the
// form of services/switchyard/deploy/nats/nats.conf.
func natsConfUser(p natsbus.Permission, passwordVar string) string {
	quote := func(l []string) string {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprintf(`    {
      user: %q
      password: $%s
      permissions: {
        publish: { allow: %s }
        subscribe: { allow: %s }
      }
    }
`, p.Identity, passwordVar, quote(p.Publish), quote(p.Subscribe))
}

// createSubscriberDurable creates or updates the durable as the migrate
// identity and says what it did.
//
// It logs in with the environment's credentials (NATS_URL, default
// nats://127.0.0.1:4222), else as the dev hub's migrate identity from
// dataDir (NATS_URL, default the dev hub's nats://127.0.0.1:4223; devHub
// true), else with none.
func createSubscriberDurable(ctx context.Context, getenv func(string) string, dataDir, stream string, cfg jetstream.ConsumerConfig) (action, url string, devHub bool, err error) {
	opts := []nats.Option{nats.Name("switchyard-cli"), nats.Timeout(5 * time.Second)}
	url = orDefault(getenv("NATS_URL"), "nats://127.0.0.1:4222")
	if getenv("NATS_USER") != "" || getenv("NATS_CREDS") != "" {
		r := config.NewReader(getenv)
		o := natsbus.OptionsFromEnv(r, "switchyard-cli")
		if err := r.Err(); err != nil {
			return "", url, false, withCode(codeInvalid, err)
		}
		opts = append(opts, o.AuthOptions()...)
	} else if b, err := os.ReadFile(filepath.Join(dataDir, natsUsersDir, natsbus.IdentityMigrate)); err == nil {
		opts = append(opts, nats.UserInfo(natsbus.IdentityMigrate, strings.TrimSpace(string(b))),
			nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityMigrate)))
		url, devHub = orDefault(getenv("NATS_URL"), "nats://127.0.0.1:4223"), true
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return "", url, devHub, withCode(codeUnavailable, fmt.Errorf("connect %s: %w", url, err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", url, devHub, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	action = natsbus.Created
	if _, err := js.Consumer(ctx, stream, cfg.Durable); err == nil {
		action = natsbus.Updated
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return "", url, devHub, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, cfg); err != nil {
		return "", url, devHub, fmt.Errorf("create or update consumer %s on %s (as the migrate identity; where a consumer starts cannot change once it exists): %w", cfg.Durable, stream, err)
	}
	return action, url, devHub, nil
}
