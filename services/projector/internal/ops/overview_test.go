package ops

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// textHeader is what the gateway's handler answers a text request with.
var textHeader = http.Header{"Content-Type": {string(expfmt.FmtText)}}

func TestParseWebhookResults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  http.Header
		body    string
		want    map[string]int64
		wantErr string // in the error; "" for none
	}{
		{
			name: "HELP and TYPE lines, other families around",
			body: `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 12
# HELP switchyard_gateway_webhooks_received_total Webhook requests by result.
# TYPE switchyard_gateway_webhooks_received_total counter
switchyard_gateway_webhooks_received_total{result="accepted"} 120
switchyard_gateway_webhooks_received_total{result="signature_invalid"} 3
# TYPE target_info gauge
target_info{service_name="switchyard-gateway"} 1
`,
			want: map[string]int64{"accepted": 120, "signature_invalid": 3},
		},
		{
			name: "labels in another order, the same result in two series",
			body: `switchyard_gateway_webhooks_received_total{replica="b",result="accepted"} 2
switchyard_gateway_webhooks_received_total{result="accepted",replica="a"} 5
`,
			want: map[string]int64{"accepted": 7},
		},
		{
			name: "escaped quote, backslash and newline in a label value",
			body: `switchyard_gateway_webhooks_received_total{note="say \"hi\" \\ \n",result="accepted"} 1
switchyard_gateway_webhooks_received_total{result="odd \"quoted\" result"} 4
`,
			want: map[string]int64{"accepted": 1, `odd "quoted" result`: 4},
		},
		{
			name: "a _created series and a look-alike name are not the counter",
			body: `switchyard_gateway_webhooks_received_total{result="accepted"} 9
switchyard_gateway_webhooks_received_created{result="accepted"} 1.7e+09
switchyard_gateway_webhooks_received_total_extra{result="accepted"} 1000
`,
			want: map[string]int64{"accepted": 9},
		},
		{
			name: "timestamps and scientific notation",
			body: `switchyard_gateway_webhooks_received_total{result="accepted"} 1.2e+03 1700000000000
`,
			want: map[string]int64{"accepted": 1200},
		},
		{
			name: "no such metric",
			body: "go_goroutines 3\n",
			want: map[string]int64{},
		},
		{
			name:    "a malformed line",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} 1\nswitchyard_gateway_webhooks_received_total{result=\"duplicate\" 2\n",
			wantErr: "malformed metrics",
		},
		{
			name:    "a malformed line in another family",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} 1\ngo_goroutines twelve\n",
			wantErr: "malformed metrics",
		},
		{
			name:    "an exemplar, which the text format has not",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} 1 # {trace_id=\"4bf92f35\"} 1\n",
			wantErr: "malformed metrics",
		},
		{
			name:    "OpenMetrics is not asked for",
			header:  http.Header{"Content-Type": {"application/openmetrics-text; version=1.0.0; charset=utf-8"}},
			body:    "# TYPE switchyard_gateway_webhooks_received counter\nswitchyard_gateway_webhooks_received_total{result=\"accepted\"} 1\n# EOF\n",
			wantErr: `Content-Type "application/openmetrics-text`,
		},
		{
			name:    "an HTML error page",
			header:  http.Header{"Content-Type": {"text/html; charset=utf-8"}},
			body:    "<html>502</html>",
			wantErr: `Content-Type "text/html`,
		},
		{
			name:    "a series without a result",
			body:    "switchyard_gateway_webhooks_received_total{replica=\"a\"} 1\n",
			wantErr: "without a result label",
		},
		{
			name:    "a series given twice",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} 1\nswitchyard_gateway_webhooks_received_total{result=\"accepted\"} 2\n",
			wantErr: "given twice",
		},
		{
			name:    "a gauge of that name",
			body:    "# TYPE switchyard_gateway_webhooks_received_total gauge\nswitchyard_gateway_webhooks_received_total{result=\"accepted\"} 1\n",
			wantErr: "is a gauge",
		},
		{
			name:    "a fraction",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} 1.5\n",
			wantErr: "not a count",
		},
		{
			name:    "NaN",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} NaN\n",
			wantErr: "not a count",
		},
		{
			name:    "negative",
			body:    "switchyard_gateway_webhooks_received_total{result=\"accepted\"} -1\n",
			wantErr: "not a count",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := tt.header
			if header == nil {
				header = textHeader
			}
			got, err := parseWebhookResults(header, []byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q (got %v)", err, tt.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWebhookResultsFromTelemetryHandler scrapes the handler every service,
// the gateway included, serves on /metrics (platform/telemetry's), with the
// gateway's counter recorded through OpenTelemetry, as the console does.
func TestWebhookResultsFromTelemetryHandler(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.Setup(context.Background(), "switchyard-gateway", config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	received, err := tel.Meter.Meter("gateway").Int64Counter("switchyard_gateway_webhooks_received",
		metric.WithDescription("Webhook requests by result."))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	received.Add(ctx, 7, metric.WithAttributes(attribute.String("result", "accepted")))
	received.Add(ctx, 2, metric.WithAttributes(attribute.String("result", `odd "quoted"`)))
	received.Add(ctx, 0, metric.WithAttributes(attribute.String("result", "duplicate")))
	contentType := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tel.Metrics.ServeHTTP(w, r)
		contentType <- w.Header().Get("Content-Type")
	}))
	t.Cleanup(srv.Close)

	into := map[string]int64{"accepted": 1} // another replica's figure, kept
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := webhookResults(ctx, srv.URL, into); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"accepted": 8, `odd "quoted"`: 2, "duplicate": 0}; !maps.Equal(into, want) {
		t.Errorf("got %v, want %v", into, want)
	}
	if ct := <-contentType; expfmt.ResponseFormat(http.Header{"Content-Type": {ct}}).FormatType() != expfmt.TypeTextPlain {
		t.Errorf("the handler answered %q; the console asks for the text format first", ct)
	}
}

// TestWebhookResultsProtobuf: a scrape answered in the delimited protobuf
// format (the console's second choice) decodes to the same figures.
func TestWebhookResultsProtobuf(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	series := func(result string, v float64) *dto.Metric {
		return &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("result"), Value: proto.String(result)}},
			Counter: &dto.Counter{Value: proto.Float64(v)}}
	}
	if err := enc.Encode(&dto.MetricFamily{Name: proto.String(webhookMetric), Type: dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{series("accepted", 4), series("invalid_json", 1)}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "encoding=delimited") {
			http.Error(w, "no protobuf in Accept", http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
		_, _ = w.Write(buf.Bytes())
	}))
	t.Cleanup(srv.Close)
	into := map[string]int64{}
	if err := webhookResults(context.Background(), srv.URL, into); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"accepted": 4, "invalid_json": 1}; !maps.Equal(into, want) {
		t.Errorf("got %v, want %v", into, want)
	}
}

// TestWebhookResultsMalformedAddsNothing: a body that fails halfway leaves
// the sum untouched rather than half-counted.
func TestWebhookResultsMalformedAddsNothing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", string(expfmt.FmtText))
		_, _ = w.Write([]byte("switchyard_gateway_webhooks_received_total{result=\"accepted\"} 5\nswitchyard_gateway_webhooks_received_total{result=\n"))
	}))
	t.Cleanup(srv.Close)
	into := map[string]int64{"accepted": 1}
	if err := webhookResults(context.Background(), srv.URL, into); err == nil {
		t.Fatal("a malformed body was accepted")
	}
	if into["accepted"] != 1 {
		t.Errorf("accepted = %d after a malformed body, want the 1 from before", into["accepted"])
	}
}
