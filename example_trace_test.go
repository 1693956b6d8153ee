package tether_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// Wrap the store when tracing is on, and every store call a request makes
// is a span under the request's own.
func ExampleTraceStore() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder() // a real program: an OTLP exporter
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("example")

	m, err := tether.NewManager(tether.Config{
		Store:        tether.TraceStore(memstore.New(), tracer),
		MaxStaleness: -1, // no cache: every validation reads the store
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	token, _, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err != nil {
		log.Fatal(err)
	}

	ctx, request := tracer.Start(ctx, "GET /v1/session")
	if _, err := m.Validate(ctx, token); err != nil {
		log.Fatal(err)
	}
	request.End()
	for _, s := range spans.Ended() {
		if s.Parent().SpanID() == request.SpanContext().SpanID() {
			fmt.Println(s.Name())
		}
	}
	// Output:
	// store.Get
	// store.Roles
}
