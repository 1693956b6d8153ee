// Package store opens a tether.Store from a URL (DESIGN §4):
//
//	bolt:///path/tether.db   embedded and durable (the default, in the data dir)
//	memory:                  in-process, not durable
package store

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// Open opens the store rawURL names. An empty URL means the embedded store in
// dataDir.
func Open(ctx context.Context, rawURL, dataDir string) (tether.Store, error) {
	if rawURL == "" {
		rawURL = "bolt://" + filepath.ToSlash(filepath.Join(dataDir, "tether.db"))
	}
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok {
		return nil, fmt.Errorf("store: %q is not a store URL (want bolt:, memory:, redis:, postgres:…)", Redact(rawURL))
	}
	switch scheme {
	case "memory":
		return memstore.New(), nil
	default:
		return nil, fmt.Errorf("store: unknown scheme %q (want bolt, memory, redis, rediss, redis+cluster, redis+sentinel, postgres)", scheme)
	}
}

// Redact returns the URL without its password, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
