package web_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/web"
	"github.com/tetherhq/tether/store/memstore"
)

// The DBSC client below is written from the W3C draft
// (https://w3c.github.io/webappsec-dbsc/), not from the server's code: it
// reads the headers as RFC 9651 structured fields, makes its own ES256 key
// and signs its proofs with go-jose, as a browser does with its TPM key.

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dbscNode is a node's public listener and a demo sign-in that offers DBSC,
// on a clock the test moves.
type dbscNode struct {
	clk *clock
	m   *tether.Manager
	srv *httptest.Server
}

func newDBSCNode(t *testing.T) *dbscNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := &clock{t: time.Now()}
	st := memstore.New()
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log, Now: clk.Now, DBSCCookieLifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{Manager: m, Admin: newAdmin(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n := &dbscNode{clk: clk, m: m}
	mux := http.NewServeMux()
	mux.Handle("/", a.Public())
	n.srv = httptest.NewServer(mux)
	signIn, err := web.DemoSignIn(web.DemoConfig{
		Subjects: []string{"alice"},
		Create: func(ctx context.Context, subject string, md map[string]string) (string, time.Time, error) {
			token, s, err := m.Create(ctx, tether.CreateParams{Subject: subject, Metadata: md})
			if err != nil {
				return "", time.Time{}, err
			}
			return token, s.ExpiresAt, nil
		},
		End:             func(context.Context, string) error { return nil },
		DBSCRegisterURL: n.srv.URL + web.DBSCRegisterPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/demo/", signIn)
	t.Cleanup(func() { n.srv.Close(); m.Close(); st.Close() })
	return n
}

// browser is the DBSC client: a cookie jar and, once registered, a key.
type browser struct {
	t      *testing.T
	n      *dbscNode
	cookie string // the session cookie's value, as the jar would hold it
	key    *ecdsa.PrivateKey
	id     string // session_identifier
	refURL string
}

func (b *browser) do(method, rawURL string, hdr map[string]string, body io.Reader) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest(method, rawURL, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: tether.CookieName, Value: b.cookie})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == tether.CookieName {
			b.cookie = c.Value
		}
	}
	return res
}

func (b *browser) doJSON(method, rawURL string, hdr map[string]string, out any) *http.Response {
	b.t.Helper()
	req, _ := http.NewRequest(method, rawURL, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.AddCookie(&http.Cookie{Name: tether.CookieName, Value: b.cookie})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	for _, c := range res.Cookies() {
		if c.Name == tether.CookieName {
			b.cookie = c.Value
		}
	}
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			b.t.Fatal(err)
		}
	}
	return res
}

// sfString reads an RFC 9651 sf-string at the start of s and the rest.
func sfString(t *testing.T, s string) (string, string) {
	t.Helper()
	if !strings.HasPrefix(s, `"`) {
		t.Fatalf("not an sf-string: %q", s)
	}
	var out strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
			out.WriteByte(s[i])
		case '"':
			return out.String(), s[i+1:]
		default:
			out.WriteByte(s[i])
		}
	}
	t.Fatalf("unterminated sf-string: %q", s)
	return "", ""
}

// params reads ;key="value" parameters.
func params(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for s != "" {
		if s[0] != ';' {
			t.Fatalf("bad parameters: %q", s)
		}
		k, rest, ok := strings.Cut(s[1:], "=")
		if !ok {
			t.Fatalf("bad parameter: %q", s)
		}
		out[k], s = sfString(t, rest)
	}
	return out
}

var innerList = regexp.MustCompile(`^\(([A-Za-z0-9 ]*)\)`)

// proof signs a DBSC proof (draft §"DBSC Proof JWT Syntax") with key.
func proof(t *testing.T, key *ecdsa.PrivateKey, typ, aud, jti, sub string, iat time.Time) string {
	t.Helper()
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey})
	claims := map[string]any{"aud": aud, "jti": jti, "iat": iat.Unix(), "key": json.RawMessage(pub)}
	if sub != "" {
		claims["sub"] = sub
	}
	payload, _ := json.Marshal(claims)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": typ}})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func quoted(s string) string { return `"` + s + `"` }

func thumbprint(key *ecdsa.PrivateKey) string {
	tp, _ := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// signIn signs in through the demo page and registers per the header it got.
func (b *browser) signIn() {
	b.t.Helper()
	res := b.do(http.MethodPost, b.n.srv.URL+"/demo/sign-in",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": b.n.srv.URL, "Sec-Fetch-Site": "same-origin"},
		strings.NewReader(url.Values{"subject": {"alice"}}.Encode()))
	if res.StatusCode != http.StatusSeeOther || b.cookie == "" {
		b.t.Fatalf("sign-in: %d, cookie %t", res.StatusCode, b.cookie != "")
	}
	reg := res.Header.Get("Secure-Session-Registration")
	m := innerList.FindStringSubmatch(reg)
	if m == nil {
		b.t.Fatalf("Secure-Session-Registration %q is not an inner list", reg)
	}
	if algs := strings.Fields(m[1]); strings.Join(algs, " ") != "ES256 RS256" {
		b.t.Fatalf("algorithms %v, want ES256 RS256", algs)
	}
	p := params(b.t, reg[len(m[0]):])
	endpoint, err := url.Parse(b.n.srv.URL + "/demo/sign-in")
	if err != nil {
		b.t.Fatal(err)
	}
	regURL, _ := endpoint.Parse(p["path"])
	b.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var instr struct {
		SessionIdentifier string `json:"session_identifier"`
		RefreshURL        string `json:"refresh_url"`
		Scope             struct {
			Origin      string `json:"origin"`
			IncludeSite *bool  `json:"include_site"`
		} `json:"scope"`
		Credentials []struct{ Type, Name, Attributes string } `json:"credentials"`
	}
	jwt := proof(b.t, b.key, "dbsc+jwt", regURL.String(), p["challenge"], "", b.n.clk.Now())
	res = b.doJSON(http.MethodPost, regURL.String(), map[string]string{"Secure-Session-Response": quoted(jwt)}, &instr)
	if res.StatusCode != http.StatusOK {
		b.t.Fatalf("registration: %d", res.StatusCode)
	}
	if instr.SessionIdentifier == "" || instr.RefreshURL == "" || instr.Scope.IncludeSite == nil ||
		len(instr.Credentials) != 1 || instr.Credentials[0].Type != "cookie" || instr.Credentials[0].Name != tether.CookieName ||
		!strings.Contains(instr.Credentials[0].Attributes, "HttpOnly") {
		b.t.Fatalf("session instructions %+v", instr)
	}
	ref, _ := regURL.Parse(instr.RefreshURL)
	b.id, b.refURL = instr.SessionIdentifier, ref.String()
}

// refresh runs the draft's refresh: a request with the session id, a 403
// with a challenge, and the request again with a proof over it.
func (b *browser) refresh(key *ecdsa.PrivateKey) (challenge, jwt string, status int) {
	b.t.Helper()
	res := b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id)}, nil)
	if res.StatusCode != http.StatusForbidden {
		return "", "", res.StatusCode
	}
	c, rest := sfString(b.t, res.Header.Get("Secure-Session-Challenge"))
	if params(b.t, rest)["id"] != b.id {
		b.t.Fatalf("challenge for another session: %q", rest)
	}
	jwt = proof(b.t, key, "dbsc+jwt", b.refURL, c, b.id, b.n.clk.Now())
	res = b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id), "Secure-Session-Response": quoted(jwt)}, nil)
	return c, jwt, res.StatusCode
}

func (b *browser) whoami(token string) (int, map[string]any) {
	b.t.Helper()
	saved := b.cookie
	defer func() { b.cookie = saved }()
	b.cookie = token
	var s map[string]any
	res := b.doJSON(http.MethodGet, b.n.srv.URL+"/v1/session", nil, &s)
	return res.StatusCode, s
}

// TestDBSCFlow: sign-in offers registration, the proof binds the session,
// the cookie dies after its short life unless the key refreshes it, and a
// refresh rotates the token.
func TestDBSCFlow(t *testing.T) {
	n := newDBSCNode(t)
	b := &browser{t: t, n: n}
	b.do(http.MethodGet, n.srv.URL+"/demo/sign-in", nil, nil)
	b.signIn()
	bound := b.cookie
	status, s := b.whoami(bound)
	if status != http.StatusOK || s["dbsc_jkt"] != thumbprint(b.key) || s["id"] != b.id {
		t.Fatalf("bound session: %d %v; want dbsc_jkt %s", status, s, thumbprint(b.key))
	}

	// A thief's copy of the cookie works only for its short life.
	n.clk.add(10*time.Minute + time.Second)
	if status, _ := b.whoami(bound); status != http.StatusUnauthorized {
		t.Fatalf("bound cookie past its life: %d, want 401", status)
	}
	// Without the key nothing renews it: another key is refused (401 ends
	// the session in the browser that tried).
	thief := *b
	thief.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, _, status := thief.refresh(thief.key); status != http.StatusUnauthorized {
		t.Fatalf("refresh by another key: %d, want 401", status)
	}
	// The key holder renews it.
	_, jwt, status := b.refresh(b.key)
	if status != http.StatusOK || b.cookie == bound {
		t.Fatalf("refresh: %d, new cookie %t", status, b.cookie != bound)
	}
	if status, _ := b.whoami(b.cookie); status != http.StatusOK {
		t.Fatalf("refreshed cookie: %d", status)
	}
	// The refresh rotated the token: a copy taken before it is dead now.
	n.clk.add(-10 * time.Minute)
	if status, _ := b.whoami(bound); status != http.StatusUnauthorized {
		t.Fatalf("pre-refresh cookie: %d, want 401", status)
	}
	n.clk.add(10 * time.Minute)
	// The same proof again: its challenge is used, so a new one is asked for.
	before := b.cookie
	res := b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id), "Secure-Session-Response": quoted(jwt)}, nil)
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Secure-Session-Challenge") == "" || b.cookie != before {
		t.Fatalf("replayed proof: %d, challenge %q", res.StatusCode, res.Header.Get("Secure-Session-Challenge"))
	}

	// The sessions page says which sessions are bound.
	req, _ := http.NewRequest(http.MethodGet, n.srv.URL+"/account/sessions", nil)
	req.AddCookie(&http.Cookie{Name: tether.CookieName, Value: b.cookie})
	page, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), "Device-bound") {
		t.Fatalf("sessions page: %d, device-bound badge %t", page.StatusCode, strings.Contains(string(body), "Device-bound"))
	}
}

// TestDBSCRegistrationEndsUnboundSession: the long-lived unbound cookie dies
// when the session is bound, and its registration cannot be done twice.
func TestDBSCRegistrationEndsUnboundSession(t *testing.T) {
	n := newDBSCNode(t)
	b := &browser{t: t, n: n}
	res := b.do(http.MethodPost, n.srv.URL+"/demo/sign-in",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": n.srv.URL},
		strings.NewReader(url.Values{"subject": {"alice"}}.Encode()))
	unbound := b.cookie
	reg := res.Header.Get("Secure-Session-Registration")
	p := params(t, reg[len(innerList.FindString(reg)):])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwt := proof(t, key, "dbsc+jwt", p["path"], p["challenge"], "", n.clk.Now())
	if res := b.do(http.MethodPost, p["path"], map[string]string{"Secure-Session-Response": quoted(jwt)}, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("registration: %d", res.StatusCode)
	}
	if status, _ := b.whoami(unbound); status != http.StatusUnauthorized {
		t.Fatalf("unbound cookie after binding: %d, want 401", status)
	}
	b.cookie = unbound
	if res := b.do(http.MethodPost, p["path"], map[string]string{"Secure-Session-Response": quoted(jwt)}, nil); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("registration replayed: %d, want 400", res.StatusCode)
	}
}

// TestDBSCRefusals: proofs the draft does not allow are refused, at
// registration (400, nothing bound) and at refresh (401; 403 with a new
// challenge when only the challenge was wrong).
func TestDBSCRefusals(t *testing.T) {
	n := newDBSCNode(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	none := func(header string) func(aud, jti, sub string, key *ecdsa.PrivateKey, now time.Time) string {
		return func(aud, jti, sub string, key *ecdsa.PrivateKey, now time.Time) string {
			good := proof(t, key, "dbsc+jwt", aud, jti, sub, now)
			parts := strings.Split(good, ".")
			return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + parts[1] + "." + parts[2]
		}
	}
	signed := func(typ string, by *ecdsa.PrivateKey) func(aud, jti, sub string, key *ecdsa.PrivateKey, now time.Time) string {
		return func(aud, jti, sub string, key *ecdsa.PrivateKey, now time.Time) string {
			if by != nil {
				key = by
			}
			return proof(t, key, typ, aud, jti, sub, now)
		}
	}
	type mk = func(aud, jti, sub string, key *ecdsa.PrivateKey, now time.Time) string
	for _, c := range []struct {
		name   string
		make   mk
		edit   func(aud, jti, sub *string, now *time.Time)
		status int
	}{
		{"wrong typ", signed("JWT", nil), nil, http.StatusUnauthorized},
		{"alg none", none(`{"alg":"none","typ":"dbsc+jwt"}`), nil, http.StatusUnauthorized},
		{"HS256", none(`{"alg":"HS256","typ":"dbsc+jwt"}`), nil, http.StatusUnauthorized},
		{"signed by another key than the one it carries", func(aud, jti, sub string, key *ecdsa.PrivateKey, now time.Time) string {
			good := strings.Split(proof(t, key, "dbsc+jwt", aud, jti, sub, now), ".")
			bad := strings.Split(proof(t, other, "dbsc+jwt", aud, jti, sub, now), ".")
			return good[0] + "." + good[1] + "." + bad[2]
		}, nil, http.StatusUnauthorized},
		{"another key", signed("dbsc+jwt", other), nil, http.StatusUnauthorized},
		{"aud of another endpoint", signed("dbsc+jwt", nil), func(aud, _, _ *string, _ *time.Time) { *aud += "x" }, http.StatusUnauthorized},
		{"sub of another session", signed("dbsc+jwt", nil), func(_, _, sub *string, _ *time.Time) { *sub = tether.NewID() }, http.StatusUnauthorized},
		{"stale iat", signed("dbsc+jwt", nil), func(_, _, _ *string, now *time.Time) { *now = now.Add(-6 * time.Minute) }, http.StatusUnauthorized},
		{"forged challenge", signed("dbsc+jwt", nil), func(_, jti, _ *string, _ *time.Time) {
			*jti = base64.RawURLEncoding.EncodeToString(make([]byte, 24))
		}, http.StatusForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &browser{t: t, n: n}
			b.signIn()
			cookie := b.cookie
			res := b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id)}, nil)
			ch, _ := sfString(t, res.Header.Get("Secure-Session-Challenge"))
			aud, jti, sub, now := b.refURL, ch, b.id, n.clk.Now()
			if c.edit != nil {
				c.edit(&aud, &jti, &sub, &now)
			}
			jwt := c.make(aud, jti, sub, b.key, now)
			res = b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id), "Secure-Session-Response": quoted(jwt)}, nil)
			if res.StatusCode != c.status || b.cookie != cookie {
				t.Fatalf("refresh: %d, new cookie %t; want %d and none", res.StatusCode, b.cookie != cookie, c.status)
			}

			// The same proof at registration binds nothing.
			fresh := &browser{t: t, n: n}
			r := fresh.do(http.MethodPost, n.srv.URL+"/demo/sign-in",
				map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": n.srv.URL},
				strings.NewReader(url.Values{"subject": {"alice"}}.Encode()))
			reg := r.Header.Get("Secure-Session-Registration")
			p := params(t, reg[len(innerList.FindString(reg)):])
			aud, jti, sub, now = p["path"], p["challenge"], "", n.clk.Now()
			if c.edit != nil {
				c.edit(&aud, &jti, &sub, &now)
			}
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			jwt = c.make(aud, jti, sub, key, now)
			if c.name == "another key" {
				return // at registration any key the proof carries and is signed by will do
			}
			if r := fresh.do(http.MethodPost, p["path"], map[string]string{"Secure-Session-Response": quoted(jwt)}, nil); r.StatusCode != http.StatusBadRequest {
				t.Fatalf("registration: %d, want 400", r.StatusCode)
			}
		})
	}

	// An ID that names no live bound session is answered as one that does
	// (403, a challenge of the same form); the signed retry is refused.
	for _, id := range []func() string{tether.NewID, func() string {
		b := &browser{t: t, n: n}
		b.signIn()
		if err := n.m.Revoke(context.Background(), b.id); err != nil {
			t.Fatal(err)
		}
		return b.id
	}} {
		b := &browser{t: t, n: n, id: id(), refURL: n.srv.URL + web.DBSCRefreshPath}
		b.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if _, _, status := b.refresh(b.key); status != http.StatusUnauthorized {
			t.Fatalf("refresh of a session that is not live: %d, want 401 after the challenge", status)
		}
	}
	// Last: it moves the clock, and the demo sign-in's offer uses the real one.
	t.Run("stale challenge", func(t *testing.T) {
		b := &browser{t: t, n: n}
		b.signIn()
		res := b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id)}, nil)
		ch, _ := sfString(t, res.Header.Get("Secure-Session-Challenge"))
		n.clk.add(3 * time.Minute)
		jwt := proof(t, b.key, "dbsc+jwt", b.refURL, ch, b.id, n.clk.Now())
		res = b.do(http.MethodPost, b.refURL, map[string]string{"Sec-Secure-Session-Id": quoted(b.id), "Secure-Session-Response": quoted(jwt)}, nil)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("stale challenge: %d, want 403 with a new one", res.StatusCode)
		}
		if _, _, status := b.refresh(b.key); status != http.StatusOK {
			t.Fatalf("refresh with the new challenge: %d", status)
		}
	})
}

// TestDBSCCookieAttributes: the instructions name the cookie exactly as
// sign-in sets it, a shared-domain cookie included.
func TestDBSCCookieAttributes(t *testing.T) {
	tlsReq := httptest.NewRequest(http.MethodPost, "https://auth.example.test/dbsc/register", nil)
	plain := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/dbsc/register", nil)
	for _, c := range []struct {
		name          string
		cookies       tether.Cookies
		r             *http.Request
		cookie, attrs string
	}{
		{"loopback", tether.Cookies{}, plain, tether.CookieName, "Path=/; HttpOnly; SameSite=Lax"},
		{"TLS, host-only", tether.Cookies{}, tlsReq, tether.SecureCookieName, "Path=/; Secure; HttpOnly; SameSite=Lax"},
		{"TLS, shared domain", tether.Cookies{Domain: "example.test"}, tlsReq, tether.DomainCookieName, "Domain=example.test; Path=/; Secure; HttpOnly; SameSite=Lax"},
	} {
		ck := c.cookies.Template(c.r)
		if got := web.CookieAttributes(ck); ck.Name != c.cookie || got != c.attrs {
			t.Errorf("%s: got %s %q, want %s %q", c.name, ck.Name, got, c.cookie, c.attrs)
		}
	}
}
