package web

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tetherhq/tether"
)

const (
	accountHome     = "/account/"
	accountSessions = "/account/sessions"
)

// Account returns the handler for /account/ on the public listener: a
// subject's own sessions, with buttons to end one, all others, or all.
func (p *Pages) Account() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /account/static/", p.serveStatic("/account/static/"))
	mux.HandleFunc("GET /account/{$}", func(w http.ResponseWriter, r *http.Request) {
		redirect(w, r, accountSessions)
	})
	mux.Handle("GET "+accountSessions, p.accountPage(p.sessionsPage))
	mux.Handle("POST /account/sessions/sign-out", p.accountForm(p.signOutOne))
	mux.Handle("POST /account/sessions/sign-out-others", p.accountForm(p.signOutOthers))
	mux.Handle("POST /account/sessions/sign-out-everywhere", p.accountForm(p.signOutEverywhere))
	mux.Handle("GET /account/signed-out", p.handleAccount(func(w http.ResponseWriter, r *http.Request) error {
		p.render(w, http.StatusOK, "signed_out.html", view{Title: "Signed out", Static: staticPrefix(accountHome), Home: accountHome,
			Data: message{SignIn: p.signInURL, SignInText: "Sign in again", Sessions: accountSessions}})
		return nil
	}))
	mux.Handle("/account/", p.handleAccount(func(http.ResponseWriter, *http.Request) error { return errNoPage }))
	return secure(policy, mux)
}

func (p *Pages) handleAccount(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			p.fail(w, r, err, accountHome)
		}
	})
}

type accountHandler func(w http.ResponseWriter, r *http.Request, sess *tether.Session, token string) error

// accountPage runs h for a request with a live session.
func (p *Pages) accountPage(h accountHandler) http.Handler {
	return p.handleAccount(func(w http.ResponseWriter, r *http.Request) error {
		sess, token, err := p.m.Authenticate(r)
		if err != nil {
			return err
		}
		return h(w, r, sess, token)
	})
}

// accountForm runs h for a form post from this site, with a live session and
// that session's form token. The origin is checked first, so a cross-site
// post is refused whether or not the browser sent the cookie.
func (p *Pages) accountForm(h accountHandler) http.Handler {
	return p.handleAccount(func(w http.ResponseWriter, r *http.Request) error {
		if err := tether.CheckCSRF(r); err != nil {
			return err
		}
		if err := parseForm(w, r); err != nil {
			return err
		}
		sess, token, err := p.m.Authenticate(r)
		if err != nil {
			return err
		}
		if err := checkFormToken(r, token, sess.ID); err != nil {
			return err
		}
		return h(w, r, sess, token)
	})
}

// sessionRow is one session as the page shows it.
type sessionRow struct {
	ID        string
	Device    string // parsed from the user agent
	Label     string // the device label the client gave, if any
	UserAgent string
	IP        string
	Created   time.Time
	LastSeen  time.Time
	Current   bool
	Bound     string // "DBSC" or "DPoP" for a session bound to a key of its device; "" for a bearer one
	Through   string // the service or identity provider the session came from, if any
}

func rows(list []*tether.Session, currentID string) []sessionRow {
	out := make([]sessionRow, 0, len(list))
	for _, s := range list {
		ua := s.Metadata["user_agent"]
		out = append(out, sessionRow{
			ID: s.ID, Device: deviceName(ua), Label: s.Metadata["device"], UserAgent: ua,
			IP: s.Metadata["ip"], Created: s.CreatedAt, LastSeen: s.LastSeenAt,
			Current: s.ID == currentID, Bound: boundBy(s),
		})
		if s.Origin != nil {
			out[len(out)-1].Through = s.Origin.Issuer
		}
	}
	return out
}

func boundBy(s *tether.Session) string {
	switch {
	case s.DBSC != "":
		return "DBSC"
	case s.JKT != "":
		return "DPoP"
	}
	return ""
}

type sessionsData struct {
	Subject  string
	Sessions []sessionRow
	Others   int
}

func (p *Pages) sessionsPage(w http.ResponseWriter, r *http.Request, sess *tether.Session, token string) error {
	list, err := p.m.List(r.Context(), sess.Subject)
	if err != nil {
		return err
	}
	// The current session comes first: it is the one a person looks for.
	data := sessionsData{Subject: sess.Subject}
	for _, row := range rows(list, sess.ID) {
		if row.Current {
			data.Sessions = append([]sessionRow{row}, data.Sessions...)
		} else {
			data.Sessions = append(data.Sessions, row)
			data.Others++
		}
	}
	p.render(w, http.StatusOK, "sessions.html", view{
		Title: "Your sessions", Static: staticPrefix(accountHome), Home: accountHome,
		SignedIn: sess.Subject, CSRF: formToken(token, sess.ID),
		Flash: accountFlash(r.URL.Query()), Data: data,
	})
	return nil
}

// accountFlash words the outcome of the last action; only known codes are
// shown, so a crafted link cannot put text on the page.
func accountFlash(q url.Values) string {
	n, _ := strconv.Atoi(q.Get("n"))
	switch q.Get("done") {
	case "one":
		return "That session is signed out."
	case "others":
		if n == 1 {
			return "Signed out of 1 other session."
		}
		return "Signed out of " + strconv.Itoa(max(n, 0)) + " other sessions."
	}
	return ""
}

// signOutOne ends one of the subject's sessions.
func (p *Pages) signOutOne(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	id := r.PostForm.Get("id")
	if err := p.m.RevokeOwned(r.Context(), sess.Subject, id); err != nil {
		return err
	}
	if id == sess.ID {
		tether.ClearCookie(w, r)
		redirect(w, r, "/account/signed-out")
		return nil
	}
	redirect(w, r, "/account/sessions?done=one")
	return nil
}

func (p *Pages) signOutOthers(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	n, err := p.m.RevokeSubject(r.Context(), sess.Subject, sess.ID)
	if err != nil {
		return err
	}
	redirect(w, r, "/account/sessions?done=others&n="+strconv.Itoa(n))
	return nil
}

func (p *Pages) signOutEverywhere(w http.ResponseWriter, r *http.Request, sess *tether.Session, _ string) error {
	if _, err := p.m.RevokeSubject(r.Context(), sess.Subject, ""); err != nil {
		return err
	}
	tether.ClearCookie(w, r)
	redirect(w, r, "/account/signed-out")
	return nil
}
