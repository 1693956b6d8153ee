package tether

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Cookie names. Under TLS (or behind a TLS-terminating proxy on a public name)
// the cookie carries the __Host- prefix, which browsers accept only when it is
// Secure, host-only and Path=/. On plain-HTTP loopback, for development, it is
// a plain name without Secure, since browsers would not send it back otherwise.
const (
	CookieName       = "tether_session"
	SecureCookieName = "__Host-tether"
)

// ErrCrossOrigin: a cookie-authenticated, state-changing request did not come
// from this site. Callers answer 403.
var ErrCrossOrigin = errors.New("cross-origin request refused")

// TokenFromRequest returns the session token r carries, from an
// "Authorization: Bearer" header or else the session cookie, and whether it
// came from the cookie (which makes the request subject to CSRF checks). Over
// TLS only the __Host- cookie counts: a plainly named one could have been
// planted by a sibling host or over plain HTTP (cookie tossing).
func TokenFromRequest(r *http.Request) (token string, fromCookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), false
		}
		return "", false // some other scheme: never fall back to the cookie
	}
	if c, err := r.Cookie(sessionCookie(r).Name); err == nil && c.Value != "" {
		return c.Value, true
	}
	return "", false
}

var crossOrigin = http.NewCrossOriginProtection()

// CheckCrossOrigin refuses a state-changing request that a browser sent from
// another site, by Go's CrossOriginProtection (Sec-Fetch-Site, then Origin
// against Host). A request with neither header, as services send, passes.
func CheckCrossOrigin(r *http.Request) error {
	if err := crossOrigin.Check(r); err != nil {
		return fmt.Errorf("%w: %v", ErrCrossOrigin, err)
	}
	return nil
}

// CheckCSRF is CheckCrossOrigin for cookie-authenticated requests, plus what
// that lets through: a request that has neither header, which no current
// browser sends for a cross-site form post but an old one might.
func CheckCSRF(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if err := CheckCrossOrigin(r); err != nil {
		return err
	}
	if r.Header.Get("Sec-Fetch-Site") == "" && r.Header.Get("Origin") == "" {
		return fmt.Errorf("%w: neither Sec-Fetch-Site nor Origin is set", ErrCrossOrigin)
	}
	return nil
}

// Authenticate validates the token r carries, applying the CSRF check when it
// came from the cookie, and the DPoP proof when the session is bound to a key
// (see DPoPError). It returns the session and the token.
func (m *Manager) Authenticate(r *http.Request) (*Session, string, error) {
	return m.authenticate(r, r.Method, func() string { return RequestURL(r) })
}

// authenticate is Authenticate for method and url, which only a DPoP-bound
// session needs: url is called then, and a bearer read pays nothing for it.
func (m *Manager) authenticate(r *http.Request, method string, url func() string) (*Session, string, error) {
	token, dpopScheme, fromCookie := credentials(r, m.cfg.Cookies)
	if token == "" {
		m.stats.count(ErrInvalidToken)
		return nil, "", fmt.Errorf("%w: no token", ErrInvalidToken)
	}
	if fromCookie {
		if err := CheckCSRF(r); err != nil {
			return nil, "", err
		}
	}
	s, err := m.Validate(r.Context(), token)
	if err != nil {
		return nil, "", m.inScheme(dpopScheme, err)
	}
	if err := m.checkBinding(r, s, token, dpopScheme, method, url); err != nil {
		return nil, "", err
	}
	return s, token, nil
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// FromContext returns the session that Middleware put in ctx.
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(ctxKey{}).(*Session)
	return s, ok
}

// Middleware lets through only requests with a live session, which handlers
// find with FromContext; a DPoP-bound session only with a valid proof for the
// request. Others get 401 (with WWW-Authenticate: Bearer, or DPoP), 403 for
// a cross-site cookie request, or 503 when the store cannot be reached: never
// the handler.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _, err := m.Authenticate(r)
		if err != nil {
			WriteAuthError(w, err)
			return
		}
		m.SetDPoPNonce(w.Header(), s)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), s)))
	})
}

// WriteAuthError answers a failed Authenticate as JSON {"error": code}.
func WriteAuthError(w http.ResponseWriter, err error) {
	status, code := http.StatusServiceUnavailable, "unavailable"
	switch {
	case errors.Is(err, ErrInvalidToken):
		status, code = http.StatusUnauthorized, "unauthenticated"
		SetChallenge(w.Header(), err)
	case errors.Is(err, ErrCrossOrigin):
		status, code = http.StatusForbidden, "cross_origin"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// SetCookie writes the session cookie with hardened defaults: HttpOnly,
// SameSite=Lax, Path=/, host-only, and Secure with the __Host- prefix unless
// the request is plain HTTP to a loopback address.
func SetCookie(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	c := sessionCookie(r)
	c.Value, c.Expires = token, expires
	http.SetCookie(w, c)
}

// ClearCookie removes the session cookie.
func ClearCookie(w http.ResponseWriter, r *http.Request) {
	c := sessionCookie(r)
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func sessionCookie(r *http.Request) *http.Cookie {
	c := &http.Cookie{Name: CookieName, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if IsSecureRequest(r) {
		c.Name, c.Secure = SecureCookieName, true
	}
	return c
}

// IsSecureRequest is false only for plain HTTP to a loopback host: anywhere
// else a plain-HTTP request is taken to sit behind a TLS-terminating proxy.
// Cookies are Secure exactly when it is true.
func IsSecureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // "[::1]" without a port
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// ClientIP is the address a request came from: the TCP peer. No proxy header
// is trusted, since any client can send one.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ClientMetadata describes the client a session is created for: its address
// and user agent, cut to fit the metadata limits and always valid UTF-8.
func ClientMetadata(r *http.Request) map[string]string {
	md := map[string]string{"ip": ClientIP(r)}
	if ua := r.UserAgent(); ua != "" {
		md["user_agent"] = strings.ToValidUTF8(ua[:min(len(ua), MaxMetadataValLen)], "")
	}
	return md
}
