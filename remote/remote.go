// Package remote validates Tether session tokens from a Go service that is not
// the Tether server and has no access to its store. It asks the server's admin
// API (RFC 7662 introspection) and keeps the answers in the library's own
// cache, which the server's change stream (GET /v1/changes) keeps honest: a
// revocation or role change on any node drops the cached entry at once, no
// entry is served past the staleness bound, and while the stream is down
// nothing is served from the cache at all.
//
// Validate answers as tether.Manager.Validate does, so a *Client works
// wherever a tether.Validator does, including tether.RequireSession (which,
// seeing no DPoP proof checked here, refuses DPoP-bound sessions):
//
//	c, err := remote.New(remote.Config{AdminURL: "http://127.0.0.1:8081", AdminKey: key})
//	…
//	defer c.Close()
//	http.Handle("/", tether.RequireSession(c)(app))
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/sse"
)

// Config configures a Client. Zero fields take the documented defaults.
type Config struct {
	// AdminURL is the base URL of the server's admin API
	// (tether serve --admin-addr), such as "http://127.0.0.1:8081". Required.
	AdminURL string
	// AdminKey is the server's admin key. Required.
	AdminKey string
	// HTTPClient makes the calls. Its Timeout must be zero, since the change
	// stream is one long response; introspection is bounded by
	// IntrospectTimeout instead. Default: a client of its own that keeps up
	// to 64 idle connections to the server.
	HTTPClient *http.Client
	// IntrospectTimeout bounds one introspection call. Default 5s.
	IntrospectTimeout time.Duration
	// MaxStaleness bounds how long a cached answer may be served. Default 1s,
	// as the Manager's; negative: no cache, every Validate asks the server.
	MaxStaleness time.Duration
	// CacheSize caps the number of cached sessions. Default 100,000.
	CacheSize int
	// Now is the cache's clock. Default time.Now.
	Now func() time.Time
	// Logger receives the stream's ups and downs; never tokens or the key.
	// Default slog.Default().
	Logger *slog.Logger
}

// Reconnection backoff of the change stream: doubling from minBackoff up to
// maxBackoff, jittered so that many clients do not reconnect in lockstep.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// streamIdle is how long the stream may stay silent before it is taken for
// dead: the server sends a heartbeat at least every 15 s. Until then the
// cache's staleness bound still caps what a silently dead stream can cost.
const streamIdle = 35 * time.Second

// Client validates tokens against a Tether server. It is safe for concurrent
// use. Close it to stop following the change stream.
type Client struct {
	cfg           Config
	introspectURL string
	changesURL    string
	http          *http.Client
	cache         *tether.ValidationCache
	log           *slog.Logger
	connected     atomic.Bool
	stop          context.CancelFunc
	wg            sync.WaitGroup
}

var _ tether.Validator = (*Client)(nil)

// New returns a Client and starts following the server's change stream. It
// does not wait for the stream: until it is up, every Validate asks the
// server.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.AdminURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("remote: Config.AdminURL must be an http or https URL")
	}
	if cfg.AdminKey == "" {
		return nil, errors.New("remote: Config.AdminKey is required")
	}
	if cfg.HTTPClient == nil {
		// Keep-alive connections for as many concurrent introspections as
		// a busy service makes, not net/http's default of two per host.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	if cfg.HTTPClient.Timeout != 0 {
		return nil, errors.New("remote: Config.HTTPClient must have no Timeout (the change stream is one long response); set IntrospectTimeout")
	}
	if cfg.IntrospectTimeout <= 0 {
		cfg.IntrospectTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{
		cfg:           cfg,
		introspectURL: base.JoinPath("v1", "introspect").String(),
		changesURL:    base.JoinPath("v1", "changes").String(),
		http:          cfg.HTTPClient,
		cache:         tether.NewValidationCache(tether.CacheConfig{MaxStaleness: cfg.MaxStaleness, Size: cfg.CacheSize, Now: cfg.Now}),
		log:           cfg.Logger,
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.follow(ctx)
	}()
	return c, nil
}

// Close stops following the change stream; Validate then asks the server
// every time.
func (c *Client) Close() error {
	c.stop()
	c.wg.Wait()
	return nil
}

// Connected reports whether the change stream is up, which is when Validate
// may answer from the cache.
func (c *Client) Connected() bool { return c.connected.Load() }

// Validate returns the live session a token stands for, as
// tether.Manager.Validate does: an error wrapping tether.ErrInvalidToken for
// anything but a live session (a malformed token without a call), and one
// wrapping tether.ErrUnavailable when the server cannot say.
func (c *Client) Validate(ctx context.Context, rawToken string) (*tether.Session, error) {
	return c.cache.Validate(ctx, rawToken, c.introspect)
}

func (c *Client) introspect(ctx context.Context, rawToken string) (*tether.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.IntrospectTimeout)
	defer cancel()
	body := strings.NewReader(url.Values{"token": {rawToken}}.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.introspectURL, body)
	if err != nil {
		return nil, fmt.Errorf("remote: introspect: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+c.cfg.AdminKey)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote: introspect: %w: %w", tether.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (is the admin key right?)"
		}
		return nil, fmt.Errorf("remote: introspect: %w: the server answered %d%s", tether.ErrUnavailable, resp.StatusCode, hint)
	}
	var in apitype.Introspection // Session is Tether's extension member: the whole session
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&in); err != nil {
		return nil, fmt.Errorf("remote: introspect: %w: malformed answer: %w", tether.ErrUnavailable, err)
	}
	switch {
	case !in.Active:
		return nil, fmt.Errorf("%w: not active", tether.ErrInvalidToken)
	case in.Session == nil:
		return nil, fmt.Errorf("remote: introspect: %w: the server's answer has no session (a server older than this client?)", tether.ErrUnavailable)
	}
	if in.Session.Roles == nil {
		in.Session.Roles = []string{}
	}
	return in.Session, nil
}

// follow keeps the change stream up until ctx ends, reconnecting with backoff.
func (c *Client) follow(ctx context.Context) {
	delay := minBackoff
	for {
		wasUp, err := c.streamOnce(ctx)
		if c.connected.Swap(false) || wasUp {
			c.cache.Apply(tether.Change{Kind: tether.ChannelLost})
		}
		if ctx.Err() != nil {
			return
		}
		if wasUp {
			c.log.Warn("remote: change stream lost; cache off until it is back", "err", err)
			delay = minBackoff
		} else {
			c.log.Debug("remote: change stream: connect failed", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// streamOnce follows one response of GET /v1/changes. It reports whether the
// stream came up, and why it ended.
func (c *Client) streamOnce(ctx context.Context) (up bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.changesURL, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.AdminKey)
	req.Header.Set("Accept", "text/event-stream")
	// The server answers only once this stream is subscribed to its feed, so
	// from the status on no change is missed. A connect that hangs is ended
	// by the same watchdog as a silent stream.
	watchdog := time.AfterFunc(streamIdle, cancel)
	defer watchdog.Stop()
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("the server answered %d", resp.StatusCode)
	}
	c.cache.Apply(tether.Change{Kind: tether.ChannelRestored})
	c.connected.Store(true)
	c.log.Debug("remote: change stream up")
	r := sse.NewReader(resp.Body)
	for {
		b, err := r.Next()
		if err != nil {
			return true, err
		}
		watchdog.Reset(streamIdle)
		if err := c.apply(b); err != nil {
			return true, err
		}
	}
}

// apply turns one event of the stream into a cache change. Anything it does
// not understand ends the stream: guessing could keep a revoked session.
func (c *Client) apply(b sse.Block) error {
	var data struct {
		ID      string `json:"id"`
		Subject string `json:"subject"`
		Error   string `json:"error"`
	}
	if b.IsEvent() {
		if err := json.Unmarshal([]byte(b.Data), &data); err != nil {
			return fmt.Errorf("malformed %q event", b.Type)
		}
	}
	switch {
	case !b.IsEvent():
		// A comment: the heartbeat, or the greeting.
	case b.Type == "session" && data.ID != "":
		c.cache.Apply(tether.Change{Kind: tether.SessionChanged, SessionID: data.ID})
	case b.Type == "subject" && data.Subject != "":
		c.cache.Apply(tether.Change{Kind: tether.SubjectChanged, Subject: data.Subject})
	case b.Type == "reset":
		c.cache.Apply(tether.Change{Kind: tether.ChannelRestored}) // drops everything
	case b.Type == "error":
		return fmt.Errorf("the server ended the stream: %s", data.Error)
	default:
		return fmt.Errorf("unexpected %q event", b.Type)
	}
	return nil
}
