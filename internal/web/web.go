// Package web serves Tether's browser pages: "Your sessions" on the public
// listener (/account/, authenticated by the session cookie) and the admin
// console on the admin listener (/admin/, signed in with the admin key, which
// is exchanged for an opaque console session in a cookie).
//
// Safe by construction: html/template only; every asset is embedded (no CDN,
// works offline); a strict Content-Security-Policy and no inline script or
// style; every form is a POST that passes tether.CheckCSRF and carries a
// per-session token derived with HMAC; pages that show sessions are never
// cached. No page ever holds a session token or the admin key.
package web

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/httperr"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Content-Security-Policy of every page. The console adds connect-src 'self'
// for its counters, which its script polls.
const (
	policy        = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	consolePolicy = policy + "; connect-src 'self'"
)

// maxFormBytes bounds every form body; the largest form is a role list.
const maxFormBytes = 64 << 10

// Config configures Pages. Zero fields take the documented defaults.
type Config struct {
	// Manager holds the sessions the pages show and revoke, and the
	// console's own sessions. Required.
	Manager *tether.Manager
	// Admin checks the key typed into the console's sign-in form: the same
	// value the admin API checks its Bearer key with, so both share one
	// limiter and one failure metric. Required.
	Admin *adminauth.Authenticator
	// Keys is the node's handshake key ring, listed and rotated by the
	// console; nil: the console shows no keys.
	Keys *handshake.KeyRing
	// Cookies is the session cookie that sign-in sets, which DBSC
	// registration reads and DBSC refresh renews. Default host-only.
	Cookies tether.Cookies
	// SignInURL is where the account pages send a browser that is not
	// signed in (an application's login page, say); empty: they tell the
	// person to sign in through their application.
	SignInURL string
	// ConsoleLifetime and ConsoleIdleTimeout bound a console sign-in.
	// Defaults 8h and 30m.
	ConsoleLifetime, ConsoleIdleTimeout time.Duration
	// Now is the clock. Default the Manager's.
	Now func() time.Time
	// Logger receives operational events; never tokens. Default slog.Default().
	Logger *slog.Logger
}

// Pages serves the account pages and the admin console. Build it with New.
type Pages struct {
	m         *tether.Manager
	admin     *adminauth.Authenticator
	keys      *handshake.KeyRing
	signInURL string
	cookies   tether.Cookies
	now       func() time.Time
	log       *slog.Logger

	// Console sessions are Tether sessions of ConsoleSubject, in the node's
	// store: they hold across nodes and restarts, and the reserved
	// namespace keeps every user and trusted issuer out of them.
	consoleLifetime, consoleIdle time.Duration

	tmpl   map[string]*template.Template
	static http.Handler

	decoyKey [32]byte // keys DBSC challenges for sessions that do not exist
}

// New returns Pages for cfg.
func New(cfg Config) (*Pages, error) {
	if cfg.Manager == nil {
		return nil, errors.New("web: Config.Manager is required")
	}
	if cfg.Admin == nil {
		return nil, errors.New("web: Config.Admin is required")
	}
	if cfg.Now == nil {
		cfg.Now = cfg.Manager.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConsoleLifetime == 0 {
		cfg.ConsoleLifetime = 8 * time.Hour
	}
	if cfg.ConsoleIdleTimeout == 0 {
		cfg.ConsoleIdleTimeout = 30 * time.Minute
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	p := &Pages{
		m: cfg.Manager, admin: cfg.Admin, keys: cfg.Keys, signInURL: cfg.SignInURL, cookies: cfg.Cookies, now: cfg.Now, log: cfg.Logger,
		consoleLifetime: cfg.ConsoleLifetime, consoleIdle: cfg.ConsoleIdleTimeout, tmpl: tmpl,
		static: http.FileServerFS(mustSub(staticFS, "static")),
	}
	rand.Read(p.decoyKey[:])
	return p, nil
}

var funcs = template.FuncMap{
	"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"when":     func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
}

// parseTemplates builds one template per page, each the layout plus the page.
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	out := make(map[string]*template.Template)
	for _, p := range pages {
		name := strings.TrimPrefix(p, "templates/")
		if name == "layout.html" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, p)
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		out[name] = t
	}
	return out, nil
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// view is what the layout needs; Data is the page's own.
type view struct {
	Title    string
	Static   string // URL prefix of the embedded assets
	Script   bool   // load the console's script
	SignedIn string // who is signed in, for the header; empty: nobody
	CSRF     string // the form token of the signed-in session
	Home     string // where "back" links go
	Flash    string // the outcome of the last action
	Data     any
}

// render writes a page. Headers were set by secure.
func (p *Pages) render(w http.ResponseWriter, status int, name string, v view) {
	t := p.tmpl[name]
	var b strings.Builder
	if err := t.Execute(&b, v); err != nil {
		p.log.Error("web: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// secure sets what every response of the pages carries. Sessions are shown
// on nearly every page, so nothing is cached but the embedded assets.
func secure(csp string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// Favicon serves the icon at /favicon.ico, which browsers fetch for any
// page, the JSON ones included, so that none of them logs a 404.
func (p *Pages) Favicon() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		http.ServeFileFS(w, r, staticFS, "static/favicon.svg")
	})
}

// serveStatic serves the embedded assets under prefix.
func (p *Pages) serveStatic(prefix string) http.Handler {
	h := http.StripPrefix(prefix, p.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// Codes of the pages' own errors; their messages are written for a person.
const (
	codeBadForm   = "bad_form"
	codeFormCSRF  = "form_csrf"
	codeNoPage    = "no_page"
	codeSignedOut = "signed_out"
)

var (
	errBadForm  = httperr.New(http.StatusBadRequest, codeBadForm, "The form could not be read.")
	errFormCSRF = httperr.New(http.StatusForbidden, codeFormCSRF,
		"This form has expired or did not come from this page. Reload the page and try again.")
	errNoPage = httperr.New(http.StatusNotFound, codeNoPage, "There is no such page.")
)

// pageWords are the heading of the page each error code becomes and, for the
// library's errors (whose messages are written for API clients), the
// sentence a person reads instead; "" keeps the error's own message.
var pageWords = map[string]struct{ title, sentence string }{
	httperr.CodeBadRequest:      {"Bad request", ""},
	httperr.CodeUnauthenticated: {"You are not signed in", "Your session has ended or was signed out."},
	httperr.CodeCrossOrigin:     {"Request refused", "This form was sent from another site, so nothing was changed."},
	httperr.CodeNotFound:        {"Not found", "There is no such session: it may have ended already."},
	httperr.CodeRateLimited:     {"Too many attempts", ""},
	httperr.CodeUnavailable:     {"Unavailable", "The session store cannot be reached. Try again shortly."},
	httperr.CodeInternal:        {"Something went wrong", "The request failed. Try again."},
	codeBadForm:                 {"Bad request", ""},
	codeFormCSRF:                {"Request refused", ""},
	codeNoPage:                  {"Not found", ""},
	codeSignedOut:               {"Signed out", ""},
}

// handler is an http.Handler that returns its error for fail.
type handler func(w http.ResponseWriter, r *http.Request) error

// fail answers err with a page, classified as the API classifies it: the
// same status for the same error, internal detail to the log only.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error, home string) {
	e := httperr.Classify(r, err, p.log)
	e.SetHeaders(w.Header())
	words, ok := pageWords[e.Code]
	if !ok {
		words.title = http.StatusText(e.Status)
	}
	msg := message{Title: words.title, Message: cmp.Or(words.sentence, e.Message)}
	switch {
	case e.Status != http.StatusUnauthorized:
		msg.Back = true
	case home == adminHome:
		msg.SignIn, msg.SignInText = adminHome, "Sign in to the console"
	default:
		msg.SignIn, msg.SignInText = p.signInURL, "Sign in"
		msg.Sessions = accountSessions
	}
	p.render(w, e.Status, "message.html", view{Title: msg.Title, Static: staticPrefix(home), Home: home, Data: msg})
}

// message is a page that says one thing and links onward: never a dead end.
type message struct {
	Title, Message string
	Back           bool   // a link home; on "not signed in" it would lead back here
	SignIn         string // where to sign in, when known
	SignInText     string
	Sessions       string // where "Your sessions" is, once signed in elsewhere
}

func staticPrefix(home string) string { return home + "static/" }

// parseForm reads a bounded url-encoded body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errBadForm
	}
	return nil
}

// formToken is the hidden CSRF field of a session's forms: an HMAC keyed with
// the session's token. It needs no server state, holds across nodes, and
// tells nothing about the token.
func formToken(token, sessionID string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("tether web form\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func checkFormToken(r *http.Request, token, sessionID string) error {
	got := r.PostForm.Get("csrf")
	if !hmac.Equal([]byte(got), []byte(formToken(token, sessionID))) {
		return errFormCSRF
	}
	return nil
}

// redirect answers a form post with 303 See Other (Post/Redirect/Get).
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
