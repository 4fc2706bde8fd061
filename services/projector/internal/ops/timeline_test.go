package ops

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// outline is a grouped timeline as text: one line per group, effects
// indented under their cause, counts as ×n.
func outline(groups []timelineGroup) string {
	var b strings.Builder
	line := func(indent string, l timelineLine) {
		b.WriteString(indent + l.EventID)
		if l.Count > 1 {
			b.WriteString(" ×" + strconv.Itoa(l.Count))
		}
		b.WriteString("\n")
	}
	for _, g := range groups {
		line("", g.timelineLine)
		for _, e := range g.Effects {
			line("  ", e)
		}
	}
	return b.String()
}

func TestGroupTimeline(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	billing := func(id string, s int) view.TimelineEntry {
		return view.TimelineEntry{EventID: id, At: at(s), Kind: "billing", Subject: "billing." + id, Summary: id, SourceEventIDs: []string{"evt_" + id}, TraceID: "trace-" + id}
	}
	outcome := func(id, cause, subject, summary string, s int, trace string) view.TimelineEntry {
		kind, _, _ := strings.Cut(subject, ".")
		return view.TimelineEntry{EventID: id, At: at(s), Kind: kind, Subject: subject, Summary: summary, SourceEventIDs: []string{cause}, TraceID: trace}
	}
	synced := func(id, cause string, s int, trace string) view.TimelineEntry {
		return outcome(id, cause, "crm.contact.synced", "CRM contact updated (hubspot hs_1)", s, trace)
	}
	// newestFirst is what the console reads: the timeline, newest first.
	newestFirst := func(es ...view.TimelineEntry) []view.TimelineEntry {
		es = slices.Clone(es)
		slices.SortFunc(es, func(a, b view.TimelineEntry) int { return b.At.Compare(a.At) })
		return es
	}

	tests := []struct {
		name    string
		entries []view.TimelineEntry
		want    string
	}{
		{
			name: "a late ticket and repeated syncs sit under the failed payment that caused them",
			entries: newestFirst(
				billing("upserted", 0),
				synced("sync-upserted", "upserted", 1, "trace-upserted"),
				billing("failed", 10),
				synced("sync-1", "failed", 11, "trace-failed"),
				synced("sync-2", "failed", 12, "trace-failed"),
				synced("sync-3", "failed", 13, "trace-failed"),
				synced("sync-4", "failed", 14, "trace-failed"),
				synced("sync-5", "failed", 15, "trace-replay"),
				billing("details", 600),
				synced("sync-details", "details", 601, "trace-details"),
				outcome("ticket", "failed", "support.ticket.opened", "Support ticket opened: #7 (payment_failed, high)", 1200, "trace-failed"),
			),
			want: "details\n  sync-details\nfailed\n  sync-5 ×5\n  ticket\nupserted\n  sync-upserted\n",
		},
		{
			name: "outcomes of one cause that differ stay apart, oldest first",
			entries: newestFirst(
				billing("started", 0),
				outcome("retry", "started", "crm.contact.pending_retry", "CRM update pending: attempt 1 failed", 1, ""),
				synced("sync", "started", 6, ""),
				outcome("ticket-failed", "started", "support.ticket.failed", "Support ticket not opened (zendesk: 503)", 2, ""),
			),
			want: "started\n  retry\n  ticket-failed\n  sync\n",
		},
		{
			name: "an outcome whose cause is not in the history stands on its own, identical ones collapsed",
			entries: newestFirst(
				synced("orphan-1", "billing.payment.failed:gone", 1, ""),
				billing("started", 5),
				synced("orphan-2", "billing.payment.failed:gone", 7, ""),
				synced("other-orphan", "billing.customer.upserted:gone", 8, ""),
				outcome("no-source", "", "crm.contact.synced", "CRM contact updated (hubspot hs_1)", 9, ""),
			),
			want: "no-source\nother-orphan\norphan-2 ×2\nstarted\n",
		},
		{
			name: "billing events are never nested, whatever their Stripe sources",
			entries: newestFirst(
				billing("a", 0),
				view.TimelineEntry{EventID: "b", At: at(1), Kind: "billing", Subject: "billing.b", Summary: "b", SourceEventIDs: []string{"a"}},
			),
			want: "b\na\n",
		},
		{
			name: "oldest first in, oldest first out",
			entries: []view.TimelineEntry{
				billing("a", 0),
				synced("sync-a", "a", 1, ""),
				billing("b", 2),
				synced("sync-b1", "b", 3, ""),
				synced("sync-b2", "b", 4, ""),
			},
			want: "a\n  sync-a\nb\n  sync-b2 ×2\n",
		},
		{name: "empty", entries: nil, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := outline(groupTimeline(tt.entries)); got != tt.want {
				t.Errorf("grouped timeline:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// A collapsed line shows the newest of its outcomes, when the first
// happened, and every trace they ran in.
func TestGroupTimelineCollapsedLine(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	entries := []view.TimelineEntry{
		{EventID: "sync-3", At: t0.Add(3 * time.Second), Kind: "crm", Subject: "crm.contact.synced", Summary: "CRM contact updated", SourceEventIDs: []string{"failed"}, TraceID: "t2"},
		{EventID: "sync-2", At: t0.Add(2 * time.Second), Kind: "crm", Subject: "crm.contact.synced", Summary: "CRM contact updated", SourceEventIDs: []string{"failed"}, TraceID: "t1"},
		{EventID: "sync-1", At: t0.Add(1 * time.Second), Kind: "crm", Subject: "crm.contact.synced", Summary: "CRM contact updated", SourceEventIDs: []string{"failed"}, TraceID: "t1"},
		{EventID: "failed", At: t0, Kind: "billing", Subject: "billing.payment.failed", Summary: "Payment failed", SourceEventIDs: []string{"evt_1"}, TraceID: "t1"},
	}
	groups := groupTimeline(entries)
	if len(groups) != 1 || len(groups[0].Effects) != 1 {
		t.Fatalf("groups:\n%s", outline(groups))
	}
	l := groups[0].Effects[0]
	if l.EventID != "sync-3" || l.Count != 3 || !l.At.Equal(t0.Add(3*time.Second)) || !l.FirstAt.Equal(t0.Add(time.Second)) {
		t.Errorf("collapsed line = %s ×%d at %s, first %s; want sync-3 ×3 at +3s, first +1s", l.EventID, l.Count, l.At, l.FirstAt)
	}
	if !slices.Equal(l.TraceIDs, []string{"t1", "t2"}) {
		t.Errorf("traces = %v, want [t1 t2]", l.TraceIDs)
	}
	if g := groups[0]; g.Count != 1 || !slices.Equal(g.TraceIDs, []string{"t1"}) {
		t.Errorf("cause line: ×%d, traces %v", g.Count, g.TraceIDs)
	}
}
