// Package ratelimit holds the server's keyed token buckets: per client
// address for failures (admin keys, handshake exchanges), per subject for
// session creation.
package ratelimit

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tetherhq/tether"
)

// Keyed is one token bucket per key (client IP, subject). The map is
// bounded: when it fills, it starts afresh, which errs towards letting a
// request through rather than growing without bound under a spray of keys.
type Keyed struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

const maxBuckets = 100_000

// New returns buckets that refill at limit per second and hold burst.
func New(limit rate.Limit, burst int) *Keyed {
	return &Keyed{limit: limit, burst: burst, buckets: make(map[string]*rate.Limiter)}
}

func (k *Keyed) bucket(key string) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= maxBuckets {
			clear(k.buckets)
		}
		b = rate.NewLimiter(k.limit, k.burst)
		k.buckets[key] = b
	}
	return b
}

// Allow takes a token for key, or says how long until one is free.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	r := k.bucket(key).Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// Blocked says how long key must wait before its next attempt, without
// taking a token: failures are charged afterwards with Take.
func (k *Keyed) Blocked(key string) time.Duration {
	b := k.bucket(key)
	if t := b.Tokens(); t < 1 {
		return time.Duration((1 - t) / float64(k.limit) * float64(time.Second))
	}
	return 0
}

// Take charges one failure to key.
func (k *Keyed) Take(key string) { k.bucket(key).Allow() }

// ClientKey is the rate-limit key of a request's client: its IP address, or
// for IPv6 its /64, which one client can fill with addresses at will.
func ClientKey(r *http.Request) string {
	ip, err := netip.ParseAddr(tether.ClientIP(r))
	if err != nil || ip.Unmap().Is4() {
		return tether.ClientIP(r)
	}
	p, _ := ip.Prefix(64)
	return p.String()
}
