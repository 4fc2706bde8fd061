package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/services/projector/client"
)

const traceLong = `Shows one Stripe event end to end (the customer's entries it caused: billing
events, CRM and support outcomes), or one customer's whole timeline, with the
state of every automation and each entry's trace id (a Jaeger link when
JAEGER_UI_URL is set). Reads the projector's status API with an ops token.
`

// traced is what trace prints for one customer.
type traced struct {
	Customer client.View            `json:"customer"`
	Timeline []client.TimelineEntry `json:"timeline"`
}

// newTraceCmd is `switchyard trace`.
func newTraceCmd(cio *cliIO) *cobra.Command {
	var opsURL, dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "trace [flags] evt_…|cus_…|EMAIL|CANONICAL_ID",
		Short: "one event or customer end to end, with trace ids",
		Long:  traceLong,
		Args:  exactArgs(1, "one evt_…, cus_…, email or canonical id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return traceCmd(cmd.Context(), cio.getenv, cio.stdout, opsURL, dataDir, asJSON, args[0])
		},
	}
	opsFlag(cmd.Flags(), &opsURL, cio.getenv)
	dataDirFlag(cmd.Flags(), &dataDir, "the dev hub's data folder (for its ops token)", true)
	jsonFlag(cmd.Flags(), &asJSON)
	return cmd
}

func traceCmd(ctx context.Context, getenv func(string) string, stdout io.Writer, opsURL, dataDir string, asJSON bool, arg string) error {
	q := strings.TrimSpace(arg)
	tok, err := opsToken(getenv, dataDir)
	if err != nil {
		return err
	}
	c := client.New(opsURL, tok, 30*time.Second)

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
		return withCode(codeNotFound, fmt.Errorf("the hub knows no customer for %s (a Stripe event it never stored? try switchyard reconcile)", q))
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
	if asJSON {
		return writeJSON(stdout, out)
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
