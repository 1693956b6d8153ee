// Package adminauth checks the admin key. One Authenticator is built at
// start-up and handed to every handler that admits admins (the admin API's
// Bearer key, the console's sign-in form), so that they share one key hash,
// one per-client limiter of failures and one failure metric.
package adminauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/ratelimit"
)

// MinKeyLen is the shortest admin key accepted.
const MinKeyLen = 16

// Authenticator checks admin keys. It is safe for concurrent use.
type Authenticator struct {
	key      [sha256.Size]byte
	failures *ratelimit.Keyed
	metric   prometheus.Counter
	recorder Recorder // nil: failures go to the metric only
}

// Recorder writes an event to the audit log; *tether.Manager is one.
type Recorder interface {
	Record(ctx context.Context, typ, subject string, detail map[string]any) error
}

// RecordFailures makes every refused admin key an admin.auth_failed event in
// r, with the client's address. Call it once, before serving.
func (a *Authenticator) RecordFailures(r Recorder) { a.recorder = r }

// New returns an Authenticator for key. Failed attempts are limited per
// client address (a burst of 10, then one a second).
func New(key string) (*Authenticator, error) {
	if len(key) < MinKeyLen {
		return nil, errors.New("the admin key must be at least 16 characters")
	}
	return &Authenticator{
		key:      sha256.Sum256([]byte(key)),
		failures: ratelimit.New(rate.Every(time.Second), 10),
		metric: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tether_admin_auth_failures_total",
			Help: "Admin authentications refused for a wrong admin key (a missing one is not counted).",
		}),
	}, nil
}

// KeyID names the admin key without revealing it: sessions the key opened
// (the console's) record it, so that they end when the key is replaced.
func (a *Authenticator) KeyID() string {
	sum := sha256.Sum256(append([]byte("tether admin key id\x00"), a.key[:]...))
	return hex.EncodeToString(sum[:8])
}

// Collector is the failure metric, for the server's registry.
func (a *Authenticator) Collector() prometheus.Collector { return a.metric }

// CheckRequest admits a request that carries the admin key as a Bearer
// token. A request with no credentials at all (a browser fetching
// /favicon.ico, a scraper) is a plain 401 that touches neither the limiter
// nor the metric: only a wrong key is a failed login, so nobody can lock the
// real key out without trying keys.
func (a *Authenticator) CheckRequest(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return httperr.Unauthenticated
	}
	scheme, key, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		key = "" // another scheme presents some credential: a failure
	}
	return a.check(r, strings.TrimSpace(key))
}

// CheckKey admits a key typed into the console's sign-in form. An empty
// form is not an attempt either.
func (a *Authenticator) CheckKey(r *http.Request, key string) error {
	if key == "" {
		return httperr.Unauthenticated
	}
	return a.check(r, key)
}

func (a *Authenticator) check(r *http.Request, key string) error {
	client := ratelimit.ClientKey(r)
	if wait := a.failures.Blocked(client); wait > 0 {
		return httperr.RateLimited("too many failed admin authentications", wait)
	}
	sum := sha256.Sum256([]byte(key))
	if key == "" || subtle.ConstantTimeCompare(sum[:], a.key[:]) != 1 {
		a.failures.Take(client)
		a.metric.Inc()
		if a.recorder != nil {
			// Best effort: the limiter bounds these writes per client, and a
			// store that cannot take them must not turn a 401 into a 503.
			ctx := tether.WithActor(r.Context(), tether.Actor{Kind: tether.ActorAdmin, IP: tether.ClientIP(r)})
			a.recorder.Record(ctx, tether.EventAdminAuthFailed, "", map[string]any{"reason": "wrong admin key"})
		}
		return httperr.Unauthenticated
	}
	return nil
}
