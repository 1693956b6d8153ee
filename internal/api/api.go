// Package api serves Tether's public and admin HTTP APIs (DESIGN §6). It
// only translates HTTP: the logic is the library's (tether.Manager), errors
// become statuses in one place (httperr.Classify), and the JSON bodies are
// apitype's, shared with the clients.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/ratelimit"
	"github.com/tetherhq/tether/internal/tracing"
	"github.com/tetherhq/tether/internal/web"
	"github.com/tetherhq/tether/ssf"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// Server holds what the handlers need. Build one with New.
type Server struct {
	m       *tether.Manager
	admin   *adminauth.Authenticator
	log     *slog.Logger
	metrics *Metrics

	creates          *ratelimit.Keyed // admin session creations per subject
	exchangeFailures *ratelimit.Keyed // refused handshake exchanges per client IP
	revokeMisses     *ratelimit.Keyed // RFC 7009 revocations of tokens that were not live, per client IP

	keys     *handshake.KeyRing
	minter   *handshake.Minter   // nil: this node mints no handshakes
	verifier *handshake.Verifier // nil: this node trusts no issuer
	web      *web.Pages          // /account/ and the /admin/ console
	authz    *forwardauth.Authorizer
	oidc     *oidcLogin       // nil: no sign-in through an OpenID provider
	tracing  *tracing.Tracing // nil or off: no spans

	feed *changeFeed // GET /v1/changes; nil when the store announces no changes

	routesMu sync.Mutex
	routes   map[string]*[]string // listener → patterns registered by Public and Admin

	transmitter *ssf.Transmitter // nil: no SSF transmitter routes
	receiver    *ssf.Receiver    // nil: POST /ssf/events refuses every caller
}

// Config configures a Server.
type Config struct {
	Manager *tether.Manager
	// Admin checks the admin key, for the admin API and the console alike.
	// Required.
	Admin  *adminauth.Authenticator
	Logger *slog.Logger

	Keys     *handshake.KeyRing  // the node's signing keys, published as JWKS; nil: none
	Minter   *handshake.Minter   // optional
	Verifier *handshake.Verifier // optional

	ForwardAuth *forwardauth.Authorizer // served at /v1/authz; nil: no rules, loopback proxies trusted
	OIDC        *OIDCConfig             // sign-in at /v1/login; nil: off
	Cookies     tether.Cookies          // the session cookie that sign-in sets

	// Shared Signals (DESIGN §11): the transmitter's metadata and stream
	// management routes (and its push delivery metrics on /metrics), and
	// the receiver of pushed SETs. Optional.
	Transmitter *ssf.Transmitter
	Receiver    *ssf.Receiver

	// SignInURL is where the account pages send a browser that is not
	// signed in; empty: they only say so. See web.Config.
	SignInURL string

	// Tracing, when on, gives every request a span named by its route.
	Tracing *tracing.Tracing
}

// New returns a Server. Its Public and Admin handlers are meant for two
// listeners, so the admin API can stay on a private address.
func New(cfg Config) (*Server, error) {
	if cfg.Manager == nil {
		return nil, errors.New("api: Config.Manager is required")
	}
	if cfg.Admin == nil {
		return nil, errors.New("api: Config.Admin is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		m:                cfg.Manager,
		admin:            cfg.Admin,
		log:              cfg.Logger,
		metrics:          newMetrics(cfg.Manager, cfg.Admin),
		creates:          ratelimit.New(rate.Limit(50), 100),
		exchangeFailures: ratelimit.New(rate.Limit(20), 100),
		revokeMisses:     ratelimit.New(rate.Limit(20), 100),
		keys:             cfg.Keys,
		minter:           cfg.Minter,
		verifier:         cfg.Verifier,
		tracing:          cfg.Tracing,
		transmitter:      cfg.Transmitter,
		receiver:         cfg.Receiver,
	}
	if cfg.Transmitter != nil {
		// Its push deliveries are the server's to report, beside webhooks'.
		s.metrics.registry.MustRegister(cfg.Transmitter)
	}
	if w, ok := cfg.Manager.Watcher(); ok {
		s.feed = newChangeFeed(w, cfg.Manager.Invalidate, cfg.Logger)
	}
	var err error
	if s.authz = cfg.ForwardAuth; s.authz == nil {
		if s.authz, err = defaultAuthorizer(cfg.Manager); err != nil {
			return nil, err
		}
	}
	if cfg.OIDC != nil {
		if s.oidc, err = newOIDCLogin(*cfg.OIDC, cfg.Cookies); err != nil {
			return nil, err
		}
	}
	s.web, err = web.New(web.Config{Manager: cfg.Manager, Admin: cfg.Admin, Keys: cfg.Keys, Logger: cfg.Logger, SignInURL: cfg.SignInURL,
		Cookies: cfg.Cookies})
	return s, err
}

// Metrics returns the server's Prometheus registry owner.
func (s *Server) Metrics() *Metrics { return s.metrics }

var badRequest = httperr.BadRequest

// handler is an http.Handler that returns its error for writeError.
type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// writeError answers err as JSON {"error","message"}, as httperr.Classify
// words it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := httperr.Classify(r, err, s.log)
	e.SetHeaders(w.Header())
	if e.Status == http.StatusUnauthorized {
		tether.SetChallenge(w.Header(), err) // DPoP, for a bound session
	}
	writeJSON(w, e.Status, apitype.Error{Error: e.Code, Message: e.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// Shared like common's header values, which see.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func setJSONHeaders(h http.Header) {
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
}

// decodeJSON reads one JSON object into v, strictly: bounded size, no unknown
// fields, nothing after it. Its errors are 400s that say what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
		if err == nil {
			if _, e := dec.Token(); e != io.EOF {
				err = badRequest("unexpected data after the JSON object")
			}
		}
	}
	var he *httperr.Error
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return he
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
	case errors.Is(err, tether.ErrBadInput): // a field's own check, such as apitype.Duration's
		return err
	case unknownField(raw, v) != "":
		return badRequest("unknown field %q", unknownField(raw, v))
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

// unknownField names the first member of the JSON object raw that the
// struct v points to has no field for, as encoding/json matches them (case
// folded); "" when there is none. encoding/json's own error for it has no
// type to read the name from.
func unknownField(raw []byte, v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	known := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		known[strings.ToLower(name)] = true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		tok, err := dec.Token()
		name, ok := tok.(string)
		if err != nil || !ok {
			return ""
		}
		if !known[strings.ToLower(name)] {
			return name
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}
