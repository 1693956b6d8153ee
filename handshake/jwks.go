package handshake

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWKS fetching limits.
const (
	jwksMinInterval = time.Second      // at most one fetch per issuer per interval
	jwksMaxAge      = 10 * time.Minute // refresh known keys after this long
	jwksMaxBytes    = 64 << 10
	jwksTimeout     = 5 * time.Second
	jwksMaxAbsent   = 1024 // unknown kids remembered, to refuse repeats at once
)

// jwksCache holds one trusted issuer's keys from its configured jwks_url.
// Only keys whose "alg" is the pinned algorithm and whose type fits it are
// kept; a token's kid only selects among them. An unknown kid triggers a
// refetch, rate-limited so that garbage kids cannot make us hammer the
// issuer. A failed refresh keeps the keys already known.
type jwksCache struct {
	url    string
	alg    string
	client *http.Client
	now    func() time.Time

	fetchMu sync.Mutex // serialises fetches; never held with mu during I/O
	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	fetched time.Time            // last successful fetch
	tried   time.Time            // last attempt
	absent  map[string]time.Time // kids found unknown, refused at once until then
}

func newJWKSCache(url, alg string, client *http.Client, now func() time.Time) *jwksCache {
	return &jwksCache{url: url, alg: alg, client: client, now: now}
}

// key returns the key for kid. A kid missing from the cached set is looked
// up at the issuer again: at once if the rate limit allows, else after
// waiting (at most jwksMinInterval) for the next allowed fetch. An issuer
// signs with a new key the moment it rotates, so a kid unknown here may be
// seconds old; refusing it until the interval ends would fail valid tokens.
// A kid still unknown after that is refused at once for an interval, so
// repeated garbage kids cost neither waits nor fetches.
func (c *jwksCache) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	if kid == "" {
		return nil, reject(ErrUnknownKey, "kid required for a JWKS issuer")
	}
	if k, fresh := c.lookup(kid); k != nil && fresh {
		return k, nil
	}
	if c.knownAbsent(kid) {
		return nil, reject(ErrUnknownKey, "kid not in the issuer's JWKS")
	}
	for waited := false; ; waited = true {
		k, wait := c.tryRefresh(ctx, kid)
		if k != nil {
			return k, nil
		}
		if waited || wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, reject(ErrUnknownKey, "kid not in the issuer's JWKS")
		}
	}
	c.markAbsent(kid)
	return nil, reject(ErrUnknownKey, "kid not in the issuer's JWKS")
}

// tryRefresh fetches the set when kid is missing from it or it is stale,
// if the rate limit allows. It returns kid's key (a stale one when no fetch
// was allowed) or, when there is none and no fetch was allowed, how long
// until one is.
func (c *jwksCache) tryRefresh(ctx context.Context, kid string) (crypto.PublicKey, time.Duration) {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	k, fresh := c.lookup(kid) // another caller may have fetched meanwhile
	if k != nil && fresh {
		return k, 0
	}
	wait := c.untilFetch()
	if wait > 0 {
		return k, wait
	}
	// Not the caller's context: a client that hangs up must not cost the
	// callers waiting for this fetch their turn.
	c.refresh(context.WithoutCancel(ctx))
	k, _ = c.lookup(kid)
	return k, 0
}

func (c *jwksCache) lookup(kid string) (crypto.PublicKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[kid], c.now().Sub(c.fetched) < jwksMaxAge
}

// untilFetch returns 0 and records an attempt if a fetch is allowed now, or
// how long until one is.
func (c *jwksCache) untilFetch() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.tried.IsZero() {
		if wait := c.tried.Add(jwksMinInterval).Sub(now); wait > 0 {
			return wait
		}
	}
	c.tried = now
	return 0
}

func (c *jwksCache) knownAbsent(kid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.absent[kid]
	return ok && c.now().Before(until)
}

func (c *jwksCache) markAbsent(kid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.absent == nil || len(c.absent) >= jwksMaxAbsent {
		c.absent = make(map[string]time.Time) // bounded: start afresh under a spray of kids
	}
	c.absent[kid] = c.now().Add(jwksMinInterval)
}

// refresh fetches the set; on failure the previous keys stay.
func (c *jwksCache) refresh(ctx context.Context) {
	keys, err := c.fetch(ctx)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys, c.fetched = keys, c.now()
}

func (c *jwksCache) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > jwksMaxBytes {
		return nil, errors.New("jwks: response too large")
	}
	return parseJWKS(body, c.alg)
}

// parseJWKS keeps the public signing keys of a set that carry a kid, the
// pinned alg and a key type fitting it; other entries are skipped, so one
// unsupported key does not hide the rest.
func parseJWKS(body []byte, alg string) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]crypto.PublicKey)
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		if jwk.KeyID == "" || jwk.Algorithm != alg || (jwk.Use != "" && jwk.Use != "sig") ||
			!jwk.Valid() || !jwk.IsPublic() || checkKeyType(jwk.Key, alg) != nil {
			continue
		}
		keys[jwk.KeyID] = jwk.Key
	}
	return keys, nil
}
