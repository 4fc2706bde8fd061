package ops

import (
	"cmp"
	"net/url"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// How the console presents what the projection holds: the severity of a
// customer state, trace ids and their Jaeger links, the gateway's failed
// webhook results. Pure functions, so the pages' wording is tested without
// a browser.

// Severities of a customer state, most urgent first. Each is shown with
// its own colour and its label as text, so it does not rest on colour alone.
const (
	severityCritical = "critical" // a person must act: money or an automation the hub gave up on
	severityWarning  = "warning"  // under way: worth a look if it stays
	severityOK       = "ok"       // as it should be
	severityInfo     = "info"     // a fact, nothing to do
)

// paymentFailed starts every payment-failed state (StatePaymentFailed with
// its retry date, StatePaymentFinal) and every kind of one the overview
// counts.
const paymentFailed = "payment failed"

// stateSeverity is how urgent a user-facing state (fold.go's State…
// constants, some followed by a date) is. A state it does not know is a
// warning: shown as worth a look, never passed off as fine.
func stateSeverity(state string) string {
	switch {
	case strings.HasPrefix(state, paymentFailed), state == view.StateDisputeOpen, state == view.StateCRMFailed, state == view.StateTicketFailed:
		return severityCritical
	case state == view.StateProvisioning, state == view.StateCRMPending:
		return severityWarning
	case state == view.StatePaymentReceived:
		return severityOK
	case state == view.StateTicketOpened, state == view.StateCanceled, state == view.StateNoActivity:
		return severityInfo
	}
	return severityWarning
}

func severityRank(s string) int {
	switch s {
	case severityCritical:
		return 0
	case severityWarning:
		return 1
	case severityOK:
		return 2
	}
	return 3
}

// stateCount is one line of the overview's customers by state.
type stateCount struct {
	State    string
	Severity string
	N        int
}

// statesBySeverity lists the customers by state, most urgent first, then
// most customers first.
func statesBySeverity(byState map[string]int) []stateCount {
	out := make([]stateCount, 0, len(byState))
	for s, n := range byState {
		out = append(out, stateCount{State: s, Severity: stateSeverity(s), N: n})
	}
	slices.SortFunc(out, func(a, b stateCount) int {
		return cmp.Or(cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)), cmp.Compare(b.N, a.N), strings.Compare(a.State, b.State))
	})
	return out
}

// traceRef is a trace id as the console shows it: cut short on screen, the
// whole id in the text (so a copy takes all of it) and the title, and a
// link to the trace in Jaeger when the console knows Jaeger.
type traceRef struct {
	ID  string
	URL string // "" = no Jaeger UI configured
}

// traceRefs returns the trace ids as the console shows them; "" is skipped.
func traceRefs(jaegerUI string, ids ...string) []traceRef {
	out := make([]traceRef, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, traceRef{ID: id, URL: jaegerTraceURL(jaegerUI, id)})
		}
	}
	return out
}

// jaegerTraceURL is the Jaeger UI's page of a trace, <jaegerUI>/trace/<id>
// (the id escaped as one path segment), or "" without a usable http(s)
// Jaeger UI URL.
func jaegerTraceURL(jaegerUI, id string) string {
	if jaegerUI == "" || id == "" {
		return ""
	}
	u, err := url.Parse(jaegerUI)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return ""
	}
	u = u.JoinPath("trace")
	u.Path, u.RawPath = u.Path+"/"+id, u.EscapedPath()+"/"+url.PathEscape(id)
	return u.String()
}

// resultCount is one of the gateway's webhook results and its count.
type resultCount struct {
	Result string
	N      int64
}

// webhookSummary is the gateway's webhook results as the overview shows
// them.
type webhookSummary struct {
	Failed   []resultCount // the failed results (all but accepted and duplicate, as Gather counts them) with a non-zero count, most first
	Received int64         // webhooks received in all
}

func summarizeWebhooks(results map[string]int64) webhookSummary {
	var w webhookSummary
	for r, n := range results {
		w.Received += n
		if n != 0 && r != "accepted" && r != "duplicate" {
			w.Failed = append(w.Failed, resultCount{Result: r, N: n})
		}
	}
	slices.SortFunc(w.Failed, func(a, b resultCount) int { return cmp.Or(cmp.Compare(b.N, a.N), strings.Compare(a.Result, b.Result)) })
	return w
}
