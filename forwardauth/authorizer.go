package forwardauth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether"
)

// Validator turns a token into a live session: a *tether.Manager, or a
// remote client with the same contract (ErrInvalidToken for anything but a
// live session, another error when the store cannot say).
type Validator interface {
	Validate(ctx context.Context, rawToken string) (*tether.Session, error)
}

// The headers an allowed answer carries, for the proxy to pass to the app;
// empty on an anonymous pass.
const (
	HeaderSubject   = "Tether-Subject"
	HeaderRoles     = "Tether-Roles" // comma-separated
	HeaderSessionID = "Tether-Session-Id"
	HeaderAuthTime  = "Tether-Auth-Time" // RFC 3339; empty when the sign-in time is unknown
)

// Options configures an Authorizer. Zero fields take the documented defaults.
type Options struct {
	Validator Validator // required
	// Prefix is the path the Authorizer is mounted at; what follows it is the
	// original path (Envoy's form). Default "/v1/authz".
	Prefix string
	// Cookies names the session cookie of the original request, for a
	// Validator that is not a *tether.Manager (which has its own).
	Cookies tether.Cookies
	// Now is the clock for max_auth_age. Default time.Now.
	Now func() time.Time
	// Logger receives store failures; never tokens. Default slog.Default().
	Logger *slog.Logger
}

// Authorizer answers forward-auth sub-requests. Its Policy can be swapped
// while it serves (SetPolicy), as on SIGHUP: each request sees one policy.
type Authorizer struct {
	opt    Options
	policy atomic.Pointer[Policy]
}

// New returns an Authorizer with policy p.
func New(opt Options, p *Policy) (*Authorizer, error) {
	if opt.Validator == nil {
		return nil, errors.New("forwardauth: Options.Validator is required")
	}
	if p == nil {
		return nil, errors.New("forwardauth: a policy is required")
	}
	if opt.Prefix == "" {
		opt.Prefix = "/v1/authz"
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	a := &Authorizer{opt: opt}
	a.policy.Store(p)
	return a, nil
}

// SetPolicy replaces the policy for the requests that start after it returns.
func (a *Authorizer) SetPolicy(p *Policy) { a.policy.Store(p) }

var (
	errForbidden = errors.New("forwardauth: forbidden by rule")
	errNoSession = fmt.Errorf("%w: no token", tether.ErrInvalidToken)
)

// stepUp: the session is valid but its sign-in is older than the rule allows.
type stepUp struct{ maxAge time.Duration }

func (e *stepUp) Error() string { return "forwardauth: sign-in too old" }

// ServeHTTP answers: 200 with the identity headers, 401 (or a redirect to
// the login page for a browser), 403, 400 for an unreadable original
// request, or 503 when the store cannot say.
func (a *Authorizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := a.policy.Load()
	o, sess, err := a.decide(r, p)
	h := w.Header()
	h["Cache-Control"] = noStore
	if err == nil {
		// All four, always, empty when there is no session or no sign-in
		// time: a proxy that copies them (Caddy before 2.10) would otherwise
		// hand the app its own unexpanded placeholder. The names are
		// canonical, so they are assigned directly, sparing Header.Set's
		// canonicalisation on every request.
		var subject, roles, id, authTime string
		if sess != nil {
			subject, roles, id = sess.Subject, strings.Join(sess.Roles, ","), sess.ID
			if !sess.AuthTime.IsZero() {
				authTime = sess.AuthTime.UTC().Format(time.RFC3339)
			}
		}
		v := []string{subject, roles, id, authTime} // one allocation for the four
		h[HeaderSubject] = v[0:1:1]
		h[HeaderRoles] = v[1:2:2]
		h[HeaderSessionID] = v[2:3:3]
		h[HeaderAuthTime] = v[3:4:4]
		w.WriteHeader(http.StatusOK)
		return
	}
	if o != nil && a.opt.Logger.Enabled(r.Context(), slog.LevelDebug) {
		a.opt.Logger.Debug("forward auth refused", "reason", err.Error(), "client", o.ClientIP,
			"method", o.Method, "host", o.Host, "path", o.Path)
	}
	var up *stepUp
	switch {
	case errors.Is(err, ErrBadRequest):
		msg, _ := tether.PublicMessage(err)
		writeError(w, http.StatusBadRequest, "bad_request", msg)
	case errors.As(err, &up):
		age := strconv.Itoa(int(up.maxAge / time.Second))
		if a.redirect(w, r, p, o, "max_age", age) {
			return
		}
		h.Set("WWW-Authenticate", `Bearer realm="tether", error="insufficient_user_authentication", error_description="a more recent sign-in is required", max_age=`+age)
		writeError(w, http.StatusUnauthorized, "insufficient_user_authentication", "")
	case errors.Is(err, tether.ErrInvalidToken):
		if a.redirect(w, r, p, o) {
			return
		}
		tether.SetChallenge(h, err) // Bearer, or DPoP for a bound session
		writeError(w, http.StatusUnauthorized, "unauthenticated", "")
	case errors.Is(err, errForbidden):
		writeError(w, http.StatusForbidden, "forbidden", "")
	case errors.Is(err, tether.ErrCrossOrigin):
		writeError(w, http.StatusForbidden, "cross_origin", "")
	default:
		if r.Context().Err() == nil {
			a.opt.Logger.Warn("forward auth: session store unavailable", "err", err)
		}
		writeError(w, http.StatusServiceUnavailable, "unavailable", "")
	}
}

// decide returns the original request and, when it may pass, the session
// (nil for an anonymous pass); else why not.
func (a *Authorizer) decide(r *http.Request, p *Policy) (*original, *tether.Session, error) {
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	o, err := readOriginal(r, a.opt.Prefix, p.isTrusted(peer.Addr()), peer.Addr().Unmap())
	if err != nil {
		return nil, nil, err
	}
	rule := p.match(&o)
	sess, err := a.authenticate(r, &o)
	if err != nil {
		// An anonymous route lets the request through without the identity
		// it did not prove: no token, a dead one, or a cross-site cookie.
		if rule != nil && rule.AllowAnonymous && (errors.Is(err, tether.ErrInvalidToken) || errors.Is(err, tether.ErrCrossOrigin)) {
			return &o, nil, nil
		}
		return &o, nil, err
	}
	if rule == nil {
		return &o, sess, nil
	}
	if len(rule.RequireRoles) > 0 && !hasAny(sess.Roles, rule.RequireRoles) {
		return &o, nil, errForbidden
	}
	if rule.MaxAuthAge > 0 && (sess.AuthTime.IsZero() || a.opt.Now().Sub(sess.AuthTime) > rule.MaxAuthAge) {
		return &o, nil, &stepUp{rule.MaxAuthAge}
	}
	return &o, sess, nil
}

// originalAuthenticator is what a *tether.Manager offers beyond Validate:
// the whole credential check (Bearer, cookie, or DPoP with its proof) of a
// request forwarded for checking, against the original method and URL.
type originalAuthenticator interface {
	AuthenticateOriginal(r *http.Request, method, url string) (*tether.Session, string, error)
}

// authenticate checks the credentials of the original request o, which r
// carries: as it would be sent to the app, for the cookie's name and the
// cross-site check, and with a DPoP proof that must name o's method and URL.
func (a *Authorizer) authenticate(r *http.Request, o *original) (*tether.Session, error) {
	orig := new(http.Request)
	*orig = *r // r's headers and context, with the original method, host and scheme
	orig.Method, orig.Host, orig.TLS = o.Method, o.Host, nil
	if o.Scheme == "https" {
		orig.TLS = &tlsState
	}
	if m, ok := a.opt.Validator.(originalAuthenticator); ok {
		path, _, _ := strings.Cut(o.URI, "?")
		sess, _, err := m.AuthenticateOriginal(orig, o.Method, o.Scheme+"://"+o.Host+path)
		return sess, err
	}
	token, fromCookie := a.opt.Cookies.Token(orig)
	if token == "" {
		return nil, errNoSession
	}
	if fromCookie {
		// The app behind the proxy takes the cookie as proof of a same-site
		// request; a cross-site form post must not ride on it.
		if err := tether.CheckCSRF(orig); err != nil {
			return nil, err
		}
	}
	return a.opt.Validator.Validate(r.Context(), token)
}

// noStore is shared by every answer: its capacity is its length, so an Add
// to it copies instead of writing here.
var noStore = []string{"no-store"}[:1:1]

// tlsState marks a reconstructed request as having come over TLS, for the
// cookie rules; nothing reads its fields.
var tlsState tls.ConnectionState

func hasAny(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if h == w {
				return true
			}
		}
	}
	return false
}

// redirect sends a browser navigation to the login page, with the original
// URL as rd and extra query pairs, and reports whether it did.
// Only a navigation (GET or HEAD that accepts HTML) is redirected: an API
// client or a script needs the 401.
func (a *Authorizer) redirect(w http.ResponseWriter, r *http.Request, p *Policy, o *original, extra ...string) bool {
	if p.login == nil || o == nil || (o.Method != http.MethodGet && o.Method != http.MethodHead) ||
		!strings.Contains(strings.ToLower(r.Header.Get("Accept")), "text/html") {
		return false
	}
	u := *p.login
	q := u.Query()
	q.Set("rd", o.url())
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusFound)
	return true
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	body := map[string]string{"error": code}
	if message != "" {
		body["message"] = message
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
