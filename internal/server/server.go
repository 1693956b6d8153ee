// Package server runs one of Tether's HTTP listeners inside hard limits
// (DESIGN §13): past MaxInflight requests it answers 503 with Retry-After at
// once instead of queueing; past MaxConns connections it closes the
// longest-idle keep-alive connection (or, when none is idle, the new one), so
// one client holding thousands of idle connections can neither exhaust the
// process's descriptors nor lock other clients out; and on shutdown it turns
// /readyz to 503 and lets in-flight requests finish.
//
// Each listener gets its own Server, so the admin listener keeps its own
// budget while the public one is flooded.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound one listener. Zero fields take the defaults below.
type Limits struct {
	// MaxInflight is how many requests are handled at once; one more is
	// answered 503 with Retry-After at once. Default 1024.
	MaxInflight int
	// MaxConns caps open connections. Default 4096.
	MaxConns int
	// PressureIdle is how long a connection may sit idle (or silent since it
	// was accepted) while more than three quarters of MaxConns are open.
	// Default 1s; without pressure the http.Server's IdleTimeout applies.
	PressureIdle time.Duration
}

const (
	DefaultMaxInflight  = 1024
	DefaultMaxConns     = 4096
	DefaultPressureIdle = time.Second
	retryAfter          = "1" // seconds: a flood's requests are short
)

func (l Limits) withDefaults() Limits {
	if l.MaxInflight <= 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.PressureIdle <= 0 {
		l.PressureIdle = DefaultPressureIdle
	}
	return l
}

// Server is an http.Server behind an in-flight limit and a connection cap.
type Server struct {
	hs   *http.Server
	ln   *limitListener
	lim  Limits
	name string
	log  *slog.Logger

	inflight atomic.Int64
	shed     atomic.Uint64 // requests answered 503 for being over MaxInflight
	draining atomic.Bool

	mu      sync.Mutex    // orders starting the reaper before stopping it
	stopped bool          // guarded by mu
	stop    chan struct{} // closed to stop the pressure reaper
	reaper  sync.WaitGroup
}

// New wraps hs (its timeouts and handler set by the caller) to serve on ln
// within lim. name labels log lines ("public", "admin"). It takes over
// hs.ConnState.
func New(name string, hs *http.Server, ln net.Listener, lim Limits, log *slog.Logger) *Server {
	lim = lim.withDefaults()
	s := &Server{hs: hs, lim: lim, name: name, log: log, stop: make(chan struct{})}
	s.ln = newLimitListener(ln, lim.MaxConns)
	hs.Handler = s.limit(hs.Handler)
	hs.ConnState = s.ln.connState
	return s
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves plain HTTP until Shutdown; it returns http.ErrServerClosed then.
func (s *Server) Serve() error {
	s.startReaper()
	return s.hs.Serve(s.ln)
}

// ServeTLS serves HTTPS with the certificate and key files.
func (s *Server) ServeTLS(certFile, keyFile string) error {
	s.startReaper()
	return s.hs.ServeTLS(s.ln, certFile, keyFile)
}

func (s *Server) startReaper() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.reaper.Go(func() {
		t := time.NewTicker(s.lim.PressureIdle / 4)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				if n := s.ln.reapIdle(now.Add(-s.lim.PressureIdle)); n > 0 {
					s.log.Debug("closed idle connections under pressure", "listener", s.name, "closed", n)
				}
			}
		}
	})
}

// Drain turns /readyz to 503 and asks clients to close their connections
// after each response, so that a load balancer moves them elsewhere before
// Shutdown stops the listener.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting, closes idle connections and waits, until ctx
// ends, for in-flight requests to finish. It then closes what is left and
// returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.reaper.Wait()
	err := s.hs.Shutdown(ctx)
	if err != nil {
		s.hs.Close() // the deadline passed: cut what is still running
	}
	return err
}

// Stats is a snapshot of one listener's load.
type Stats struct {
	Inflight int64  // requests being handled
	Conns    int    // open connections
	Shed     uint64 // requests answered 503 for being over MaxInflight
	Evicted  uint64 // idle connections closed to make room or under pressure
	Refused  uint64 // connections closed at accept: at the cap, none idle
}

// Stats returns the listener's counters.
func (s *Server) Stats() Stats {
	st := Stats{Inflight: s.inflight.Load(), Shed: s.shed.Load(),
		Evicted: s.ln.evicted.Load(), Refused: s.ln.refused.Load()}
	st.Conns = s.ln.open()
	return st
}

// limit answers 503 + Retry-After at once past MaxInflight: queueing would
// only hold descriptors and memory for requests whose clients gave up.
func (s *Server) limit(h http.Handler) http.Handler {
	maxInflight := int64(s.lim.MaxInflight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
			if r.URL.Path == "/readyz" {
				writeError(w, http.StatusServiceUnavailable, "draining", "this node is shutting down")
				return
			}
		}
		if s.inflight.Add(1) > maxInflight {
			s.inflight.Add(-1)
			s.shed.Add(1)
			w.Header().Set("Retry-After", retryAfter)
			writeError(w, http.StatusServiceUnavailable, "overloaded", "too many requests in flight; retry shortly")
			return
		}
		var once sync.Once
		release := func() { once.Do(func() { s.inflight.Add(-1) }) }
		defer release()
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), releaseKey{}, release)))
	})
}

type releaseKey struct{}

// Release gives back r's slot of the in-flight budget, for a handler that
// goes on for long once it has started (a change stream, bounded by its own
// limit), so that it does not starve the short requests the budget is for.
// It is idempotent, and does nothing for a request not served by a Server.
func Release(r *http.Request) {
	if release, ok := r.Context().Value(releaseKey{}).(func()); ok {
		release()
	}
}

// writeError writes the API's error shape, {"error","message"}; code and
// message are constants, so they need no escaping.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(`{"error":"` + code + `","message":"` + message + `"}` + "\n"))
}

// IsClosed reports whether err is what Serve returns after Shutdown.
func IsClosed(err error) bool { return errors.Is(err, http.ErrServerClosed) }

// netConn finds the connection the listener handed out under what
// http.Server reports in ConnState (a *tls.Conn over it, under TLS).
func netConn(c net.Conn) net.Conn {
	if t, ok := c.(*tls.Conn); ok {
		return t.NetConn()
	}
	return c
}
