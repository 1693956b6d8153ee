package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/urlpolicy"
	"github.com/tetherhq/tether/internal/web"
)

// OIDCConfig configures sign-in through an OpenID provider (DESIGN §9).
type OIDCConfig struct {
	Issuer       string // https, or http on a loopback address for development
	ClientID     string
	ClientSecret string
	RedirectURL  string   // this node's /v1/login/callback as registered at the provider
	Scopes       []string // default openid, profile, email
	RolesClaim   string   // optional: the subject's roles are set from this claim at each sign-in
	// SubjectPrefix is put before the ID token's sub to make the session's
	// subject, so that provider subjects cannot collide with other ones.
	SubjectPrefix string
	// HTTPClient talks to the provider. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
}

// Sign-in limits.
const (
	loginStateTTL   = 10 * time.Minute // a sign-in must finish within this
	authTimeLeeway  = time.Minute      // clock skew allowed on max_age
	defaultAfterRd  = "/account/sessions"
	loginCookieName = "tether_login"
	// Under TLS the state cookie is __Host-, like the session cookie, so a
	// sibling host cannot plant one.
	secureLoginCookieName = "__Host-tether_login"
)

// oidcLogin is the relying party. The provider's discovery document is read
// on first use and kept, so that Tether starts (and forward auth works) while
// the provider is down.
type oidcLogin struct {
	cfg     OIDCConfig
	cookies tether.Cookies

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
	endURL   string // end_session_endpoint, if the provider has one
}

func newOIDCLogin(cfg OIDCConfig, cookies tether.Cookies) (*oidcLogin, error) {
	if err := urlpolicy.HTTPSOrLoopback(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("oidc.issuer: %w", err)
	}
	if cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: client_id and redirect_url are required")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) { // without it there is no ID token
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	// Discovery, keys and the token endpoint are checked as https (or
	// loopback) before use; a redirect would take the request past that check,
	// so none is followed (on a copy: the caller's client stays as it was).
	c := *cfg.HTTPClient
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cfg.HTTPClient = &c
	return &oidcLogin{cfg: cfg, cookies: cookies}, nil
}

// discover returns the provider, reading its discovery document once.
func (l *oidcLogin) discover(ctx context.Context) (*oidc.Provider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider != nil {
		return l.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, l.cfg.HTTPClient), l.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: OpenID provider discovery: %v", tether.ErrUnavailable, err)
	}
	var meta struct {
		JWKS       string `json:"jwks_uri"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("OpenID provider discovery: %w", err)
	}
	ep := p.Endpoint()
	for _, u := range []string{ep.AuthURL, ep.TokenURL, meta.JWKS} {
		if err := urlpolicy.HTTPSOrLoopback(u); err != nil {
			return nil, fmt.Errorf("OpenID provider discovery: %w", err)
		}
	}
	if meta.EndSession != "" && urlpolicy.HTTPSOrLoopback(meta.EndSession) == nil {
		l.endURL = meta.EndSession
	}
	// The verifier accepts the algorithms the provider's discovery lists
	// (RS256 included), never one taken from a token's header.
	l.verifier = p.Verifier(&oidc.Config{ClientID: l.cfg.ClientID})
	l.oauth = oauth2.Config{
		ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: l.cfg.RedirectURL, Scopes: l.cfg.Scopes,
	}
	l.provider = p
	return p, nil
}

// loginState is what the browser keeps between /v1/login and the callback,
// in a short-lived HttpOnly cookie: it binds the sign-in to that browser.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`           // PKCE code verifier
	Rd       string `json:"r,omitempty"` // where to go afterwards, checked
	MaxAge   *int   `json:"m,omitempty"` // seconds, when the sign-in was asked to be this recent
	Started  int64  `json:"t"`           // Unix seconds
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func loginCookie(r *http.Request) *http.Cookie {
	c := &http.Cookie{Name: loginCookieName, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if tether.IsSecureRequest(r) {
		c.Name, c.Secure = secureLoginCookieName, true
	}
	return c
}

// routeLogin adds the sign-in routes to the public mux.
func (s *Server) routeLogin(mux router) {
	mux.Handle("GET /v1/login", s.handle(s.login))
	mux.Handle("GET /v1/login/callback", s.handle(s.loginCallback))
	mux.Handle("POST /v1/logout", s.handle(s.oidcLogout))
	mux.Handle("POST /v1/oidc/backchannel-logout", http.HandlerFunc(s.backchannelLogout))
}

var errNoOIDC = httperr.New(http.StatusNotFound, httperr.CodeNotFound, "sign-in through an OpenID provider is not configured")

// login sends the browser to the provider: authorization code with PKCE
// (S256), state and nonce.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	l := s.oidc
	if l == nil {
		return errNoOIDC
	}
	q := r.URL.Query()
	st := loginState{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Rd: l.checkRd(q.Get("rd")), Started: time.Now().Unix()}
	if q.Has("max_age") {
		n, err := strconv.Atoi(q.Get("max_age"))
		if err != nil || n < 0 || n > 366*24*3600 {
			return badRequest("max_age must be a number of seconds")
		}
		st.MaxAge = &n
	}
	if _, err := l.discover(r.Context()); err != nil {
		return err
	}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)}
	if st.MaxAge != nil { // a step-up (RFC 9470): the provider must sign the user in again if needed
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(*st.MaxAge)))
	}
	b, _ := json.Marshal(st)
	c := loginCookie(r)
	c.Value, c.MaxAge = base64.RawURLEncoding.EncodeToString(b), int(loginStateTTL/time.Second)
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, l.oauth.AuthCodeURL(st.State, opts...), http.StatusFound)
	return nil
}

// checkRd returns rd if it is a place Tether may send a browser after
// sign-in: a path on this host, or an http(s) URL whose host is the redirect
// URL's host or under cookie.domain. Anything else (another site, a
// scheme-relative "//host", a backslash trick, user info) gives "".
func (l *oidcLogin) checkRd(rd string) string {
	if rd == "" || len(rd) > 4096 || strings.ContainsAny(rd, "\\\r\n\t ") {
		return ""
	}
	u, err := url.Parse(rd)
	if err != nil || u.User != nil || u.Opaque != "" {
		return ""
	}
	if u.Scheme == "" && u.Host == "" {
		if !strings.HasPrefix(rd, "/") || strings.HasPrefix(rd, "//") {
			return ""
		}
		return rd
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return ""
	}
	self, _ := url.Parse(l.cfg.RedirectURL)
	host := strings.ToLower(u.Hostname())
	if host == strings.ToLower(self.Hostname()) {
		return rd
	}
	if d := strings.ToLower(l.cookies.Domain); d != "" && (host == d || strings.HasSuffix(host, "."+d)) {
		return rd
	}
	return ""
}

// errLoginFailed: the provider refused, or its answer did not verify. One
// answer for all, with the detail in the log.
var errLoginFailed = httperr.New(http.StatusUnauthorized, "login_failed", "the sign-in did not complete; start again")

// loginCallback verifies the provider's answer, exchanges the ID token once
// for an opaque session, and never keeps the ID token.
func (s *Server) loginCallback(w http.ResponseWriter, r *http.Request) error {
	l := s.oidc
	if l == nil {
		return errNoOIDC
	}
	c := loginCookie(r)
	st, ok := readLoginState(r, c.Name)
	// The state cookie is single use, whatever happens next.
	c.MaxAge = -1
	http.SetCookie(w, c)
	q := r.URL.Query()
	if !ok || time.Since(time.Unix(st.Started, 0)) > loginStateTTL {
		return badRequest("no sign-in in progress in this browser, or it expired; start again")
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		return badRequest("the state does not match the sign-in this browser started")
	}
	if e := q.Get("error"); e != "" {
		s.log.Info("sign-in refused by the OpenID provider", "error", e)
		return errLoginFailed
	}
	if _, err := l.discover(r.Context()); err != nil {
		return err
	}
	ctx := oidc.ClientContext(r.Context(), l.cfg.HTTPClient)
	tok, err := l.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			s.log.Info("sign-in: the provider refused the code", "error", re.ErrorCode)
			return errLoginFailed
		}
		return fmt.Errorf("%w: token endpoint: %v", tether.ErrUnavailable, err)
	}
	rawIDToken, _ := tok.Extra("id_token").(string)
	if rawIDToken == "" {
		s.log.Info("sign-in: no ID token in the provider's answer")
		return errLoginFailed
	}
	idt, err := l.verifier.Verify(ctx, rawIDToken)
	if err != nil {
		// go-oidc's errors name the issuer, audience or times it expected,
		// never the token's bytes.
		s.log.Info("sign-in: the ID token does not verify", "err", err)
		return errLoginFailed
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return errLoginFailed
	}
	if n, _ := claims["nonce"].(string); subtle.ConstantTimeCompare([]byte(n), []byte(st.Nonce)) != 1 {
		s.log.Info("sign-in: the ID token's nonce does not match")
		return errLoginFailed
	}
	var authTime time.Time
	if at, ok := claims["auth_time"].(float64); ok && at > 0 {
		authTime = time.Unix(int64(at), 0).UTC()
	}
	if st.MaxAge != nil && (authTime.IsZero() || time.Since(authTime) > time.Duration(*st.MaxAge)*time.Second+authTimeLeeway) {
		s.log.Info("sign-in: auth_time older than the max_age asked for")
		return errLoginFailed
	}
	p := tether.CreateParams{
		Subject: l.cfg.SubjectPrefix + idt.Subject, AuthTime: authTime, AuthMethod: "oidc",
		Metadata: tether.ClientMetadata(r),
	}
	// The provider's identity, for back-channel logout and for the record.
	p.Metadata["oidc_iss"], p.Metadata["oidc_sub"] = idt.Issuer, idt.Subject
	if sid, _ := claims["sid"].(string); sid != "" {
		p.Metadata["oidc_sid"] = sid
	}
	p.Origin = tether.Origin{Issuer: idt.Issuer, Subject: idt.Subject, SessionID: p.Metadata["oidc_sid"]} // for back-channel logout
	if l.cfg.RolesClaim != "" {
		p.Roles = rolesFromClaim(claims[l.cfg.RolesClaim])
	}
	// The provider vouched for this sign-in: the events say so.
	ctx = tether.WithActor(r.Context(), tether.Actor{Kind: tether.ActorOIDC, ID: idt.Issuer, IP: tether.ClientIP(r)})
	token, sess, err := s.m.Create(ctx, p)
	if errors.Is(err, tether.ErrBadInput) {
		s.log.Info("sign-in: the provider's subject or roles are not usable", "err", err)
		return errLoginFailed
	}
	if err != nil {
		return err
	}
	if err := s.m.Record(ctx, tether.EventOIDCLogin, sess.Subject, map[string]any{
		"session_id": sess.ID, "iss": idt.Issuer, "sub": idt.Subject, "sid": p.Metadata["oidc_sid"],
	}); err != nil {
		// The session and its session.created event stand; only this
		// companion entry is missing.
		s.log.Warn("sign-in: oidc.login event not recorded", "err", err)
	}
	l.cookies.Set(w, r, token, sess.ExpiresAt)
	if l.cookies.Domain == "" { // a DBSC session covers one origin, never the apps under a shared domain
		web.OfferDBSC(w.Header(), web.DBSCRegisterPath, token, s.m.Now())
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, cmp.Or(l.checkRd(st.Rd), defaultAfterRd), http.StatusFound)
	return nil
}

func readLoginState(r *http.Request, name string) (loginState, bool) {
	var st loginState
	c, err := r.Cookie(name)
	if err != nil {
		return st, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || json.Unmarshal(b, &st) != nil || st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return loginState{}, false
	}
	return st, true
}

// rolesFromClaim reads a roles claim: a list of strings, or one string.
// Anything else gives no roles: the sign-in then clears the subject's roles,
// as the provider says it has none.
func rolesFromClaim(v any) []string {
	roles := []string{}
	switch v := v.(type) {
	case string:
		roles = append(roles, v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				roles = append(roles, s)
			}
		}
	}
	return roles
}

// oidcLogout ends the browser's session (a same-site POST carrying the
// cookie), clears the cookie and sends the browser to the provider's
// end_session_endpoint, if it has one, to end the provider's session too.
func (s *Server) oidcLogout(w http.ResponseWriter, r *http.Request) error {
	l := s.oidc
	if l == nil {
		return errNoOIDC
	}
	if err := tether.CheckCSRF(r); err != nil {
		return err
	}
	if token, _ := l.cookies.Token(r); token != "" {
		sess, err := s.m.Validate(r.Context(), token)
		switch {
		case err == nil:
			if err := s.m.Revoke(r.Context(), sess.ID); err != nil && !errors.Is(err, tether.ErrNotFound) {
				return err
			}
			if err := s.m.Record(r.Context(), tether.EventOIDCLogout, sess.Subject, map[string]any{"session_id": sess.ID}); err != nil {
				s.log.Warn("logout: oidc.logout event not recorded", "err", err)
			}
		case !errors.Is(err, tether.ErrInvalidToken):
			return err
		}
	}
	l.cookies.Clear(w, r)
	if l.cookies.Domain != "" {
		tether.ClearCookie(w, r) // a host-only one, if this host has one too
	}
	w.Header().Set("Cache-Control", "no-store")
	if _, err := l.discover(r.Context()); err == nil && l.endURL != "" {
		u, _ := url.Parse(l.endURL)
		q := u.Query()
		q.Set("client_id", l.cfg.ClientID)
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
		return nil
	}
	http.Redirect(w, r, defaultAfterRd, http.StatusFound)
	return nil
}
