package jwtcore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS fetching limits.
const (
	// JWKSMinInterval is the rate limit: at most one fetch per key set per
	// interval, however many tokens ask.
	JWKSMinInterval = time.Second
	// JWKSRefreshAfter is how old a set may grow before a token that uses it
	// starts a refresh in the background; the set is served meanwhile.
	JWKSRefreshAfter = 10 * time.Minute
	// JWKSMaxAge is how old a set may grow before it is no longer served
	// without a successful refresh: a key the issuer removed stops working
	// within this bound even if its JWKS endpoint stays down.
	JWKSMaxAge = time.Hour
	// JWKSTimeout bounds one fetch.
	JWKSTimeout   = 5 * time.Second
	jwksMaxBytes  = 64 << 10
	jwksMaxAbsent = 1024 // unknown kids remembered, to refuse repeats at once
)

// JWKS is one issuer's JSON Web Key Set from a configured URL, shared by
// every verifier of that issuer so that the rate limit is per issuer.
//
// A token's kid only selects among the keys fetched. Refreshes are shared:
// one fetch is in flight at a time (singleflight) and every caller that
// needs it waits on that one, each only until its own context ends; the
// fetch itself runs on under JWKSTimeout so that a caller who gives up
// costs the others nothing. Known keys are served while a refresh runs. An
// unknown kid waits for the next allowed fetch (at most JWKSMinInterval),
// because an issuer signs with a new key the moment it rotates; a kid still
// unknown after it is refused at once for an interval, so a spray of junk
// kids costs at most one fetch per interval. Redirects are refused: the
// keys come from the configured URL or not at all.
type JWKS struct {
	url    string
	client *http.Client
	now    func() time.Time
	sf     singleflight.Group

	mu       sync.Mutex
	keys     map[string]jose.JSONWebKey
	fetched  time.Time            // last successful fetch
	tried    time.Time            // last attempt
	fetching bool                 // a fetch is in flight
	absent   map[string]time.Time // kids found unknown, refused at once until then
}

// NewJWKS returns the key set at url, fetched with client (nil: a default
// client) on first use. now may be nil (time.Now). The client is copied,
// never changed, to refuse redirects.
func NewJWKS(url string, client *http.Client, now func() time.Time) *JWKS {
	c := http.Client{}
	if client != nil {
		c = *client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if now == nil {
		now = time.Now
	}
	return &JWKS{url: url, client: &c, now: now}
}

// Key returns the public key for kid whose type fits alg.
func (s *JWKS) Key(ctx context.Context, kid, alg string) (any, error) {
	if kid == "" {
		return nil, Reject(ErrUnknownKey, "kid required for a JWKS issuer")
	}
	k, age, found := s.lookup(kid, alg)
	switch {
	case found && age < JWKSRefreshAfter:
		return k, nil
	case found && age < JWKSMaxAge:
		s.sf.DoChan("", s.refresh) // in the background; its result channel is buffered
		return k, nil
	case !found && s.knownAbsent(kid):
		return nil, Reject(ErrUnknownKey, "kid not in the issuer's JWKS")
	}
	// Unknown, or a set too old to serve. A fetch in flight may bring the
	// key: join it. Else, or if it did not, wait for the next allowed fetch,
	// which starts after this token arrived, and look again.
	deadline := Reject(ErrUnknownKey, "no key before the deadline")
	if s.inFlight() {
		if !s.join(ctx) {
			return nil, deadline
		}
		if k, age, found = s.lookup(kid, alg); found && age < JWKSMaxAge {
			return k, nil
		}
	}
	if wait := s.untilAllowed(); wait > 0 && sleep(ctx, wait) != nil {
		return nil, deadline
	}
	if !s.join(ctx) {
		return nil, deadline
	}
	if k, age, found = s.lookup(kid, alg); found && age < JWKSMaxAge {
		return k, nil
	}
	if !found {
		s.markAbsent(kid)
	}
	return nil, Reject(ErrUnknownKey, "kid not in the issuer's JWKS, or the set too old")
}

// join waits for the refresh in flight, or starts one, until ctx ends; it
// reports whether the refresh ended first.
func (s *JWKS) join(ctx context.Context) bool {
	select {
	case <-s.sf.DoChan("", s.refresh):
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *JWKS) inFlight() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetching
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookup returns kid's key if it fits alg, and the age of the set.
func (s *JWKS) lookup(kid, alg string) (any, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	jwk, ok := s.keys[kid]
	if !ok || (jwk.Algorithm != "" && jwk.Algorithm != alg) || KeyFits(alg, jwk.Key) != nil {
		return nil, 0, false
	}
	return jwk.Key, s.now().Sub(s.fetched), true
}

// untilAllowed returns how long until the rate limit allows a fetch.
func (s *JWKS) untilAllowed() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tried.IsZero() {
		return 0
	}
	return s.tried.Add(JWKSMinInterval).Sub(s.now())
}

func (s *JWKS) knownAbsent(kid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.absent[kid]
	return ok && s.now().Before(until)
}

func (s *JWKS) markAbsent(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.absent == nil || len(s.absent) >= jwksMaxAbsent {
		s.absent = make(map[string]time.Time) // bounded: start afresh under a spray of kids
	}
	s.absent[kid] = s.now().Add(JWKSMinInterval)
}

// refresh fetches the set if the rate limit allows; singleflight runs one
// at a time. On failure the previous keys stay. It owns its context: the
// callers waiting on it may each give up without stopping it.
func (s *JWKS) refresh() (any, error) {
	s.mu.Lock()
	now := s.now()
	if !s.tried.IsZero() && now.Before(s.tried.Add(JWKSMinInterval)) {
		s.mu.Unlock()
		return nil, nil // a fetch ran this interval; its keys are the answer
	}
	s.tried, s.fetching = now, true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), JWKSTimeout)
	defer cancel()
	keys, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetching = false
	if err != nil {
		return nil, nil // keep serving what we have; the error carries nothing a caller acts on
	}
	s.keys, s.fetched = keys, s.now()
	clear(s.absent) // a kid refused before may be in the new set
	return nil, nil
}

func (s *JWKS) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // a redirect included: never followed
		return nil, fmt.Errorf("jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > jwksMaxBytes {
		return nil, errors.New("jwks: response too large")
	}
	return ParseJWKS(body)
}

// ParseJWKS keeps the public signing keys of a set that carry a kid; other
// entries are skipped, so one unsupported key does not hide the rest. Which
// algorithm a key may serve is decided at lookup (its "alg", when given,
// must be the pinned one, and its type must fit it).
func ParseJWKS(body []byte) (map[string]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]jose.JSONWebKey)
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		if jwk.KeyID == "" || (jwk.Use != "" && jwk.Use != "sig") || !jwk.Valid() || !jwk.IsPublic() {
			continue
		}
		keys[jwk.KeyID] = jwk
	}
	return keys, nil
}

// JWKSKeys is a KeySource of keys of type K for alg from a JWKS.
type JWKSKeys[K any] struct {
	Set *JWKS
	Alg string
}

// Keys returns the key the header's kid names.
func (j JWKSKeys[K]) Keys(ctx context.Context, h Header) ([]K, error) {
	k, err := j.Set.Key(ctx, h.Kid, j.Alg)
	if err != nil {
		return nil, err
	}
	typed, ok := k.(K)
	if !ok {
		return nil, Reject(ErrUnknownKey, "key has another type")
	}
	return []K{typed}, nil
}
