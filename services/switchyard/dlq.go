package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector/client"
)

const dlqUsage = `usage:
  switchyard dlq list    [--consumer NAME] [--class CLASS] [--older-than DURATION] [--json]
  switchyard dlq show    [--data] [--json] SEQ
  switchyard dlq replay  [--dry-run] [--ops URL] [--json] SEQ...|--all [--consumer NAME] [--class CLASS]
  switchyard dlq discard --note TEXT [--ops URL] [--json] SEQ...|--all [--consumer NAME] [--class CLASS]

SEQ is a dead letter's sequence in the DLQ stream (see list). Replay publishes the
original message again to its original subject, marked with the original's id so
consumers' ledgers recognise work it already did, and then removes the dead letter.
NATS: --nats, else NATS_URL, else the dev hub's nats://127.0.0.1:4223.
Every replay and discard is recorded in the ops audit log. They go through the status
API (--ops, else SWITCHYARD_OPS_URL, else http://127.0.0.1:8090) with an operate token
(SWITCHYARD_OPS_TOKEN, else the one dev saved in --data-dir), recorded under the
token's name. When the projector is down, the projector's binary acts from its host
and records the action itself in DATABASE_URL's audit log, under "cli:<user>":
  projector dlq replay --direct SEQ...        projector dlq discard --direct --note TEXT SEQ...
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

// dlqFlags are a dlq subcommand's flags.
type dlqFlags struct {
	fs       *flag.FlagSet
	filter   deadletter.Filter
	natsURL  string
	opsURL   string
	dataDir  string
	note     string
	asJSON   bool
	all      bool
	dryRun   bool
	withData bool
	direct   bool
	opsSet   bool // --ops given explicitly
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
	f, err := parseDLQFlags(sub, args[1:], getenv, stderr)
	if f == nil {
		return err // the usage was printed (nil for -h)
	}
	if (sub == "replay" || sub == "discard") && f.direct && !f.dryRun {
		return fmt.Errorf("dlq %s --direct runs in the projector's binary: run `projector dlq %s --direct` where DATABASE_URL and NATS reach (see its usage), or drop --direct to go through the running projector", sub, sub)
	}
	dlq, closeNATS, err := dlqConnect(ctx, getenv, f)
	if err != nil {
		return err
	}
	defer closeNATS()
	out := &printer{w: stdout, json: f.asJSON}
	switch sub {
	case "list":
		entries, err := dlq.List(ctx, f.filter, nil)
		if err != nil {
			return err
		}
		return out.list(entries)
	case "show":
		return dlqShow(ctx, dlq, f, out)
	default:
		return dlqResolve(ctx, dlq, sub, f, getenv, out, stderr)
	}
}

// parseDLQFlags reads and checks a subcommand's flags; nil means the
// command ends with the error returned (nil after -h).
func parseDLQFlags(sub string, args []string, getenv func(string) string, stderr io.Writer) (*dlqFlags, error) {
	f := &dlqFlags{fs: flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage) }
	fs.StringVar(&f.natsURL, "nats", orDefault(getenv("NATS_URL"), "nats://127.0.0.1:4223"), "NATS URL")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON")
	fs.StringVar(&f.filter.Consumer, "consumer", "", "only this consumer's dead letters")
	fs.StringVar(&f.filter.Class, "class", "", "only this class: transient, auth, permanent, unknown")
	fs.DurationVar(&f.filter.OlderThan, "older-than", 0, "only dead letters whose last failure is at least this old")
	fs.BoolVar(&f.all, "all", false, "every dead letter matching the filters")
	fs.BoolVar(&f.dryRun, "dry-run", false, "replay: show what would be published, change nothing")
	fs.StringVar(&f.note, "note", "", "discard: why (required)")
	fs.BoolVar(&f.withData, "data", false, "show: include the original message data")
	fs.StringVar(&f.opsURL, "ops", orDefault(getenv("SWITCHYARD_OPS_URL"), "http://127.0.0.1:8090"), "replay/discard through this status API (default SWITCHYARD_OPS_URL)")
	fs.StringVar(&f.dataDir, "data-dir", ".switchyard", "the dev hub's data folder (for its ops token and its operator NATS identity)")
	fs.BoolVar(&f.direct, "direct", false, "moved: replay/discard from the projector's host with `projector dlq replay|discard --direct`")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil, nil // fs.Usage printed it
	} else if err != nil {
		return nil, errUsage
	}
	if f.filter.Class != "" && !validClass(f.filter.Class) {
		return nil, fmt.Errorf("--class %q: want transient, auth, permanent or unknown", f.filter.Class)
	}
	if sub == "discard" && f.dryRun {
		fmt.Fprintln(stderr, "switchyard dlq discard: --dry-run is for replay")
		return nil, errUsage
	}
	fs.Visit(func(fl *flag.Flag) { f.opsSet = f.opsSet || fl.Name == "ops" })
	if f.direct && f.opsSet {
		fmt.Fprintln(stderr, "switchyard dlq: --direct and --ops exclude each other: --direct acts from here, --ops through the status API")
		return nil, errUsage
	}
	return f, nil
}

// dlqConnect opens the dead-letter stream, as the operator when the dev
// hub's identity or NATS_USER says so.
func dlqConnect(ctx context.Context, getenv func(string) string, f *dlqFlags) (*deadletter.Store, func(), error) {
	auth, err := cliNATS(getenv, f.dataDir)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(f.natsURL, append(auth, nats.Name("switchyard-cli"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", f.natsURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	dlq, err := deadletter.Open(ctx, js)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return dlq, nc.Close, nil
}

// dlqShow prints one dead letter, its headers (never the replay signature)
// and, with --data, the original message.
func dlqShow(ctx context.Context, dlq *deadletter.Store, f *dlqFlags, out *printer) error {
	seqs, err := parseSeqs(f.fs.Args())
	if err != nil || len(seqs) != 1 {
		f.fs.Usage()
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
	if f.withData {
		e.Data = jsonOrString(d.OriginalData)
	}
	return out.show(e)
}

// dlqResolve replays or discards the dead letters named (or --all
// matching the filters), or with --dry-run shows what a replay would do.
func dlqResolve(ctx context.Context, dlq *deadletter.Store, sub string, f *dlqFlags, getenv func(string) string, out *printer, stderr io.Writer) error {
	if sub == "discard" && strings.TrimSpace(f.note) == "" {
		fmt.Fprintln(stderr, "switchyard dlq discard: --note is required: say why this failure needs no replay")
		return errUsage
	}
	seqs, err := parseSeqs(f.fs.Args())
	if err != nil || (len(seqs) == 0) == !f.all || (len(seqs) > 0 && f.all) {
		f.fs.Usage()
		return errUsage
	}
	entries, err := dlq.List(ctx, f.filter, seqs)
	if err != nil {
		return err
	}
	if len(seqs) > 0 && len(entries) != len(seqs) {
		return fmt.Errorf("found %d of the %d dead letters named (see 'switchyard dlq list')", len(entries), len(seqs))
	}
	if f.dryRun {
		return planReplay(entries, out)
	}
	// Through the projector: one action per dead letter at a time and
	// each recorded in the audit log under the token's name.
	hint := " (if the projector is down, `projector dlq " + sub + " --direct` with DATABASE_URL acts from its host, audited)"
	tok, err := opsToken(getenv, f.dataDir)
	if err != nil {
		return fmt.Errorf("%w"+hint, err)
	}
	err = viaOps(ctx, client.New(f.opsURL, tok, 60*time.Second), sub, entries, f.note, out)
	var unreachable *url.Error
	if errors.As(err, &unreachable) {
		return fmt.Errorf("%w"+hint, err)
	}
	return err
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

// viaOps replays or discards through the status API.
func viaOps(ctx context.Context, c *client.Client, action string, entries []deadletter.Entry, note string, out *printer) error {
	var results []map[string]any
	for _, e := range entries {
		var res client.ActionResult
		var err error
		if action == "discard" {
			res, err = c.Discard(ctx, e.Seq, note)
		} else {
			res, err = c.Replay(ctx, e.Seq)
		}
		if err != nil {
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
