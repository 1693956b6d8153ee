package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/httperr"
)

// Admin returns the admin API. Every route needs the admin key as a Bearer
// token; failed attempts are rate-limited per client IP. The /admin/ console
// pages take a console cookie instead, got by signing in with the same key.
func (s *Server) Admin() http.Handler {
	mux := s.newMux("admin", true)
	mux.Handle("POST /v1/sessions", s.handle(s.createSession))
	mux.Handle("GET /v1/sessions/{id}", s.handle(s.getSession))
	mux.Handle("DELETE /v1/sessions/{id}", s.handle(s.revokeSession))
	mux.Handle("GET /v1/subjects/{subject}/sessions", s.handle(s.subjectSessions))
	mux.Handle("DELETE /v1/subjects/{subject}/sessions", s.handle(s.revokeSubject))
	mux.Handle("PUT /v1/subjects/{subject}/roles", s.handle(s.setRoles))
	mux.Handle("POST /v1/introspect", s.handle(s.introspect))
	mux.Handle("GET /v1/changes", s.handle(s.changes))
	mux.Handle("GET /v1/keys", s.handle(s.listKeys))
	mux.Handle("POST /v1/keys/rotate", s.handle(s.rotateKeys))
	mux.Handle("GET /v1/events", s.handle(s.listEvents))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	routes := s.jsonErrors(mux.ServeMux)
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.admin.CheckRequest(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		routes.ServeHTTP(w, r)
	})
	root := s.newMux("admin", false)
	root.Handle("GET /openapi.json", s.openAPI("admin")) // without the key, like the console's pages
	root.Handle("/admin/", s.web.Admin())                // the console: signed in with a cookie, not the Bearer key
	root.Handle("GET /favicon.ico", s.web.Favicon())
	root.Handle("/", admin)
	return s.common("admin", root)
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req apitype.CreateSessionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if ok, wait := s.creates.Allow(req.Subject); !ok {
		return httperr.RateLimited("too many sessions created for this subject", wait)
	}
	jkt, err := s.bindingKey(w, r)
	switch {
	case err != nil:
		return err
	case jkt != "" && req.DPoPJKT != "" && jkt != req.DPoPJKT:
		return httperr.BadRequest(`"dpop_jkt" is not the thumbprint of the DPoP proof's key`)
	case jkt == "":
		jkt = req.DPoPJKT
	}
	token, sess, err := s.m.Create(r.Context(), tether.CreateParams{
		Subject: req.Subject, Roles: req.Roles, Metadata: req.Metadata,
		Lifetime: time.Duration(req.TTL), IdleTimeout: time.Duration(req.IdleTTL), JKT: jkt,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apitype.TokenResponse{Token: token, Session: sess})
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.m.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sess)
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request) error {
	if err := s.m.Revoke(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) subjectSessions(w http.ResponseWriter, r *http.Request) error {
	list, err := s.m.List(r.Context(), r.PathValue("subject"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apitype.SessionsResponse{Sessions: list})
}

func (s *Server) revokeSubject(w http.ResponseWriter, r *http.Request) error {
	n, err := s.m.RevokeSubject(r.Context(), r.PathValue("subject"), "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apitype.RevokedResponse{Revoked: &n})
}

func (s *Server) setRoles(w http.ResponseWriter, r *http.Request) error {
	var req apitype.SetRolesRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Roles == nil {
		return badRequest(`"roles" is required (an empty list clears them)`)
	}
	subject, roles := r.PathValue("subject"), *req.Roles
	if err := s.m.SetRoles(r.Context(), subject, roles); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apitype.RolesResponse{Subject: subject, Roles: roles})
}

// introspect answers RFC 7662: active with the session's claims, or just
// {"active": false} for anything that is not a live session.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) error {
	form, err := readForm(w, r)
	if err != nil {
		return err
	}
	token := form.Get("token")
	if token == "" {
		return badRequest(`"token" is required`)
	}
	start := time.Now()
	sess, err := s.m.Validate(r.Context(), token)
	s.metrics.observeValidation(err, time.Since(start))
	switch {
	case err == nil:
	case errors.Is(err, tether.ErrInvalidToken):
		return writeJSON(w, http.StatusOK, apitype.Introspection{Active: false})
	default:
		return err
	}
	roles := sess.Roles
	if roles == nil {
		roles = []string{}
	}
	return writeJSON(w, http.StatusOK, apitype.Introspection{
		Active: true, TokenType: tokenTypeOf(sess),
		Subject: sess.Subject, SessionID: sess.ID, Roles: roles,
		Scope:    strings.Join(sess.Roles, " "),
		IssuedAt: sess.CreatedAt.Unix(), ExpiresAt: sess.ExpiresAt.Unix(),
		IdleExp: sess.IdleExpiresAt.Unix(), Cnf: cnf(sess),
		Session: sess, // the whole session, so that package remote answers as Manager.Validate does
	})
}
