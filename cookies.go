package tether

import (
	"net/http"
	"time"
)

// DomainCookieName is the session cookie when it is shared with the apps
// under a parent domain (Cookies.Domain): browsers refuse a Domain on a
// __Host- cookie, and the __Secure- prefix still makes them demand Secure.
const DomainCookieName = "__Secure-tether"

// Cookies says where the session cookie lives: on this host alone (the zero
// value, the SetCookie and TokenFromRequest defaults), or shared with every
// host under Domain, so that apps behind a forward-auth proxy see it. A
// domain cookie is set only over TLS; on plain-HTTP loopback, for
// development, the host-only cookie is used as before.
type Cookies struct {
	Domain string // e.g. "example.test"; empty: host-only
}

// Token is TokenFromRequest, which over TLS also reads the domain cookie when
// a Domain is set. The host-only cookie wins when both are present.
func (c Cookies) Token(r *http.Request) (token string, fromCookie bool) {
	token, fromCookie = TokenFromRequest(r)
	if token != "" || c.Domain == "" || r.Header.Get("Authorization") != "" || !IsSecureRequest(r) {
		return token, fromCookie
	}
	if ck, err := r.Cookie(DomainCookieName); err == nil && ck.Value != "" {
		return ck.Value, true
	}
	return "", false
}

// Set writes the session cookie: SetCookie's, with the domain when one is set
// and the request is secure.
func (c Cookies) Set(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	ck := c.cookie(r)
	ck.Value, ck.Expires = token, expires
	http.SetCookie(w, ck)
}

// Clear removes the session cookie that Set writes.
func (c Cookies) Clear(w http.ResponseWriter, r *http.Request) {
	ck := c.cookie(r)
	ck.MaxAge = -1
	http.SetCookie(w, ck)
}

// Template is the cookie Set writes for r, without a value or expiry: its
// name and attributes, which a DBSC session's instructions repeat.
func (c Cookies) Template(r *http.Request) http.Cookie { return *c.cookie(r) }

func (c Cookies) cookie(r *http.Request) *http.Cookie {
	ck := sessionCookie(r)
	if c.Domain != "" && ck.Secure {
		ck.Name, ck.Domain = DomainCookieName, c.Domain
	}
	return ck
}
