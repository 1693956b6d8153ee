package ssf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/delivery"
	"github.com/tetherhq/tether/internal/urlpolicy"
)

// PushReceiver is a receiver configured in the file (ssf.receivers): its
// stream covers every subject and gets every event, pushed to Endpoint.
type PushReceiver struct {
	Audience      string // the aud of its SETs
	Endpoint      string // https, or plain http to a loopback address
	Authorization string // sent as "Authorization: Bearer <it>"
}

// Client may manage one stream through the stream management API, with
// "Authorization: Bearer <Token>"; its SETs are addressed to Audience.
type Client struct {
	Audience string
	Token    string
}

// TransmitterConfig configures a Transmitter. Zero fields take the
// documented defaults.
type TransmitterConfig struct {
	Issuer  string          // required: this node's identity, the iss of its SETs
	Manager *tether.Manager // required: the event log, cursors and leases
	Keys    *handshake.KeyRing
	// Alg is the key of Keys that signs: handshake.AlgEdDSA (default) or
	// handshake.AlgES256.
	Alg string

	Receivers []PushReceiver
	Clients   []Client

	// HTTPClient pushes; default: Transport (nil: the default one), a 10 s
	// timeout and no redirects.
	HTTPClient *http.Client
	Transport  http.RoundTripper
	Logger     *slog.Logger
	// AllowPrivateEndpoints lets push streams made through the management
	// API name loopback, private and plain-http endpoints, for development
	// and tests. Off, such an endpoint must be https to a public address,
	// checked again at every dial (endpoint.go).
	AllowPrivateEndpoints bool
	// Wake is the store's change channel: a revocation wakes the pushes at
	// once rather than at the next Poll. Set it (a Store that is a
	// tether.Watcher) to meet the propagation budget.
	Wake tether.Watcher
	// Poll, LeaseWindow: see delivery.Config. Sync is how often a node
	// rereads the streams other nodes changed; default 2 s.
	Poll, LeaseWindow, Sync time.Duration
	Now                     func() time.Time
}

// Transmitter is the SSF transmitter of one node. Every node runs one; of
// nodes sharing a store, one delivers each stream at a time.
type Transmitter struct {
	cfg  TransmitterConfig
	sign signer
	loop *delivery.Loop
	log  *slog.Logger
	// public pushes to endpoints that clients named (nil when
	// AllowPrivateEndpoints): it dials public addresses only.
	public *http.Client

	applyMu sync.Mutex
	mu      sync.Mutex
	running map[string]*Stream // push streams of clients delivered by the loop, by stream ID

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Stream is one SSF event stream (SSF 1.0 §8.1.1) as the store keeps it.
// A client has at most one.
type Stream struct {
	ID              string    `json:"stream_id"`
	Audience        string    `json:"aud"`
	EventsRequested []string  `json:"events_requested,omitempty"`
	Delivery        Delivery  `json:"delivery"`
	Description     string    `json:"description,omitempty"`
	Status          string    `json:"status"`
	Reason          string    `json:"reason,omitempty"`
	AllSubjects     bool      `json:"all_subjects,omitempty"` // else only Subjects
	Subjects        []string  `json:"subjects,omitempty"`     // this node's subject names
	LastVerify      time.Time `json:"last_verify,omitzero"`
}

// Delivery is a stream's delivery method (SSF 1.0 §8.1.1.1).
type Delivery struct {
	Method              string `json:"method"`
	EndpointURL         string `json:"endpoint_url,omitempty"`
	AuthorizationHeader string `json:"authorization_header,omitempty"`
}

// Stream statuses (SSF 1.0 §8.1.2).
const (
	StatusEnabled  = "enabled"
	StatusPaused   = "paused"
	StatusDisabled = "disabled"
)

// Limits.
const (
	MaxStreamSubjects = 10_000
	minVerifyInterval = 10 // seconds between verification requests
	maxPollEvents     = 100
)

// supported lists the event types every stream can ask for.
var supported = []string{EventSessionRevoked, EventTokenClaimsChange}

// Errors of the management API, for the HTTP layer to word.
var (
	ErrUnauthorized = errors.New("ssf: not an authorised receiver")
	ErrNoStream     = errors.New("ssf: no such stream")
	ErrStreamExists = errors.New("ssf: this receiver has a stream already")
	ErrTooSoon      = errors.New("ssf: verification requested too soon")
)

// NewTransmitter checks cfg and starts pushing to the configured receivers
// and to the push streams made through the management API.
func NewTransmitter(cfg TransmitterConfig) (*Transmitter, error) {
	if cfg.Issuer == "" || cfg.Manager == nil || cfg.Keys == nil {
		return nil, errors.New("ssf: TransmitterConfig needs Issuer, Manager and Keys")
	}
	if cfg.Alg == "" {
		cfg.Alg = handshake.AlgEdDSA
	}
	if cfg.Alg != handshake.AlgEdDSA && cfg.Alg != handshake.AlgES256 {
		return nil, fmt.Errorf("ssf: SETs are signed with EdDSA or ES256, not %q", cfg.Alg)
	}
	if _, _, err := cfg.Keys.Signer(cfg.Alg); err != nil {
		return nil, err
	}
	auds := map[string]bool{}
	for _, r := range cfg.Receivers {
		if r.Audience == "" || r.Authorization == "" {
			return nil, errors.New("ssf: a receiver needs an audience and an authorization secret")
		}
		if err := checkEndpoint(r.Endpoint); err != nil {
			return nil, fmt.Errorf("ssf: receiver %s: %w", r.Audience, err)
		}
	}
	for _, c := range cfg.Clients {
		if c.Audience == "" || len(c.Token) < 16 {
			return nil, errors.New("ssf: a client needs an audience and a token of at least 16 characters")
		}
		if auds[c.Audience] {
			return nil, fmt.Errorf("ssf: client %s listed twice", c.Audience)
		}
		auds[c.Audience] = true
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = delivery.NewClient(cfg.Transport)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sync <= 0 {
		cfg.Sync = 2 * time.Second
	}
	t := &Transmitter{cfg: cfg, sign: signer{ring: cfg.Keys, alg: cfg.Alg}, log: cfg.Logger, running: map[string]*Stream{}}
	if !cfg.AllowPrivateEndpoints {
		t.public = publicClient()
	}
	var targets []delivery.Target
	for _, r := range cfg.Receivers {
		s := &Stream{ID: configuredID(r.Audience), Audience: r.Audience, Status: StatusEnabled, AllSubjects: true,
			Delivery: Delivery{Method: DeliveryPush, EndpointURL: r.Endpoint, AuthorizationHeader: "Bearer " + r.Authorization}}
		targets = append(targets, t.target(s.ID, s.Audience, func() *Stream { return s }))
	}
	loop, err := delivery.New(delivery.Config{
		Manager: cfg.Manager, Name: "ssf", TargetLabel: "audience", Logger: cfg.Logger, Now: cfg.Now,
		Wake: cfg.Wake, Poll: cfg.Poll, LeaseWindow: cfg.LeaseWindow,
	}, targets...)
	if err != nil {
		return nil, err
	}
	t.loop = loop
	ctx, stop := context.WithCancel(context.Background())
	t.stop = stop
	if len(cfg.Clients) > 0 {
		t.wg.Add(1)
		go t.syncStreams(ctx)
	}
	return t, nil
}

// Describe implements prometheus.Collector: the push delivery metrics,
// tether_ssf_delivered_total, _failed_total, _dropped_total, _pending and
// _oldest_pending_seconds, by receiver audience. The server registers them
// with its own (api.Config.Transmitter).
func (t *Transmitter) Describe(ch chan<- *prometheus.Desc) { t.loop.Describe(ch) }

// Collect implements prometheus.Collector.
func (t *Transmitter) Collect(ch chan<- prometheus.Metric) { t.loop.Collect(ch) }

// Close stops delivering.
func (t *Transmitter) Close() error {
	t.stop()
	t.wg.Wait()
	return t.loop.Close()
}

// checkEndpoint applies the rule for every URL Tether sends to: https, or
// plain http to a loopback address.
func checkEndpoint(raw string) error { return urlpolicy.HTTPSOrLoopback(raw) }

// configuredID names a configured receiver's stream by its audience, so its
// cursor survives reordering the configuration.
func configuredID(aud string) string { return configuredPrefix + hashHex(aud) }

const configuredPrefix = "cfg-"

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// target is the delivery of a push stream: each event it wants, as a SET
// pushed to its endpoint. current returns the stream as last read (nil once
// it is gone).
func (t *Transmitter) target(id, aud string, current func() *Stream) delivery.Target {
	return delivery.Target{
		Key: "ssf/" + id, Label: aud,
		Wants: func(e *tether.Event) bool {
			s := current()
			if s == nil || !s.covers(e) {
				return false
			}
			c, ok := fromEvent(t.cfg.Issuer, aud, e, time.Time{})
			return ok && requested(s, c)
		},
		Send: func(ctx context.Context, e *tether.Event) error {
			s := current()
			c, ok := fromEvent(t.cfg.Issuer, aud, e, t.cfg.Now())
			if s == nil || !ok {
				return nil
			}
			return t.push(ctx, s, c)
		},
	}
}

// requested reports whether s asked for c's event type (all supported types
// when it named none).
func requested(s *Stream, c *Claims) bool {
	if len(s.EventsRequested) == 0 {
		return true
	}
	for typ := range c.Events {
		if slices.Contains(s.EventsRequested, typ) {
			return true
		}
	}
	return false
}

// pushError is a receiver's refusal of a SET (RFC 8935 §2.3): retrying the
// same SET cannot help, so it is logged and the stream moves on.
type pushError struct{ Err, Description string }

// push sends one SET (RFC 8935 §2): 202 is success; a 400 is a refusal,
// logged and not retried; anything else is retried.
func (t *Transmitter) push(ctx context.Context, s *Stream, c *Claims) error {
	set, err := t.sign.sign(c)
	if err != nil {
		return err
	}
	h := http.Header{}
	h.Set("Content-Type", ContentType)
	h.Set("Accept", "application/json")
	h.Set("User-Agent", "tether-ssf/1")
	if s.Delivery.AuthorizationHeader != "" {
		h.Set("Authorization", s.Delivery.AuthorizationHeader)
	}
	client := t.cfg.HTTPClient
	if t.public != nil && !strings.HasPrefix(s.ID, configuredPrefix) {
		client = t.public // a client named this endpoint
	}
	status, body, err := delivery.Post(ctx, client, s.Delivery.EndpointURL, h, []byte(set))
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusAccepted:
		return nil
	case status == http.StatusBadRequest:
		var pe pushError
		json.Unmarshal(body, &struct {
			Err  *string `json:"err"`
			Desc *string `json:"description"`
		}{&pe.Err, &pe.Description})
		t.log.Warn("ssf: the receiver refused a SET; not retried", "receiver", s.Audience, "jti", c.ID,
			"err", truncate(pe.Err, 64), "description", truncate(pe.Description, 200))
		return nil
	default:
		return fmt.Errorf("the receiver answered %d", status)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Metadata is the transmitter configuration metadata (SSF 1.0 §7.1),
// served at /.well-known/ssf-configuration; base is the public URL of
// this node (its issuer).
func (t *Transmitter) Metadata() map[string]any {
	base := strings.TrimSuffix(t.cfg.Issuer, "/")
	return map[string]any{
		"spec_version":               "1_0",
		"issuer":                     t.cfg.Issuer,
		"jwks_uri":                   base + "/.well-known/jwks.json",
		"delivery_methods_supported": []string{DeliveryPush, DeliveryPoll},
		"configuration_endpoint":     base + PathStreams,
		"status_endpoint":            base + PathStatus,
		"add_subject_endpoint":       base + PathAddSubject,
		"remove_subject_endpoint":    base + PathRemoveSubject,
		"verification_endpoint":      base + PathVerify,
		"authorization_schemes":      []map[string]string{{"spec_urn": "urn:ietf:rfc:6750"}},
		"default_subjects":           "NONE",
	}
}

// The paths of the management API on the public listener.
const (
	PathStreams       = "/ssf/streams"
	PathStatus        = "/ssf/status"
	PathAddSubject    = "/ssf/subjects:add"
	PathRemoveSubject = "/ssf/subjects:remove"
	PathVerify        = "/ssf/verify"
	PathPoll          = "/ssf/poll"
)

// Authorize returns the client whose token authorization ("Bearer …")
// carries, or ErrUnauthorized.
func (t *Transmitter) Authorize(authorization string) (*Client, error) {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || tok == "" {
		return nil, ErrUnauthorized
	}
	var found *Client
	for i := range t.cfg.Clients { // every entry compared, so timing says nothing
		c := &t.cfg.Clients[i]
		if subtle.ConstantTimeCompare([]byte(tok), []byte(c.Token)) == 1 {
			found = c
		}
	}
	if found == nil {
		return nil, ErrUnauthorized
	}
	return found, nil
}
