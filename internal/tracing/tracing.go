// Package tracing turns on OpenTelemetry tracing when the standard OTEL_
// environment asks for it, and is off otherwise, so that a node nobody
// traces pays nothing: no provider, no wrapped store, no wrapped handler.
//
// Tracing is on when OTEL_TRACES_EXPORTER is "otlp", or when it is unset and
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set;
// OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turns it off. Spans go
// to the OTLP endpoint over HTTP (protobuf); the exporter reads the rest of
// the standard variables itself (headers, timeout, TLS, compression), and
// the SDK reads OTEL_TRACES_SAMPLER and OTEL_SERVICE_NAME / _RESOURCE_ATTRIBUTES.
// gRPC export is not built in, to keep the binary lean: say so rather than
// export nothing.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is a node's tracing, on or off. The zero value (and nil) is off.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tp       trace.TracerProvider // the provider, or one a test hands in
}

// Enabled reports whether the standard environment, read through getenv,
// turns tracing on; an error says which variable asks for what is not built
// in.
func Enabled(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	switch exporter {
	case "none":
		return false, nil
	case "otlp":
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return false, nil
		}
	default:
		return false, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: this build exports only otlp (or none)", exporter)
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(v)); p != "" {
			if p != "http/protobuf" {
				return false, fmt.Errorf("tracing: %s=%q: this build exports over http/protobuf only", v, p)
			}
			break // the traces-specific one wins
		}
	}
	return true, nil
}

// FromEnv starts tracing if the process's environment asks for it (see
// Enabled), else returns a Tracing that is off. version is the
// service.version of the spans.
func FromEnv(ctx context.Context, version string) (*Tracing, error) {
	on, err := Enabled(os.Getenv)
	if err != nil || !on {
		return &Tracing{}, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over these.
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(semconv.ServiceName("tether"), semconv.ServiceVersion(version)))
	if err == nil {
		var fromEnv *resource.Resource
		fromEnv, err = resource.New(ctx, resource.WithFromEnv())
		if err == nil {
			res, err = resource.Merge(res, fromEnv)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(scrubber{exp}), sdktrace.WithResource(res))
	return &Tracing{provider: p, tp: p}, nil
}

// scrubber drops the query and fragment of url.full before spans leave the
// node: an outgoing URL (a webhook's) may carry a credential there, and
// Tether never writes one out. otelhttp sets the attribute after the span
// starts, so only the export can see it.
type scrubber struct{ sdktrace.SpanExporter }

func (s scrubber) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, span := range spans {
		out[i] = scrub(span)
	}
	return s.SpanExporter.ExportSpans(ctx, out)
}

func scrub(span sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	attrs := span.Attributes()
	for i, a := range attrs {
		if a.Key != semconv.URLFullKey {
			continue
		}
		u, err := url.Parse(a.Value.AsString())
		if err != nil {
			u = &url.URL{} // unparsable: keep nothing of it
		}
		if u.RawQuery == "" && u.Fragment == "" && err == nil {
			return span
		}
		u.RawQuery, u.Fragment = "", ""
		attrs = slices.Clone(attrs)
		attrs[i] = semconv.URLFull(u.String())
		return scrubbed{span, attrs}
	}
	return span
}

// scrubbed is a span with its attributes replaced.
type scrubbed struct {
	sdktrace.ReadOnlySpan
	attrs []attribute.KeyValue
}

func (s scrubbed) Attributes() []attribute.KeyValue { return s.attrs }

// With returns a Tracing that is on and sends its spans to tp, for tests and
// for programs that set up their own provider.
func With(tp trace.TracerProvider) *Tracing { return &Tracing{tp: tp} }

// On reports whether spans are made.
func (t *Tracing) On() bool { return t != nil && t.tp != nil }

// Tracer returns the tracer for Tether's own spans; nil when off.
func (t *Tracing) Tracer() trace.Tracer {
	if !t.On() {
		return nil
	}
	return t.tp.Tracer("github.com/tetherhq/tether")
}

// propagator is W3C Trace Context only: traceparent and tracestate, what
// every tracing backend reads. Baggage is not propagated, so nothing a client
// sends travels on to webhooks or other services.
var propagator = propagation.TraceContext{}

// Handler gives each request a span named by the route it matched (the
// ServeMux pattern, "GET /v1/session"); h must leave the pattern on the
// request (a ServeMux does). public says the listener faces the Internet: an
// incoming traceparent there is linked, not adopted as the parent, so a
// client cannot graft spans onto another trace. Off: h itself.
func (t *Tracing) Handler(h http.Handler, listener string, public bool) http.Handler {
	if !t.On() {
		return h
	}
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(spanName),
		otelhttp.WithServerName(listener),
	}
	if public {
		opts = append(opts, otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }))
	}
	return otelhttp.NewHandler(h, listener, opts...)
}

// spanName is the matched route, or the method alone (as the semantic
// conventions say) before routing and for a request that matched none.
func spanName(_ string, r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method
}

// Transport returns base (nil: http.DefaultTransport) with a client span
// around each outgoing request and the trace context in its traceparent
// header, for the webhook, JWKS and SSF clients. Off: base itself.
func (t *Tracing) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.On() {
		return base
	}
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(propagator))
}

// Shutdown sends the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
