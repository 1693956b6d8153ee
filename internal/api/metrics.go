package api

import (
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminauth"
)

// Metrics is the server's Prometheus registry, served at the admin /metrics.
type Metrics struct {
	registry          *prometheus.Registry
	validationSeconds *prometheus.HistogramVec
	requests          *prometheus.CounterVec
	exchangeFailures  *prometheus.CounterVec

	// validationBy holds validationSeconds' observer for each result,
	// resolved once rather than hashed from its label on every request.
	validationBy map[string]prometheus.Observer
}

func newMetrics(m *tether.Manager, admin *adminauth.Authenticator) *Metrics {
	reg := prometheus.NewRegistry()
	x := &Metrics{
		registry: reg,
		validationSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tether_validation_duration_seconds",
			Help:    "Time to validate a session token, by result.",
			Buckets: []float64{1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.02, 0.1, 0.5},
		}, []string{"result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_http_requests_total",
			Help: "HTTP requests by listener, route and status code.",
		}, []string{"listener", "route", "code"}),
		exchangeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_handshake_exchange_failures_total",
			Help: "Refused handshake exchanges, by reason (the client is told only 401).",
		}, []string{"reason"}),
	}
	reg.MustRegister(x.validationSeconds, x.requests, admin.Collector(), x.exchangeFailures,
		managerCollector{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	x.validationBy = map[string]prometheus.Observer{}
	for _, err := range []error{nil, tether.ErrInvalidToken, tether.ErrCrossOrigin, tether.ErrUnavailable} {
		r := validationResult(err)
		x.validationBy[r] = x.validationSeconds.WithLabelValues(r)
	}
	return x
}

// Registry returns the registry, for callers that add their own collectors.
func (x *Metrics) Registry() *prometheus.Registry { return x.registry }

func (x *Metrics) observeValidation(err error, d time.Duration) {
	x.validationBy[validationResult(err)].Observe(d.Seconds())
}

func validationResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, tether.ErrInvalidToken):
		return "invalid"
	case errors.Is(err, tether.ErrCrossOrigin):
		return "cross_origin"
	default:
		return "unavailable"
	}
}

// managerCollector reads the Manager's own counters at scrape time, so the
// validation hot path carries no Prometheus cost.
type managerCollector struct{ m *tether.Manager }

var (
	descValidations = prometheus.NewDesc("tether_validations_total", "Session validations by result.", []string{"result"}, nil)
	descCache       = prometheus.NewDesc("tether_cache_lookups_total", "Validation cache lookups by outcome.", []string{"outcome"}, nil)
	descCreated     = prometheus.NewDesc("tether_sessions_created_total", "Sessions created.", nil, nil)
	descRevoked     = prometheus.NewDesc("tether_sessions_revoked_total", "Sessions revoked.", nil, nil)
	descCached      = prometheus.NewDesc("tether_cached_sessions", "Sessions in this node's cache.", nil, nil)
)

func (c managerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descValidations, descCache, descCreated, descRevoked, descCached} {
		ch <- d
	}
}

func (c managerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descValidations, s.ValidationsOK, "ok")
	counter(descValidations, s.ValidationsInvalid, "invalid")
	counter(descValidations, s.ValidationsUnavailable, "unavailable")
	counter(descCache, s.CacheHits, "hit")
	counter(descCache, s.CacheMisses, "miss")
	counter(descCreated, s.Created)
	counter(descRevoked, s.Revoked)
	ch <- prometheus.MustNewConstMetric(descCached, prometheus.GaugeValue, float64(s.CachedSessions))
}

// common wraps a listener's handler with what every response needs: security
// headers, a request log line (never a token: paths hold none), metrics and,
// when tracing is on, a span. It runs on every request, so it allocates
// nothing it can avoid: the header values are shared, the counters resolved
// once per route and status, and the log line is built only when debug
// logging is on.
func (s *Server) common(listener string, next http.Handler) http.Handler {
	counters := s.metrics.requestCounters(listener)
	traced := s.tracing.On()
	return s.tracing.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		debug := s.log.Enabled(r.Context(), slog.LevelDebug)
		var start time.Time
		if debug {
			start = time.Now()
		}
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		h["X-Frame-Options"] = frameDeny
		h["Referrer-Policy"] = noReferrer
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Changes are attributed in the event log: to the admin on the admin
			// listener, to the session's holder on the public one. Reads skip
			// this, so validation pays nothing for it.
			kind := tether.ActorSelf
			if listener == "admin" {
				kind = tether.ActorAdmin
			}
			r = r.WithContext(tether.WithActor(r.Context(), tether.Actor{Kind: kind, IP: tether.ClientIP(r)}))
		}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if traced && r.Pattern != "" {
			// The tracing handler sees the pattern only on the request it
			// passed down, and changes above went down on a copy.
			trace.SpanFromContext(r.Context()).SetName(r.Pattern)
		}
		counters.get(route, rec.status).Inc()
		if debug {
			s.log.Debug("request", "listener", listener, "method", r.Method, "route", route,
				"status", rec.status, "duration", time.Since(start), "remote", tether.ClientIP(r))
		}
	}), listener, listener == "public")
}

// Header values every response carries, shared rather than allocated per
// request. Their capacity is their length, so an Add copies instead of
// writing into the shared array.
var (
	nosniff    = []string{"nosniff"}
	frameDeny  = []string{"DENY"}
	noReferrer = []string{"no-referrer"}
)

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// routeCounters is one listener's tether_http_requests_total counters by
// route and status. Reads are lock-free: the map is replaced, never changed,
// and grows only to the routes times the statuses they answer.
type routeCounters struct {
	vec      *prometheus.CounterVec
	listener string
	mu       sync.Mutex // serializes adding a counter
	m        atomic.Pointer[map[routeStatus]prometheus.Counter]
}

type routeStatus struct {
	route  string
	status int
}

func (x *Metrics) requestCounters(listener string) *routeCounters {
	c := &routeCounters{vec: x.requests, listener: listener}
	c.m.Store(&map[routeStatus]prometheus.Counter{})
	return c
}

func (c *routeCounters) get(route string, status int) prometheus.Counter {
	key := routeStatus{route, status}
	if counter, ok := (*c.m.Load())[key]; ok {
		return counter
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := maps.Clone(*c.m.Load())
	if m[key] == nil {
		m[key] = c.vec.WithLabelValues(c.listener, route, strconv.Itoa(status))
		c.m.Store(&m)
	}
	return m[key]
}
