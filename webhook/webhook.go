// Package webhook delivers Tether's events (DESIGN §10) to HTTP endpoints as
// Standard Webhooks (https://www.standardwebhooks.com): each event is one
// POST with webhook-id (the event's ID, stable across retries, for dedupe),
// webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>"; the body is {"type","timestamp","data":<event>}.
//
// The queue is the store's own event log, carried by internal/delivery (the
// loop Shared Signals push uses too): each endpoint has a cursor in the
// store and is delivered in log order, one event at a time, so a restart or
// a dead receiver loses nothing and an endpoint sees events in order. Of many
// nodes sharing the store, the one holding the endpoint's lease delivers.
// Delivery is at least once: a repeat carries the same webhook-id. A failing
// endpoint is retried with exponential backoff and jitter for MaxRetryAge
// (default 72 h) before that event is dropped, logged and counted; nothing in
// a revocation waits for a webhook.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/delivery"
	"github.com/tetherhq/tether/internal/urlpolicy"
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

	// Transport, when Client is nil, carries the default client's requests
	// (such as one that adds trace context); nil: http.DefaultTransport.
	Transport http.RoundTripper
}

// Deliverer delivers events to the configured endpoints until Close.
type Deliverer struct {
	cfg  Config
	loop *delivery.Loop
}

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
			return nil, fmt.Errorf("webhook: endpoint %s has no secret", urlpolicy.Redact(ep.URL))
		}
		for _, t := range ep.Events {
			if !slices.Contains(tether.EventTypes, t) {
				return nil, fmt.Errorf("webhook: endpoint %s: unknown event type %q", urlpolicy.Redact(ep.URL), t)
			}
		}
	}
	if cfg.Client == nil {
		cfg.Client = delivery.NewClient(cfg.Transport)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Deliverer{cfg: cfg}
	targets := make([]delivery.Target, len(cfg.Endpoints))
	for i, ep := range cfg.Endpoints {
		targets[i] = delivery.Target{
			Key: key(ep), Label: urlpolicy.Redact(ep.URL),
			Wants: func(e *tether.Event) bool { return len(ep.Events) == 0 || slices.Contains(ep.Events, e.Type) },
			Send:  func(ctx context.Context, e *tether.Event) error { return d.send(ctx, ep, e) },
		}
	}
	loop, err := delivery.New(delivery.Config{
		Manager: cfg.Manager, Name: "webhook", Registerer: cfg.Registerer, Logger: cfg.Logger, Now: cfg.Now,
		MaxRetryAge: cfg.MaxRetryAge, Poll: cfg.Poll, LeaseWindow: cfg.LeaseWindow,
	}, targets...)
	if err != nil {
		return nil, err
	}
	d.loop = loop
	return d, nil
}

// Close stops delivering and waits for in-flight deliveries to end. What was
// not delivered is delivered by the next node or start.
func (d *Deliverer) Close() error { return d.loop.Close() }

// CheckURL accepts https URLs, and plain http only to a loopback address.
func CheckURL(raw string) error {
	if err := urlpolicy.HTTPSOrLoopback(raw); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}

// key names an endpoint's state and lease by its URL, so that reordering the
// configuration keeps each endpoint's progress.
func key(ep Endpoint) string {
	sum := sha256.Sum256([]byte(ep.URL))
	return "webhook/" + hex.EncodeToString(sum[:8])
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
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "tether-webhook/1")
	h.Set("webhook-id", e.ID)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", Sign(ep.Secret, e.ID, ts, body))
	status, _, err := delivery.Post(ctx, d.cfg.Client, ep.URL, h, body)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("the endpoint answered %d", status)
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
