package tracing

import sdktrace "go.opentelemetry.io/otel/sdk/trace"

// WithExporter is tracing on, exporting to exp at once through the same
// scrubbing as FromEnv's OTLP exporter.
func WithExporter(exp sdktrace.SpanExporter) *Tracing {
	p := sdktrace.NewTracerProvider(sdktrace.WithSyncer(scrubber{exp}))
	return &Tracing{provider: p, tp: p}
}
