package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/services/projector/client"
)

const statusLong = `Pipeline health in one screen, from the projector's status API: intake,
webhook results, open failures by class, CRM sync and ticket figures of the
last 24 hours, and every consumer's lag. Exits 3 when the pipeline needs
attention (open failures, a stalled consumer, a figure it could not read),
1 when the status API cannot be asked.
`

var errUnhealthy = errors.New("the pipeline needs attention")

// newStatusCmd is `switchyard status`.
func newStatusCmd(c *cliIO) *cobra.Command {
	var opsURL, dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "pipeline health in one screen",
		Long:  statusLong,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusCmd(cmd.Context(), c.getenv, c.stdout, opsURL, dataDir, asJSON)
		},
	}
	opsFlag(cmd.Flags(), &opsURL, c.getenv)
	dataDirFlag(cmd.Flags(), &dataDir, "the dev hub's data folder (for its ops token)", true)
	jsonFlag(cmd.Flags(), &asJSON)
	return cmd
}

func statusCmd(ctx context.Context, getenv func(string) string, stdout io.Writer, opsURL, dataDir string, asJSON bool) error {
	tok, err := opsToken(getenv, dataDir)
	if err != nil {
		return err
	}
	o, err := client.New(opsURL, tok, 30*time.Second).Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(stdout, o); err != nil {
			return err
		}
	} else {
		printStatus(stdout, o)
	}
	if !o.Healthy {
		return errUnhealthy
	}
	return nil
}

// counts lists the non-zero counts, by name ("none" if there are none): a
// row of zeros hides the one that matters.
func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k, n := range m {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "none"
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// seconds prints a duration in seconds readably: milliseconds below one.
func seconds(f float64) string {
	if f < 1 {
		return fmt.Sprintf("%.0fms", f*1000)
	}
	return fmt.Sprintf("%.1fs", f)
}

func printStatus(w io.Writer, o client.Overview) {
	state := "healthy"
	if !o.Healthy {
		state = "NEEDS ATTENTION"
	}
	last := "never"
	if !o.LastEventAt.IsZero() {
		last = time.Since(o.LastEventAt).Round(time.Second).String() + " ago"
	}
	fmt.Fprintf(w, "Switchyard: %s (%s)\n", state, o.At.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  intake:         %d Stripe events in the last hour, %d in 5 min; last stored %s\n", o.IntakeLastHour, o.IntakeLast5m, last)
	if len(o.WebhookResults) > 0 {
		fmt.Fprintf(w, "  webhooks:       %s (failures %d)\n", counts(o.WebhookResults), o.WebhookFailures)
	}
	byClass := map[string]int64{}
	for k, v := range o.DLQByClass {
		byClass[k] = int64(v)
	}
	fmt.Fprintf(w, "  open failures:  %d", o.DLQTotal)
	if o.DLQTotal > 0 {
		fmt.Fprintf(w, " (%s): switchyard dlq list", counts(byClass))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  CRM, 24 h:      %.1f%% synced (%d synced, %d failed, %d retries)\n", o.CRMSuccessRate*100, o.CRMSynced24h, o.CRMFailed24h, o.CRMRetries24h)
	latency := "latency not known (no ticket timed)"
	if o.TicketsTimed > 0 {
		latency = fmt.Sprintf("latency from receipt p50 %s, p95 %s", seconds(o.TicketLatencyP50), seconds(o.TicketLatencyP95))
	}
	fmt.Fprintf(w, "  tickets, 24 h:  %d opened, %d failed; %s\n", o.Tickets24h, o.TicketFailed24h, latency)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONSUMER\tWAITING\tIN FLIGHT\tLAST ACTIVE")
	for _, c := range o.Consumers {
		active := "never"
		if !c.LastActive.IsZero() {
			active = time.Since(c.LastActive).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "  %s/%s\t%d\t%d\t%s\n", c.Stream, c.Name, c.Pending, c.AckPending, active)
	}
	_ = tw.Flush()
	for _, p := range o.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}
