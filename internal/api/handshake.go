package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/ratelimit"
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
	var req apitype.MintRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if s.minter == nil {
		return badRequest("unknown audience: this node mints no handshake tokens")
	}
	token, format, exp, err := s.minter.Mint(req.Audience, sess.Subject, handshake.WithAuthTime(sess.AuthenticatedAt()), handshake.WithSessionID(sess.ID))
	if errors.Is(err, handshake.ErrUnknownAudience) {
		return badRequest("unknown audience %q", req.Audience)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apitype.MintResponse{Token: token, Format: format, ExpiresAt: exp})
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
	var req apitype.ExchangeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	jkt, err := s.bindingKey(w, r)
	if err != nil {
		return err
	}
	token, sess, err := s.exchange(r, req.Token, jkt)
	if err != nil {
		return err
	}
	if jkt == "" { // a bound token in a cookie would be refused anyway
		tether.SetCookie(w, r, token, sess.ExpiresAt)
	}
	return writeJSON(w, http.StatusCreated, apitype.TokenResponse{Token: token, Session: sess})
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
	jkt, err := s.bindingKey(w, r)
	if err != nil {
		return dpopOAuthError(err)
	}
	token, sess, err := s.exchange(r, raw, jkt)
	if errors.Is(err, tether.ErrInvalidToken) {
		return oauthError("invalid_grant", "")
	}
	if err != nil {
		return err
	}
	tokenType := "Bearer"
	if jkt != "" {
		tokenType = "DPoP" // RFC 9449 §5
	}
	w.Header().Set("Pragma", "no-cache")
	return writeJSON(w, http.StatusOK, apitype.OAuthToken{
		AccessToken:     token,
		IssuedTokenType: tokenTypeAccessToken,
		TokenType:       tokenType,
		// The session was created just now: its lifetime, without reading a
		// second clock (the Manager's may be injected).
		ExpiresIn: int(sess.ExpiresAt.Sub(sess.CreatedAt).Seconds()),
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
	if wait := s.exchangeFailures.Blocked(ratelimit.ClientKey(r)); wait > 0 {
		return httperr.RateLimited("too many refused exchanges", wait)
	}
	return nil
}

// refuseExchange records why an exchange was refused (log, metric, the
// client's failure bucket) and returns the one answer every refusal gets.
func (s *Server) refuseExchange(r *http.Request, reason string) error {
	s.metrics.exchangeFailures.WithLabelValues(reason).Inc()
	s.exchangeFailures.Take(ratelimit.ClientKey(r))
	s.log.Info("handshake refused", "reason", reason, "remote", tether.ClientIP(r))
	return fmt.Errorf("%w: handshake refused", tether.ErrInvalidToken)
}

// exchange has the library trade raw for a local session: the client's
// metadata go on it, and the session a browser's cookie stood for ends.
// The session is bound to the DPoP key jkt, if not "". Every refusal is the
// same 401: which check failed goes to the log and a metric, never to the
// client.
func (s *Server) exchange(r *http.Request, raw, jkt string) (string, *tether.Session, error) {
	if s.verifier == nil {
		return "", nil, s.refuseExchange(r, "issuer")
	}
	p := tether.ExchangeParams{Metadata: tether.ClientMetadata(r), JKT: jkt}
	if token, fromCookie := tether.TokenFromRequest(r); fromCookie {
		p.Replaces = token
	}
	token, sess, err := s.m.Exchange(r.Context(), s.verifier, raw, p)
	if errors.Is(err, tether.ErrInvalidToken) {
		reason := handshake.Reason(err)
		if !errors.Is(err, handshake.ErrInvalid) {
			reason = "subject" // verified, but names a subject this node cannot hold
		}
		return "", nil, s.refuseExchange(r, reason)
	}
	return token, sess, err
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
	keys := []apitype.Key{}
	if s.keys != nil {
		for _, k := range s.keys.List() {
			keys = append(keys, apitype.Key{KID: k.KID, Alg: k.Alg, CreatedAt: k.Created, State: k.State, RetiresAt: k.RetiresAt})
		}
	}
	return writeJSON(w, http.StatusOK, apitype.KeysResponse{Keys: keys})
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
