package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// The monitoring files, relative to this package's directory.
const (
	rulesPath      = "prometheus/rules.yml"
	prometheusPath = "prometheus/prometheus.yml"
	dashboardPath  = "grafana/switchyard.json"
	// devTestPath holds the smoke test's requiredMetrics, which must stay a
	// subset of knownMetrics.
	devTestPath = "../dev_test.go"
)

// metricKind is how the OpenTelemetry Prometheus exporter shapes an instrument.
type metricKind int

const (
	counter   metricKind = iota // name_total
	gauge                       // name
	histogram                   // name_bucket, name_sum, name_count
)

// knownMetrics are the switchyard_ series the services export, by their
// Prometheus names (counters end in _total; histograms are listed by their
// base name, _seconds included, and are queried as _bucket, _sum or _count).
// Rules and dashboard may use these and nothing else.
var knownMetrics = map[string]metricKind{
	// gateway
	"switchyard_gateway_webhooks_received_total":    counter, // {result}
	"switchyard_gateway_ack_latency_seconds":        histogram,
	"switchyard_gateway_api_version_mismatch_total": counter, // {api_version}
	"switchyard_gateway_livemode_rejected_total":    counter, // {livemode}
	// every consumer (platform/consumer)
	"switchyard_consumer_processed_total":         counter, // {consumer,result}
	"switchyard_consumer_failed_total":            counter, // {consumer,class}
	"switchyard_consumer_redelivered_total":       counter, // {consumer}
	"switchyard_consumer_dead_letters_total":      counter, // {consumer,class}
	"switchyard_consumer_replays_refused_total":   counter, // {consumer}
	"switchyard_consumer_handle_duration_seconds": histogram,
	"switchyard_consumer_lag":                     gauge, // {consumer,stream}
	// identity
	"switchyard_identity_events_published_total": counter, // {subject}
	// crm
	"switchyard_crm_sync_total": counter, // {result}
	// support
	"switchyard_support_tickets_total":          counter, // {result}
	"switchyard_support_ticket_latency_seconds": histogram,
	// projector
	"switchyard_dlq_depth":                      gauge, // {class}
	"switchyard_open_failures":                  gauge,
	"switchyard_dlq_bytes":                      gauge,
	"switchyard_dlq_max_bytes":                  gauge,
	"switchyard_ops_manual_actions_total":       counter, // {action}
	"switchyard_projector_batch_restarts_total": counter,
}

var (
	metricName    = regexp.MustCompile(`\bswitchyard_[a-z_]+`)
	recordingName = regexp.MustCompile(`\bswitchyard:[a-z0-9_:]+`)
)

// checkMetricName reports why name is not a series the services export, or "".
func checkMetricName(name string) string {
	if kind, ok := knownMetrics[name]; ok {
		if kind == histogram {
			return fmt.Sprintf("%s is a histogram: query %[1]s_bucket, _sum or _count", name)
		}
		return ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if kind, known := knownMetrics[base]; known {
			if kind != histogram {
				return fmt.Sprintf("%s: %s is not a histogram", name, base)
			}
			return ""
		}
	}
	return fmt.Sprintf("%s is not a metric the services export (knownMetrics)", name)
}

// TestMonitoringKnownMetricsCoverSmokeTest: every metric the smoke test in
// dev_test.go requires is in knownMetrics, so the two lists cannot drift apart.
func TestMonitoringKnownMetricsCoverSmokeTest(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(devTestPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nvar requiredMetrics = map\[string\]\[\]string\{(.*?)\n\}`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no `var requiredMetrics = map[string][]string{...}`: update this test with it", devTestPath)
	}
	names := metricName.FindAllString(string(m[1]), -1)
	if len(names) == 0 {
		t.Fatalf("%s: requiredMetrics names no switchyard_ metric", devTestPath)
	}
	for _, name := range names {
		if problem := checkMetricName(name); problem != "" {
			t.Errorf("%s requiredMetrics: %s", devTestPath, problem)
		}
	}
}

// TestMonitoringKnownMetricsMatchSource holds knownMetrics to the instruments
// the code registers, both ways: a renamed or new instrument fails here rather
// than leaving an alert that never fires.
func TestMonitoringKnownMetricsMatchSource(t *testing.T) {
	t.Parallel()
	instrument := regexp.MustCompile(`\.(Int64Counter|Float64Counter|Int64ObservableCounter|Float64ObservableCounter|` +
		`Int64UpDownCounter|Float64UpDownCounter|Int64Gauge|Float64Gauge|Int64ObservableGauge|Float64ObservableGauge|` +
		`Int64ObservableUpDownCounter|Float64ObservableUpDownCounter|Int64Histogram|Float64Histogram)\(\s*"(switchyard_[a-z_]+)"`)
	type registration struct {
		kind metricKind
		file string
	}
	registered := map[string]registration{} // by Prometheus name
	for _, dir := range []string{"platform", "services"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "vendor" || n == "testdata" || strings.HasPrefix(n, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range instrument.FindAllStringSubmatch(string(src), -1) {
				r := registration{file: p}
				name := m[2]
				switch kind := m[1]; {
				case strings.HasSuffix(kind, "UpDownCounter"), strings.HasSuffix(kind, "Gauge"):
					r.kind = gauge // no _total
				case strings.HasSuffix(kind, "Counter"):
					r.kind, name = counter, name+"_total"
				default:
					// A histogram: the exporter appends its unit (_seconds for
					// "s"), so take the knownMetrics histogram extending name.
					r.kind = histogram
					for known, k := range knownMetrics {
						if k == histogram && (known == name || strings.HasPrefix(known, name+"_")) {
							name = known
						}
					}
				}
				registered[name] = r
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(registered) == 0 {
		t.Fatal("found no switchyard_ instruments in platform/ or services/: update this test's pattern")
	}
	kinds := map[metricKind]string{counter: "counter", gauge: "gauge", histogram: "histogram"}
	for _, name := range slices.Sorted(maps.Keys(registered)) {
		r := registered[name]
		kind, ok := knownMetrics[name]
		switch {
		case !ok:
			t.Errorf("%s registers %s, which knownMetrics lacks: add it (and, if it backs a target, a rule and a panel)", r.file, name)
		case kind != r.kind:
			t.Errorf("%s registers %s as a %s; knownMetrics says %s", r.file, name, kinds[r.kind], kinds[kind])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(knownMetrics)) {
		if _, ok := registered[name]; !ok {
			t.Errorf("knownMetrics lists %s, which no instrument in platform/ or services/ registers (renamed?)", name)
		}
	}
}

// promRules is a Prometheus rule file. Decoding is strict, as Prometheus's is:
// a misspelt key fails here rather than at Prometheus start-up.
type promRules struct {
	Groups []struct {
		Name        string     `yaml:"name"`
		Interval    string     `yaml:"interval"`
		QueryOffset string     `yaml:"query_offset"`
		Limit       int        `yaml:"limit"`
		Labels      yaml.Node  `yaml:"labels"`
		Rules       []promRule `yaml:"rules"`
	} `yaml:"groups"`
}

type promRule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) promRules {
	t.Helper()
	var rules promRules
	decodeYAML(t, rulesPath, &rules)
	return rules
}

func decodeYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

var (
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	alertName    = regexp.MustCompile(`^Switchyard[A-Z][A-Za-z0-9]+$`)
	recordForm   = regexp.MustCompile(`^switchyard:[a-z0-9_]+:[a-z0-9_]+$`) // level:metric:operations
	// A runbook hint names where an operator starts: the CLI or the ops console.
	runbookHint = regexp.MustCompile("`switchyard (status|dlq)[^`]*`|Failures page")
)

// wantAlerts are the product's targets, one alert each.
var wantAlerts = []string{
	"SwitchyardWebhookSuccessRateLow",     // webhook success rate > 99%
	"SwitchyardAutomationFailureRateHigh", // < 1 failed automation per 100 paid events
	"SwitchyardGatewayAckLatencyHigh",     // p95 ack < 500 ms
	"SwitchyardOpenFailuresGrowing",       // the DLQ does not grow
	"SwitchyardAuthDeadLetter",            // credentials need a human
	"SwitchyardConsumerLagHigh",           // lag bounded
	"SwitchyardTargetDown",                // every service scraped
}

func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	rules := loadRules(t)
	if len(rules.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesPath)
	}
	groups := map[string]bool{}
	alerts := map[string]bool{}
	records := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q is empty or repeated", g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %s rule %d (%s%s)", g.Name, i, r.Alert, r.Record)
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("%s: want exactly one of alert and record", where)
				continue
			}
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: empty expr", where)
			} else if err := checkBalanced(r.Expr); err != nil {
				t.Errorf("%s: expr %q: %v", where, r.Expr, err)
			}
			if r.Record != "" {
				if !recordForm.MatchString(r.Record) {
					t.Errorf("%s: record name should read switchyard:<metric>:<operations>", where)
				}
				if records[r.Record] {
					t.Errorf("%s: recorded twice", where)
				}
				records[r.Record] = true
				if r.For != "" || r.KeepFiringFor != "" || len(r.Annotations) > 0 {
					t.Errorf("%s: a recording rule takes no for, keep_firing_for or annotations (Prometheus rejects them)", where)
				}
				continue
			}
			if !alertName.MatchString(r.Alert) {
				t.Errorf("%s: alert names read Switchyard<Condition>", where)
			}
			if alerts[r.Alert] {
				t.Errorf("%s: alert defined twice", where)
			}
			alerts[r.Alert] = true
			if !promDuration.MatchString(r.For) {
				t.Errorf("%s: for = %q, want a duration such as 5m (0m to fire at once)", where, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: labels.severity = %q, want critical or warning", where, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no annotations.%s", where, a)
				}
				if err := checkTemplate(r.Annotations[a]); err != nil {
					t.Errorf("%s: annotations.%s: %v", where, a, err)
				}
			}
			if !runbookHint.MatchString(r.Annotations["description"]) {
				t.Errorf("%s: the description names no runbook step (`switchyard status`, `switchyard dlq ...` or the ops console Failures page)", where)
			}
		}
	}
	for _, want := range wantAlerts {
		if !alerts[want] {
			t.Errorf("%s: no alert %s", rulesPath, want)
		}
	}
}

// promConfig is the part of prometheus.yml this test reads.
type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		Scheme        string `yaml:"scheme"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(prometheusPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", prometheusPath, err)
	}

	t.Run("rule_files", func(t *testing.T) {
		rulesAbs, err := filepath.Abs(rulesPath)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, pattern := range cfg.RuleFiles {
			// Prometheus resolves rule_files against the config file's directory.
			matches, err := filepath.Glob(filepath.Join(filepath.Dir(prometheusPath), pattern))
			if err != nil {
				t.Errorf("rule_files entry %q: %v", pattern, err)
			}
			for _, m := range matches {
				if abs, _ := filepath.Abs(m); abs == rulesAbs {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("rule_files = %q, want an entry that loads %s", cfg.RuleFiles, filepath.Base(rulesPath))
		}
	})

	t.Run("targets", func(t *testing.T) {
		// Every service compose builds from this repository serves /metrics on
		// its <NAME>_ADDR (the gateway on its admin listener, GATEWAY_ADMIN_ADDR).
		project := loadCompose(t, defaultEnv())
		want := map[string]string{} // host:port -> service
		for _, name := range project.ServiceNames() {
			svc := mustService(t, project, name)
			if svc.Build == nil || name == "migrate" {
				continue // nats, postgres, jaeger, …; migrate runs once and exits
			}
			prefix := strings.ToUpper(name)
			addr := svc.Environment[prefix+"_ADMIN_ADDR"]
			if addr == nil || *addr == "" {
				addr = svc.Environment[prefix+"_ADDR"]
			}
			if addr == nil || *addr == "" {
				t.Errorf("compose.yaml: service %s sets no %s_ADDR, so its metrics port is unknown", name, prefix)
				continue
			}
			_, port, err := net.SplitHostPort(*addr)
			if err != nil {
				t.Errorf("compose.yaml: %s_ADDR=%q: %v", prefix, *addr, err)
				continue
			}
			want[net.JoinHostPort(name, port)] = name
		}
		services := slices.Sorted(maps.Values(want))
		if !slices.Equal(services, []string{"alerts", "crm", "gateway", "identity", "projector", "support"}) {
			t.Errorf("compose.yaml builds %v, want the six switchyard services", services)
		}
		// NATS's metrics: the exporter serves them on its -port, read from
		// the server's monitoring port (nats.conf's http_port, 8222).
		exporter := mustService(t, project, "nats-exporter")
		port, source := "", ""
		for i, arg := range exporter.Command {
			if arg == "-port" && i+1 < len(exporter.Command) {
				port = exporter.Command[i+1]
			}
			if strings.HasPrefix(arg, "http://") {
				source = arg
			}
		}
		if port == "" {
			t.Error("compose.yaml: nats-exporter sets no -port, so its metrics port is unknown")
		} else {
			want[net.JoinHostPort("nats-exporter", port)] = "nats-exporter"
		}
		if source != "http://nats:8222" {
			t.Errorf("compose.yaml: nats-exporter reads %q, want http://nats:8222 (the server's monitoring port)", source)
		}

		got := map[string]string{} // host:port -> job
		for _, sc := range cfg.ScrapeConfigs {
			// The TargetDown alert and the dashboard select job=~"switchyard-.*".
			if !strings.HasPrefix(sc.JobName, "switchyard-") {
				t.Errorf("job %q: name switchyard jobs switchyard-<service>", sc.JobName)
			}
			if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
				t.Errorf("job %s: metrics_path %q, the services serve /metrics", sc.JobName, sc.MetricsPath)
			}
			if sc.Scheme != "" && sc.Scheme != "http" {
				t.Errorf("job %s: scheme %q, the services serve plain HTTP inside the compose network", sc.JobName, sc.Scheme)
			}
			for _, st := range sc.StaticConfigs {
				for _, target := range st.Targets {
					if job, dup := got[target]; dup {
						t.Errorf("target %s is scraped by both %s and %s", target, job, sc.JobName)
					}
					got[target] = sc.JobName
				}
			}
		}
		for _, target := range slices.Sorted(maps.Keys(want)) {
			if _, ok := got[target]; !ok {
				t.Errorf("%s scrapes no %s (service %s as compose.yaml runs it)", prometheusPath, target, want[target])
			}
		}
		for _, target := range slices.Sorted(maps.Keys(got)) {
			if _, ok := want[target]; !ok {
				t.Errorf("%s: job %s scrapes %s, which is no compose service's metrics address", prometheusPath, got[target], target)
			}
		}
	})
}

// grafanaDashboard is the part of the dashboard JSON this test reads.
type grafanaDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *grafanaRef `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *grafanaRef `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// flatPanels returns the dashboard's panels, rows' nested panels included and
// rows themselves left out.
func flatPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, flatPanels(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.UID != "switchyard" || d.Title != "Switchyard" || d.SchemaVersion != 39 {
		t.Errorf("uid, title, schemaVersion = %q, %q, %d; want switchyard, Switchyard, 39", d.UID, d.Title, d.SchemaVersion)
	}
	var dsVar string
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("templating has no Prometheus datasource variable")
	}
	usesVar := func(r *grafanaRef) bool {
		return r != nil && r.Type == "prometheus" && (r.UID == "${"+dsVar+"}" || r.UID == "$"+dsVar)
	}

	panels := flatPanels(d.Panels)
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]bool{}
	for i, p := range panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.Title == "" {
			t.Errorf("%s: no title", where)
		}
		if ids[p.ID] {
			t.Errorf("%s: id repeated", where)
		}
		ids[p.ID] = true
		if !usesVar(p.Datasource) {
			t.Errorf("%s: datasource %+v, want the $%s variable", where, p.Datasource, dsVar)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for _, q := range panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("%s overlaps panel %d %q", where, q.ID, q.Title)
			}
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: empty expr", where, tg.RefID)
			} else if err := checkBalanced(tg.Expr); err != nil {
				t.Errorf("%s target %s: expr %q: %v", where, tg.RefID, tg.Expr, err)
			}
			if tg.Datasource != nil && !usesVar(tg.Datasource) {
				t.Errorf("%s target %s: datasource %+v, want the $%s variable", where, tg.RefID, tg.Datasource, dsVar)
			}
		}
	}
}

// TestMonitoringExpressionsUseKnownMetrics: every switchyard_ name in a rule or
// panel expression is a series the services export, every switchyard: name is
// a recording rule in rules.yml, every recording rule is used, and every
// exported metric is on the dashboard or in a rule.
func TestMonitoringExpressionsUseKnownMetrics(t *testing.T) {
	t.Parallel()
	type expr struct{ where, text string }
	var exprs []expr
	recorded := map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, expr{fmt.Sprintf("%s: %s%s", rulesPath, r.Alert, r.Record), r.Expr})
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	for _, p := range flatPanels(loadDashboard(t).Panels) {
		for _, tg := range p.Targets {
			exprs = append(exprs, expr{fmt.Sprintf("%s: panel %q target %s", dashboardPath, p.Title, tg.RefID), tg.Expr})
		}
	}

	usedMetrics := map[string]bool{}
	usedRecords := map[string]bool{}
	for _, e := range exprs {
		for _, name := range slices.Compact(slices.Sorted(slices.Values(metricName.FindAllString(e.text, -1)))) {
			if problem := checkMetricName(name); problem != "" {
				t.Errorf("%s: %s", e.where, problem)
			}
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && knownMetrics[b] == histogram {
					base = b
				}
			}
			usedMetrics[base] = true
		}
		for _, name := range slices.Compact(slices.Sorted(slices.Values(recordingName.FindAllString(e.text, -1)))) {
			if !recorded[name] {
				t.Errorf("%s: %s is no recording rule in %s", e.where, name, rulesPath)
			}
			usedRecords[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(recorded)) {
		if !usedRecords[name] {
			t.Errorf("%s: recording rule %s is used by no alert or panel", rulesPath, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(knownMetrics)) {
		if !usedMetrics[name] {
			t.Errorf("%s is exported but neither plotted in %s nor used in %s", name, dashboardPath, rulesPath)
		}
	}
}

// promTemplateFuncs stand in for the functions Prometheus offers alert
// templates, so that a template calling anything else fails to parse.
var promTemplateFuncs = func() template.FuncMap {
	fm := template.FuncMap{}
	for _, name := range []string{"query", "first", "label", "value", "strvalue", "sortByLabel", "humanize",
		"humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime", "toDuration",
		"title", "toUpper", "toLower", "stripPort", "stripDomain", "match", "reReplaceAll", "graphLink",
		"tableLink", "args", "safeHtml", "pathPrefix", "externalURL", "parseDuration", "now"} {
		fm[name] = func(...any) any { return nil }
	}
	return fm
}()

// checkTemplate parses an alert annotation as Prometheus does: Go text/template
// with $labels, $externalLabels and $value defined.
func checkTemplate(s string) error {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	_, err := template.New("annotation").Funcs(promTemplateFuncs).Option("missingkey=zero").Parse(defs + s)
	return err
}

// checkBalanced reports unbalanced (), [] and {} in a PromQL expression or an
// alert template, outside quoted strings and # comments. It stands in for the
// PromQL parser, which this module does not depend on.
func checkBalanced(s string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var quote rune
	comment := false
	escaped := false
	for i, c := range s {
		switch {
		case comment:
			comment = c != '\n'
		case quote != 0:
			switch {
			case escaped:
				escaped = false
			case c == '\\' && quote != '`':
				escaped = true
			case c == quote:
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '#':
			comment = true
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case c == ')' || c == ']' || c == '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("unmatched %q at offset %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if quote != 0 {
		return fmt.Errorf("unterminated %c string", quote)
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

func TestCheckBalanced(t *testing.T) {
	t.Parallel()
	for expr, ok := range map[string]bool{
		`sum by (le) (rate(x_bucket{a="b"}[5m]))`: true,
		`x{a=~"(a|b"}`:                 true, // inside a string
		"x # unmatched ( in a comment": true,
		`sum(rate(x[5m])`:              false,
		`x{a="b"]`:                     false,
		`x{a="b}`:                      false,
		`)(`:                           false,
	} {
		if err := checkBalanced(expr); (err == nil) != ok {
			t.Errorf("checkBalanced(%q) = %v, want ok=%v", expr, err, ok)
		}
	}
	for tmpl, ok := range map[string]bool{
		"{{ $labels.consumer }} is {{ $value | humanizePercentage }}": true,
		"the gateway's p95, `switchyard status`":                      true,
		"{{ $value | humanise }}":                                     false,
		"{{ $labels.consumer }":                                       false,
	} {
		if err := checkTemplate(tmpl); (err == nil) != ok {
			t.Errorf("checkTemplate(%q) = %v, want ok=%v", tmpl, err, ok)
		}
	}
}
