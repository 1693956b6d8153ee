package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tetherhq/tether"
)

// DemoConfig configures DemoSignIn.
type DemoConfig struct {
	// Subjects can be signed in with one click. Required.
	Subjects []string
	// Create starts a session for subject with the browser's metadata and
	// returns its token and expiry. Required.
	Create func(ctx context.Context, subject string, metadata map[string]string) (token string, expires time.Time, err error)
	// End ends the session of a token, once the browser that brought it in
	// its cookie is signed in anew: a new sign-in replaces the old one, as
	// an exchange does, rather than leaving it alive. Required.
	End func(ctx context.Context, token string) error
	// Next is where the browser goes once signed in; an absolute URL when it
	// is on another listener. Default /account/sessions.
	Next string
	// DBSCRegisterURL, when set, is the registration endpoint (DBSCRegisterPath
	// on the node's public listener) that each sign-in offers a DBSC browser,
	// so that its session is bound to a key of the device (see OfferDBSC).
	DBSCRegisterURL string
}

// DemoSignIn returns a one-click sign-in page at /demo/sign-in, for `tether
// demo --web` and the tests: it signs a browser in as a demo subject without
// a password and without putting a token in a URL. `tether serve` never
// mounts it.
//
// Cookies are not isolated by port (RFC 6265 §8.5), so when the page runs on
// its own loopback port beside a node's public listener, the session cookie
// it sets is sent to that listener too.
func DemoSignIn(cfg DemoConfig) (http.Handler, error) {
	if len(cfg.Subjects) == 0 || cfg.Create == nil || cfg.End == nil {
		return nil, fmt.Errorf("web: DemoConfig needs Subjects, Create and End")
	}
	if cfg.Next == "" {
		cfg.Next = "/account/sessions"
	}
	// The form posts here and is redirected to Next, which form-action must
	// allow when it is another origin.
	csp := policy
	if u, err := url.Parse(cfg.Next); err == nil && u.Host != "" {
		csp = strings.Replace(csp, "form-action 'self'", "form-action 'self' "+u.Scheme+"://"+u.Host, 1)
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	p := &Pages{tmpl: tmpl, log: slog.Default()}
	static := http.StripPrefix("/demo/static/", http.FileServerFS(mustSub(staticFS, "static")))
	mux := http.NewServeMux()
	mux.Handle("GET /demo/static/", static)
	mux.HandleFunc("GET /demo/sign-in", func(w http.ResponseWriter, r *http.Request) {
		p.render(w, http.StatusOK, "demo_sign_in.html", view{
			Title: "Demo sign-in", Static: "/demo/static/", Home: "/demo/sign-in", Data: cfg.Subjects,
		})
	})
	mux.HandleFunc("POST /demo/sign-in", func(w http.ResponseWriter, r *http.Request) {
		if err := tether.CheckCSRF(r); err != nil {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		if err := parseForm(w, r); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		subject := r.PostForm.Get("subject")
		if !slices.Contains(cfg.Subjects, subject) {
			http.Error(w, "not a demo subject", http.StatusBadRequest)
			return
		}
		token, expires, err := cfg.Create(r.Context(), subject, tether.ClientMetadata(r))
		if err != nil {
			http.Error(w, "could not sign in: the session store failed", http.StatusServiceUnavailable)
			return
		}
		if old, fromCookie := tether.TokenFromRequest(r); fromCookie {
			if err := cfg.End(r.Context(), old); err != nil {
				p.log.Warn("web: demo sign-in could not end the previous session", "err", err)
			}
		}
		tether.SetCookie(w, r, token, expires)
		if cfg.DBSCRegisterURL != "" {
			OfferDBSC(w.Header(), cfg.DBSCRegisterURL, token, time.Now())
		}
		redirect(w, r, cfg.Next)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { redirect(w, r, "/demo/sign-in") })
	return secure(csp, mux), nil
}
