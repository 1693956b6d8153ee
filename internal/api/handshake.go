package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
)

// Token-type URNs of RFC 8693. PASETO has none registered, so Tether names its
// own, documented in the README.
const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypePASETO      = "urn:tether:params:oauth:token-type:paseto"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// mintHandshake: a session holder asks for a single-use token for another service.
func (s *Server) mintHandshake(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	var req struct {
		Audience string `json:"audience"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if s.minter == nil {
		return badRequest("unknown audience: this node mints no handshake tokens")
	}
	// The login behind this session travels along, so that the receiver's
	// session keeps it (ASVS 7.6.1) rather than starting a fresh clock.
	authTime := sess.AuthTime
	if authTime.IsZero() {
		authTime = sess.CreatedAt
	}
	token, format, exp, err := s.minter.Mint(req.Audience, sess.Subject, handshake.WithAuthTime(authTime))
	if errors.Is(err, handshake.ErrUnknownAudience) {
		return badRequest("unknown audience %q", req.Audience)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"token": token, "format": format, "expires_at": exp})
}

// exchangeHandshake trades a handshake token for a local opaque session, once.
func (s *Server) exchangeHandshake(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkExchangeRequest(r); err != nil {
		return err
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		// A cross-site form can post text/plain that looks like JSON; JSON
		// itself needs a CORS preflight, which this server never grants.
		return badRequest("Content-Type must be application/json")
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	token, sess, err := s.exchange(r, req.Token)
	if err != nil {
		return err
	}
	s.endCookieSession(r)
	tether.SetCookie(w, r, token, sess.ExpiresAt)
	return writeJSON(w, http.StatusCreated, tokenResponse{Token: token, Session: sess})
}

// endCookieSession ends the session whose cookie a browser brought to an
// exchange: a new login replaces it rather than living beside it, so a
// session planted in the browser beforehand is worth nothing (fixation).
func (s *Server) endCookieSession(r *http.Request) {
	if token, fromCookie := tether.TokenFromRequest(r); fromCookie {
		if old, err := s.m.Validate(r.Context(), token); err == nil {
			s.m.Revoke(r.Context(), old.ID)
		}
	}
}

// tokenExchange is the RFC 8693 token-exchange grant. Its refusals are RFC
// 6749 §5.2 error responses, {"error","error_description"}, which OAuth
// clients parse; other failures (403, 429, 503) keep the API's own shape.
func (s *Server) tokenExchange(w http.ResponseWriter, r *http.Request) error {
	return s.oauthErrors(w, s.tokenExchangeGrant(w, r))
}

func (s *Server) tokenExchangeGrant(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkExchangeRequest(r); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return oauthError("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return oauthError("invalid_request", "malformed form body")
	}
	f := r.PostForm
	if f.Get("grant_type") != grantTokenExchange {
		return oauthError("unsupported_grant_type", "grant_type must be "+grantTokenExchange)
	}
	raw, typ := f.Get("subject_token"), f.Get("subject_token_type")
	if raw == "" {
		return oauthError("invalid_request", "subject_token is required")
	}
	switch typ {
	case tokenTypeJWT, tokenTypePASETO:
	default:
		return oauthError("invalid_request", "subject_token_type must be "+tokenTypeJWT+" or "+tokenTypePASETO)
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != tokenTypeAccessToken {
		return oauthError("invalid_request", "requested_token_type must be "+tokenTypeAccessToken)
	}
	if (typ == tokenTypePASETO) != strings.HasPrefix(raw, "v4.") {
		s.refuseExchange(r, "token_type")
		return oauthError("invalid_grant", "")
	}
	token, sess, err := s.exchange(r, raw)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
		return oauthError("invalid_grant", "")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Pragma", "no-cache")
	return writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      token,
		"issued_token_type": tokenTypeAccessToken,
		"token_type":        "Bearer",
		// The session was created just now: its lifetime, without reading a
		// second clock (the Manager's may be injected).
		"expires_in": int(sess.ExpiresAt.Sub(sess.CreatedAt).Seconds()),
	})
}

// oauthErr is a refusal at the token endpoint, answered per RFC 6749 §5.2.
type oauthErr struct{ code, description string }

func (e *oauthErr) Error() string { return "oauth: " + e.code + ": " + e.description }

func oauthError(code, description string) error {
	return &oauthErr{code: code, description: description}
}

// checkExchangeRequest applies what both exchange routes need: a browser must
// not be made to exchange someone else's token from another site (login
// CSRF), and a client that keeps presenting bad tokens is slowed down. Only
// refusals are charged, so one address may carry any amount of legitimate
// service-to-service traffic.
func (s *Server) checkExchangeRequest(r *http.Request) error {
	if err := tether.CheckCrossOrigin(r); err != nil {
		return err
	}
	if wait := s.limits.exchangeFailures.blocked(clientKey(r)); wait > 0 {
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited", message: "too many refused exchanges", retry: wait}
	}
	return nil
}

// refuseExchange records why an exchange was refused (log, metric, the
// client's failure bucket) and returns the one answer every refusal gets.
func (s *Server) refuseExchange(r *http.Request, reason string) error {
	s.metrics.exchangeFailures.WithLabelValues(reason).Inc()
	s.limits.exchangeFailures.take(clientKey(r))
	s.log.Info("handshake refused", "reason", reason, "remote", tether.ClientIP(r))
	return errUnauthenticated
}

// exchange verifies raw, consumes its (issuer, jti) in the shared store and
// starts a local session. Every refusal is the same 401: which check failed
// goes to the log and a metric, never to the client.
func (s *Server) exchange(r *http.Request, raw string) (string, *tether.Session, error) {
	if s.verifier == nil {
		return "", nil, s.refuseExchange(r, "issuer")
	}
	claims, err := s.verifier.Exchange(r.Context(), raw, s.m.Store())
	if errors.Is(err, handshake.ErrInvalid) {
		return "", nil, s.refuseExchange(r, handshake.Reason(err))
	}
	if err != nil {
		return "", nil, err
	}
	authTime := claims.AuthTime // the login at the issuer, or else the handshake's own time
	if authTime.IsZero() {
		authTime = claims.IssuedAt
	}
	return s.m.Create(r.Context(), tether.CreateParams{
		Subject: claims.LocalSubject, AuthTime: authTime, AuthMethod: "handshake",
		Metadata: handshakeMetadata(r, claims.Issuer),
	})
}

// handshakeMetadata is the client's metadata plus the issuer that vouched for it.
func handshakeMetadata(r *http.Request, issuer string) map[string]string {
	md := tether.ClientMetadata(r)
	md["handshake_issuer"] = issuer
	return md
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if s.keys == nil {
		_, err := w.Write([]byte(`{"keys":[]}`))
		return err
	}
	_, err := w.Write(s.keys.JWKS())
	return err
}

func (s *Server) listKeys(w http.ResponseWriter, _ *http.Request) error {
	keys := []handshake.KeyInfo{}
	if s.keys != nil {
		keys = s.keys.List()
	}
	return writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	if s.keys == nil {
		return badRequest("this node has no key ring")
	}
	if err := s.keys.Rotate(); err != nil {
		return err
	}
	s.log.Info("handshake signing keys rotated")
	return s.listKeys(w, r)
}
