package tracing_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/tracing"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/webhook"
)

func TestEnabled(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{"nothing set", nil, false, ""},
		{"an endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"a traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, ""},
		{"otlp exporter, default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"exporter none beats an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false, ""},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false, ""},
		{"SDK not disabled", map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, true, ""},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, ""},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, true, ""},
		{"an exporter not built in", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, `"zipkin"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tracing.Enabled(func(k string) string { return tt.env[k] })
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, %v; want %v and an error mentioning %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestOff: with nothing set there is no provider, and the handler and
// transport are what they wrap.
func TestOff(t *testing.T) {
	for _, v := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(v, "")
	}
	tr, err := tracing.FromEnv(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	h := http.NewServeMux()
	if tr.On() || tr.Tracer() != nil {
		t.Error("tracing is on with an empty environment")
	}
	if got := tr.Handler(h, "public", true); got != http.Handler(h) {
		t.Error("the handler is wrapped while tracing is off")
	}
	if tr.Transport(nil) != http.DefaultTransport {
		t.Error("the transport is wrapped while tracing is off")
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
	var none *tracing.Tracing
	if none.On() || none.Transport(nil) != http.DefaultTransport {
		t.Error("a nil Tracing is not off")
	}
}

// TestFromEnvOn: an endpoint in the environment makes a provider whose spans
// reach it at shutdown.
func TestFromEnvOn(t *testing.T) {
	got := make(chan string, 4)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	tr, err := tracing.FromEnv(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.On() {
		t.Fatal("an OTLP endpoint did not turn tracing on")
	}
	_, span := tr.Tracer().Start(t.Context(), "x")
	span.End()
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r != "POST /v1/traces" {
			t.Errorf("the collector got %s; want POST /v1/traces", r)
		}
	default:
		t.Error("no export reached the collector by shutdown")
	}
}

func recorder() (*tracetest.SpanRecorder, *tracing.Tracing) {
	rec := tracetest.NewSpanRecorder()
	return rec, tracing.With(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
}

// TestHandler: a traceparent from the admin side makes the route's span its
// child; on the public listener it is only linked, so an Internet client
// cannot graft spans onto someone's trace.
func TestHandler(t *testing.T) {
	const remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	remoteTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	tests := []struct {
		listener   string
		public     bool
		wantParent bool
	}{
		{"admin", false, true},
		{"public", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.listener, func(t *testing.T) {
			rec, tr := recorder()
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/things/{id}", func(http.ResponseWriter, *http.Request) {})
			r := httptest.NewRequest(http.MethodGet, "/v1/things/7", nil)
			r.Header.Set("traceparent", remote)
			tr.Handler(mux, tt.listener, tt.public).ServeHTTP(httptest.NewRecorder(), r)
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != "GET /v1/things/{id}" {
				t.Errorf("span name %q, want the route pattern", s.Name())
			}
			if got := s.Parent().TraceID() == remoteTrace; got != tt.wantParent {
				t.Errorf("child of the remote span: %v, want %v", got, tt.wantParent)
			}
			if linked := len(s.Links()) == 1 && s.Links()[0].SpanContext.TraceID() == remoteTrace; linked == tt.wantParent {
				t.Errorf("linked to the remote span: %v, want %v", linked, !tt.wantParent)
			}
		})
	}
}

// TestTransportCarriesTraceContext: an outgoing call made through the
// transport within a span carries that trace in traceparent.
func TestTransportCarriesTraceContext(t *testing.T) {
	rec, tr := recorder()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") }))
	defer srv.Close()
	ctx, parent := tr.Tracer().Start(t.Context(), "request")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/.well-known/jwks.json", nil)
	resp, err := (&http.Client{Transport: tr.Transport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	tp := <-got
	if want := "00-" + parent.SpanContext().TraceID().String() + "-"; !strings.HasPrefix(tp, want) {
		t.Errorf("traceparent %q, want the caller's trace %s…", tp, want)
	}
	var client int
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == parent.SpanContext().SpanID() {
			client++
		}
	}
	if client != 1 {
		t.Errorf("got %d client spans under the caller's, want 1", client)
	}
}

// TestWebhookCarriesTraceContext: a webhook delivery, made with the
// transport as serve hands it to the deliverer, carries a traceparent of
// its own client span.
func TestWebhookCarriesTraceContext(t *testing.T) {
	rec, tr := recorder()
	got := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
	}))
	defer srv.Close()
	st := memstore.New()
	defer st.Close()
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	d, err := webhook.New(webhook.Config{Manager: m, Transport: tr.Transport(nil), Poll: 10 * time.Millisecond,
		Endpoints: []webhook.Endpoint{{URL: srv.URL, Secret: make([]byte, 32)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The endpoint's start is recorded on its first poll; what is created
	// after that is delivered.
	deadline := time.After(30 * time.Second) // a bound for a hang, not a timing
	var tp string
	for tp == "" {
		if _, _, err := m.Create(t.Context(), tether.CreateParams{Subject: "alice"}); err != nil {
			t.Fatal(err)
		}
		select {
		case tp = <-got:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no delivery")
		}
	}
	d.Close()
	traceID, _, ok := strings.Cut(strings.TrimPrefix(tp, "00-"), "-")
	if !ok || !strings.HasPrefix(tp, "00-") {
		t.Fatalf("traceparent %q", tp)
	}
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.SpanContext().TraceID().String() == traceID {
			return
		}
	}
	t.Errorf("traceparent %q names no client span of the deliverer", tp)
}

// TestExportScrubsURLQuery: an outgoing URL's query and fragment (a webhook
// URL may carry a credential there) never leave in a span.
func TestExportScrubsURLQuery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	tests := []struct{ name, url, want string }{
		{"query", srv.URL + "/hook?token=s3cret&x=1", srv.URL + "/hook"},
		{"fragment", srv.URL + "/hook#s3cret", srv.URL + "/hook"},
		{"neither", srv.URL + "/hook", srv.URL + "/hook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tr := tracing.WithExporter(exp)
			resp, err := (&http.Client{Transport: tr.Transport(nil)}).Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			var got string
			for _, a := range spans[0].Attributes {
				if a.Key == "url.full" {
					got = a.Value.AsString()
				}
				if strings.Contains(a.Value.Emit(), "s3cret") {
					t.Errorf("attribute %s = %q holds the secret", a.Key, a.Value.Emit())
				}
			}
			if got != tt.want {
				t.Errorf("url.full %q, want %q", got, tt.want)
			}
		})
	}
}
