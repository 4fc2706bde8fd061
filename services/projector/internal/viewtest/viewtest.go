// Package viewtest helps the projector's tests: generated messages as
// entries, and the difference of two projections' rows.
package viewtest

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// Entries decodes generated messages as the projector does.
func Entries(t testing.TB, msgs []lifegen.Msg) []view.Entry {
	t.Helper()
	out := make([]view.Entry, 0, len(msgs))
	for _, m := range msgs {
		e, err := view.NewEntry(m.Subject, m.Data, m.Header)
		if err != nil {
			t.Fatalf("%s: %v", m.Subject, err)
		}
		out = append(out, e)
	}
	return out
}

// Diff lists rows only in want (-) or only in got (+); "" if equal.
func Diff(want, got []string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, r := range want {
		w[r]++
	}
	for _, r := range got {
		g[r]++
	}
	var b strings.Builder
	for _, r := range want {
		if g[r] < w[r] {
			b.WriteString("- " + r + "\n")
		}
	}
	for _, r := range got {
		if w[r] < g[r] {
			b.WriteString("+ " + r + "\n")
		}
	}
	s := b.String()
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return s
}
