package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/services/projector/client"
)

const traceUsage = `usage:
  switchyard trace [--ops URL] [--data .switchyard] [--json] evt_…|cus_…|EMAIL|CANONICAL_ID

Shows one Stripe event end to end (the customer's entries it caused: billing
events, CRM and support outcomes), or one customer's whole timeline, with the
state of every automation and each entry's trace id (a Jaeger link when
JAEGER_UI_URL is set). Reads the projector's status API with an ops token.
`

// traced is what trace prints for one customer.
type traced struct {
	Customer client.View            `json:"customer"`
	Timeline []client.TimelineEntry `json:"timeline"`
}

func traceCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, traceUsage) }
	opsURL := fs.String("ops", orDefault(getenv("SWITCHYARD_OPS_URL"), "http://127.0.0.1:8090"), "status API base URL")
	dataDir := fs.String("data", ".switchyard", "the dev hub's data folder (for its ops token)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	q := strings.TrimSpace(fs.Arg(0))
	tok, err := opsToken(getenv, *dataDir)
	if err != nil {
		return err
	}
	c := client.New(*opsURL, tok, 30*time.Second)

	var views []client.View
	switch {
	case strings.HasPrefix(q, "evt_"):
		views, err = c.FindCustomers(ctx, client.ByStripeEvent, q)
	case strings.HasPrefix(q, "cus_"):
		views, err = c.FindCustomers(ctx, client.ByStripeCustomer, q)
	case strings.Contains(q, "@"):
		views, err = c.FindCustomers(ctx, client.ByEmail, q)
	default:
		var v client.View
		v, err = c.Customer(ctx, q)
		views = []client.View{v}
	}
	if err != nil {
		return err
	}
	if len(views) == 0 {
		return fmt.Errorf("the hub knows no customer for %s (a Stripe event it never stored? try switchyard reconcile)", q)
	}
	var out []traced
	for _, v := range views {
		entries, err := c.FullTimeline(ctx, v.CustomerID)
		if err != nil {
			return err
		}
		if strings.HasPrefix(q, "evt_") {
			entries = causedBy(entries, q)
		}
		out = append(out, traced{Customer: v, Timeline: entries})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	jaeger := strings.TrimRight(getenv("JAEGER_UI_URL"), "/")
	for i, t := range out {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printTrace(stdout, t, q, jaeger)
	}
	return nil
}

// causedBy keeps the entries a Stripe event led to: the billing events
// made from it and the outcomes of those.
func causedBy(entries []client.TimelineEntry, stripeEvent string) []client.TimelineEntry {
	mine := map[string]bool{}
	var out []client.TimelineEntry
	for _, e := range entries {
		if slices.Contains(e.SourceEventIDs, stripeEvent) {
			mine[e.EventID] = true
		}
	}
	for _, e := range entries {
		if mine[e.EventID] || slices.ContainsFunc(e.SourceEventIDs, func(s string) bool { return mine[s] }) {
			out = append(out, e)
		}
	}
	return out
}

func printTrace(w io.Writer, t traced, q, jaeger string) {
	v := t.Customer
	fmt.Fprintf(w, "customer %s  %s  %s\n", v.CustomerID, v.Email, strings.Join(v.StripeCustomerIDs, ","))
	fmt.Fprintf(w, "  state:   %s\n", strings.Join(v.States, "; "))
	if v.Plan != "" {
		fmt.Fprintf(w, "  plan:    %s (%s), MRR %d %s\n", v.Plan, v.Status, v.MRR, strings.ToUpper(v.Currency))
	}
	crm := v.CRM.Status
	if v.CRM.NextAttemptAt != nil {
		crm += ", next attempt " + v.CRM.NextAttemptAt.UTC().Format(time.RFC3339)
	}
	if v.CRM.Reason != "" {
		crm += ": " + v.CRM.Reason
	}
	fmt.Fprintf(w, "  CRM:     %s\n", crm)
	for _, tk := range v.OpenTickets {
		fmt.Fprintf(w, "  ticket:  #%s %s (%s)\n", tk.TicketID, tk.Rule, tk.Priority)
	}
	if strings.HasPrefix(q, "evt_") {
		fmt.Fprintf(w, "what %s led to:\n", q)
	} else {
		fmt.Fprintln(w, "timeline:")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  WHEN\tSTATUS\tWHAT\tSUBJECT\tTRACE")
	for _, e := range t.Timeline {
		trace := e.TraceID
		if jaeger != "" && trace != "" {
			trace = jaeger + "/trace/" + trace
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05"), e.Status, e.Summary, e.Subject, trace)
	}
	_ = tw.Flush()
}
