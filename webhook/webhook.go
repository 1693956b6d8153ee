// Package webhook delivers Tether's events (DESIGN §10) to HTTP endpoints as
// Standard Webhooks (https://www.standardwebhooks.com): each event is one
// POST with webhook-id (the event's ID, stable across retries, for dedupe),
// webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>"; the body is {"type","timestamp","data":<event>}.
//
// The queue is the store's own event log: each endpoint has a cursor in the
// store (Manager.State) and is delivered in log order, one event at a time, so
// a restart or a dead receiver loses nothing and an endpoint sees events in
// order. Of many nodes sharing the store, the one holding the endpoint's
// lease (Manager.Lease, one per window) delivers; the others wait. Delivery is
// at least once: a node that loses its lease mid-delivery, or a crash between
// a delivery and the cursor write, sends an event again with the same
// webhook-id. A failing endpoint is retried with exponential backoff and
// jitter for MaxRetryAge (default 72 h) before that event is dropped, logged
// and counted; nothing in a revocation waits for a webhook.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tetherhq/tether"
)

// Endpoint is one receiver of events.
type Endpoint struct {
	URL    string   // https, or plain http to a loopback address for development
	Secret []byte   // the HMAC key: the decoded part of a "whsec_…" secret
	Events []string // the event types it wants; none: every type
}

// ParseSecret decodes a Standard Webhooks secret, "whsec_" + base64. Its
// errors never contain the secret.
func ParseSecret(s string) ([]byte, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), "whsec_")
	if !ok {
		return nil, errors.New(`a webhook secret starts with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New(`a webhook secret is "whsec_" followed by standard base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, errors.New("a webhook secret holds 24 to 64 bytes")
	}
	return key, nil
}

// Config configures a Deliverer. Zero fields take the documented defaults.
type Config struct {
	Manager   *tether.Manager // required: the event log, cursors and leases
	Endpoints []Endpoint

	// Client sends the requests; default: a 10 s timeout and no redirects (a
	// redirect is a failed delivery, so events never go where not configured).
	Client *http.Client
	Logger *slog.Logger
	// Registerer receives the delivery metrics; nil: none.
	Registerer prometheus.Registerer
	Now        func() time.Time

	// MaxRetryAge is how long one event is retried before it is dropped.
	// Default 72 h.
	MaxRetryAge time.Duration
	// Poll is how often an idle endpoint looks for new events; default 1 s.
	Poll time.Duration
	// LeaseWindow is how long one node delivers an endpoint before it must
	// claim it again; default 15 s.
	LeaseWindow time.Duration
}

// Deliverer delivers events to the configured endpoints until Close.
type Deliverer struct {
	cfg     Config
	m       *tether.Manager
	log     *slog.Logger
	metrics *metrics
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// Backoff bounds: the first retry after about a second, doubling, at most an
// hour apart.
const (
	firstBackoff = time.Second
	maxBackoff   = time.Hour
	pageSize     = 100
)

// New checks cfg and starts delivering.
func New(cfg Config) (*Deliverer, error) {
	if cfg.Manager == nil {
		return nil, errors.New("webhook: Config.Manager is required")
	}
	for _, ep := range cfg.Endpoints {
		if err := CheckURL(ep.URL); err != nil {
			return nil, err
		}
		if len(ep.Secret) == 0 {
			return nil, fmt.Errorf("webhook: endpoint %s has no secret", redactURL(ep.URL))
		}
		for _, t := range ep.Events {
			if !slices.Contains(tether.EventTypes, t) {
				return nil, fmt.Errorf("webhook: endpoint %s: unknown event type %q", redactURL(ep.URL), t)
			}
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
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
	d := &Deliverer{cfg: cfg, m: cfg.Manager, log: cfg.Logger, metrics: newMetrics(cfg.Registerer)}
	ctx, stop := context.WithCancel(context.Background())
	d.stop = stop
	for _, ep := range cfg.Endpoints {
		d.wg.Add(1)
		go d.run(ctx, ep)
	}
	return d, nil
}

// Close stops delivering and waits for in-flight deliveries to end. What was
// not delivered is delivered by the next node or start.
func (d *Deliverer) Close() error {
	d.stop()
	d.wg.Wait()
	return nil
}

// CheckURL accepts https URLs, and plain http only to a loopback address.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("webhook: %q is not an absolute URL without credentials", redactURL(raw))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("webhook: %s must be https (plain http only to a loopback address)", redactURL(raw))
}

// redactURL keeps scheme, host and path: a query may carry a token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// state is an endpoint's progress, kept in the store.
type state struct {
	Cursor       string    `json:"cursor"`
	Since        time.Time `json:"since"` // events before the endpoint was added are not sent
	Attempts     int       `json:"attempts,omitempty"`
	NextAt       time.Time `json:"next_at,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
}

// key names an endpoint's state and lease by its URL, so that reordering the
// configuration keeps each endpoint's progress.
func key(ep Endpoint) string {
	sum := sha256.Sum256([]byte(ep.URL))
	return "webhook/" + hex.EncodeToString(sum[:8])
}

func (d *Deliverer) run(ctx context.Context, ep Endpoint) {
	defer d.wg.Done()
	label := redactURL(ep.URL)
	for {
		until, ok, err := d.m.Lease(ctx, key(ep), d.cfg.LeaseWindow)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook: cannot claim the endpoint's lease; will retry", "endpoint", label, "err", err)
		}
		if ok {
			// Stop short of the window's end, so that the next holder rarely
			// overlaps an in-flight delivery.
			if err := d.drain(ctx, ep, label, until.Add(-d.cfg.LeaseWindow/5)); err != nil && ctx.Err() == nil {
				d.log.Warn("webhook: delivery paused", "endpoint", label, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.cfg.Poll):
		}
	}
}

// drain delivers the endpoint's pending events, in order, until deadline, the
// log's end, or a failure (which schedules a retry).
func (d *Deliverer) drain(ctx context.Context, ep Endpoint, label string, deadline time.Time) error {
	st, err := d.load(ctx, ep)
	if err != nil {
		return err
	}
	saved := st
	defer func() {
		if st != saved {
			if err := d.save(ctx, ep, st); err != nil && ctx.Err() == nil {
				d.log.Warn("webhook: cannot save progress; events may be sent again", "endpoint", label, "err", err)
			}
		}
	}()
	if d.cfg.Now().Before(st.NextAt) {
		return nil // backing off
	}
	for d.cfg.Now().Before(deadline) {
		p, err := d.m.Events(ctx, tether.EventQuery{After: st.Cursor, Limit: pageSize})
		if err != nil {
			return err
		}
		if len(p.Events) == 0 {
			d.metrics.observe(label, 0, 0)
			return nil
		}
		for i := range p.Events {
			e := &p.Events[i]
			if e.Time.Before(st.Since) || (len(ep.Events) > 0 && !slices.Contains(ep.Events, e.Type)) {
				st.Cursor = e.Cursor
				continue
			}
			d.metrics.observe(label, len(p.Events)-i, d.cfg.Now().Sub(e.Time))
			if !d.cfg.Now().Before(deadline) || ctx.Err() != nil {
				return nil
			}
			if err := d.send(ctx, ep, e); err != nil {
				d.metrics.failed.WithLabelValues(label).Inc()
				now := d.cfg.Now()
				if st.FailingSince.IsZero() {
					st.FailingSince = now
				}
				if now.Sub(st.FailingSince) >= d.cfg.MaxRetryAge {
					d.log.Error("webhook: dropping an event after retrying it too long",
						"endpoint", label, "event", e.ID, "type", e.Type, "since", st.FailingSince, "err", err)
					d.metrics.dropped.WithLabelValues(label).Inc()
					st = state{Cursor: e.Cursor, Since: st.Since}
					continue
				}
				st.Attempts++
				st.NextAt = now.Add(backoff(st.Attempts))
				d.log.Warn("webhook: delivery failed; will retry", "endpoint", label, "event", e.ID,
					"attempt", st.Attempts, "next", st.NextAt, "err", err)
				return nil
			}
			d.metrics.delivered.WithLabelValues(label).Inc()
			st = state{Cursor: e.Cursor, Since: st.Since}
			// Saved after each delivery: a crash then repeats one event at most.
			if err := d.save(ctx, ep, st); err != nil {
				return err
			}
			saved = st
		}
	}
	return nil
}

// backoff is the wait before attempt n+1: exponential with full jitter in
// its upper half, so retries from many endpoints do not fall in step.
func backoff(attempts int) time.Duration {
	b := firstBackoff << min(attempts-1, 20)
	b = min(b, maxBackoff)
	return b/2 + rand.N(b/2+1)
}

func (d *Deliverer) load(ctx context.Context, ep Endpoint) (state, error) {
	raw, err := d.m.State(ctx, key(ep))
	if err != nil {
		return state{}, err
	}
	if raw == nil { // a new endpoint starts from now
		st := state{Since: d.cfg.Now()}
		return st, d.save(ctx, ep, st)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return state{}, fmt.Errorf("corrupt webhook state: %w", err)
	}
	return st, nil
}

func (d *Deliverer) save(ctx context.Context, ep Endpoint, st state) error {
	b, _ := json.Marshal(st)
	return d.m.SetState(ctx, key(ep), b)
}

// payload is the body of a delivery.
type payload struct {
	Type      string        `json:"type"`
	Timestamp time.Time     `json:"timestamp"`
	Data      *tether.Event `json:"data"`
}

func (d *Deliverer) send(ctx context.Context, ep Endpoint, e *tether.Event) error {
	body, err := json.Marshal(payload{Type: e.Type, Timestamp: e.Time, Data: e})
	if err != nil {
		return err
	}
	ts := d.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tether-webhook/1")
	req.Header.Set("webhook-id", e.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(ep.Secret, e.ID, ts, body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a token in its query
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the endpoint answered %d", resp.StatusCode)
	}
	return nil
}

// Sign returns the webhook-signature header value for one delivery.
func Sign(secret []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

type metrics struct {
	delivered, failed, dropped *prometheus.CounterVec
	pending, oldest            *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_webhook_delivered_total", Help: "Events delivered to webhook endpoints."}, []string{"endpoint"}),
		failed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_webhook_failed_total", Help: "Failed webhook delivery attempts (each is retried)."}, []string{"endpoint"}),
		dropped:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_webhook_dropped_total", Help: "Events given up on after retrying for the maximum retry age."}, []string{"endpoint"}),
		pending:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tether_webhook_pending", Help: "Events waiting for delivery, as last seen by the delivering node (at most one page)."}, []string{"endpoint"}),
		oldest:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tether_webhook_oldest_pending_seconds", Help: "Age of the oldest event waiting for delivery."}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.failed, m.dropped, m.pending, m.oldest)
	}
	return m
}

func (m *metrics) observe(endpoint string, pending int, oldest time.Duration) {
	m.pending.WithLabelValues(endpoint).Set(float64(pending))
	m.oldest.WithLabelValues(endpoint).Set(oldest.Seconds())
}
