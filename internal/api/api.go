// Package api serves Tether's public and admin HTTP APIs (DESIGN §6). Handlers
// return errors; writeError is the one place that maps them to a status and a
// safe message.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/web"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// Server holds what the handlers need. Build one with New.
type Server struct {
	m        *tether.Manager
	adminKey [sha256.Size]byte
	log      *slog.Logger
	metrics  *Metrics
	limits   *limiters

	keys     *handshake.KeyRing
	minter   *handshake.Minter   // nil: this node mints no handshakes
	verifier *handshake.Verifier // nil: this node trusts no issuer
	web      *web.Pages          // /account/ and the /admin/ console
	feed     *changeFeed         // GET /v1/changes; nil when the store announces no changes

	routesMu sync.Mutex
	routes   map[string]*[]string // listener → patterns registered by Public and Admin
}

// Config configures a Server.
type Config struct {
	Manager  *tether.Manager
	AdminKey string // required; compared in constant time
	Logger   *slog.Logger

	Keys     *handshake.KeyRing  // the node's signing keys, published as JWKS; nil: none
	Minter   *handshake.Minter   // optional
	Verifier *handshake.Verifier // optional
}

// New returns a Server. Its Public and Admin handlers are meant for two
// listeners, so the admin API can stay on a private address.
func New(cfg Config) (*Server, error) {
	if cfg.Manager == nil {
		return nil, errors.New("api: Config.Manager is required")
	}
	if len(cfg.AdminKey) < 16 {
		return nil, errors.New("api: the admin key must be at least 16 characters")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		m:        cfg.Manager,
		adminKey: sha256.Sum256([]byte(cfg.AdminKey)),
		log:      cfg.Logger,
		metrics:  newMetrics(cfg.Manager),
		limits:   newLimiters(),
		keys:     cfg.Keys,
		minter:   cfg.Minter,
		verifier: cfg.Verifier,
	}
	if w, ok := cfg.Manager.Store().(tether.Watcher); ok {
		s.feed = newChangeFeed(w, cfg.Logger)
	}
	var err error
	s.web, err = web.New(web.Config{Manager: cfg.Manager, Keys: cfg.Keys, Logger: cfg.Logger, CheckAdminKey: s.checkAdminKey})
	return s, err
}

// Metrics returns the server's Prometheus registry owner.
func (s *Server) Metrics() *Metrics { return s.metrics }

// apiError is an error with the status, code and message a client sees.
type apiError struct {
	status  int
	code    string
	message string
	retry   time.Duration // Retry-After, for 429
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", message: fmt.Sprintf(format, args...)}
}

var errUnauthenticated = &apiError{status: http.StatusUnauthorized, code: "unauthenticated"}

// handler is an http.Handler that returns its error for writeError.
type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// writeError maps an error to a status and a message that is safe to show:
// internal detail goes to the log, never to the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, tether.ErrInvalidToken):
		ae = errUnauthenticated
	case errors.Is(err, tether.ErrCrossOrigin):
		ae = &apiError{status: http.StatusForbidden, code: "cross_origin", message: "cross-origin request refused"}
	case errors.Is(err, tether.ErrBadInput):
		ae = &apiError{status: http.StatusBadRequest, code: "bad_request", message: strings.TrimPrefix(err.Error(), "tether: bad input: ")}
	case errors.Is(err, tether.ErrNotFound):
		ae = &apiError{status: http.StatusNotFound, code: "not_found", message: "no such session"}
	case r.Context().Err() != nil:
		s.log.Debug("client went away", "path", r.URL.Path)
		ae = &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "request cancelled"}
	case errors.Is(err, tether.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("store unavailable", "path", r.URL.Path, "err", err)
		ae = &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "the session store is unavailable; try again"}
	default:
		s.log.Error("internal error", "path", r.URL.Path, "err", err)
		ae = &apiError{status: http.StatusInternalServerError, code: "internal", message: "internal error"}
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether"`)
	}
	if ae.retry > 0 {
		// Rounded up: a wait under half a second must not read "Retry-After: 0".
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(ae.retry.Seconds()))))
	}
	body := map[string]string{"error": ae.code}
	if ae.message != "" {
		body["message"] = ae.message
	}
	writeJSON(w, ae.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decodeJSON reads one JSON object into v, strictly: bounded size, no unknown
// fields, nothing after it. Its errors are 400s that say what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = badRequest("unexpected data after the JSON object")
		}
	}
	var ae *apiError
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &tooBig):
		return badRequest("request body larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return badRequest("empty request body; want a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON")
	case errors.As(err, &typ) && typ.Field == "":
		return badRequest("the request body must be a JSON object, not a JSON %s", typ.Value)
	case errors.As(err, &typ):
		return badRequest("field %q: want a JSON %s, got a JSON %s", typ.Field, jsonKind(typ.Type), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return badRequest("malformed JSON")
	}
}

// jsonKind names a Go type as JSON does, for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	default:
		return "number"
	}
}

// duration is a JSON duration string such as "90m".
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json treats null for other types: absent, so the default
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return badRequest("durations are strings such as \"90m\" or \"24h\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return badRequest("invalid duration %q: want a positive duration such as \"90m\" or \"24h\"", s)
	}
	*d = duration(v)
	return nil
}

// checkAdmin authenticates an admin request by its Bearer key.
func (s *Server) checkAdmin(r *http.Request) error {
	client := clientKey(r)
	if wait := s.limits.adminFailures.blocked(client); wait > 0 {
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited", message: "too many failed admin authentications", retry: wait}
	}
	h := r.Header.Get("Authorization")
	scheme, key, _ := strings.Cut(h, " ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], s.adminKey[:]) != 1 {
		s.limits.adminFailures.take(client)
		s.metrics.adminAuthFailures.Inc()
		return errUnauthenticated
	}
	return nil
}

// checkAdminKey is checkAdmin for a key typed into the console's sign-in
// form: the same comparison, per-IP rate limit and metric.
func (s *Server) checkAdminKey(r *http.Request, key string) (ok bool, retryAfter time.Duration) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+key)
	var ae *apiError
	if errors.As(s.checkAdmin(r), &ae) {
		return false, ae.retry
	}
	return true, 0
}
