package ops

import (
	"cmp"
	"slices"
	"time"

	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// timelineLine is one line of the console's timeline: an entry, or several
// identical outcomes of one cause collapsed into one.
type timelineLine struct {
	view.TimelineEntry            // the newest of the outcomes it stands for
	Count              int        // how many (1: just this entry)
	FirstAt            time.Time  // when the oldest of them happened
	TraceIDs           []string   // their distinct trace ids, oldest first
	Traces             []traceRef // TraceIDs as the console links them (set by the console)
}

// timelineGroup is a line with the automation outcomes its entry caused
// nested under it.
type timelineGroup struct {
	timelineLine
	Effects []timelineLine // oldest first
}

// groupTimeline arranges a customer's timeline so that effects sit with
// their cause: each automation outcome (a crm or support entry, whose
// SourceEventIDs name the billing event it was caused by) is nested under
// that billing event, in the event's place, and identical outcomes of one
// cause (same subject and summary: several syncs of one event, a retried
// ticket) become one line with a count. An outcome whose cause is not among
// entries stands on its own, where the first of its identical outcomes is
// in entries. Groups keep the order of entries (the page's: newest first).
func groupTimeline(entries []view.TimelineEntry) []timelineGroup {
	causes := map[string]bool{}
	for _, e := range entries {
		if e.Kind == "billing" {
			causes[e.EventID] = true
		}
	}
	type key struct{ cause, subject, summary string }
	var (
		groups  []timelineGroup
		at      = map[key]int{}                     // where an orphan outcome's line is
		orphans = map[key][]view.TimelineEntry{}    // outcomes without their cause, by line
		effects = map[string][]view.TimelineEntry{} // outcomes by cause
	)
	for _, e := range entries {
		cause := ""
		if e.Kind != "billing" && len(e.SourceEventIDs) > 0 {
			cause = e.SourceEventIDs[0]
		}
		switch k := (key{cause, e.Subject, e.Summary}); {
		case cause == "":
			groups = append(groups, timelineGroup{timelineLine: lineOf([]view.TimelineEntry{e})})
		case causes[cause]:
			effects[cause] = append(effects[cause], e)
		default:
			if _, ok := at[k]; !ok {
				at[k] = len(groups)
				groups = append(groups, timelineGroup{})
			}
			orphans[k] = append(orphans[k], e)
		}
	}
	for k, i := range at {
		groups[i].timelineLine = lineOf(orphans[k])
	}
	for i := range groups {
		g := &groups[i]
		if g.Kind != "billing" || len(effects[g.EventID]) == 0 {
			continue
		}
		same := map[key][]view.TimelineEntry{}
		var order []key
		for _, e := range effects[g.EventID] {
			k := key{g.EventID, e.Subject, e.Summary}
			if same[k] == nil {
				order = append(order, k)
			}
			same[k] = append(same[k], e)
		}
		for _, k := range order {
			g.Effects = append(g.Effects, lineOf(same[k]))
		}
		slices.SortFunc(g.Effects, func(a, b timelineLine) int {
			return cmp.Or(a.FirstAt.Compare(b.FirstAt), cmp.Compare(a.EventID, b.EventID))
		})
	}
	return groups
}

// lineOf is one line for identical entries (at least one): it shows the
// newest, when the first happened, how many there are and their traces.
func lineOf(same []view.TimelineEntry) timelineLine {
	es := slices.Clone(same)
	slices.SortFunc(es, func(a, b view.TimelineEntry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.EventID, b.EventID))
	})
	l := timelineLine{TimelineEntry: es[len(es)-1], Count: len(es), FirstAt: es[0].At}
	for _, e := range es {
		if e.TraceID != "" && !slices.Contains(l.TraceIDs, e.TraceID) {
			l.TraceIDs = append(l.TraceIDs, e.TraceID)
		}
	}
	return l
}
