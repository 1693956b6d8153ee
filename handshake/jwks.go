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
	jwksMinInterval = 30 * time.Second // at most one fetch per issuer per interval
	jwksMaxAge      = 10 * time.Minute // refresh known keys after this long
	jwksMaxBytes    = 64 << 10
	jwksTimeout     = 5 * time.Second
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
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

func newJWKSCache(url, alg string, client *http.Client, now func() time.Time) *jwksCache {
	return &jwksCache{url: url, alg: alg, client: client, now: now}
}

// key returns the key for kid, fetching the set when kid is unknown or the
// set is stale and the rate limit allows.
func (c *jwksCache) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	if kid == "" {
		return nil, reject(ErrUnknownKey, "kid required for a JWKS issuer")
	}
	if k, fresh := c.lookup(kid); k != nil && fresh {
		return k, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	k, fresh := c.lookup(kid) // another caller may have fetched meanwhile
	if (k == nil || !fresh) && c.mayFetch() {
		c.refresh(ctx)
		k, _ = c.lookup(kid)
	}
	if k == nil {
		return nil, reject(ErrUnknownKey, "kid not in the issuer's JWKS")
	}
	return k, nil
}

func (c *jwksCache) lookup(kid string) (crypto.PublicKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[kid], c.now().Sub(c.fetched) < jwksMaxAge
}

func (c *jwksCache) mayFetch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.tried.IsZero() && now.Sub(c.tried) < jwksMinInterval {
		return false
	}
	c.tried = now
	return true
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
