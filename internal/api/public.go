package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/web"
)

// Public returns the public API: what a session holder may do with its own
// session. The token comes as a Bearer header or the session cookie.
func (s *Server) Public() http.Handler {
	mux := s.newMux("public", true)
	mux.Handle("GET /openapi.json", s.openAPI("public"))
	mux.Handle("GET /v1/session", s.authed(s.whoami))
	mux.Handle("DELETE /v1/session", s.authed(s.logout))
	mux.Handle("POST /v1/session/rotate", s.authed(s.rotate))
	mux.Handle("GET /v1/sessions", s.authed(s.mySessions))
	mux.Handle("DELETE /v1/sessions", s.authed(s.signOutEverywhere))
	mux.Handle("DELETE /v1/sessions/{id}", s.authed(s.revokeMine))
	mux.Handle("POST /v1/handshakes", s.authed(s.mintHandshake))
	mux.Handle("POST /v1/handshakes/exchange", s.handle(s.exchangeHandshake))
	mux.Handle("POST /oauth2/token", s.handle(s.tokenExchange))
	mux.Handle("POST /oauth2/revoke", s.handle(s.revokeToken))
	mux.Handle("GET /.well-known/jwks.json", s.handle(s.jwks))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, apitype.Status{Status: "ok"})
	})
	mux.Handle("GET /readyz", s.handle(s.ready))
	s.routeLogin(mux)
	mux.Handle("/account/", s.web.Account()) // pages, authenticated by the session cookie
	dbscH := s.web.DBSC()                    // device binding of browser sessions (W3C DBSC)
	mux.Handle("POST "+web.DBSCRegisterPath, dbscH)
	mux.Handle("POST "+web.DBSCRefreshPath, dbscH)
	mux.Handle("GET /favicon.ico", s.web.Favicon())
	s.ssfRoutes(mux)
	mux.served(authzPrefix, authzPrefix+"/{path...}") // by authzFirst, in front of the mux
	return s.common("public", s.authzFirst(s.jsonErrors(mux.ServeMux)))
}

// jsonErrors answers a request that matches no route (404), or no method of a
// route (405, with Allow), in JSON like every other error.
func (s *Server) jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		switch {
		case pattern != "" && !strings.Contains(pattern, "{"):
			// What mux.ServeHTTP would do, without matching the route a
			// second time: a pattern without wildcards has no path values.
			r.Pattern = pattern
			h.ServeHTTP(w, r)
			return
		case pattern != "":
			mux.ServeHTTP(w, r) // which sets the path values
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		e := httperr.New(http.StatusNotFound, httperr.CodeNotFound, "no such route")
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			e = httperr.New(probe.status, "method_not_allowed", "allowed: "+probe.header.Get("Allow"))
		}
		s.writeError(w, r, e)
	})
}

// statusProbe records what ServeMux's own 404 or 405 handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.status = code }

// authed runs h only for a request with a live session.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, sess *tether.Session, token string) error) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		start := time.Now()
		sess, token, err := s.m.Authenticate(r)
		s.metrics.observeValidation(err, time.Since(start))
		if err != nil {
			return err
		}
		s.m.SetDPoPNonce(w.Header(), sess)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Reads, the hot path, skip the request copy: h gets the session
			// as its argument, and nothing a read calls looks in the context.
			r = r.WithContext(tether.NewContext(r.Context(), sess))
		}
		return h(w, r, sess, token)
	})
}

// whoami writes what writeJSON would, less encoding/json's reflection and
// its re-check of the bytes MarshalJSON returns.
func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, sess *tether.Session, _ string) error {
	b, err := sess.MarshalJSON()
	if err != nil {
		return err
	}
	setJSONHeaders(w.Header())
	_, err = w.Write(append(b, '\n')) // as json.Encoder ends a value
	return err
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	if err := s.m.Revoke(r.Context(), sess.ID); err != nil {
		return err
	}
	tether.ClearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request, _ *tether.Session, token string) error {
	fresh, sess, err := s.m.Rotate(r.Context(), token)
	if err != nil {
		return err
	}
	if _, fromCookie := tether.TokenFromRequest(r); fromCookie {
		tether.SetCookie(w, r, fresh, sess.ExpiresAt)
	}
	return writeJSON(w, http.StatusOK, apitype.TokenResponse{Token: fresh, Session: sess})
}

func (s *Server) mySessions(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	list, err := s.m.List(r.Context(), sess.Subject)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apitype.SessionsResponse{Sessions: list})
}

func (s *Server) signOutEverywhere(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	keep := ""
	switch r.URL.Query().Get("keep_current") {
	case "true", "1":
		keep = sess.ID
	case "", "false", "0":
	default:
		return badRequest("keep_current must be true or false")
	}
	n, err := s.m.RevokeSubject(r.Context(), sess.Subject, keep)
	if err != nil {
		return err
	}
	if keep == "" {
		tether.ClearCookie(w, r)
	}
	return writeJSON(w, http.StatusOK, apitype.RevokedResponse{Revoked: &n})
}

// revokeMine ends one of the caller's own sessions.
func (s *Server) revokeMine(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	if err := s.m.RevokeOwned(r.Context(), sess.Subject, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.m.Ping(ctx); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apitype.Status{Status: "ready"})
}
