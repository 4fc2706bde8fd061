package telemetry_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// export is one OTLP request as a receiver saw it.
type export struct {
	transport string // "grpc" or "http/protobuf"
	signal    string // "traces" or "metrics"
	header    func(string) string
	resources []*resourcepb.Resource
	names     []string // span or metric names
}

// otlpReceiver is an in-process OTLP collector: a gRPC server with the
// trace and metrics services, and an HTTP server decoding protobuf on
// /v1/traces and /v1/metrics. It records every request.
type otlpReceiver struct {
	grpcAddr, httpURL string

	mu  sync.Mutex
	got []export
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, grpcTraces{r: r})
	collectormetrics.RegisterMetricsServiceServer(gs, grpcMetrics{r: r})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	r.grpcAddr = lis.Addr().String()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var in collectortrace.ExportTraceServiceRequest
		if !decodeOTLP(w, req, &in) {
			return
		}
		r.record(exportFromTraces("http/protobuf", req.Header.Get, &in))
		writeOTLP(w, &collectortrace.ExportTraceServiceResponse{})
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, req *http.Request) {
		var in collectormetrics.ExportMetricsServiceRequest
		if !decodeOTLP(w, req, &in) {
			return
		}
		r.record(exportFromMetrics("http/protobuf", req.Header.Get, &in))
		writeOTLP(w, &collectormetrics.ExportMetricsServiceResponse{})
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	r.httpURL = hs.URL
	return r
}

func (r *otlpReceiver) record(e export) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
}

func (r *otlpReceiver) exports() []export {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// decodeOTLP reads an OTLP/HTTP protobuf body as the specification sends it
// (gzip when OTEL_EXPORTER_OTLP_COMPRESSION says so); false: answered 400.
func decodeOTLP(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "Content-Type "+ct+", want application/x-protobuf", http.StatusUnsupportedMediaType)
		return false
	}
	body := io.Reader(req.Body)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return false
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err == nil {
		err = proto.Unmarshal(b, m)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeOTLP(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

type grpcTraces struct {
	collectortrace.UnimplementedTraceServiceServer
	r *otlpReceiver
}

func (s grpcTraces) Export(ctx context.Context, in *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.r.record(exportFromTraces("grpc", grpcHeader(ctx), in))
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

type grpcMetrics struct {
	collectormetrics.UnimplementedMetricsServiceServer
	r *otlpReceiver
}

func (s grpcMetrics) Export(ctx context.Context, in *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	s.r.record(exportFromMetrics("grpc", grpcHeader(ctx), in))
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

// grpcHeader reads the request's metadata, where OTEL_EXPORTER_OTLP_HEADERS
// arrive over gRPC.
func grpcHeader(ctx context.Context) func(string) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

func exportFromTraces(transport string, header func(string) string, in *collectortrace.ExportTraceServiceRequest) export {
	e := export{transport: transport, signal: "traces", header: header}
	for _, rs := range in.GetResourceSpans() {
		e.resources = append(e.resources, rs.GetResource())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				e.names = append(e.names, s.GetName())
			}
		}
	}
	return e
}

func exportFromMetrics(transport string, header func(string) string, in *collectormetrics.ExportMetricsServiceRequest) export {
	e := export{transport: transport, signal: "metrics", header: header}
	for _, rm := range in.GetResourceMetrics() {
		e.resources = append(e.resources, rm.GetResource())
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				e.names = append(e.names, m.GetName())
			}
		}
	}
	return e
}

// resourceAttr returns a string attribute of res.
func resourceAttr(res *resourcepb.Resource, key string) string {
	for _, kv := range res.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// clearOTELEnv unsets every OTEL_* variable of the process for the test, so
// the machine's own settings cannot steer the SDK.
func clearOTELEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
		}
	}
}

// TestOTLPProtocols sends a span and a counter through Setup, configured the
// way a deployment is (the process environment, as the SDK's exporters read
// it), to an in-process collector speaking both transports, and checks which
// transport each signal arrived by, with what resource and headers.
// Not parallel: t.Setenv.
func TestOTLPProtocols(t *testing.T) {
	const (
		header    = "x-switchyard-test"
		headerVal = "otlp headers" // percent-encoded in the variable
	)
	tests := []struct {
		name        string
		env         func(r *otlpReceiver) map[string]string
		traces      string // the transport traces must arrive by
		metrics     string
		wantService string
	}{
		{
			name: "default is http/protobuf",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL}
			},
			traces:  "http/protobuf",
			metrics: "http/protobuf",
		},
		{
			name: "http/protobuf",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL + "/"}
			},
			traces:  "http/protobuf",
			metrics: "http/protobuf",
		},
		{
			name: "grpc with an http:// endpoint",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + r.grpcAddr}
			},
			traces:  "grpc",
			metrics: "grpc",
		},
		{
			name: "traces protocol beats the general one",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{
					"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
					"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://" + r.grpcAddr,
					"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
					"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": r.httpURL + "/v1/traces",
				}
			},
			traces:  "http/protobuf",
			metrics: "grpc",
		},
		{
			name: "metrics protocol beats the general one",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{
					"OTEL_EXPORTER_OTLP_PROTOCOL":         "http/protobuf",
					"OTEL_EXPORTER_OTLP_ENDPOINT":         r.httpURL,
					"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
					"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://" + r.grpcAddr,
				}
			},
			traces:  "http/protobuf",
			metrics: "grpc",
		},
		{
			name: "grpc, service.name from OTEL_RESOURCE_ATTRIBUTES beats the default",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{
					"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":  "grpc",
					"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
					"OTEL_EXPORTER_OTLP_ENDPOINT":         "http://" + r.grpcAddr,
					"OTEL_RESOURCE_ATTRIBUTES":            "service.name=from-attributes,deployment.environment.name=ci,team=billing%2Cops",
				}
			},
			traces:      "grpc",
			metrics:     "grpc",
			wantService: "from-attributes",
		},
		{
			name: "OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES",
			env: func(r *otlpReceiver) map[string]string {
				return map[string]string{
					"OTEL_EXPORTER_OTLP_ENDPOINT": r.httpURL,
					"OTEL_SERVICE_NAME":           "renamed",
					"OTEL_RESOURCE_ATTRIBUTES":    "service.name=from-attributes,deployment.environment.name=ci,team=billing%2Cops",
				}
			},
			traces:      "http/protobuf",
			metrics:     "http/protobuf",
			wantService: "renamed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearOTELEnv(t)
			r := newOTLPReceiver(t)
			env := map[string]string{
				"OTEL_RESOURCE_ATTRIBUTES":   "deployment.environment.name=ci,team=billing%2Cops",
				"OTEL_EXPORTER_OTLP_HEADERS": header + "=otlp%20headers",
			}
			for k, v := range tt.env(r) {
				env[k] = v
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			tel, err := telemetry.Setup(context.Background(), "otlp-test", os.Getenv)
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if !tel.Exporting {
				t.Fatal("Exporting = false with an endpoint set")
			}
			_, span := tel.Tracer.Tracer("otlp_test").Start(context.Background(), "otlp-op")
			span.End()
			counter, err := tel.Meter.Meter("otlp_test").Int64Counter("switchyard_otlp_test_events")
			if err != nil {
				t.Fatal(err)
			}
			counter.Add(context.Background(), 1)
			shutdown(t, tel) // flushes the span batcher and the periodic reader

			wantService := tt.wantService
			if wantService == "" {
				wantService = "otlp-test"
			}
			got := r.exports()
			for _, want := range []struct{ signal, transport, name string }{
				{"traces", tt.traces, "otlp-op"},
				{"metrics", tt.metrics, "switchyard_otlp_test_events"},
			} {
				var arrived []export
				for _, e := range got {
					if e.signal == want.signal {
						arrived = append(arrived, e)
					}
				}
				if len(arrived) == 0 {
					t.Errorf("no %s arrived (want them by %s)", want.signal, want.transport)
					continue
				}
				for _, e := range arrived {
					if e.transport != want.transport {
						t.Errorf("%s arrived by %s, want %s", want.signal, e.transport, want.transport)
					}
					if h := e.header(header); h != headerVal {
						t.Errorf("%s by %s: header %s = %q, want %q (OTEL_EXPORTER_OTLP_HEADERS)", want.signal, e.transport, header, h, headerVal)
					}
					for _, res := range e.resources {
						for key, v := range map[string]string{"service.name": wantService, "deployment.environment.name": "ci", "team": "billing,ops"} {
							if got := resourceAttr(res, key); got != v {
								t.Errorf("%s by %s: resource %s = %q, want %q", want.signal, e.transport, key, got, v)
							}
						}
					}
				}
				var names []string
				for _, e := range arrived {
					names = append(names, e.names...)
				}
				if !slices.Contains(names, want.name) {
					t.Errorf("%s arrived without %q: %v", want.signal, want.name, names)
				}
			}
		})
	}
}

// TestSetupRejects checks that every value Setup cannot honour stops it with
// an error naming the variable, before anything is built.
func TestSetupRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string // in the error
	}{
		{name: "http/json", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, want: "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}, want: `OTEL_EXPORTER_OTLP_PROTOCOL="udp"`},
		{name: "unknown traces protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "GRPC"}, want: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="GRPC"`},
		{name: "metrics http/json", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, want: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/json"},
		{
			name: "bad general protocol where one signal falls back to it",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			want: `OTEL_EXPORTER_OTLP_PROTOCOL="http"`,
		},
		{
			name: "bad general protocol that both signals override",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "gprc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"},
			want: `OTEL_EXPORTER_OTLP_PROTOCOL="gprc"`,
		},
		{name: "traces exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, want: "OTEL_TRACES_EXPORTER"},
		{name: "metrics exporter none with another", env: map[string]string{"OTEL_METRICS_EXPORTER": "otlp,none"}, want: "OTEL_METRICS_EXPORTER"},
		{name: "propagator", env: map[string]string{"OTEL_PROPAGATORS": "tracecontext,b3"}, want: `OTEL_PROPAGATORS="tracecontext,b3": "b3"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tel, err := telemetry.Setup(context.Background(), "telemetry-test", config.MapEnv(tt.env))
			if err == nil {
				shutdown(t, tel)
				t.Fatalf("Setup accepted %v", tt.env)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Setup error %q does not name %s", err, tt.want)
			}
		})
	}
}

// TestSetupAccepts checks the specification's other spellings Setup takes.
func TestSetupAccepts(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"OTEL_METRICS_EXPORTER": "prometheus"},
		{"OTEL_METRICS_EXPORTER": "otlp, prometheus", "OTEL_TRACES_EXPORTER": "otlp"},
		{"OTEL_SDK_DISABLED": "TRUE"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
	} {
		t.Run(fmt.Sprint(env), func(t *testing.T) {
			t.Parallel()
			shutdown(t, setup(t, env))
		})
	}
}

// TestResourceAttributesMalformed: an OTEL_RESOURCE_ATTRIBUTES entry
// without "=" stops Setup. Not parallel: t.Setenv.
func TestResourceAttributesMalformed(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=billing,deployment")
	tel, err := telemetry.Setup(context.Background(), "telemetry-test", os.Getenv)
	if err == nil {
		shutdown(t, tel)
		t.Fatal("Setup accepted OTEL_RESOURCE_ATTRIBUTES=team=billing,deployment")
	}
	if !strings.Contains(err.Error(), "OTEL_RESOURCE_ATTRIBUTES") {
		t.Errorf("Setup error %q does not name OTEL_RESOURCE_ATTRIBUTES", err)
	}
}

// TestPropagators checks OTEL_PROPAGATORS on the headers Inject writes: W3C
// trace context alone by default, baggage only when asked for, nothing for
// none. Not parallel: the propagator is process-wide.
func TestPropagators(t *testing.T) {
	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, setup(t, nil)) }) // back to the default for the other tests
	tests := []struct {
		value                  string
		traceparent, baggageOK bool
	}{
		{value: "", traceparent: true},
		{value: "tracecontext", traceparent: true},
		{value: "tracecontext,baggage", traceparent: true, baggageOK: true},
		{value: "baggage", baggageOK: true},
		{value: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			tel := setup(t, map[string]string{"OTEL_PROPAGATORS": tt.value})
			t.Cleanup(func() { shutdown(t, tel) })
			ctx, span := sdkSpan(t)
			defer span.End()
			h := nats.Header{}
			telemetry.Inject(baggage.ContextWithBaggage(ctx, bag), h)
			if got := h.Get("traceparent") != ""; got != tt.traceparent {
				t.Errorf("traceparent written = %v, want %v: %v", got, tt.traceparent, h)
			}
			if got := h.Get("baggage") == "tenant=acme"; got != tt.baggageOK {
				t.Errorf("baggage written = %v, want %v: %v", got, tt.baggageOK, h)
			}
		})
	}
}
