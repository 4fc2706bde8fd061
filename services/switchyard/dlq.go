package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector/client"
)

const dlqLong = `Inspects and resolves dead letters. SEQ is a dead letter's sequence in the DLQ
stream (see list). Replay publishes the original message again to its original
subject, marked with the original's id so consumers' ledgers recognise work it
already did, and then removes the dead letter.

NATS: --nats, else NATS_URL, else the dev hub's nats://127.0.0.1:4223.
Every replay and discard is recorded in the ops audit log. They go through the status
API (--ops, else SWITCHYARD_OPS_URL, else http://127.0.0.1:8090) with an operate token
(SWITCHYARD_OPS_TOKEN, else the one dev saved in --data-dir), recorded under the
token's name. When the projector is down, the projector's binary acts from its host
and records the action itself in DATABASE_URL's audit log, under "cli:<user>":
  projector dlq replay --direct SEQ...        projector dlq discard --direct --note TEXT SEQ...`

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
	args     []string // the SEQ arguments
	seqs     []uint64 // parsed by check
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

// opsGiven records whether --ops was on the command line.
func (f *dlqFlags) opsGiven(fs *pflag.FlagSet) { f.opsSet = fs.Changed("ops") }

// dlqSubcommands are dlq's subcommands, with their one-line help, usage
// and the flags each uses (the others are accepted, hidden, as before).
var dlqSubcommands = []struct {
	name, use, short string
	flags            []string
}{
	{"list", "list [flags]", "list the dead letters, filtered", []string{"consumer", "class", "older-than"}},
	{"show", "show [flags] SEQ", "show one dead letter, its headers and with --payload the original message", []string{"payload"}},
	{"replay", "replay [flags] SEQ...|--all", "publish the originals again and remove the dead letters (audited)", []string{"consumer", "class", "older-than", "all", "dry-run", "ops", "direct"}},
	{"discard", "discard --note TEXT [flags] SEQ...|--all", "remove dead letters that need no replay, saying why (audited)", []string{"consumer", "class", "older-than", "all", "note", "ops", "direct"}},
}

// newDLQCmd is `switchyard dlq` and its subcommands. Help and unknown
// subcommands are answered before anything connects.
func newDLQCmd(c *cliIO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq list|show|replay|discard",
		Short: "inspect and resolve dead letters",
		Long:  dlqLong,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] != "help" {
				return usageErrorf("unknown subcommand %q: want list, show, replay or discard", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 { // dlq help
				return cmd.Help()
			}
			return usageErrorf("no subcommand: want list, show, replay or discard")
		},
	}
	for _, sc := range dlqSubcommands {
		f := &dlqFlags{}
		sub := &cobra.Command{
			Use:   sc.use,
			Short: sc.short,
			Long:  sc.short + ".\n\n" + dlqLong,
			RunE: func(cmd *cobra.Command, args []string) error {
				f.args = args
				f.opsGiven(cmd.Flags())
				return dlqCmd(cmd.Context(), sc.name, f, c.getenv, c.stdout)
			},
		}
		if sc.name == "show" {
			sub.Args = exactArgs(1, "one dead-letter SEQ")
		}
		declareDLQFlags(sub.Flags(), f, c.getenv)
		sub.Flags().VisitAll(func(fl *pflag.Flag) {
			common := fl.Name == "nats" || fl.Name == "json" || fl.Name == "data-dir"
			if !common && !slices.Contains(sc.flags, fl.Name) {
				fl.Hidden = true
			}
		})
		cmd.AddCommand(sub)
	}
	return cmd
}

// declareDLQFlags declares the flags every dlq subcommand accepts.
func declareDLQFlags(fs *pflag.FlagSet, f *dlqFlags, getenv func(string) string) {
	natsFlag(fs, &f.natsURL, getenv)
	jsonFlag(fs, &f.asJSON)
	fs.StringVar(&f.filter.Consumer, "consumer", "", "only this consumer's dead letters")
	fs.StringVar(&f.filter.Class, "class", "", "only this class: transient, auth, permanent, unknown")
	fs.DurationVar(&f.filter.OlderThan, "older-than", 0, "only dead letters whose last failure is at least this old")
	fs.BoolVar(&f.all, "all", false, "every dead letter matching the filters")
	fs.BoolVar(&f.dryRun, "dry-run", false, "replay: show what would be published, change nothing")
	fs.StringVar(&f.note, "note", "", "discard: why (required)")
	fs.BoolVar(&f.withData, "payload", false, "show: include the original message (its payload)")
	oldSpelling(fs, "data", "payload") // --data was this flag's name; --data-dir is the folder
	opsFlag(fs, &f.opsURL, getenv)
	dataDirFlag(fs, &f.dataDir, "the dev hub's data folder (for its ops token and its operator NATS identity)", false)
	fs.BoolVar(&f.direct, "direct", false, "moved: replay/discard from the projector's host with 'projector dlq replay|discard --direct'")
}

func dlqCmd(ctx context.Context, sub string, f *dlqFlags, getenv func(string) string, stdout io.Writer) error {
	if err := f.check(sub); err != nil {
		return err
	}
	if (sub == "replay" || sub == "discard") && f.direct && !f.dryRun {
		return withCode(codeInvalid, fmt.Errorf("dlq %s --direct runs in the projector's binary: run `projector dlq %s --direct` where DATABASE_URL and NATS reach (see its usage), or drop --direct to go through the running projector", sub, sub))
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
		return dlqResolve(ctx, dlq, sub, f, getenv, out)
	}
}

// check checks a subcommand's flags and arguments together, before
// anything connects.
func (f *dlqFlags) check(sub string) error {
	if f.filter.Class != "" && !validClass(f.filter.Class) {
		return usageErrorf("--class %q: want transient, auth, permanent or unknown", f.filter.Class)
	}
	if sub == "discard" && f.dryRun {
		return usageErrorf("--dry-run is for replay")
	}
	if f.direct && f.opsSet {
		return usageErrorf("--direct and --ops exclude each other: --direct acts from here, --ops through the status API")
	}
	if sub == "discard" && strings.TrimSpace(f.note) == "" {
		return usageErrorf("--note is required: say why this failure needs no replay")
	}
	seqs, err := parseSeqs(f.args)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if sub == "replay" || sub == "discard" {
		if (len(seqs) == 0) == !f.all || (len(seqs) > 0 && f.all) {
			return usageErrorf("name the dead letters: SEQ... or --all (with the filters), not both")
		}
	}
	if sub == "list" && len(seqs) > 0 {
		return usageErrorf("list takes no SEQ: use the filters")
	}
	f.seqs = seqs
	return nil
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
// and, with --payload, the original message.
func dlqShow(ctx context.Context, dlq *deadletter.Store, f *dlqFlags, out *printer) error {
	seqs := f.seqs
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
func dlqResolve(ctx context.Context, dlq *deadletter.Store, sub string, f *dlqFlags, getenv func(string) string, out *printer) error {
	seqs := f.seqs
	entries, err := dlq.List(ctx, f.filter, seqs)
	if err != nil {
		return err
	}
	if len(seqs) > 0 && len(entries) != len(seqs) {
		return withCode(codeNotFound, fmt.Errorf("found %d of the %d dead letters named (see 'switchyard dlq list')", len(entries), len(seqs)))
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
	return writeJSON(p.w, v)
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
