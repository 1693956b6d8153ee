package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dbsc"
	"github.com/tetherhq/tether/internal/httperr"
)

// Paths of the DBSC endpoints on the public listener.
const (
	DBSCRegisterPath = "/dbsc/register"
	DBSCRefreshPath  = "/dbsc/refresh"
)

// OfferDBSC is the one line a browser sign-in calls, once it has set the
// session cookie for token, to offer device binding: a
// Secure-Session-Registration header naming registerURL (the public
// listener's DBSCRegisterPath, absolute when the sign-in is served
// elsewhere) and a registration challenge that only the holder of token can
// have been given. A browser without DBSC ignores it, and its session stays
// a plain cookie session.
func OfferDBSC(h http.Header, registerURL, token string, now time.Time) {
	h.Add(dbsc.HeaderRegistration, dbsc.Registration(registerURL, dbsc.NewChallenge([]byte(token), "", now)))
}

// errDBSCProof answers a proof that does not verify at registration.
var errDBSCProof = httperr.New(http.StatusBadRequest, "invalid_dbsc_proof", "The device-binding proof was refused.")

// DBSC returns the registration and refresh endpoints of W3C Device Bound
// Session Credentials for the public listener. Both answer JSON and are
// never cached or framed.
func (p *Pages) DBSC() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+DBSCRegisterPath, p.handleDBSC(p.dbscRegister))
	mux.Handle("POST "+DBSCRefreshPath, p.handleDBSC(p.dbscRefresh))
	return secure(policy, mux)
}

func (p *Pages) handleDBSC(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			e := httperr.Classify(r, err, p.log)
			e.SetHeaders(w.Header())
			writeDBSCJSON(w, e.Status, map[string]string{"error": e.Code, "message": e.Message})
		}
	})
}

// dbscRegister binds the cookie's session to the key of the browser's
// registration proof: the proof must be signed by the key it carries, name
// this endpoint as aud, and answer an unused challenge made for this
// session's token. The session is replaced by a bound one (BindDevice),
// whose cookie is short-lived; the answer is the session instructions.
func (p *Pages) dbscRegister(w http.ResponseWriter, r *http.Request) error {
	token, fromCookie := p.cookies.Token(r)
	if !fromCookie {
		return httperr.Unauthenticated
	}
	now := p.now()
	proof, err := dbsc.Verify(r.Context(), r.Header.Get(dbsc.HeaderResponse), dbsc.Expect{Audience: tether.RequestURL(r), Now: now})
	if err == nil {
		err = dbsc.CheckChallenge([]byte(token), "", proof.Challenge, now)
	}
	if err != nil {
		p.log.Info("web: DBSC registration refused", "reason", err)
		return errDBSCProof
	}
	if err := p.m.Consume(r.Context(), "dbsc-reg:"+proof.Challenge, now.Add(dbsc.ChallengeLifetime+time.Minute)); err != nil {
		if errors.Is(err, tether.ErrReplayed) {
			p.log.Info("web: DBSC registration refused", "reason", "challenge used before")
			return errDBSCProof
		}
		return err
	}
	bound, sess, err := p.m.BindDevice(r.Context(), token, proof.JKT)
	if err != nil {
		return err
	}
	return p.dbscAnswer(w, r, bound, sess.ID)
}

// dbscRefresh renews a bound session's cookie. Without a proof, or with one
// over a stale or used challenge, it answers 403 with a fresh challenge, as
// the draft asks, and the browser signs it and comes back; any other
// refusal is a 401, which ends the session in the browser.
func (p *Pages) dbscRefresh(w http.ResponseWriter, r *http.Request) error {
	id, ok := dbsc.UnquoteString(r.Header.Get(dbsc.HeaderSessionID))
	if !ok || !tether.ValidID(id) {
		return httperr.Unauthenticated
	}
	raw := r.Header.Get(dbsc.HeaderResponse)
	if raw == "" {
		return p.dbscChallenge(w, r, id)
	}
	now := p.now()
	proof, err := dbsc.Verify(r.Context(), raw, dbsc.Expect{Audience: tether.RequestURL(r), SessionID: id, Now: now})
	if err != nil {
		p.log.Info("web: DBSC refresh refused", "reason", err)
		return httperr.Unauthenticated
	}
	token, sess, err := p.m.RefreshDevice(r.Context(), id, proof.JKT, proof.Challenge)
	switch {
	case errors.Is(err, dbsc.ErrChallenge):
		return p.dbscChallenge(w, r, id)
	case errors.Is(err, tether.ErrInvalidToken):
		p.log.Info("web: DBSC refresh refused", "reason", err)
		return err
	case err != nil:
		return err
	}
	return p.dbscAnswer(w, r, token, sess.ID)
}

// dbscChallenge answers 403 with a challenge for session id. A session ID is
// not secret, so an ID that names no live bound session gets a decoy of the
// same form (keyed with a random key of this process) rather than a 401: the
// answer does not tell who knows an ID whether its session is alive. The
// signed retry is refused then, as any proof for it would be.
func (p *Pages) dbscChallenge(w http.ResponseWriter, r *http.Request, id string) error {
	c, err := p.m.DeviceChallenge(r.Context(), id)
	if errors.Is(err, tether.ErrNotFound) {
		c, err = dbsc.NewChallenge(p.decoyKey[:], id, p.now()), nil
	}
	if err != nil {
		return err
	}
	w.Header().Set(dbsc.HeaderChallenge, dbsc.Challenge(c, id))
	writeDBSCJSON(w, http.StatusForbidden, map[string]string{"error": "challenge", "message": "Sign the challenge with the session's key."})
	return nil
}

// dbscAnswer sets the bound session's short-lived cookie and answers the
// session instructions that tell the browser which cookie to keep alive.
func (p *Pages) dbscAnswer(w http.ResponseWriter, r *http.Request, token, id string) error {
	p.cookies.Set(w, r, token, p.now().Add(p.m.DBSCCookieLifetime()))
	scheme := "http"
	if tether.IsSecureRequest(r) {
		scheme = "https"
	}
	c := p.cookies.Template(r)
	return writeDBSCJSON(w, http.StatusOK, dbsc.Instructions{
		SessionIdentifier: id,
		RefreshURL:        DBSCRefreshPath,
		Scope:             dbsc.Scope{Origin: scheme + "://" + r.Host, IncludeSite: false},
		Credentials:       []dbsc.Credential{{Type: "cookie", Name: c.Name, Attributes: cookieAttributes(c)}},
	})
}

// cookieAttributes writes c's attributes as its Set-Cookie line does, less
// Max-Age and Expires, which the draft says the browser ignores here.
func cookieAttributes(c http.Cookie) string {
	var b strings.Builder
	if c.Domain != "" {
		b.WriteString("Domain=" + c.Domain + "; ")
	}
	b.WriteString("Path=" + c.Path)
	if c.Secure {
		b.WriteString("; Secure")
	}
	if c.HttpOnly {
		b.WriteString("; HttpOnly")
	}
	switch c.SameSite {
	case http.SameSiteLaxMode:
		b.WriteString("; SameSite=Lax")
	case http.SameSiteStrictMode:
		b.WriteString("; SameSite=Strict")
	case http.SameSiteNoneMode:
		b.WriteString("; SameSite=None")
	}
	return b.String()
}

func writeDBSCJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
