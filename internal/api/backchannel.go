package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/jwtcore"
)

// backchannelLogoutEvent is the event a logout token carries (OpenID Connect
// Back-Channel Logout 1.0 §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutIATLeeway is how far ahead of this node's clock a logout token's iat
// may be: the provider's clock skew, as for its ID tokens.
const logoutIATLeeway = time.Minute

// errLogoutToken is every refusal of a logout token (§2.8): 400
// {"error":"invalid_request"}; the reason goes to the log only.
type errLogoutToken struct{ reason string }

func (e *errLogoutToken) Error() string { return "logout token refused: " + e.reason }

// backchannelLogout receives the provider's logout token (POST form
// logout_token), verifies it against the oidc.issuer's keys as sign-in does
// (its algorithms, iss, aud this client, exp), checks the logout rules (typ
// logout+jwt when present, the back-channel logout event, sub or sid, no
// nonce, a jti used once) and ends the sessions signed in through that
// provider session (sid, with or without sub) or, without sid, every session
// of that provider subject: 200. Anything else is 400 {"error":"invalid_request"}; a store
// that cannot decide is 503, so that the provider tries again.
func (s *Server) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	l := s.oidc
	if l == nil {
		s.writeError(w, r, errNoOIDC)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	raw := ""
	if err := r.ParseForm(); err == nil {
		raw = r.PostForm.Get("logout_token")
	}
	n, err := s.endProviderSession(r.Context(), l, raw)
	var refused *errLogoutToken
	switch {
	case errors.As(err, &refused):
		s.log.Info("back-channel logout refused", "reason", refused.reason)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
	case err != nil:
		s.writeError(w, r, err)
	default:
		s.log.Info("back-channel logout", "revoked", n)
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) endProviderSession(ctx context.Context, l *oidcLogin, raw string) (int, error) {
	refuse := func(reason string) (int, error) { return 0, &errLogoutToken{reason} }
	if raw == "" {
		return refuse("no logout_token")
	}
	u, err := jwtcore.Parse(raw)
	if err != nil {
		return refuse("not a compact JWS with only alg, typ and kid: " + jwtcore.Reason(err))
	}
	if u.Header.Typ != "" && !jwtcore.TypeIs(u.Header.Typ, "logout+jwt") {
		return refuse("typ is not logout+jwt")
	}
	if _, err := l.discover(ctx); err != nil {
		return 0, err
	}
	idt, err := l.verifier.Verify(oidc.ClientContext(ctx, l.cfg.HTTPClient), raw)
	if err != nil {
		return refuse("does not verify against the provider")
	}
	var c struct {
		JTI    string                    `json:"jti"`
		SID    string                    `json:"sid"`
		Nonce  *string                   `json:"nonce"`
		Events map[string]map[string]any `json:"events"`
	}
	if err := idt.Claims(&c); err != nil {
		return refuse("claims do not decode")
	}
	switch _, ok := c.Events[backchannelLogoutEvent]; {
	case !ok:
		return refuse("no back-channel logout event")
	case c.Nonce != nil:
		return refuse("a logout token has no nonce")
	case c.JTI == "" || len(c.JTI) > 256:
		return refuse("jti missing")
	case idt.IssuedAt.IsZero():
		return refuse("iat missing") // required (§2.4); the verifier does not check it
	case idt.IssuedAt.After(time.Now().Add(logoutIATLeeway)):
		return refuse("iat in the future")
	case idt.Subject == "" && c.SID == "":
		return refuse("neither sub nor sid")
	case len(c.SID) > 1024:
		return refuse("sid too long")
	}
	ctx = tether.WithActor(ctx, tether.Actor{Kind: tether.ActorOIDC, ID: idt.Issuer})
	subject := ""
	var n int
	if idt.Subject == "" {
		// sid alone (§2.4): the sessions are found through the provider
		// session's index, whatever their subject.
		n, err = s.m.RevokeOriginSession(ctx, idt.Issuer, c.SID)
	} else {
		subject = l.cfg.SubjectPrefix + idt.Subject
		if tether.CheckSubject(subject) != nil {
			return 0, nil // a subject no session here can have
		}
		n, err = s.m.RevokeOrigin(ctx, subject, tether.Origin{Issuer: idt.Issuer, Subject: idt.Subject, SessionID: c.SID})
	}
	if err != nil {
		return n, err
	}
	// The jti is consumed only once the revocation has committed: after a
	// store failure the provider's retry revokes again (idempotent) rather
	// than being refused as a replay. A replay re-runs the revocation of
	// what the token names, and is then refused.
	sum := sha256.Sum256([]byte(idt.Issuer + "\x00" + c.JTI))
	until := idt.Expiry.Add(time.Minute)
	if err := s.m.Consume(ctx, "bcl:"+hex.EncodeToString(sum[:]), until); errors.Is(err, tether.ErrReplayed) {
		return refuse("jti seen before")
	} else if err != nil {
		return n, err
	}
	if err := s.m.Record(ctx, tether.EventOIDCLogout, subject, map[string]any{"sid": c.SID, "revoked": n, "backchannel": true}); err != nil {
		s.log.Warn("back-channel logout: oidc.logout event not recorded", "err", err)
	}
	return n, nil
}
