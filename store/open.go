package store

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/boltstore"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/pgstore"
	"github.com/tetherhq/tether/store/redisstore"
)

// Options tunes each backend; only the one the URL names is used. Zero
// fields take the backend's defaults.
type Options struct {
	Bolt     boltstore.Options
	Redis    redisstore.Options
	Postgres pgstore.Options
}

// Open opens the store rawURL names. An empty URL means the embedded store in
// dataDir.
func Open(ctx context.Context, rawURL, dataDir string, opts Options) (tether.Store, error) {
	if rawURL == "" {
		rawURL = "bolt://" + filepath.ToSlash(filepath.Join(dataDir, "tether.db"))
	}
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok {
		return nil, fmt.Errorf("store: %q is not a store URL (want bolt:, memory:, redis:, postgres:…)", Redact(rawURL))
	}
	switch scheme {
	case "memory":
		// Swept like the durable stores by default, so expiries are reported.
		return memstore.NewWithOptions(memstore.Options{SweepInterval: time.Minute}), nil
	case "bolt":
		u, err := url.Parse(rawURL)
		if err != nil || u.Host != "" || u.Path == "" {
			return nil, fmt.Errorf("store: bolt URLs name a file: bolt:///path/tether.db")
		}
		return boltstore.Open(filepath.FromSlash(u.Path), opts.Bolt)
	case "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel":
		return redisstore.Open(ctx, rawURL, opts.Redis)
	case "postgres", "postgresql":
		return pgstore.Open(ctx, rawURL, opts.Postgres)
	default:
		return nil, fmt.Errorf("store: unknown scheme %q (want bolt, memory, redis, rediss, redis+cluster, redis+sentinel, postgres)", scheme)
	}
}

// Embedded reports whether rawURL names a store that only this process can
// hold (the embedded bolt file, which bbolt locks, or memory:): no other node
// shares its sessions.
func Embedded(rawURL string) bool {
	scheme, _, _ := strings.Cut(rawURL, ":")
	return rawURL == "" || scheme == "bolt" || scheme == "memory"
}

// Redact returns the URL without its password, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
