package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tetherhq/tether"
)

// pgxConn shortens the pool callbacks in tests.
type pgxConn = pgxpool.Conn

const defaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// adminURL is the server the tests create their databases on.
func adminURL() string {
	if u := os.Getenv("TETHER_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultTestURL
}

// tb is what testing.T and testing.B share and the helpers need.
type tb interface {
	Helper()
	Cleanup(func())
	Fatal(...any)
	Fatalf(string, ...any)
	Skipf(string, ...any)
}

// adminConn connects to the admin URL, skipping the test (failing it on CI)
// when no server is reachable.
func adminConn(t tb) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at TETHER_TEST_POSTGRES_URL unreachable: %v", err)
		}
		t.Skipf("PostgreSQL unreachable (set TETHER_TEST_POSTGRES_URL): %v", err)
	}
	t.Cleanup(func() { closeConn(c) })
	return c
}

// freshDB creates an empty database, dropped WITH (FORCE) when t ends, and
// returns its URL and name. Random names keep concurrent runs apart.
func freshDB(t tb) (string, string) {
	t.Helper()
	admin := adminConn(t)
	b := make([]byte, 8)
	rand.Read(b)
	name := "tether_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Fatalf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL())
	if err != nil {
		t.Fatalf("parse TETHER_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String(), name
}

// withHost returns rawURL pointing at addr instead.
func withHost(t tb, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

func openStore(t tb, rawURL string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// watch runs s.Watch until the test ends and returns its changes.
func watch(t tb, s *Store) <-chan tether.Change {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan tether.Change, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(c tether.Change) { ch <- c })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// waitChange waits for a change of kind, skipping others.
func waitChange(t tb, ch <-chan tether.Change, kind tether.ChangeKind) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case c := <-ch:
			if c.Kind == kind {
				return
			}
		case <-deadline:
			t.Fatalf("no change of kind %d within 15s", kind)
		}
	}
}

// eventually polls cond until it holds or the deadline passes; no fixed sleeps.
func eventually(t tb, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(2 * time.Millisecond) // a poll interval, not a wait for an outcome
	}
}

func newRecord(subject string, lifetime time.Duration) *tether.Record {
	n := time.Now().UTC().Truncate(time.Microsecond)
	r := &tether.Record{
		ID: tether.NewID(), Subject: subject,
		CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(lifetime), IdleExpiresAt: n.Add(lifetime),
		IdleTimeout: lifetime,
	}
	rand.Read(r.SecretHash[:])
	return r
}

// proxy is a TCP forwarder a test can stop (dropping every connection at
// once, and refusing new ones) and start again on the same address.
type proxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t tb, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, conns: make(map[net.Conn]struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) forward(c net.Conn) {
	if !p.track(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 3*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		c.Close()
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// stop closes the listener and every forwarded connection, and waits.
func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// start listens again on the same address.
func (p *proxy) start(t tb) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy relisten on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func wantUnavailable(t tb, what string, err error) {
	t.Helper()
	if !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("%s = %v, want an error wrapping ErrUnavailable", what, err)
	}
}
