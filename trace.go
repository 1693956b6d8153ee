package tether

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TraceStore returns st with an OpenTelemetry span around every call, named
// "store." and the method ("store.Get"), a child of the span in the call's
// context, so that a request's trace shows each store call it made and how
// long it took. Spans carry no subject, token or record: only the outcome.
// ErrNotFound, ErrExists and ErrReplayed are answers, not failures, so they
// set the attribute tether.store.outcome and leave the status unset; any
// other error marks the span failed.
//
// When st is a Watcher, so is the result; Watch itself, which lasts as long
// as the node, has no span. Wrap a store only when tracing is on: unwrapped,
// the validation path pays nothing for tracing.
func TraceStore(st Store, tracer trace.Tracer) Store {
	t := &tracedStore{st: st, tracer: tracer}
	if w, ok := st.(Watcher); ok {
		return &tracedWatcher{tracedStore: t, w: w}
	}
	return t
}

type tracedStore struct {
	st     Store
	tracer trace.Tracer
}

type tracedWatcher struct {
	*tracedStore
	w Watcher
}

var (
	_ Store   = (*tracedStore)(nil)
	_ Watcher = (*tracedWatcher)(nil)
)

func (t *tracedWatcher) Watch(ctx context.Context, fn func(Change)) error { return t.w.Watch(ctx, fn) }

// traced runs f in a span called name.
func traced[T any](ctx context.Context, t *tracedStore, name string, f func(context.Context) (T, error)) (T, error) {
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	v, err := f(ctx)
	if outcome := storeOutcome(err); outcome != "" {
		span.SetAttributes(attribute.String("tether.store.outcome", outcome))
	} else if err != nil {
		span.SetStatus(codes.Error, err.Error()) // store errors name no token or secret
	}
	return v, err
}

func storeOutcome(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	}
	return ""
}

// tracedErr is traced for methods that return only an error.
func tracedErr(ctx context.Context, t *tracedStore, name string, f func(context.Context) error) error {
	_, err := traced(ctx, t, name, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

func (t *tracedStore) Create(ctx context.Context, r *Record, evs ...Event) error {
	return tracedErr(ctx, t, "store.Create", func(ctx context.Context) error { return t.st.Create(ctx, r, evs...) })
}

func (t *tracedStore) Get(ctx context.Context, id string) (*Record, error) {
	return traced(ctx, t, "store.Get", func(ctx context.Context) (*Record, error) { return t.st.Get(ctx, id) })
}

func (t *tracedStore) Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error {
	return tracedErr(ctx, t, "store.Touch", func(ctx context.Context) error { return t.st.Touch(ctx, id, lastSeen, idleExpires) })
}

func (t *tracedStore) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...Event) error {
	return tracedErr(ctx, t, "store.Rotate", func(ctx context.Context) error { return t.st.Rotate(ctx, id, old, new, evs...) })
}

func (t *tracedStore) Delete(ctx context.Context, id string, evs ...Event) error {
	return tracedErr(ctx, t, "store.Delete", func(ctx context.Context) error { return t.st.Delete(ctx, id, evs...) })
}

func (t *tracedStore) DeleteSubject(ctx context.Context, subject, keepID string, evs ...Event) (int, error) {
	return traced(ctx, t, "store.DeleteSubject", func(ctx context.Context) (int, error) {
		return t.st.DeleteSubject(ctx, subject, keepID, evs...)
	})
}

func (t *tracedStore) List(ctx context.Context, subject string) ([]*Record, error) {
	return traced(ctx, t, "store.List", func(ctx context.Context) ([]*Record, error) { return t.st.List(ctx, subject) })
}

func (t *tracedStore) Roles(ctx context.Context, subject string) ([]string, error) {
	return traced(ctx, t, "store.Roles", func(ctx context.Context) ([]string, error) { return t.st.Roles(ctx, subject) })
}

func (t *tracedStore) SetRoles(ctx context.Context, subject string, roles []string, evs ...Event) error {
	return tracedErr(ctx, t, "store.SetRoles", func(ctx context.Context) error { return t.st.SetRoles(ctx, subject, roles, evs...) })
}

func (t *tracedStore) Consume(ctx context.Context, key string, until time.Time) error {
	return tracedErr(ctx, t, "store.Consume", func(ctx context.Context) error { return t.st.Consume(ctx, key, until) })
}

func (t *tracedStore) AppendEvents(ctx context.Context, evs ...Event) error {
	return tracedErr(ctx, t, "store.AppendEvents", func(ctx context.Context) error { return t.st.AppendEvents(ctx, evs...) })
}

func (t *tracedStore) Events(ctx context.Context, q EventQuery) (EventPage, error) {
	return traced(ctx, t, "store.Events", func(ctx context.Context) (EventPage, error) { return t.st.Events(ctx, q) })
}

func (t *tracedStore) TrimEvents(ctx context.Context, before time.Time) error {
	return tracedErr(ctx, t, "store.TrimEvents", func(ctx context.Context) error { return t.st.TrimEvents(ctx, before) })
}

func (t *tracedStore) GetState(ctx context.Context, key string) ([]byte, error) {
	return traced(ctx, t, "store.GetState", func(ctx context.Context) ([]byte, error) { return t.st.GetState(ctx, key) })
}

func (t *tracedStore) PutState(ctx context.Context, key string, value []byte) error {
	return tracedErr(ctx, t, "store.PutState", func(ctx context.Context) error { return t.st.PutState(ctx, key, value) })
}

func (t *tracedStore) Ping(ctx context.Context) error {
	return tracedErr(ctx, t, "store.Ping", func(ctx context.Context) error { return t.st.Ping(ctx) })
}

// Close has no span: nothing traces a shutdown.
func (t *tracedStore) Close() error { return t.st.Close() }
