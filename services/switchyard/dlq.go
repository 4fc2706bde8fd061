package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector"
)

const dlqUsage = `usage:
  switchyard dlq list    [--consumer NAME] [--class CLASS] [--older-than DURATION] [--json]
  switchyard dlq show    [--data] [--json] SEQ
  switchyard dlq replay  [--dry-run] [--ops URL | --direct] [--json] SEQ...|--all [--consumer NAME] [--class CLASS]
  switchyard dlq discard --note TEXT [--ops URL | --direct] [--json] SEQ...|--all [--consumer NAME] [--class CLASS]

SEQ is a dead letter's sequence in the DLQ stream (see list). Replay publishes the
original message again to its original subject, marked with the original's id so
consumers' ledgers recognise work it already did, and then removes the dead letter.
NATS: --nats, else NATS_URL, else the dev hub's nats://127.0.0.1:4223.
Every replay and discard is recorded in the ops audit log. They go through the status
API (--ops, else SWITCHYARD_OPS_URL, else http://127.0.0.1:8090) with an operate token
(SWITCHYARD_OPS_TOKEN, else the one dev saved in --data-dir), recorded under the
token's name. --direct, for when the projector is down, acts on NATS from here and
records the action itself in DATABASE_URL's audit log, under "cli:<user>".
`

// dlqEntry is one dead letter as the CLI prints it.
type dlqEntry struct {
	Seq             uint64              `json:"seq"`
	Consumer        string              `json:"consumer"`
	Class           string              `json:"class"`
	Reason          string              `json:"reason"`
	Attempts        int                 `json:"attempts"`
	FirstFailureAt  time.Time           `json:"first_failure_at"`
	LastFailureAt   time.Time           `json:"last_failure_at"`
	OriginalSubject string              `json:"original_subject"`
	OriginalMsgID   string              `json:"original_msg_id"`
	OriginalStream  string              `json:"original_stream"`
	OriginalSeq     uint64              `json:"original_stream_sequence"`
	Headers         map[string][]string `json:"headers,omitempty"`
	DataBytes       int                 `json:"data_bytes"`
	Data            json.RawMessage     `json:"data,omitempty"`
}

func toEntry(seq uint64, d *consumer.DeadLetter) dlqEntry {
	return dlqEntry{
		Seq: seq, Consumer: d.Consumer, Class: d.Class.String(), Reason: d.Reason, Attempts: d.Attempts,
		FirstFailureAt: d.FirstFailureAt, LastFailureAt: d.LastFailureAt,
		OriginalSubject: d.OriginalSubject, OriginalMsgID: d.OriginalMsgID,
		OriginalStream: d.OriginalStream, OriginalSeq: d.OriginalSeq, DataBytes: len(d.OriginalData),
	}
}

func dlqCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return errUsage
	}
	sub := args[0]
	// Help and unknown subcommands are answered before anything connects.
	switch sub {
	case "list", "show", "replay", "discard":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "switchyard dlq: unknown subcommand %q\n\n%s", sub, dlqUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage) }
	natsURL := fs.String("nats", orDefault(getenv("NATS_URL"), "nats://127.0.0.1:4223"), "NATS URL")
	asJSON := fs.Bool("json", false, "print JSON")
	var f deadletter.Filter
	fs.StringVar(&f.Consumer, "consumer", "", "only this consumer's dead letters")
	fs.StringVar(&f.Class, "class", "", "only this class: transient, auth, permanent, unknown")
	fs.DurationVar(&f.OlderThan, "older-than", 0, "only dead letters whose last failure is at least this old")
	all := fs.Bool("all", false, "every dead letter matching the filters")
	dryRun := fs.Bool("dry-run", false, "replay: show what would be published, change nothing")
	note := fs.String("note", "", "discard: why (required)")
	withData := fs.Bool("data", false, "show: include the original message data")
	opsURL := fs.String("ops", orDefault(getenv("SWITCHYARD_OPS_URL"), "http://127.0.0.1:8090"), "replay/discard through this status API (default SWITCHYARD_OPS_URL)")
	dataDir := fs.String("data-dir", ".switchyard", "the dev hub's data folder (for its ops token and its operator NATS identity)")
	direct := fs.Bool("direct", false, "replay/discard from here on NATS, recorded in DATABASE_URL's ops audit log (when the projector is down)")
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil // fs.Usage printed it
	} else if err != nil {
		return errUsage
	}
	if f.Class != "" && !validClass(f.Class) {
		return fmt.Errorf("--class %q: want transient, auth, permanent or unknown", f.Class)
	}
	if sub == "discard" && *dryRun {
		fmt.Fprintln(stderr, "switchyard dlq discard: --dry-run is for replay")
		return errUsage
	}
	opsSet := false
	fs.Visit(func(fl *flag.Flag) { opsSet = opsSet || fl.Name == "ops" })
	if *direct && opsSet {
		fmt.Fprintln(stderr, "switchyard dlq: --direct and --ops exclude each other: --direct acts from here, --ops through the status API")
		return errUsage
	}
	auth, err := cliNATS(getenv, *dataDir)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL, append(auth, nats.Name("switchyard-cli"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", *natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	dlq, err := deadletter.Open(ctx, js)
	if err != nil {
		return err
	}
	out := &printer{w: stdout, json: *asJSON}

	switch sub {
	case "list":
		entries, err := dlq.List(ctx, f, nil)
		if err != nil {
			return err
		}
		return out.list(entries)
	case "show":
		seqs, err := parseSeqs(fs.Args())
		if err != nil || len(seqs) != 1 {
			fs.Usage()
			return errUsage
		}
		got, err := dlq.Get(ctx, seqs[0])
		if err != nil {
			return fmt.Errorf("dead letter %d: %w", seqs[0], err)
		}
		d := got.DeadLetter
		e := toEntry(seqs[0], d)
		e.Headers = map[string][]string{}
		for k, vs := range d.OriginalHeaders {
			if k != wire.HeaderSignature { // kept in the envelope for audit, never printed
				e.Headers[k] = vs
			}
		}
		if *withData {
			e.Data = jsonOrString(d.OriginalData)
		}
		return out.show(e)
	case "replay", "discard":
		if sub == "discard" && strings.TrimSpace(*note) == "" {
			fmt.Fprintln(stderr, "switchyard dlq discard: --note is required: say why this failure needs no replay")
			return errUsage
		}
		seqs, err := parseSeqs(fs.Args())
		if err != nil || (len(seqs) == 0) == !*all || (len(seqs) > 0 && *all) {
			fs.Usage()
			return errUsage
		}
		entries, err := dlq.List(ctx, f, seqs)
		if err != nil {
			return err
		}
		if len(seqs) > 0 && len(entries) != len(seqs) {
			return fmt.Errorf("found %d of the %d dead letters named (see 'switchyard dlq list')", len(entries), len(seqs))
		}
		switch {
		case *dryRun:
			return planReplay(entries, out)
		case *direct:
			return directly(ctx, js, getenv, *dataDir, sub, entries, *note, out, stderr)
		}
		// Through the projector: one action per dead letter at a time and
		// each recorded in the audit log under the token's name.
		const hint = " (if the projector is down, --direct with DATABASE_URL acts from here, audited)"
		tok, err := opsToken(getenv, *dataDir)
		if err != nil {
			return fmt.Errorf("%w"+hint, err)
		}
		err = viaOps(ctx, newOpsClient(*opsURL, tok, 60*time.Second), sub, entries, *note, out)
		var unreachable *url.Error
		if errors.As(err, &unreachable) {
			return fmt.Errorf("%w"+hint, err)
		}
		return err
	default:
		fmt.Fprint(stderr, dlqUsage)
		return errUsage
	}
}

func validClass(c string) bool {
	for _, k := range []errclass.Class{errclass.ClassTransient, errclass.ClassAuth, errclass.ClassPermanent, errclass.ClassUnknown} {
		if k.String() == c {
			return true
		}
	}
	return false
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

// planReplay shows what replaying each dead letter would publish.
func planReplay(entries []deadletter.Entry, out *printer) error {
	var results []map[string]any
	for _, e := range entries {
		p := deadletter.PlanReplay(e)
		results = append(results, map[string]any{"seq": e.Seq, "consumer": e.Consumer, "subject": e.OriginalSubject,
			"replay_of": p.ReplayOf, "msg_id": p.MsgID, "result": "would " + p.Effect})
	}
	return out.results(results)
}

// directly replays or discards from this process, through the same
// audited path the console takes (a lock per dead letter, the audit row
// written before acting and completed after), recorded under "cli:<user>".
func directly(ctx context.Context, js jetstream.JetStream, getenv func(string) string, dataDir, action string, entries []deadletter.Entry, note string, out *printer, stderr io.Writer) error {
	dbURL := getenv("DATABASE_URL")
	if dbURL == "" {
		return errors.New("--direct needs DATABASE_URL, where the action is recorded in the ops audit log")
	}
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := projector.MigrateOps(ctx, pool); err != nil {
		return err
	}
	// Warnings (an audit result that could not be stored) reach the operator.
	replayKey, err := cliReplayKey(getenv, dataDir)
	if err != nil {
		return err
	}
	con, err := projector.NewConsole(ctx, projector.ConsoleConfig{JetStream: js, Operator: js, Pool: pool, ReplaySigningKey: replayKey,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Meter: noop.NewMeterProvider()})
	if err != nil {
		return err
	}
	actor := cliActor(getenv)
	var results []map[string]any
	for _, e := range entries {
		var res string
		if action == "discard" {
			res, err = con.Discard(ctx, actor, e.Seq, note)
		} else {
			res, err = con.Replay(ctx, actor, e.Seq)
		}
		if err != nil {
			return errors.Join(out.partial(results), fmt.Errorf("%s %d: %w", action, e.Seq, err))
		}
		results = append(results, map[string]any{"seq": e.Seq, "consumer": e.Consumer, "subject": e.OriginalSubject,
			"original_msg_id": e.OriginalMsgID, "result": res, "by": actor})
	}
	return out.results(results)
}

// cliActor names whoever runs the CLI in the audit log.
func cliActor(getenv func(string) string) string {
	name := getenv("USER") // the OS user a --direct action is audited as (cli:<user>)
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

// viaOps replays or discards through the status API.
func viaOps(ctx context.Context, c *opsClient, action string, entries []deadletter.Entry, note string, out *printer) error {
	var results []map[string]any
	for _, e := range entries {
		var res projector.ActionResult
		var body []byte
		if action == "discard" {
			body, _ = json.Marshal(map[string]string{"note": note})
		}
		if err := c.doBody(ctx, http.MethodPost, "/v1/dead-letters/"+strconv.FormatUint(e.Seq, 10)+"/"+action, body, &res); err != nil {
			return errors.Join(out.partial(results), fmt.Errorf("%s %d: %w", action, e.Seq, err))
		}
		results = append(results, map[string]any{"seq": e.Seq, "consumer": e.Consumer, "original_msg_id": e.OriginalMsgID, "result": res.Result, "by": res.By})
	}
	return out.results(results)
}

type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) encode(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (p *printer) list(entries []deadletter.Entry) error {
	rows := make([]dlqEntry, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, toEntry(e.Seq, e.DeadLetter))
	}
	if p.json {
		return p.encode(rows)
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(p.w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tCONSUMER\tCLASS\tATTEMPTS\tLAST FAILURE\tSUBJECT\tMESSAGE\tREASON")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Seq, r.Consumer, r.Class, r.Attempts,
			r.LastFailureAt.UTC().Format(time.RFC3339), r.OriginalSubject, r.OriginalMsgID, oneLine(r.Reason, 80))
	}
	return tw.Flush()
}

func (p *printer) show(e dlqEntry) error {
	if p.json {
		return p.encode(e)
	}
	fmt.Fprintf(p.w, "dead letter %d\n  consumer:       %s\n  class:          %s\n  attempts:       %d\n  first failure:  %s\n  last failure:   %s\n  subject:        %s\n  message id:     %s\n  original:       %s #%d\n  data:           %d bytes\n  reason:         %s\n",
		e.Seq, e.Consumer, e.Class, e.Attempts, e.FirstFailureAt.UTC().Format(time.RFC3339), e.LastFailureAt.UTC().Format(time.RFC3339),
		e.OriginalSubject, e.OriginalMsgID, e.OriginalStream, e.OriginalSeq, e.DataBytes, e.Reason)
	for k, vs := range e.Headers {
		fmt.Fprintf(p.w, "  header %s: %s\n", k, strings.Join(vs, ", "))
	}
	if e.Data != nil {
		fmt.Fprintf(p.w, "%s\n", e.Data)
	}
	return nil
}

// partial prints what was done before a failure, if anything.
func (p *printer) partial(rs []map[string]any) error {
	if len(rs) == 0 {
		return nil
	}
	return p.results(rs)
}

func (p *printer) results(rs []map[string]any) error {
	if p.json {
		if rs == nil {
			rs = []map[string]any{}
		}
		return p.encode(rs)
	}
	if len(rs) == 0 {
		_, err := fmt.Fprintln(p.w, "no dead letters matched")
		return err
	}
	for _, r := range rs {
		fmt.Fprintf(p.w, "%v %v (%v): %v\n", r["seq"], r["consumer"], r["subject"], r["result"])
	}
	return nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func jsonOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}
