package tether_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/storetest"
)

// TestTraceStoreConformance: the traced store is the store it wraps, by the
// whole conformance suite (its Watcher too), and every method but Close
// makes a span named after it.
func TestTraceStoreConformance(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	var mu sync.Mutex
	var watchers int
	newStore := func(t *testing.T) tether.Store {
		st := tether.TraceStore(memstore.New(), tracer)
		if _, ok := st.(tether.Watcher); ok {
			mu.Lock()
			watchers++
			mu.Unlock()
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
	if watchers == 0 {
		t.Error("a traced memstore is no Watcher: caches on other nodes would never hear of a revoke")
	}

	seen := map[string]bool{}
	for _, s := range rec.Ended() {
		seen[s.Name()] = true
	}
	for m := range reflect.TypeFor[tether.Store]().Methods() {
		if m.Name != "Close" && !seen["store."+m.Name] {
			t.Errorf("no span store.%s", m.Name)
		}
	}
}

// failingStore fails every Get as an unreachable backend does.
type failingStore struct{ tether.Store }

var errDown = errors.New("connection refused")

func (failingStore) Get(context.Context, string) (*tether.Record, error) {
	return nil, errors.Join(tether.ErrUnavailable, errDown)
}

// TestTraceStoreSpans: a store call is a child of the caller's span; an
// answer such as "not found" is an outcome, a backend failure an error.
func TestTraceStoreSpans(t *testing.T) {
	ctx := t.Context()
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	if _, ok := tether.TraceStore(failingStore{memstore.New()}, tracer).(tether.Watcher); ok {
		t.Error("a store that is no Watcher became one")
	}

	tests := []struct {
		name        string
		st          tether.Store
		id          string
		wantOutcome string
		wantStatus  codes.Code
	}{
		{"missing", memstore.New(), "nope", "not_found", codes.Unset},
		{"unreachable", failingStore{memstore.New()}, "nope", "", codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parentCtx, parent := tracer.Start(ctx, "request")
			_, err := tether.TraceStore(tt.st, tracer).Get(parentCtx, tt.id)
			parent.End()
			if err == nil {
				t.Fatal("Get of a missing record: no error")
			}
			spans := rec.Ended()
			i := slices.IndexFunc(spans, func(s sdktrace.ReadOnlySpan) bool {
				return s.Name() == "store.Get" && s.Parent().SpanID() == parent.SpanContext().SpanID()
			})
			if i < 0 {
				t.Fatalf("no store.Get span under the caller's")
			}
			s := spans[i]
			var outcome string
			for _, a := range s.Attributes() {
				if a.Key == attribute.Key("tether.store.outcome") {
					outcome = a.Value.AsString()
				}
			}
			if outcome != tt.wantOutcome || s.Status().Code != tt.wantStatus {
				t.Errorf("got outcome %q, status %v; want %q, %v", outcome, s.Status().Code, tt.wantOutcome, tt.wantStatus)
			}
		})
	}
}
