// Package delivery carries Tether's event log (DESIGN §10) to outside
// receivers, one event at a time, for every kind of receiver that needs it:
// Standard Webhooks (package webhook) and Shared Signals push (package ssf)
// differ only in how one event is sent, which is a Target's Send.
//
// The queue is the store's own event log: each target has a cursor in the
// store (Manager.State) and is delivered in log order, so a restart or a dead
// receiver loses nothing and a receiver sees events in order. Of many nodes
// sharing the store, the one holding the target's lease (Manager.Lease, one
// per window) delivers; the others wait. Delivery is at least once: a node
// that loses its lease mid-delivery, or a crash between a delivery and the
// cursor write, sends an event again. A failing target is retried with
// exponential backoff and jitter for MaxRetryAge before that event is
// dropped, logged and counted; nothing in a revocation waits for a delivery.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tetherhq/tether"
)

// Target is one receiver of events.
type Target struct {
	// Key names the target's cursor and lease in the store; it must stay the
	// same across restarts and configuration reorderings.
	Key string
	// Label names the target in logs and metrics; never a secret.
	Label string
	// Wants reports whether the target gets e; nil: every event.
	Wants func(e *tether.Event) bool
	// Send delivers one event; an error schedules a retry of the same event.
	Send func(ctx context.Context, e *tether.Event) error
}

// Config configures a Loop. Zero fields take the documented defaults.
type Config struct {
	Manager *tether.Manager // required: the event log, cursors and leases
	// Name is the kind of receiver, in log lines and metric names
	// (tether_<name>_delivered_total…): "webhook", "ssf".
	Name string
	// TargetLabel is the name of the metrics' label that holds a target's
	// Label; default "endpoint".
	TargetLabel string
	// Registerer receives the delivery metrics; nil: none, but the Loop is
	// a prometheus.Collector of them, for an owner that registers later.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time

	// Wake, when set, is the store's change channel: a revocation or a role
	// change anywhere wakes every target at once rather than at its next
	// Poll, so a receiver hears of it within a round trip.
	Wake tether.Watcher

	// MaxRetryAge is how long one event is retried before it is dropped.
	// Default 72 h.
	MaxRetryAge time.Duration
	// Poll is how often an idle target looks for new events; default 1 s.
	Poll time.Duration
	// LeaseWindow is how long one node delivers a target before it must
	// claim it again; default 15 s.
	LeaseWindow time.Duration
}

// Loop delivers events to its targets until Close.
type Loop struct {
	cfg     Config
	m       *tether.Manager
	log     *slog.Logger
	metrics *metrics
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	targets map[string]*running
}

type running struct {
	stop context.CancelFunc
	done chan struct{}
	wake chan struct{} // buffered 1: a pending wake-up is never lost nor queued twice
}

// Backoff bounds: the first retry after about a second, doubling, at most an
// hour apart.
const (
	firstBackoff = time.Second
	maxBackoff   = time.Hour
	pageSize     = 100

	maxRechecks  = 5
	recheckAfter = 10 * time.Millisecond
)

// New checks cfg and starts delivering to targets.
func New(cfg Config, targets ...Target) (*Loop, error) {
	if cfg.Manager == nil || cfg.Name == "" {
		return nil, errors.New("delivery: Config.Manager and Config.Name are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRetryAge <= 0 {
		cfg.MaxRetryAge = 72 * time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.LeaseWindow <= 0 {
		cfg.LeaseWindow = 15 * time.Second
	}
	if cfg.TargetLabel == "" {
		cfg.TargetLabel = "endpoint"
	}
	l := &Loop{cfg: cfg, m: cfg.Manager, log: cfg.Logger, metrics: newMetrics(cfg.Name, cfg.TargetLabel, cfg.Registerer),
		targets: map[string]*running{}}
	l.ctx, l.stop = context.WithCancel(context.Background())
	for _, t := range targets {
		if err := l.Add(t); err != nil {
			l.Close()
			return nil, err
		}
	}
	if cfg.Wake != nil {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			err := cfg.Wake.Watch(l.ctx, func(c tether.Change) {
				if c.Kind == tether.SessionChanged || c.Kind == tether.SubjectChanged {
					l.wakeAll()
				}
			})
			if err != nil && l.ctx.Err() == nil {
				l.log.Warn(cfg.Name+": change channel stopped; delivering on the poll interval", "err", err)
			}
		}()
	}
	return l, nil
}

// Describe implements prometheus.Collector: the Loop's delivery metrics.
func (l *Loop) Describe(ch chan<- *prometheus.Desc) { l.metrics.Describe(ch) }

// Collect implements prometheus.Collector.
func (l *Loop) Collect(ch chan<- prometheus.Metric) { l.metrics.Collect(ch) }

// Add starts delivering to t. A target whose Key is already running is an
// error.
func (l *Loop) Add(t Target) error {
	if t.Key == "" || t.Send == nil {
		return errors.New("delivery: a target needs a Key and a Send")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return errors.New("delivery: loop closed")
	}
	if _, dup := l.targets[t.Key]; dup {
		return fmt.Errorf("delivery: target %s added twice", t.Label)
	}
	// The target's progress starts now, before this node serves a request,
	// so that no event of this run predates it; the goroutine retries if
	// the store cannot say yet.
	if _, err := l.load(l.ctx, t.Key); err != nil {
		l.log.Warn(l.cfg.Name+": cannot read the target's progress; will retry", "target", t.Label, "err", err)
	}
	ctx, stop := context.WithCancel(l.ctx)
	r := &running{stop: stop, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	l.targets[t.Key] = r
	l.wg.Add(1)
	go l.run(ctx, t, r)
	return nil
}

// Remove stops delivering to the target with key and waits for its
// in-flight delivery; its cursor stays in the store, so adding it again
// resumes where it stopped.
func (l *Loop) Remove(key string) {
	l.mu.Lock()
	r := l.targets[key]
	delete(l.targets, key)
	l.mu.Unlock()
	if r != nil {
		r.stop()
		<-r.done
	}
}

// Forget deletes the target's cursor, so that when added again it starts
// from then on. Remove it first.
func (l *Loop) Forget(ctx context.Context, key string) error {
	return l.m.SetState(ctx, key, []byte{})
}

// Close stops delivering and waits for in-flight deliveries to end. What was
// not delivered is delivered by the next node or start.
func (l *Loop) Close() error {
	l.stop()
	l.wg.Wait()
	return nil
}

func (l *Loop) wakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.targets {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// state is a target's progress, kept in the store.
type state struct {
	Cursor       string    `json:"cursor"`
	Since        time.Time `json:"since"` // events before the target was added are not sent
	Attempts     int       `json:"attempts,omitempty"`
	NextAt       time.Time `json:"next_at,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
}

// run delivers t while this node holds its lease. The holder renews the
// lease in the last fifth of each window, so it goes on across the turn
// without a gap; it stops delivering at that point only when the renewal
// fails, so that the next holder rarely overlaps an in-flight delivery.
func (l *Loop) run(ctx context.Context, t Target, r *running) {
	defer l.wg.Done()
	defer close(r.done)
	d := l.cfg.LeaseWindow
	var held time.Time // end of the window this node holds; zero: none
	rechecks := 0      // quick looks left after a wake-up
	for {
		now := l.cfg.Now()
		var err error
		switch {
		case now.Before(held.Add(-d / 5)):
		case now.Before(held):
			var next time.Time
			var ok bool
			if next, ok, err = l.m.Renew(ctx, t.Key, d, held); ok {
				held = next
			}
		default:
			var until time.Time
			var ok bool
			until, ok, err = l.m.Lease(ctx, t.Key, d)
			held = time.Time{}
			if ok {
				held = until
				if !now.Before(held.Add(-d / 5)) { // claimed late in the window: go on into the next
					if next, ok, _ := l.m.Renew(ctx, t.Key, d, held); ok {
						held = next
					}
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			l.log.Warn(l.cfg.Name+": cannot claim the target's lease; will retry", "target", t.Label, "err", err)
		}
		deadline := held.Add(-d / 5)
		var wake <-chan struct{}
		wait := l.cfg.Poll
		if l.cfg.Now().Before(deadline) {
			if err := l.drain(ctx, t, deadline); err != nil && ctx.Err() == nil {
				l.log.Warn(l.cfg.Name+": delivery paused", "target", t.Label, "err", err)
			}
			// Only the holder is woken by changes: the others would only
			// fail to claim the lease.
			wake = r.wake
			wait = min(wait, time.Until(deadline))
			if rechecks > 0 {
				// A change can be announced before its event is readable
				// (PostgreSQL shows an event once every older transaction
				// has ended): look again soon rather than at the next Poll.
				rechecks--
				wait = min(wait, recheckAfter)
			}
		} else if !held.IsZero() {
			wait = min(wait, time.Until(held)) // the renewal failed: wait for the turn
		}
		timer := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-wake:
			timer.Stop()
			rechecks = maxRechecks
		case <-timer.C:
		}
	}
}

// drain delivers the target's pending events, in order, until deadline, the
// log's end, or a failure (which schedules a retry).
func (l *Loop) drain(ctx context.Context, t Target, deadline time.Time) error {
	st, err := l.load(ctx, t.Key)
	if err != nil {
		return err
	}
	saved := st
	defer func() {
		if st != saved {
			if err := l.save(ctx, t.Key, st); err != nil && ctx.Err() == nil {
				l.log.Warn(l.cfg.Name+": cannot save progress; events may be sent again", "target", t.Label, "err", err)
			}
		}
	}()
	if l.cfg.Now().Before(st.NextAt) {
		return nil // backing off
	}
	for l.cfg.Now().Before(deadline) {
		p, err := l.m.Events(ctx, tether.EventQuery{After: st.Cursor, Limit: pageSize})
		if err != nil {
			return err
		}
		if len(p.Events) == 0 {
			l.metrics.observe(t.Label, 0, 0)
			return nil
		}
		for i := range p.Events {
			e := &p.Events[i]
			if e.Time.Before(st.Since) || (t.Wants != nil && !t.Wants(e)) {
				st.Cursor = e.Cursor
				continue
			}
			l.metrics.observe(t.Label, len(p.Events)-i, l.cfg.Now().Sub(e.Time))
			if !l.cfg.Now().Before(deadline) || ctx.Err() != nil {
				return nil
			}
			if err := t.Send(ctx, e); err != nil {
				l.metrics.failed.WithLabelValues(t.Label).Inc()
				now := l.cfg.Now()
				if st.FailingSince.IsZero() {
					st.FailingSince = now
				}
				if now.Sub(st.FailingSince) >= l.cfg.MaxRetryAge {
					l.log.Error(l.cfg.Name+": dropping an event after retrying it too long",
						"target", t.Label, "event", e.ID, "type", e.Type, "since", st.FailingSince, "err", err)
					l.metrics.dropped.WithLabelValues(t.Label).Inc()
					st = state{Cursor: e.Cursor, Since: st.Since}
					continue
				}
				st.Attempts++
				st.NextAt = now.Add(backoff(st.Attempts))
				l.log.Warn(l.cfg.Name+": delivery failed; will retry", "target", t.Label, "event", e.ID,
					"attempt", st.Attempts, "next", st.NextAt, "err", err)
				return nil
			}
			l.metrics.delivered.WithLabelValues(t.Label).Inc()
			st = state{Cursor: e.Cursor, Since: st.Since}
			// Saved after each delivery: a crash then repeats one event at most.
			if err := l.save(ctx, t.Key, st); err != nil {
				return err
			}
			saved = st
		}
	}
	return nil
}

// backoff is the wait before attempt n+1: exponential with full jitter in
// its upper half, so retries from many targets do not fall in step.
func backoff(attempts int) time.Duration {
	b := firstBackoff << min(attempts-1, 20)
	b = min(b, maxBackoff)
	return b/2 + rand.N(b/2+1)
}

func (l *Loop) load(ctx context.Context, key string) (state, error) {
	raw, err := l.m.State(ctx, key)
	if err != nil {
		return state{}, err
	}
	if len(raw) == 0 { // a new target starts from now
		st := state{Since: l.cfg.Now()}
		return st, l.save(ctx, key, st)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return state{}, fmt.Errorf("corrupt %s state: %w", l.cfg.Name, err)
	}
	return st, nil
}

func (l *Loop) save(ctx context.Context, key string, st state) error {
	b, _ := json.Marshal(st)
	return l.m.SetState(ctx, key, b)
}

type metrics struct {
	delivered, failed, dropped *prometheus.CounterVec
	pending, oldest            *prometheus.GaugeVec
}

func newMetrics(name, label string, reg prometheus.Registerer) *metrics {
	p := "tether_" + name + "_"
	by := []string{label}
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: p + "delivered_total", Help: "Events delivered."}, by),
		failed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: p + "failed_total", Help: "Failed delivery attempts (each is retried)."}, by),
		dropped:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: p + "dropped_total", Help: "Events given up on after retrying for the maximum retry age."}, by),
		pending:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: p + "pending", Help: "Events waiting for delivery, as last seen by the delivering node (at most one page)."}, by),
		oldest:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: p + "oldest_pending_seconds", Help: "Age of the oldest event waiting for delivery."}, by),
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.delivered, m.failed, m.dropped, m.pending, m.oldest}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *metrics) observe(target string, pending int, oldest time.Duration) {
	m.pending.WithLabelValues(target).Set(float64(pending))
	m.oldest.WithLabelValues(target).Set(oldest.Seconds())
}
