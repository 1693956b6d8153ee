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
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/store/memstore"
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

// AdminKeyChecker checks an admin key typed into the console's sign-in form,
// with the same comparison, rate limit and metric as the admin API's Bearer
// key. It reports whether the key is right and, when the client is rate
// limited, how long it must wait (ok is then false).
type AdminKeyChecker func(r *http.Request, key string) (ok bool, retryAfter time.Duration)

// Config configures Pages. Zero fields take the documented defaults.
type Config struct {
	// Manager holds the sessions the pages show and revoke. Required.
	Manager *tether.Manager
	// CheckAdminKey checks the console's sign-in. Required.
	CheckAdminKey AdminKeyChecker
	// Keys is the node's handshake key ring, listed and rotated by the
	// console; nil: the console shows no keys.
	Keys *handshake.KeyRing
	// ConsoleLifetime and ConsoleIdleTimeout bound a console sign-in.
	// Defaults 8h and 30m.
	ConsoleLifetime, ConsoleIdleTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational events; never tokens. Default slog.Default().
	Logger *slog.Logger
}

// Pages serves the account pages and the admin console. Build it with New.
type Pages struct {
	m        *tether.Manager
	checkKey AdminKeyChecker
	keys     *handshake.KeyRing
	now      func() time.Time
	log      *slog.Logger

	// console holds the console's own sessions, in memory, apart from the
	// users' store: no subject a user or a trusted issuer can name is ever
	// an admin, and a console session is useless on the public API.
	console      *tether.Manager
	consoleStore *memstore.Store

	tmpl   map[string]*template.Template
	static http.Handler
}

// New returns Pages for cfg.
func New(cfg Config) (*Pages, error) {
	if cfg.Manager == nil {
		return nil, errors.New("web: Config.Manager is required")
	}
	if cfg.CheckAdminKey == nil {
		return nil, errors.New("web: Config.CheckAdminKey is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
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
	st := memstore.NewWithOptions(memstore.Options{Now: cfg.Now})
	console, err := tether.NewManager(tether.Config{
		Store: st, Lifetime: cfg.ConsoleLifetime, IdleTimeout: cfg.ConsoleIdleTimeout,
		MaxStaleness: -1, // a handful of reads a minute: no cache, so no watcher goroutine to stop
		Now:          cfg.Now, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("web: console sessions: %w", err)
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	return &Pages{
		m: cfg.Manager, checkKey: cfg.CheckAdminKey, keys: cfg.Keys, now: cfg.Now, log: cfg.Logger,
		console: console, consoleStore: st, tmpl: tmpl,
		static: http.FileServerFS(mustSub(staticFS, "static")),
	}, nil
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

// pageError is an error with what the person sees: a status, a heading and a
// sentence. Every other error is mapped to one by fail.
type pageError struct {
	status  int
	title   string
	message string
	retry   time.Duration
}

func (e *pageError) Error() string { return e.title + ": " + e.message }

var (
	errBadForm  = &pageError{http.StatusBadRequest, "Bad request", "The form could not be read.", 0}
	errFormCSRF = &pageError{http.StatusForbidden, "Request refused",
		"This form has expired or did not come from this page. Reload the page and try again.", 0}
)

// handler is an http.Handler that returns its error for fail.
type handler func(w http.ResponseWriter, r *http.Request) error

// fail maps err to a status and a page that is safe to show: internal detail
// goes to the log only.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error, home string) {
	var pe *pageError
	switch {
	case errors.As(err, &pe):
	case errors.Is(err, tether.ErrCrossOrigin):
		pe = &pageError{http.StatusForbidden, "Request refused",
			"This form was sent from another site, so nothing was changed.", 0}
	case errors.Is(err, tether.ErrInvalidToken):
		pe = &pageError{http.StatusUnauthorized, "You are not signed in",
			"Your session has ended or was signed out. Sign in again to see your sessions.", 0}
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether"`)
	case errors.Is(err, tether.ErrBadInput):
		pe = &pageError{http.StatusBadRequest, "Bad request", strings.TrimPrefix(err.Error(), "tether: bad input: "), 0}
	case errors.Is(err, tether.ErrNotFound):
		pe = &pageError{http.StatusNotFound, "Not found", "There is no such session: it may have ended already.", 0}
	case errors.Is(err, tether.ErrUnavailable):
		p.log.Warn("web: store unavailable", "path", r.URL.Path, "err", err)
		pe = &pageError{http.StatusServiceUnavailable, "Unavailable", "The session store cannot be reached. Try again shortly.", 0}
	default:
		p.log.Error("web: internal error", "path", r.URL.Path, "err", err)
		pe = &pageError{http.StatusInternalServerError, "Something went wrong", "The request failed. Try again.", 0}
	}
	if pe.retry > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(pe.retry.Seconds()))))
	}
	p.render(w, pe.status, "message.html", view{Title: pe.title, Static: staticPrefix(home), Home: home,
		Data: message{pe.title, pe.message, pe.status != http.StatusUnauthorized || home == adminHome}})
}

type message struct {
	Title, Message string
	Back           bool // a link home helps; on "not signed in" it would lead back here
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
