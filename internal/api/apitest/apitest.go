// Package apitest starts real Tether nodes (store, Manager, both listeners on
// loopback HTTP servers) for tests of the HTTP API and of its clients, on
// every kind of store. It is for tests only.
package apitest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store"
)

// AdminKey is every test node's admin key.
const AdminKey = "apitest-admin-key-0123456789abcdef"

// Store is a kind of store and how a test gets a fresh one. Through, when
// not empty, is the address a test's Proxy should forward to, so that the
// node's connection to the store can be cut; URL then takes the proxy's
// address.
type Store struct {
	Name string
	// URL returns a fresh store URL; with a non-empty via, the store is
	// reached through that address (a proxy to Target).
	URL func(t testing.TB, via string) string
	// Target is the server a proxy in front of the store forwards to; empty
	// for the in-process stores, whose change channel cannot be lost.
	Target func(t testing.TB) string
}

// Stores lists the embedded stores and the shared ones: on CI a missing Redis
// or PostgreSQL fails the test (servicetest.SkipOrFail).
func Stores() []Store {
	return []Store{
		{Name: "memory", URL: func(testing.TB, string) string { return "memory:" }},
		{Name: "bolt", URL: func(t testing.TB, _ string) string {
			return "bolt://" + filepath.ToSlash(filepath.Join(t.TempDir(), "tether.db"))
		}},
		{Name: "redis",
			Target: servicetest.SharedRedis,
			URL: func(t testing.TB, via string) string {
				addr := servicetest.SharedRedis(t)
				prefix := servicetest.RedisPrefix(t, addr)
				if via == "" {
					via = addr
				}
				return "redis://" + via + "/0?prefix=" + prefix
			}},
		{Name: "postgres",
			Target: func(t testing.TB) string { return servicetest.HostOf(t, servicetest.PostgresURL()) },
			URL: func(t testing.TB, via string) string {
				u := servicetest.FreshPostgres(t)
				if via != "" {
					u = servicetest.WithHost(t, u, via)
				}
				return u
			}},
	}
}

// Node is a running node.
type Node struct {
	Store   tether.Store
	Manager *tether.Manager
	Server  *api.Server
	Public  *httptest.Server
	Admin   *httptest.Server
}

// Options adjust a node.
type Options struct {
	MaxStaleness time.Duration // the Manager's; 0: its default
	Logger       *slog.Logger
}

// Start starts a node on the store at storeURL; t.Cleanup stops it.
func Start(t testing.TB, storeURL string, opt Options) *Node {
	t.Helper()
	st, err := store.Open(context.Background(), storeURL, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", store.Redact(storeURL), err)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log, MaxStaleness: opt.MaxStaleness})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	admin, err := adminauth.New(AdminKey)
	if err != nil {
		t.Fatal(err)
	}
	admin.RecordFailures(m) // as serve does
	srv, err := api.New(api.Config{Manager: m, Admin: admin, Logger: log})
	if err != nil {
		m.Close()
		st.Close()
		t.Fatal(err)
	}
	n := &Node{Store: st, Manager: m, Server: srv, Public: httptest.NewServer(srv.Public()), Admin: httptest.NewServer(srv.Admin())}
	t.Cleanup(func() {
		// Streams first: Close waits for every request, and a change stream
		// ends only with its client or its store.
		n.Admin.CloseClientConnections()
		n.Public.Close()
		n.Admin.Close()
		m.Close()
		st.Close()
	})
	return n
}
