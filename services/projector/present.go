package projector

import (
	"cmp"
	"slices"
	"strings"
)

// How the console presents what the projection holds: the gateway's
// failed webhook results. Pure functions, so the pages' wording is tested without
// a browser.

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
