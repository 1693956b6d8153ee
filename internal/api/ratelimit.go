package api

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tetherhq/tether"
)

// limiters are the server's token buckets.
type limiters struct {
	adminFailures    *keyedLimiter // failed admin authentications per client IP
	creates          *keyedLimiter // admin session creations per subject
	exchangeFailures *keyedLimiter // refused handshake exchanges per client IP
	revokeMisses     *keyedLimiter // RFC 7009 revocations of tokens that were not live, per client IP
}

func newLimiters() *limiters {
	return &limiters{
		adminFailures:    newKeyedLimiter(rate.Every(time.Second), 10),
		creates:          newKeyedLimiter(rate.Limit(50), 100),
		exchangeFailures: newKeyedLimiter(rate.Limit(20), 100),
		revokeMisses:     newKeyedLimiter(rate.Limit(20), 100),
	}
}

// keyedLimiter is one token bucket per key (client IP, subject). The map is
// bounded: when it fills, it starts afresh, which errs towards letting a
// request through rather than growing without bound under a spray of keys.
type keyedLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

const maxBuckets = 100_000

func newKeyedLimiter(limit rate.Limit, burst int) *keyedLimiter {
	return &keyedLimiter{limit: limit, burst: burst, buckets: make(map[string]*rate.Limiter)}
}

func (k *keyedLimiter) bucket(key string) *rate.Limiter {
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

// allow takes a token for key, or says how long until one is free.
func (k *keyedLimiter) allow(key string) (bool, time.Duration) {
	r := k.bucket(key).Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// clientKey is the rate-limit key of a request's client: its IP address, or
// for IPv6 its /64, which one client can fill with addresses at will.
func clientKey(r *http.Request) string {
	ip, err := netip.ParseAddr(tether.ClientIP(r))
	if err != nil || ip.Unmap().Is4() {
		return tether.ClientIP(r)
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// blocked says how long key must wait before its next attempt, without taking
// a token: failures are charged afterwards with take.
func (k *keyedLimiter) blocked(key string) time.Duration {
	b := k.bucket(key)
	if t := b.Tokens(); t < 1 {
		return time.Duration((1 - t) / float64(k.limit) * float64(time.Second))
	}
	return 0
}

func (k *keyedLimiter) take(key string) { k.bucket(key).Allow() }
