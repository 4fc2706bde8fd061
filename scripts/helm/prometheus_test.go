package helm_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// The monitoring files compose.yaml and the dashboards load. Prometheus's
// own parsing of them lives here, beside Helm's, because the prometheus
// module is as heavy as Helm's: services/switchyard/deploy/monitoring_test.go
// checks their metric names and structure without it.
const (
	rulesFile     = "../../services/switchyard/deploy/prometheus/rules.yml"
	dashboardFile = "../../services/switchyard/deploy/grafana/switchyard.json"
)

// TestPrometheusRulesParse is `promtool check rules`: the rule file loaded
// by Prometheus's own rulefmt — strict YAML, every expression parsed as
// PromQL, every label and annotation template parsed, names validated.
func TestPrometheusRulesParse(t *testing.T) {
	t.Parallel()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.Default())
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatalf("%s: no rule groups", rulesFile)
	}
	rules := 0
	for _, g := range groups.Groups {
		rules += len(g.Rules)
	}
	if rules == 0 {
		t.Errorf("%s: no rules", rulesFile)
	}
}

// grafanaVariables stand in for what Grafana substitutes into a query before
// Prometheus sees it.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m", "${__interval}", "1m", "$__range", "1h")

// TestGrafanaExpressionsParse: every query on the dashboard is valid PromQL
// once Grafana's interval variables are substituted.
func TestGrafanaExpressionsParse(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	exprs := 0
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var pn panel
			if err := json.Unmarshal(r, &pn); err != nil {
				t.Fatal(err)
			}
			walk(pn.Panels)
			for _, tg := range pn.Targets {
				exprs++
				q := grafanaVariables.Replace(tg.Expr)
				if strings.Contains(q, "$") {
					t.Errorf("panel %q target %s: %q uses a variable this test does not substitute", pn.Title, tg.RefID, tg.Expr)
					continue
				}
				if _, err := p.ParseExpr(q); err != nil {
					t.Errorf("panel %q target %s: %q: %v", pn.Title, tg.RefID, tg.Expr, err)
				}
			}
		}
	}
	walk(d.Panels)
	if exprs == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}
}
