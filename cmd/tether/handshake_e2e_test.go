package main

// End-to-end handshakes between real `tether serve` processes: A mints, B
// exchanges with a shared HS256 key, C exchanges EdDSA tokens through A's
// JWKS, while A's keys rotate.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether/handshake"
)

const (
	e2eIssuerA = "https://a.example"
	e2eIssuerB = "https://b.example" // trusts A with a shared HS256 key
	e2eIssuerC = "https://c.example" // trusts A's EdDSA keys through A's JWKS
)

// writeFile writes content to dir/name with mode 0600 and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sharedKey writes a fresh 32-byte key as unpadded base64url.
func sharedKey(t *testing.T, dir, name string) string {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return writeFile(t, dir, name, base64.RawURLEncoding.EncodeToString(k)+"\n")
}

// handshakeNodes starts A, B and C. The key file paths in the config files
// are relative: they resolve against the file's directory.
func handshakeNodes(t *testing.T) (a, b, c *node) {
	t.Helper()
	dir := t.TempDir()
	sharedKey(t, dir, "a-to-b.key")
	a = startNode(t, nodeSpec{args: []string{"--config", writeFile(t, dir, "a.yaml", fmt.Sprintf(`
issuer: %q
handshake:
  ttl: 60s
  audiences:
    %q: { format: jwt, alg: HS256, key_file: a-to-b.key }
    %q: { format: jwt, alg: EdDSA }
`, e2eIssuerA, e2eIssuerB, e2eIssuerC))}})
	b = startNode(t, nodeSpec{args: []string{"--config", writeFile(t, dir, "b.yaml", fmt.Sprintf(`
issuer: %q
handshake:
  trusted_issuers:
    - { issuer: %q, format: jwt, alg: HS256, key_file: a-to-b.key }
`, e2eIssuerB, e2eIssuerA))}})
	c = startNode(t, nodeSpec{args: []string{"--config", writeFile(t, dir, "c.yaml", fmt.Sprintf(`
issuer: %q
handshake:
  trusted_issuers:
    - { issuer: %q, format: jwt, alg: EdDSA, jwks_url: %q }
`, e2eIssuerC, e2eIssuerA, a.pub+"/.well-known/jwks.json"))}})
	return a, b, c
}

// mintAt asks n's public API for a handshake token for audience; it returns
// an error rather than failing the test, so goroutines may call it.
func mintAt(n *node, session, audience string) (string, error) {
	body, _ := json.Marshal(map[string]string{"audience": audience})
	code, b, err := n.call(http.MethodPost, n.pub+"/v1/handshakes", "Bearer "+session, "application/json", string(body))
	if err != nil {
		return "", err
	}
	var got struct {
		Token, Format string
		ExpiresAt     time.Time `json:"expires_at"`
	}
	if code != http.StatusCreated || json.Unmarshal(b, &got) != nil || got.Token == "" {
		return "", fmt.Errorf("mint for %s: got %d %s, want 201", audience, code, b)
	}
	return got.Token, nil
}

// exchangeAt posts a handshake token to n's exchange route.
func exchangeAt(n *node, raw string) (int, []byte, error) {
	body, _ := json.Marshal(map[string]string{"token": raw})
	return n.call(http.MethodPost, n.pub+"/v1/handshakes/exchange", "", "application/json", string(body))
}

// TestE2EHandshake: the full flow over HTTP between three processes: A mints
// for B (HS256) and C (EdDSA via A's JWKS); each exchanges once for its own
// session, sets the cookie, and refuses the replay; the RFC 8693 grant works
// the same way.
func TestE2EHandshake(t *testing.T) {
	a, b, c := handshakeNodes(t)
	alice, _ := a.create(`{"subject":"alice","roles":["admin"]}`)

	for _, tt := range []struct {
		name     string
		receiver *node
		audience string
		subject  string // as the receiver names alice: an external issuer's subjects are namespaced
	}{
		{"B, HS256", b, e2eIssuerB, "alice"},
		{"C, EdDSA via JWKS", c, e2eIssuerC, e2eIssuerA + "|alice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := mintAt(a, alice, tt.audience)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(map[string]string{"token": raw})
			req, _ := http.NewRequest(http.MethodPost, tt.receiver.pub+"/v1/handshakes/exchange", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := tt.receiver.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Token   string
				Session struct {
					Subject    string
					AuthMethod string `json:"auth_method"`
					Roles      []string
				}
			}
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || got.Session.Subject != tt.subject || got.Session.AuthMethod != "handshake" {
				t.Fatalf("exchange: got %d %+v, want 201 with %s's session by handshake", resp.StatusCode, got, tt.subject)
			}
			cookies := resp.Cookies()
			if len(cookies) != 1 || cookies[0].Name != "tether_session" || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Value != got.Token {
				t.Errorf("Set-Cookie on loopback: got %+v, want tether_session, HttpOnly, SameSite=Lax", cookies)
			}
			code, sess := tt.receiver.bearer(http.MethodGet, "/v1/session", got.Token)
			if code != http.StatusOK || !bytes.Contains(sess, []byte(`"subject":"`+tt.subject+`"`)) {
				t.Errorf("the receiver's own token: got %d %s, want %s's session", code, sess, tt.subject)
			}
			if code, _ := a.bearer(http.MethodGet, "/v1/session", got.Token); code != http.StatusUnauthorized {
				t.Errorf("the receiver's token at A: got %d, want 401", code)
			}

			code, replay, err := exchangeAt(tt.receiver, raw)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusUnauthorized || strings.TrimSpace(string(replay)) != `{"error":"unauthenticated"}` {
				t.Errorf("replay: got %d %s, want 401 {\"error\":\"unauthenticated\"}", code, replay)
			}

			raw, err = mintAt(a, alice, tt.audience)
			if err != nil {
				t.Fatal(err)
			}
			form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {raw}, "subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}
			for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
				code, out := tt.receiver.mustCall(http.MethodPost, tt.receiver.pub+"/oauth2/token", "", "application/x-www-form-urlencoded", form.Encode())
				if code != want {
					t.Errorf("RFC 8693 grant #%d: got %d %s, want %d", i+1, code, out, want)
				}
				if want == http.StatusBadRequest && !bytes.Contains(out, []byte(`"invalid_grant"`)) {
					t.Errorf("RFC 8693 replay: got %s, want invalid_grant", out)
				}
			}
		})
	}

	// The refusals were counted by reason on the receiver.
	code, metrics := b.admin(http.MethodGet, "/metrics", "")
	if code != http.StatusOK || !bytes.Contains(metrics, []byte(`tether_handshake_exchange_failures_total{reason="replayed"} 2`)) {
		t.Errorf("B's metrics: want 2 replays counted, got:\n%s", grepLines(metrics, "tether_handshake"))
	}
	// A token for C is no good at B, nor B's at C.
	forC, err := mintAt(a, alice, e2eIssuerC)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := exchangeAt(b, forC); code != http.StatusUnauthorized {
		t.Errorf("C's token at B: got %d, want 401", code)
	}
	if code, _, _ := exchangeAt(c, forC); code != http.StatusCreated {
		t.Errorf("C's token at C after B refused it: got %d, want 201", code)
	}
}

func grepLines(b []byte, substr string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EKeyRotationInFlight: A's keys rotate, once through the admin API
// and once with `tether keys rotate`, in the middle of a stream of
// mint+exchange pairs to C, which verifies through A's JWKS. No validly
// minted token may fail: C refetches the JWKS on the new kid. `tether keys
// list` shows the keys, and the JWKS keeps the retiring ones.
func TestE2EKeyRotationInFlight(t *testing.T) {
	a, _, c := handshakeNodes(t)
	alice, _ := a.create(`{"subject":"alice"}`)
	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, tetherBin, args...)
		cmd.Env = e2eEnv("TETHER_ADMIN_URL="+a.adm, "TETHER_ADMIN_KEY="+a.key)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tether %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if strings.Contains(string(out), a.key) {
			t.Errorf("tether %s printed the admin key", strings.Join(args, " "))
		}
		return string(out)
	}
	jwksKids := func() []string {
		t.Helper()
		code, b := a.mustCall(http.MethodGet, a.pub+"/.well-known/jwks.json", "", "", "")
		var set struct {
			Keys []map[string]any
		}
		mustJSON(t, b, &set)
		if code != http.StatusOK {
			t.Fatalf("JWKS: got %d", code)
		}
		var kids []string
		for _, k := range set.Keys {
			if _, ok := k["d"]; ok {
				t.Errorf("JWKS entry %v holds a private key", k["kid"])
			}
			kids = append(kids, fmt.Sprint(k["kid"]))
		}
		return kids
	}

	listed := cli("keys", "list")
	first := jwksKids()
	if len(first) != 2 {
		t.Fatalf("JWKS before rotation: got %v, want 2 keys", first)
	}
	for _, kid := range first {
		if !strings.Contains(listed, kid) {
			t.Errorf("tether keys list does not show %s:\n%s", kid, listed)
		}
	}
	if !strings.Contains(listed, "KID") || !strings.Contains(listed, "active") {
		t.Errorf("tether keys list: want a table with KID and active keys:\n%s", listed)
	}

	const workers, perPhase = 4, 40
	var (
		pairs    atomic.Int64
		progress = make(chan struct{}, 1)
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				raw, err := mintAt(a, alice, e2eIssuerC)
				if err != nil {
					fail("%v", err)
					return
				}
				code, body, err := exchangeAt(c, raw)
				if err != nil || code != http.StatusCreated {
					fail("exchange of a freshly minted token: got %d %s (%v), want 201", code, body, err)
					return
				}
				pairs.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }); <-allDone }
	t.Cleanup(halt)
	waitPairs := func(n int64) {
		t.Helper()
		target := pairs.Load() + n
		for pairs.Load() < target {
			select {
			case <-progress:
			case <-allDone:
				t.Fatalf("every worker stopped: %v", failures)
			case <-time.After(60 * time.Second):
				t.Fatalf("no progress: %d of %d pairs", pairs.Load(), target)
			}
		}
	}

	waitPairs(perPhase)
	if code, b := a.admin(http.MethodPost, "/v1/keys/rotate", ""); code != http.StatusOK {
		t.Fatalf("rotate through the admin API: got %d %s", code, b)
	}
	waitPairs(perPhase)
	rotated := cli("keys", "rotate")
	waitPairs(perPhase)
	halt()
	mu.Lock()
	for _, f := range failures {
		t.Error(f)
	}
	mu.Unlock()
	t.Logf("%d mint+exchange pairs across 2 rotations", pairs.Load())

	kids := jwksKids()
	if len(kids) != 6 {
		t.Errorf("JWKS after two rotations: got %d keys, want 6 (two retiring generations and the active one)", len(kids))
	}
	for _, kid := range first {
		if !slices.Contains(kids, kid) {
			t.Errorf("JWKS after rotation lacks the retiring kid %s", kid)
		}
	}
	if strings.Count(rotated, "retiring") != 4 || strings.Count(rotated, "active") != 2 {
		t.Errorf("tether keys rotate: want 2 active and 4 retiring keys:\n%s", rotated)
	}
	if listed := cli("keys", "list", "--json"); !json.Valid([]byte(listed)) || !strings.Contains(listed, `"keys"`) {
		t.Errorf("tether keys list --json: got %s", listed)
	}
}

// TestE2EBadHandshakeConfig: a handshake section that cannot work stops
// `serve` at once with exit status 1 and an error that names the problem.
func TestE2EBadHandshakeConfig(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	sharedKey(t, dir, "good.key")
	writeFile(t, dir, "short.key", base64.RawURLEncoding.EncodeToString([]byte("sixteen bytes!!!")))
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown alg", `
handshake:
  audiences:
    "https://b.example": { format: jwt, alg: HS512, key_file: good.key }`, `unknown alg "HS512"`},
		{"alg none", `
handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: none, key_file: good.key }`, `unknown alg "none"`},
		{"unknown format", `
handshake:
  audiences:
    "https://b.example": { format: saml, alg: HS256, key_file: good.key }`, `unknown format "saml"`},
		{"missing key file", `
handshake:
  audiences:
    "https://b.example": { format: jwt, alg: HS256, key_file: nope.key }`, "nope.key"},
		{"short shared key", `
handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: HS256, key_file: short.key }`, "at least 32"},
		{"HS256 without a key", `
handshake:
  audiences:
    "https://b.example": { format: jwt, alg: HS256 }`, "key_file required"},
		{"plain-http jwks_url off loopback", `
handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: EdDSA, jwks_url: "http://a.example/jwks.json" }`, "jwks_url must be an https URL"},
		{"two key sources", `
handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: EdDSA, public_key_file: good.key, jwks_url: "https://a.example/jwks.json" }`, "exactly one of public_key_file and jwks_url"},
		{"ttl over 5m", `
handshake:
  ttl: 10m
  audiences:
    "https://b.example": { format: jwt, alg: HS256, key_file: good.key }`, "ttl 10m0s out of range"},
		{"misspelt key", `
handshake:
  audience:
    "https://b.example": { format: jwt, alg: HS256, key_file: good.key }`, "audience"},
		{"unknown field in an issuer", `
handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: HS256, key_file: good.key, jku: "https://evil.example" }`, "jku"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml", "issuer: \"https://x.example\"\n"+strings.TrimPrefix(tt.yaml, "\n")+"\n")
			code, out := runToExit(t, []string{"TETHER_ADMIN_KEY=" + newAdminKey(), "TETHER_DATA_DIR=" + t.TempDir()},
				"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--config", cfg)
			if code != 1 {
				t.Errorf("exit status: got %d, want 1:\n%s", code, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not say %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "tether ready") {
				t.Errorf("serve got ready with a bad handshake config:\n%s", out)
			}
		})
	}
}

// BenchmarkExchangeHTTP: HS256 handshake exchanges end to end over HTTP on
// loopback against an in-process node (verify, consume the jti, create the
// session, answer), from many concurrent clients on one address. Tokens are
// minted up front, untimed. "bolt" is the embedded default store, every
// write fsynced; "memory" shows the cost without the disk.
//
//	go test -short -run '^$' -bench ExchangeHTTP -benchtime 5s ./cmd/tether/
func BenchmarkExchangeHTTP(b *testing.B) {
	for _, store := range []struct{ name, url string }{{"bolt", ""}, {"memory", "memory:"}} {
		b.Run(store.name, func(b *testing.B) { benchExchangeHTTP(b, store.url) })
	}
}

func benchExchangeHTTP(b *testing.B, storeURL string) {
	dir := b.TempDir()
	k := make([]byte, 32)
	rand.Read(k)
	keyFile := filepath.Join(dir, "a-to-b.key")
	if err := os.WriteFile(keyFile, []byte(base64.RawURLEncoding.EncodeToString(k)), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := localConfig(filepath.Join(dir, "b"), storeURL)
	cfg.Issuer = e2eIssuerB
	cfg.Handshake.TrustedIssuers = []handshake.IssuerSpec{{Issuer: e2eIssuerA, Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: keyFile}}
	n, err := startLocalNode(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := n.stop(); err != nil {
			b.Error(err)
		}
	})
	minter, err := handshake.NewMinter(e2eIssuerA, handshake.Config{Audiences: map[string]handshake.AudienceSpec{
		e2eIssuerB: {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: keyFile},
	}}, nil, dir, handshake.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, b.N)
	for i := range bodies {
		tok, _, _, err := minter.Mint(e2eIssuerB, fmt.Sprintf("user-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		bodies[i], _ = json.Marshal(map[string]string{"token": tok})
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := n.public + "/v1/handshakes/exchange"
	var next, refused atomic.Int64
	b.SetParallelism(16) // 32 clients on 2 cores: services, not CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated && refused.Add(1) == 1 {
				b.Errorf("exchange: got %d, want 201", resp.StatusCode)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
	if r := refused.Load(); r > 0 {
		b.Errorf("%d of %d exchanges refused", r, b.N)
	}
}
