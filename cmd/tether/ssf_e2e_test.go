package main

// Revocation across services (DESIGN §11, issue 13): A and B are two
// services, each with its own store, on real Redis and on PostgreSQL. B
// exchanges A's handshakes and accepts A's Security Event Tokens; A pushes
// its revocations to B from its event log.

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/ssf"
)

// ssfBackends give each of A and B a store of its own on one server.
var ssfBackends = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"redis", func(t testing.TB) string {
		addr := servicetest.SharedRedis(t)
		return "redis://" + addr + "/0?prefix=" + servicetest.RedisPrefix(t, addr)
	}},
	{"postgres", func(t testing.TB) string { return servicetest.FreshPostgres(t) }},
}

const captureAudience = "https://capture.example"

// setCapture is a receiver in the test process that keeps every SET A
// pushes to it, for the independent check.
type setCapture struct {
	secret string
	mu     sync.Mutex
	sets   []string
}

func (c *setCapture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") != "Bearer "+c.secret || r.Header.Get("Content-Type") != ssf.ContentType {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	c.mu.Lock()
	c.sets = append(c.sets, string(body))
	c.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (c *setCapture) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sets...)
}

// ssfPair is A and B with what it takes to restart B.
type ssfPair struct {
	a, b    *node
	bSpec   nodeSpec
	capture *setCapture
	push    string // the secret A sends B
}

// startSSFPair starts A on storeA and B on storeB. B's port is chosen
// first: A's configuration names B's endpoint, B's names A's JWKS.
func startSSFPair(t *testing.T, storeA, storeB string) *ssfPair {
	t.Helper()
	dir := t.TempDir()
	sharedKey(t, dir, "a-to-b.key")
	p := &ssfPair{push: "push-" + rand.Text(), capture: &setCapture{secret: "capture-" + rand.Text()}}
	writeFile(t, dir, "a-to-b-push.secret", p.push+"\n")
	writeFile(t, dir, "capture.secret", p.capture.secret)
	cap := httptest.NewServer(p.capture)
	t.Cleanup(cap.Close)
	bAddr := "127.0.0.1:" + strconv.Itoa(servicetest.FreePort(t))
	p.a = startNode(t, nodeSpec{args: []string{"--store", storeA, "--config", writeFile(t, dir, "a.yaml", fmt.Sprintf(`
issuer: %q
handshake:
  audiences:
    %q: { format: jwt, alg: HS256, key_file: a-to-b.key }
ssf:
  receivers:
    - { audience: %q, endpoint: %q, authorization_file: a-to-b-push.secret }
    - { audience: %q, endpoint: %q, authorization_file: capture.secret }
`, e2eIssuerA, e2eIssuerB, e2eIssuerB, "http://"+bAddr+"/ssf/events", captureAudience, cap.URL+"/events"))}})
	p.bSpec = nodeSpec{dataDir: t.TempDir(), args: []string{"--addr", bAddr, "--store", storeB, "--config", writeFile(t, dir, "b.yaml", fmt.Sprintf(`
issuer: %q
handshake:
  trusted_issuers:
    - { issuer: %q, format: jwt, alg: HS256, key_file: a-to-b.key }
ssf:
  transmitters:
    - { issuer: %q, jwks_url: %q, authorization_file: a-to-b-push.secret }
`, e2eIssuerB, e2eIssuerA, e2eIssuerA, p.a.pub+"/.well-known/jwks.json"))}}
	p.b = startNode(t, p.bSpec)
	return p
}

// derived mints at A from aToken for B and exchanges it at B, returning B's
// token and the session's origin.
func (p *ssfPair) derived(t *testing.T, aToken string) (string, map[string]string) {
	t.Helper()
	raw, err := mintAt(p.a, aToken, e2eIssuerB)
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := exchangeAt(p.b, raw)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("exchange at B: got %d %s, %v; want 201", code, body, err)
	}
	var got struct {
		Token   string
		Session struct {
			Origin map[string]string `json:"origin"`
		}
	}
	mustJSON(t, body, &got)
	return got.Token, got.Session.Origin
}

func mustStatus(t *testing.T, n *node, token string, want int, what string) {
	t.Helper()
	if code, _ := n.bearer(http.MethodGet, "/v1/session", token); code != want {
		t.Fatalf("%s: GET /v1/session got %d, want %d", what, code, want)
	}
}

// TestE2ESSF: a revocation at A ends the sessions B made from A's
// handshakes, and only those; a B that was down hears of it when it is
// back; B refuses every SET that is not A's, for it, fresh and unused; and
// every SET A sent verifies with nothing but A's JWKS in an independent
// implementation.
func TestE2ESSF(t *testing.T) {
	for _, be := range ssfBackends {
		t.Run(be.name, func(t *testing.T) {
			needBinary(t)
			p := startSSFPair(t, be.url(t), be.url(t))
			a, b := p.a, p.b
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("A's log:\n%s\nB's log:\n%s", p.a.stderr, p.b.stderr)
				}
			})

			alice1, s1 := a.create(`{"subject":"alice"}`)
			alice2, _ := a.create(`{"subject":"alice"}`)
			bob, _ := a.create(`{"subject":"bob"}`)
			b1, origin := p.derived(t, alice1)
			if want := map[string]string{"iss": e2eIssuerA, "sub": "alice", "sid": s1}; fmt.Sprint(origin) != fmt.Sprint(want) {
				t.Fatalf("origin of B's session: got %v, want %v", origin, want)
			}
			b2, _ := p.derived(t, alice2)
			b3, _ := p.derived(t, bob)
			bLocal, _ := b.create(`{"subject":"alice"}`)

			// A handshake minted before A's revocation and exchanged at B
			// after B handled it. (Those of a subject-wide revocation are
			// dated to the second, so the unit tests, on a fake clock, cover
			// them: TestExchangeRevokedOrigin.)
			late, err := mintAt(a, alice1, e2eIssuerB)
			if err != nil {
				t.Fatal(err)
			}

			// One session revoked at A: B ends the one made from it.
			start := time.Now()
			if code, body := a.admin(http.MethodDelete, "/v1/sessions/"+s1, ""); code != http.StatusNoContent {
				t.Fatalf("revoke at A: got %d %s", code, body)
			}
			at := waitStatus(t, b, b1, http.StatusUnauthorized, time.Now().Add(10*time.Second), "B's session from A's revoked one")
			t.Logf("%s: B refused the derived session %v after A's revoke returned", be.name, at.Sub(start).Round(time.Millisecond))
			mustStatus(t, b, b2, http.StatusOK, "B's session from alice's other A session")
			mustStatus(t, b, b3, http.StatusOK, "B's session from bob")
			if code, _, err := exchangeAt(b, late); err != nil || code != http.StatusUnauthorized {
				t.Fatalf("a handshake from A's revoked session, minted before: exchange at B got %d, %v; want 401", code, err)
			}

			// Every session of alice revoked at A: B ends all it made from
			// A's alice, and keeps its own login of alice and bob's.
			if code, body := a.admin(http.MethodDelete, "/v1/subjects/alice/sessions", ""); code != http.StatusOK {
				t.Fatalf("revoke-all at A: got %d %s", code, body)
			}
			waitStatus(t, b, b2, http.StatusUnauthorized, time.Now().Add(10*time.Second), "B's sessions from A's alice")
			mustStatus(t, b, bLocal, http.StatusOK, "B's own session of alice")
			mustStatus(t, b, b3, http.StatusOK, "B's session from bob")

			// Carol signs out everywhere but here at A: B ends what it made
			// from her other A sessions and keeps the one from here.
			here, _ := a.create(`{"subject":"carol"}`)
			elsewhere, _ := a.create(`{"subject":"carol"}`)
			bHere, _ := p.derived(t, here)
			bElsewhere, _ := p.derived(t, elsewhere)
			if code, body := a.bearer(http.MethodDelete, "/v1/sessions?keep_current=true", here); code != http.StatusOK {
				t.Fatalf("sign out elsewhere at A: got %d %s", code, body)
			}
			waitStatus(t, b, bElsewhere, http.StatusUnauthorized, time.Now().Add(10*time.Second), "B's session from A's other session of carol")
			mustStatus(t, a, here, http.StatusOK, "the session carol kept at A")
			mustStatus(t, b, bHere, http.StatusOK, "B's session from the one carol kept")

			// B down while A revokes: A keeps the event and retries.
			alice3, s3 := a.create(`{"subject":"alice"}`)
			b5, _ := p.derived(t, alice3)
			b.kill()
			if code, _ := a.admin(http.MethodDelete, "/v1/sessions/"+s3, ""); code != http.StatusNoContent {
				t.Fatalf("revoke at A while B is down: got %d", code)
			}
			a.waitLog("ssf: delivery failed; will retry", 20*time.Second)
			p.b = startNode(t, p.bSpec)
			b = p.b
			waitStatus(t, b, b5, http.StatusUnauthorized, time.Now().Add(30*time.Second), "B's session after B came back")
			mustStatus(t, b, b3, http.StatusOK, "B's session from bob after the restart")

			testRefusedSETs(t, p, b3)
			verifySETsWithJose(t, p)
		})
	}
}

// setFor builds SET claims about bob at A, so that a SET that got through
// would end B's session from bob.
func setFor(iss, aud, jti string, subID any) map[string]any {
	return map[string]any{
		"iss": iss, "aud": aud, "iat": time.Now().Unix(), "jti": jti,
		"sub_id": subID,
		"events": map[string]any{ssf.EventSessionRevoked: map[string]any{"event_timestamp": time.Now().Unix()}},
	}
}

func signSET(t *testing.T, key crypto.Signer, kid, typ string, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testRefusedSETs posts SETs to B that must be refused with the RFC 8935
// code, and checks that bobsB, which any of them would end, lives on.
func testRefusedSETs(t *testing.T, p *ssfPair, bobsB string) {
	ring, err := handshake.LoadKeyRing(filepath.Join(p.a.dataDir, "keys"), handshake.Options{}) // A's own keys: what only A can sign
	if err != nil {
		t.Fatal(err)
	}
	kid, aKey, err := ring.Signer(handshake.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	_, forged, _ := ed25519.GenerateKey(rand.Reader)
	bobAll := map[string]any{"format": "iss_sub", "iss": e2eIssuerA, "sub": "bob"}
	valid := func(jti string) string {
		return signSET(t, aKey, kid, ssf.SETType, setFor(e2eIssuerA, e2eIssuerB, jti, bobAll))
	}
	unsigned := func() string {
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		return enc(map[string]string{"alg": "none", "typ": ssf.SETType}) + "." + enc(setFor(e2eIssuerA, e2eIssuerB, rand.Text(), bobAll)) + "."
	}
	// A replay: the first post of a SET about no live session is accepted,
	// the second refused.
	harmless := signSET(t, aKey, kid, ssf.SETType, setFor(e2eIssuerA, e2eIssuerB, rand.Text(),
		map[string]any{"format": "complex", "session": map[string]any{"format": "opaque", "id": "gone"}, "user": bobAll}))
	if code, body := postSET(t, p, "Bearer "+p.push, ssf.ContentType, harmless); code != http.StatusAccepted {
		t.Fatalf("a valid SET: got %d %s, want 202", code, body)
	}
	cases := []struct {
		name, auth, contentType, set string
		status                       int
		err                          string
	}{
		{"replayed", "Bearer " + p.push, ssf.ContentType, harmless, 400, ssf.ErrCodeInvalidRequest},
		{"forged signature", "Bearer " + p.push, ssf.ContentType, signSET(t, forged, kid, ssf.SETType, setFor(e2eIssuerA, e2eIssuerB, rand.Text(), bobAll)), 400, ssf.ErrCodeAuthentication},
		{"unknown key", "Bearer " + p.push, ssf.ContentType, signSET(t, forged, "not-a-kid", ssf.SETType, setFor(e2eIssuerA, e2eIssuerB, rand.Text(), bobAll)), 400, ssf.ErrCodeInvalidKey},
		{"wrong audience", "Bearer " + p.push, ssf.ContentType, signSET(t, aKey, kid, ssf.SETType, setFor(e2eIssuerA, e2eIssuerC, rand.Text(), bobAll)), 400, ssf.ErrCodeInvalidAudience},
		{"wrong issuer", "Bearer " + p.push, ssf.ContentType, signSET(t, aKey, kid, ssf.SETType, setFor("https://x.example", e2eIssuerB, rand.Text(), bobAll)), 400, ssf.ErrCodeInvalidIssuer},
		{"another issuer's subject", "Bearer " + p.push, ssf.ContentType, signSET(t, aKey, kid, ssf.SETType, setFor(e2eIssuerA, e2eIssuerB, rand.Text(),
			map[string]any{"format": "iss_sub", "iss": "https://x.example", "sub": "bob"})), 400, ssf.ErrCodeInvalidIssuer},
		{"unsigned", "Bearer " + p.push, ssf.ContentType, unsigned(), 400, ssf.ErrCodeInvalidRequest},
		{"wrong typ", "Bearer " + p.push, ssf.ContentType, signSET(t, aKey, kid, "JWT", setFor(e2eIssuerA, e2eIssuerB, rand.Text(), bobAll)), 400, ssf.ErrCodeInvalidRequest},
		{"stale iat", "Bearer " + p.push, ssf.ContentType, signSET(t, aKey, kid, ssf.SETType, func() map[string]any {
			c := setFor(e2eIssuerA, e2eIssuerB, rand.Text(), bobAll)
			c["iat"] = time.Now().Add(-time.Hour).Unix()
			return c
		}()), 400, ssf.ErrCodeInvalidRequest},
		{"wrong content type", "Bearer " + p.push, "application/json", valid(rand.Text()), 400, ssf.ErrCodeInvalidRequest},
		{"no authorization", "", ssf.ContentType, valid(rand.Text()), 401, ssf.ErrCodeAuthentication},
		{"wrong authorization", "Bearer not-the-push-secret", ssf.ContentType, valid(rand.Text()), 403, ssf.ErrCodeAuthentication},
	}
	for _, c := range cases {
		code, body := postSET(t, p, c.auth, c.contentType, c.set)
		var got struct{ Err string }
		json.Unmarshal(body, &got)
		if code != c.status || got.Err != c.err {
			t.Errorf("%s: got %d %s, want %d {\"err\":%q}", c.name, code, body, c.status, c.err)
		}
	}
	mustStatus(t, p.b, bobsB, http.StatusOK, "B's session from bob after the refused SETs")
}

func postSET(t *testing.T, p *ssfPair, auth, contentType, set string) (int, []byte) {
	t.Helper()
	return p.b.mustCall(http.MethodPost, p.b.pub+"/ssf/events", auth, contentType, set)
}

// verifySETsWithJose checks every SET A pushed to the capturing receiver
// with the npm jose package and nothing but A's JWKS URL.
func verifySETsWithJose(t *testing.T, p *ssfPair) {
	requireInteropNode(t)
	var sets []string
	deadline := time.Now().Add(10 * time.Second)
	for len(sets) < 3 && time.Now().Before(deadline) { // a revocation, a revoke-all and one while B was down
		time.Sleep(20 * time.Millisecond)
		sets = p.capture.all()
	}
	req, _ := json.Marshal(map[string]any{
		"jwks_url": p.a.pub + "/.well-known/jwks.json", "issuer": e2eIssuerA, "audience": captureAudience, "sets": sets,
	})
	cmd := exec.Command("node", "verify-sets.mjs")
	cmd.Dir = interopDir
	cmd.Stdin = bytes.NewReader(req)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify-sets.mjs: %v", err)
	}
	var got struct {
		Verified int
		Failures []string
		Events   []struct {
			Type  string
			SubID map[string]any `json:"sub_id"`
		}
	}
	mustJSON(t, out, &got)
	if got.Verified != len(sets) || len(sets) < 3 || len(got.Failures) > 0 {
		t.Fatalf("jose verified %d of %d SETs (want all, at least 3): %v", got.Verified, len(sets), got.Failures)
	}
	formats := map[string]int{}
	for _, e := range got.Events {
		if e.Type == ssf.EventSessionRevoked {
			formats[fmt.Sprint(e.SubID["format"])]++
		}
	}
	if formats["complex"] < 2 || formats["iss_sub"] < 1 {
		t.Fatalf("session-revoked SETs by sub_id format: got %v, want complex ≥ 2 and iss_sub ≥ 1", formats)
	}
	t.Logf("jose verified all %d SETs with A's JWKS alone", len(sets))
}

// interopDir holds the pinned npm jose package (handshake/testdata/interop).
var interopDir = filepath.Join("..", "..", "handshake", "testdata", "interop")

// requireInteropNode installs the pinned packages; without node and npm it
// skips, or fails under CI=true, where the independent check must run.
func requireInteropNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			servicetest.SkipOrFail(t, "%s not on PATH", tool)
		}
	}
	cmd := exec.Command("npm", "ci", "--prefix", interopDir, "--ignore-scripts", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		servicetest.SkipOrFail(t, "npm ci: %v\n%s", err, out)
	}
}
