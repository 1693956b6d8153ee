package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/httperr"
)

const (
	adminHome = "/admin/"

	// ConsoleSubject is the subject of every console session: a Tether
	// session in the node's store, in the reserved namespace
	// (tether.ReservedSubjectPrefix), which no API caller, user or trusted
	// issuer can create, list or use on the public API.
	ConsoleSubject = tether.ReservedSubjectPrefix + "console"

	// consoleKeyID is the metadata key of a console session that names the
	// admin key it was opened with.
	consoleKeyID = "admin_key_id"

	// Console cookie names. It is scoped to Path=/admin/, which the __Host-
	// prefix does not allow, so under TLS it carries the __Secure- prefix.
	ConsoleCookieName       = "tether_admin"
	SecureConsoleCookieName = "__Secure-tether_admin"
)

// Admin returns the handler for /admin/ on the admin listener: the console.
// Its pages take the console cookie, never the Bearer admin key, and the key
// typed into its sign-in form never leaves the server.
func (p *Pages) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /admin/static/", p.serveStatic("/admin/static/"))
	mux.Handle("GET /admin/{$}", p.handleAdmin(p.consolePage))
	mux.Handle("POST /admin/sign-in", p.handleAdmin(p.signIn))
	mux.Handle("POST /admin/sign-out", p.adminForm(p.signOutConsole))
	mux.Handle("GET /admin/stats", http.HandlerFunc(p.stats))
	mux.Handle("POST /admin/sessions/revoke", p.adminForm(p.adminRevoke))
	mux.Handle("POST /admin/subjects/revoke-all", p.adminForm(p.adminRevokeAll))
	mux.Handle("POST /admin/subjects/roles", p.adminForm(p.adminSetRoles))
	mux.Handle("POST /admin/keys/rotate", p.adminForm(p.adminRotateKeys))
	mux.Handle("/admin/", p.handleAdmin(func(http.ResponseWriter, *http.Request) error { return errNoPage }))
	return secure(consolePolicy, mux)
}

func (p *Pages) handleAdmin(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			p.fail(w, r, err, adminHome)
		}
	})
}

func consoleCookie(r *http.Request) *http.Cookie {
	c := &http.Cookie{Name: ConsoleCookieName, Path: adminHome, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if tether.IsSecureRequest(r) {
		c.Name, c.Secure = SecureConsoleCookieName, true
	}
	return c
}

// consoleSession returns the console session r's cookie stands for. Only
// the cookie name this request would be given counts: over TLS a plainly
// named cookie could have been planted (cookie tossing).
func (p *Pages) consoleSession(r *http.Request) (*tether.Session, string, error) {
	c, err := r.Cookie(consoleCookie(r).Name)
	if err != nil || c.Value == "" {
		return nil, "", tether.ErrInvalidToken
	}
	sess, err := p.m.ValidateReserved(r.Context(), ConsoleSubject, c.Value)
	if err != nil {
		return nil, "", err
	}
	// A console session lives as long as the key that opened it: replacing
	// a leaked admin key ends every console session on every node.
	if sess.Metadata[consoleKeyID] != p.admin.KeyID() {
		return nil, "", fmt.Errorf("%w: opened with another admin key", tether.ErrInvalidToken)
	}
	return sess, c.Value, nil
}

var errConsoleSignedOut = httperr.New(http.StatusUnauthorized, codeSignedOut,
	"Your console session has ended. Sign in again with the admin key.")

type adminHandler func(w http.ResponseWriter, r *http.Request, console *tether.Session) error

// adminForm runs h for a console form post from this site, with a live
// console session and its form token.
func (p *Pages) adminForm(h adminHandler) http.Handler {
	return p.handleAdmin(func(w http.ResponseWriter, r *http.Request) error {
		if err := tether.CheckCSRF(r); err != nil {
			return err
		}
		if err := parseForm(w, r); err != nil {
			return err
		}
		sess, token, err := p.consoleSession(r)
		if errors.Is(err, tether.ErrInvalidToken) {
			return errConsoleSignedOut
		}
		if err != nil {
			return err
		}
		if err := checkFormToken(r, token, sess.ID); err != nil {
			return err
		}
		return h(w, r, sess)
	})
}

type signInData struct {
	Error string
}

func (p *Pages) renderSignIn(w http.ResponseWriter, status int, msg string) {
	p.render(w, status, "admin_sign_in.html", view{
		Title: "Admin console: sign in", Static: staticPrefix(adminHome), Home: adminHome,
		Data: signInData{Error: msg},
	})
}

// signIn exchanges the admin key for a console session cookie. Failures are
// charged to the same per-IP limiter as the admin API's.
func (p *Pages) signIn(w http.ResponseWriter, r *http.Request) error {
	if err := tether.CheckCSRF(r); err != nil {
		return err
	}
	if err := parseForm(w, r); err != nil {
		return err
	}
	err := p.admin.CheckKey(r, strings.TrimSpace(r.PostForm.Get("key")))
	var e *httperr.Error
	switch {
	case errors.As(err, &e) && e.Code == httperr.CodeRateLimited:
		return httperr.RateLimited("Too many failed sign-ins from this address. Wait a little and try again.", e.RetryAfter)
	case err != nil:
		p.renderSignIn(w, http.StatusUnauthorized, "That is not the admin key.")
		return nil
	}
	// A new session for every sign-in; one this browser held before ends.
	if prev, _, err := p.consoleSession(r); err == nil {
		p.m.Revoke(r.Context(), prev.ID)
	}
	md := tether.ClientMetadata(r)
	md[consoleKeyID] = p.admin.KeyID()
	token, sess, err := p.m.CreateReserved(r.Context(), tether.CreateParams{
		Subject: ConsoleSubject, Lifetime: p.consoleLifetime, IdleTimeout: p.consoleIdle,
		Metadata: md, AuthTime: p.now(), AuthMethod: "admin_key",
	})
	if err != nil {
		return err
	}
	c := consoleCookie(r)
	c.Value, c.Expires = token, sess.ExpiresAt
	http.SetCookie(w, c)
	p.log.Info("web: console sign-in", "remote", tether.ClientIP(r))
	redirect(w, r, adminHome)
	return nil
}

func (p *Pages) signOutConsole(w http.ResponseWriter, r *http.Request, console *tether.Session) error {
	if err := p.m.Revoke(r.Context(), console.ID); err != nil && !errors.Is(err, tether.ErrNotFound) {
		return err
	}
	c := consoleCookie(r)
	c.MaxAge = -1
	http.SetCookie(w, c)
	redirect(w, r, adminHome)
	return nil
}

// counters are the console's live numbers, also served as JSON to its script.
type counters struct {
	CacheEntries int     `json:"cache_entries"` // sessions this node may answer from memory; not the live ones
	Validations  uint64  `json:"validations"`
	Revoked      uint64  `json:"revoked"`
	Created      uint64  `json:"created"`
	CacheHitRate float64 `json:"cache_hit_rate"` // 0..1; -1 before the first lookup
	AtMillis     int64   `json:"at_ms"`          // when they were read, for rates
}

func (p *Pages) counters() counters {
	s := p.m.Stats()
	c := counters{
		CacheEntries: s.CachedSessions,
		Validations:  s.ValidationsOK + s.ValidationsInvalid + s.ValidationsUnavailable,
		Revoked:      s.Revoked, Created: s.Created, CacheHitRate: -1,
		AtMillis: p.now().UnixMilli(),
	}
	if n := s.CacheHits + s.CacheMisses; n > 0 {
		c.CacheHitRate = float64(s.CacheHits) / float64(n)
	}
	return c
}

// HitRate is the cache hit rate as the page shows it.
func (c counters) HitRate() string {
	if c.CacheHitRate < 0 {
		return "–"
	}
	return strconv.FormatFloat(c.CacheHitRate*100, 'f', 1, 64) + " %"
}

func (p *Pages) stats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if _, _, err := p.consoleSession(r); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthenticated"}` + "\n"))
		return
	}
	json.NewEncoder(w).Encode(p.counters())
}

type consoleData struct {
	Counters counters
	Query    string // the subject searched for, as typed
	Subject  *subjectData
	Error    string
	HasKeys  bool
	Keys     []handshake.KeyInfo
}

type subjectData struct {
	Name     string
	Roles    []string
	Sessions []sessionRow
	Activity activity
}

// RolesText is the roles as the textarea holds them, one per line.
func (s *subjectData) RolesText() string { return strings.Join(s.Roles, "\n") }

// consolePage is the console for a signed-in admin and the sign-in form for
// anyone else.
func (p *Pages) consolePage(w http.ResponseWriter, r *http.Request) error {
	console, token, err := p.consoleSession(r)
	if errors.Is(err, tether.ErrInvalidToken) {
		p.renderSignIn(w, http.StatusOK, "")
		return nil
	}
	if err != nil {
		return err
	}
	q := r.URL.Query()
	data := consoleData{Counters: p.counters(), Query: q.Get("subject"), HasKeys: p.keys != nil}
	status := http.StatusOK
	if data.Query != "" {
		sub, err := p.loadSubject(r, data.Query)
		switch {
		case errors.Is(err, tether.ErrBadInput):
			status, data.Error = http.StatusBadRequest, httperr.Classify(r, err, p.log).Message
		case err != nil:
			return err
		default:
			data.Subject = sub
		}
	}
	if p.keys != nil {
		data.Keys = p.keys.List()
	}
	p.render(w, status, "admin.html", view{
		Title: "Admin console", Static: staticPrefix(adminHome), Home: adminHome, Script: true,
		SignedIn: "admin", CSRF: formToken(token, console.ID),
		Flash: adminFlash(q), Data: data,
	})
	return nil
}

func (p *Pages) loadSubject(r *http.Request, subject string) (*subjectData, error) {
	list, err := p.m.List(r.Context(), subject)
	if err != nil {
		return nil, err
	}
	roles, err := p.m.Roles(r.Context(), subject)
	if err != nil {
		return nil, err
	}
	return &subjectData{Name: subject, Roles: roles, Sessions: rows(list, ""), Activity: p.subjectActivity(r.Context(), subject)}, nil
}

// adminFlash words the outcome of the last action, from known codes only.
func adminFlash(q url.Values) string {
	switch q.Get("done") {
	case "revoked":
		return "The session is revoked."
	case "gone":
		return "That session had already ended."
	case "revoked-all":
		return "Every session of the subject is revoked."
	case "roles":
		return "Roles saved. Every live session of the subject carries them from its next request."
	case "rotated":
		return "Keys rotated. The previous key keeps verifying until it retires."
	}
	return ""
}

// subjectURL is the console showing subject, with the outcome code done.
func subjectURL(subject, done string) string {
	q := url.Values{}
	if subject != "" {
		q.Set("subject", subject)
	}
	q.Set("done", done)
	return adminHome + "?" + q.Encode()
}

func (p *Pages) adminRevoke(w http.ResponseWriter, r *http.Request, _ *tether.Session) error {
	err := p.m.Revoke(r.Context(), r.PostForm.Get("id"))
	switch {
	case errors.Is(err, tether.ErrNotFound):
		redirect(w, r, subjectURL(r.PostForm.Get("subject"), "gone"))
		return nil
	case err != nil:
		return err
	}
	redirect(w, r, subjectURL(r.PostForm.Get("subject"), "revoked"))
	return nil
}

func (p *Pages) adminRevokeAll(w http.ResponseWriter, r *http.Request, _ *tether.Session) error {
	subject := r.PostForm.Get("subject")
	if _, err := p.m.RevokeSubject(r.Context(), subject, ""); err != nil {
		return err
	}
	redirect(w, r, subjectURL(subject, "revoked-all"))
	return nil
}

// adminSetRoles replaces a subject's roles with the textarea's lines.
func (p *Pages) adminSetRoles(w http.ResponseWriter, r *http.Request, _ *tether.Session) error {
	subject := r.PostForm.Get("subject")
	roles := []string{}
	for line := range strings.Lines(r.PostForm.Get("roles")) {
		if role := strings.TrimSpace(line); role != "" && !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	if err := p.m.SetRoles(r.Context(), subject, roles); err != nil {
		return err
	}
	redirect(w, r, subjectURL(subject, "roles"))
	return nil
}

func (p *Pages) adminRotateKeys(w http.ResponseWriter, r *http.Request, _ *tether.Session) error {
	if p.keys == nil {
		return httperr.BadRequest("This node has no key ring.")
	}
	if err := p.keys.Rotate(); err != nil {
		return err
	}
	p.log.Info("handshake signing keys rotated", "by", "console")
	redirect(w, r, subjectURL("", "rotated"))
	return nil
}
