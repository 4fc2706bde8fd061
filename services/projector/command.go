package projector

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector/internal/ops"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// CommandUsage documents the projector's one-off commands.
const CommandUsage = `usage:
  projector                                   run the projector (see docs/configuration.md)
  projector -healthcheck                      probe a running instance
  projector rebuild --direct [--json]         rebuild the view from this process
  projector dlq replay --direct [--json] SEQ...|--all [--consumer NAME] [--class CLASS]
  projector dlq discard --direct --note TEXT [--json] SEQ...|--all [--consumer NAME] [--class CLASS]

The commands are for when no projector is running (with one, use switchyard
rebuild and switchyard dlq, which go through its status API). They act from
this process: DATABASE_URL, and NATS as the projector configures it
(NATS_URL, NATS_CREDS or NATS_USER/NATS_PASSWORD[_FILE]); dead-letter
actions log in as the operator (OPS_NATS_USER, OPS_NATS_PASSWORD[_FILE]) when
set and sign replays with SWITCHYARD_REPLAY_SIGNING_KEY[_FILE]. Each action
is recorded in the ops audit log under "cli:<user>" (USER), like one through
the status API.
`

// ErrUsage means the command line was wrong; the usage was printed.
var ErrUsage = errors.New("usage")

// Command runs one of the one-off commands (args without the program
// name, starting with the command).
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, CommandUsage)
		return ErrUsage
	}
	switch args[0] {
	case "rebuild":
		return rebuildCommand(ctx, args[1:], getenv, stdout, stderr)
	case "dlq":
		return dlqCommand(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, CommandUsage)
		return nil
	}
	fmt.Fprintf(stderr, "projector: unknown command %q\n\n%s", args[0], CommandUsage)
	return ErrUsage
}

// rebuildCommand is `projector rebuild --direct`.
func rebuildCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, CommandUsage) }
	direct := fs.Bool("direct", false, "rebuild from this process (required: say that no projector's status API is involved)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || !*direct {
		fs.Usage()
		return ErrUsage
	}
	env, err := openDirect(ctx, getenv, false, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	if err := migrate(ctx, env.pool); err != nil {
		return err
	}
	rep, err := env.console.Rebuild(ctx, cliActor(getenv))
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	_, err = fmt.Fprintf(stdout, "rebuilt the projection: %d events (%d duplicates, %d skipped, %d applied during the swap), %d customers, in %.2fs = %.0f events/s\n",
		rep.Events, rep.Duplicates, rep.Skipped, rep.CaughtUp, rep.Customers, rep.Seconds, rep.EventsPerSecond)
	return err
}

// dlqCommand is `projector dlq replay|discard --direct`: the audited path
// the console takes (a lock per dead letter, the audit row written before
// acting and completed after), from this process.
func dlqCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" && args[0] != "discard" {
		fmt.Fprint(stderr, CommandUsage)
		return ErrUsage
	}
	action := args[0]
	fs := flag.NewFlagSet("dlq "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, CommandUsage) }
	direct := fs.Bool("direct", false, "act from this process (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "every dead letter matching the filters")
	note := fs.String("note", "", "discard: why (required)")
	var f deadletter.Filter
	fs.StringVar(&f.Consumer, "consumer", "", "only this consumer's dead letters (--all)")
	fs.StringVar(&f.Class, "class", "", "only this class: transient, auth, permanent, unknown (--all)")
	if err := fs.Parse(args[1:]); err != nil || !*direct {
		fs.Usage()
		return ErrUsage
	}
	seqs, err := parseSeqs(fs.Args())
	if err != nil || (len(seqs) == 0) == !*all || (len(seqs) > 0 && *all) {
		fs.Usage()
		return ErrUsage
	}
	if action == "discard" && strings.TrimSpace(*note) == "" {
		fmt.Fprintln(stderr, "projector dlq discard: --note is required: say why this failure needs no replay")
		return ErrUsage
	}
	env, err := openDirect(ctx, getenv, true, stderr)
	if err != nil {
		return err
	}
	defer env.close()
	if err := migrations.Ops(ctx, env.pool); err != nil {
		return err
	}
	entries, err := env.dlq.List(ctx, f, seqs)
	if err != nil {
		return err
	}
	if len(seqs) > 0 && len(entries) != len(seqs) {
		return fmt.Errorf("found %d of the %d dead letters named (see 'switchyard dlq list')", len(entries), len(seqs))
	}
	results, err := resolveAll(ctx, env.console, cliActor(getenv), action, *note, entries)
	if *asJSON {
		return errors.Join(printJSON(stdout, results), err)
	}
	if len(results) == 0 && err == nil {
		_, err = fmt.Fprintln(stdout, "no dead letters matched")
		return err
	}
	for _, r := range results {
		fmt.Fprintf(stdout, "%d %s (%s): %s\n", r.Seq, r.Consumer, r.Subject, r.Result)
	}
	return err
}

// resolved is one dead letter a dlq command acted on.
type resolved struct {
	Seq           uint64 `json:"seq"`
	Consumer      string `json:"consumer"`
	Subject       string `json:"subject"`
	OriginalMsgID string `json:"original_msg_id"`
	Result        string `json:"result"`
	By            string `json:"by"`
}

// resolveAll replays or discards entries one at a time, stopping at the
// first failure (what was done before it is returned with the error).
func resolveAll(ctx context.Context, con *ops.Console, actor, action, note string, entries []deadletter.Entry) ([]resolved, error) {
	results := []resolved{}
	for _, e := range entries {
		var res string
		var err error
		if action == "discard" {
			res, err = con.Discard(ctx, actor, e.Seq, note)
		} else {
			res, err = con.Replay(ctx, actor, e.Seq)
		}
		if err != nil {
			return results, fmt.Errorf("%s %d: %w", action, e.Seq, err)
		}
		results = append(results, resolved{Seq: e.Seq, Consumer: e.Consumer, Subject: e.OriginalSubject, OriginalMsgID: e.OriginalMsgID, Result: res, By: actor})
	}
	return results, nil
}

// direct is what a one-off command acts with: the database, NATS, and the
// console's audited actions on them.
type direct struct {
	pool    *pgxpool.Pool
	console *ops.Console
	dlq     *deadletter.Store
	close   func()
}

// openDirect connects to DATABASE_URL and NATS from the environment; as
// operator, it logs in as the operator's NATS identity when one is
// configured (dead-letter actions need it) and signs replays.
func openDirect(ctx context.Context, getenv func(string) string, operator bool, stderr io.Writer) (*direct, error) {
	r := config.NewReader(getenv)
	dbURL := r.Secret("DATABASE_URL")
	o := natsbus.OptionsFromEnv(r, "switchyard-projector-cli")
	var signing ed25519.PrivateKey
	if operator {
		if op, ok := natsbus.OperatorOptionsFromEnv(r, o, "switchyard-projector-cli-ops"); ok {
			o = op
		}
		signing = consumer.ReplaySigningKeyFromEnv(r)
	}
	if !dbURL.IsSet() {
		r.Fail("DATABASE_URL", "required: the action is recorded in the ops audit log")
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	pool, err := postgres.OpenAs(ctx, dbURL.Reveal(), "switchyard-projector-cli", nil)
	if err != nil {
		return nil, err
	}
	nc, err := natsbus.Connect(ctx, o)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect %s: %w", o.URL, err)
	}
	d := &direct{pool: pool, close: func() { nc.Close(); pool.Close() }}
	js, err := jetstream.New(nc)
	if err == nil {
		d.dlq, err = deadletter.Open(ctx, js)
	}
	if err == nil {
		// Warnings (an audit result that could not be stored) reach the operator.
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		cc := ops.ConsoleConfig{Store: view.NewStore(pool, view.Schema), JetStream: js, Pool: pool, Logger: log, Meter: noop.NewMeterProvider()}
		if operator {
			cc.Operator, cc.ReplaySigningKey = js, signing
		}
		d.console, err = ops.NewConsole(ctx, cc)
	}
	if err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// cliActor names whoever runs a command in the audit log.
func cliActor(getenv func(string) string) string {
	name := getenv("USER") // the OS user a one-off command is audited as (cli:<user>)
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

func parseSeqs(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a dead-letter sequence", a)
		}
		out = append(out, n)
	}
	return out, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
