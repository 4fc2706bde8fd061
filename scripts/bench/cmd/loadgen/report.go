package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
)

// report is one run's outcome. Latencies are in milliseconds and cover
// successful requests; every other outcome is an error, counted by code in
// Statuses.
type report struct {
	Target      string         `json:"target"`
	Mode        string         `json:"mode"`
	Loop        string         `json:"loop"` // "open" or "closed"
	Offered     float64        `json:"offered_per_sec,omitempty"`
	Concurrency int            `json:"concurrency"`
	Fixtures    int            `json:"fixtures"`        // event templates, sent round-robin
	MeanBody    int            `json:"mean_body_bytes"` // mean request body over one round
	ElapsedSec  float64        `json:"elapsed_sec"`
	Achieved    float64        `json:"achieved_per_sec"`
	Total       int            `json:"total"`
	OK          int            `json:"ok"`
	Errors      int            `json:"errors"`
	Statuses    map[string]int `json:"statuses"`
	P50         float64        `json:"p50_ms"`
	P90         float64        `json:"p90_ms"`
	P99         float64        `json:"p99_ms"`
	P999        float64        `json:"p999_ms"`
	Max         float64        `json:"max_ms"`
}

func newReport(cfg config, set *stripefixture.Set, res result) report {
	slices.Sort(res.latencies)
	total := 0
	for _, n := range res.codes {
		total += n
	}
	r := report{
		Target:      cfg.label,
		Mode:        cfg.mode,
		Loop:        "closed",
		Offered:     cfg.rate,
		Concurrency: cfg.concurrency,
		Fixtures:    set.Len(),
		MeanBody:    int(math.Round(set.MeanBody())),
		ElapsedSec:  res.elapsed.Seconds(),
		Total:       total,
		OK:          res.ok,
		Errors:      total - res.ok,
		Statuses:    res.codes,
		P50:         ms(quantile(res.latencies, 0.50)),
		P90:         ms(quantile(res.latencies, 0.90)),
		P99:         ms(quantile(res.latencies, 0.99)),
		P999:        ms(quantile(res.latencies, 0.999)),
	}
	if cfg.rate > 0 {
		r.Loop = "open"
	}
	if n := len(res.latencies); n > 0 {
		r.Max = ms(res.latencies[n-1])
	}
	if res.elapsed > 0 {
		r.Achieved = float64(res.ok) / res.elapsed.Seconds()
	}
	return r
}

// quantile returns the q-quantile of sorted by the nearest-rank method.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// line renders the report as space-separated key=value pairs, one run per
// line, which bench.sh reads.
func (r report) line() string {
	offered := "max"
	if r.Loop == "open" {
		offered = strconv.FormatFloat(r.Offered, 'f', -1, 64) + "/s"
	}
	codes := make([]string, 0, len(r.Statuses))
	for _, code := range slices.Sorted(maps.Keys(r.Statuses)) {
		codes = append(codes, fmt.Sprintf("%s:%d", code, r.Statuses[code]))
	}
	return fmt.Sprintf("target=%s mode=%s loop=%s offered=%s concurrency=%d fixtures=%d mean_body=%d "+
		"achieved=%.0f/s ok=%d errors=%d p50=%.2fms p90=%.2fms p99=%.2fms p99.9=%.2fms max=%.2fms statuses=%s",
		r.Target, r.Mode, r.Loop, offered, r.Concurrency, r.Fixtures, r.MeanBody, r.Achieved, r.OK, r.Errors,
		r.P50, r.P90, r.P99, r.P999, r.Max, strings.Join(codes, ","))
}
