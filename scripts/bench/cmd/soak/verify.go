package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/switchyard/switchyard/platform/natsbus"
)

// counts are the exactly-once figures at the end of a soak.
type counts struct {
	exp         expected
	drained     bool
	drainTook   time.Duration
	stored      uint64         // STRIPE stream messages
	contacts    int            // HubSpot contacts
	contactKeys int            // distinct stripe_customer_id among them
	tickets     int            // Zendesk tickets
	ticketKeys  int            // distinct external_id among them
	ticketsBy   map[string]int // by support rule (tag)
	gatewayDups int64          // deliveries the gateway answered as duplicates
	deadLetters uint64
	slackAlerts int
	rssProblem  string
	duplicateFx int // effects done twice: stored, contacts, tickets
}

// drain waits until every durable consumer is idle and the vendors hold
// what the accepted deliveries call for (or d passes), then counts.
// It prints the backlog every half minute meanwhile.
func (w *watcher) drain(ctx context.Context, stdout io.Writer, exp expected, v *vendors, d time.Duration) (*counts, error) {
	start := time.Now()
	deadline := start.Add(d)
	idleSince := time.Time{}
	lastLine := start
	for {
		backlog, who, idle, err := w.lag(ctx)
		if err != nil {
			return nil, err
		}
		if time.Since(lastLine) >= 30*time.Second {
			lastLine = time.Now()
			fmt.Fprintf(stdout, "soak: draining %8s  backlog %d msgs (%s)  hub RSS %s\n", time.Since(start).Round(time.Second), backlog, who, mib(rssOf(w.h.pid())))
		}
		stored, err := w.streamMsgs(ctx, natsbus.StreamStripe)
		if err != nil {
			return nil, err
		}
		done := idle && stored >= uint64(exp.events) && len(v.hubspot.Contacts()) >= exp.customers && len(v.zendesk.Tickets()) >= exp.ticketTotal()
		switch {
		case !done:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = time.Now()
		case time.Since(idleSince) >= 5*time.Second: // and stays so: nothing late doubles
			return w.count(ctx, exp, v, true, idleSince.Sub(start))
		}
		if time.Now().After(deadline) {
			return w.count(ctx, exp, v, false, time.Since(start))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (w *watcher) count(ctx context.Context, exp expected, v *vendors, drained bool, took time.Duration) (*counts, error) {
	c := &counts{exp: exp, drained: drained, drainTook: took, ticketsBy: map[string]int{}}
	var err error
	if c.stored, err = w.streamMsgs(ctx, natsbus.StreamStripe); err != nil {
		return nil, err
	}
	if c.deadLetters, err = w.streamMsgs(ctx, natsbus.StreamDLQ); err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, ct := range v.hubspot.Contacts() {
		c.contacts++
		keys[ct.Properties["stripe_customer_id"]] = true
	}
	c.contactKeys = len(keys)
	ext := map[string]bool{}
	for _, t := range v.zendesk.Tickets() {
		c.tickets++
		ext[t.ExternalID] = true
		rule := "other"
		for _, r := range ticketRules() {
			if slices.Contains(t.Tags, r) {
				rule = r
				break
			}
		}
		c.ticketsBy[rule]++
	}
	c.ticketKeys = len(ext)
	c.duplicateFx = (c.contacts - c.contactKeys) + (c.tickets - c.ticketKeys)
	if c.stored > uint64(exp.events) {
		c.duplicateFx += int(c.stored - uint64(exp.events))
	}
	c.gatewayDups = w.gatewayDuplicates(ctx)
	c.slackAlerts = len(v.slack.Messages())
	return c, nil
}

// ticketRules are the support rules the lifecycles trigger, sorted.
func ticketRules() []string {
	var out []string
	for _, r := range lifecycleTypes {
		if r != "" {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func (c *counts) print(stdout io.Writer) {
	state := fmt.Sprintf("drained in %s", c.drainTook.Round(time.Second))
	if !c.drained {
		state = fmt.Sprintf("NOT drained after %s", c.drainTook.Round(time.Second))
	}
	fmt.Fprintf(stdout, "soak: exactly once (%s):\n", state)
	fmt.Fprintf(stdout, "  Stripe events stored:   %d of %d distinct sent\n", c.stored, c.exp.events)
	fmt.Fprintf(stdout, "  HubSpot contacts:       %d of %d customers (%d distinct customers among them)\n", c.contacts, c.exp.customers, c.contactKeys)
	fmt.Fprintf(stdout, "  Zendesk tickets:        %d of %d (%d distinct external ids)\n", c.tickets, c.exp.ticketTotal(), c.ticketKeys)
	for _, r := range append(ticketRules(), "other") {
		if c.ticketsBy[r] == 0 && c.exp.tickets[r] == 0 {
			continue
		}
		what := map[string]string{"payment_failed": "failed payments", "refund": "refunds", "cancellation": "cancellations", "chargeback": "disputes", "other": "other"}[r]
		fmt.Fprintf(stdout, "    %-20s %d of %d %s\n", r+":", c.ticketsBy[r], c.exp.tickets[r], what)
	}
	raced := ""
	if c.gatewayDups >= 0 && c.gatewayDups < int64(c.exp.dups) {
		raced = " (the rest raced their first delivery to JetStream, whose Nats-Msg-Id window caught them)"
	}
	fmt.Fprintf(stdout, "  duplicate deliveries:   %d sent, %d answered as duplicates by the gateway%s\n", c.exp.dups, c.gatewayDups, raced)
	fmt.Fprintf(stdout, "  duplicate effects:      %d (want 0)\n", c.duplicateFx)
	fmt.Fprintf(stdout, "  dead letters:           %d (want 0: every injected vendor error is retryable)\n", c.deadLetters)
	fmt.Fprintf(stdout, "  never accepted:         %d deliveries (want 0)\n", c.exp.undelivered)
	fmt.Fprintf(stdout, "  Slack alerts:           %d (retry storms; no dead letters to alert)\n", c.slackAlerts)
}

// problems are the reasons the soak fails, none when it passes.
func (c *counts) problems() []string {
	var p []string
	if !c.drained {
		p = append(p, "the hub did not drain")
	}
	if c.stored != uint64(c.exp.events) {
		p = append(p, fmt.Sprintf("%d Stripe events stored, want %d", c.stored, c.exp.events))
	}
	if c.contacts != c.exp.customers || c.contactKeys != c.exp.customers {
		p = append(p, fmt.Sprintf("%d HubSpot contacts (%d distinct), want %d", c.contacts, c.contactKeys, c.exp.customers))
	}
	for _, r := range append(ticketRules(), "other") {
		if c.ticketsBy[r] != c.exp.tickets[r] {
			p = append(p, fmt.Sprintf("%d %s tickets, want %d", c.ticketsBy[r], r, c.exp.tickets[r]))
		}
	}
	if c.duplicateFx != 0 {
		p = append(p, fmt.Sprintf("%d duplicate effects", c.duplicateFx))
	}
	if c.deadLetters != 0 {
		p = append(p, fmt.Sprintf("%d dead letters", c.deadLetters))
	}
	if c.exp.undelivered != 0 {
		p = append(p, fmt.Sprintf("%d deliveries never accepted", c.exp.undelivered))
	}
	if c.rssProblem != "" {
		p = append(p, c.rssProblem)
	}
	return p
}
