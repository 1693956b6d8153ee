package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether/internal/servicetest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as cert.pem and
// key.pem into dir, and returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tether test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// runToExit runs the binary with args, in a directory of its own and with
// env over e2eEnv, and returns its exit status and output (stdout and
// stderr). One still running after 30 s fails the test.
func runToExit(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tetherBin, args...)
	cmd.Env = e2eEnv(env...)
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run() // the exit status says it
	if ctx.Err() != nil {
		t.Fatalf("tether %s still running after 30 s:\n%s", strings.Join(args, " "), &out)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestE2EServeChecksFilesFirst: a file the settings name that is missing or
// unusable stops `serve` with exit status 1 and a message naming the setting
// and the path, before it writes anything: no data dir, no admin key, no
// database (issue 10 item 4). Relative paths in the file resolve against the
// file's directory, not the working directory.
func TestE2EServeChecksFilesFirst(t *testing.T) {
	needBinary(t)
	confDir := t.TempDir()
	selfSigned(t, confDir)
	writeFile(t, confDir, "garbage.pem", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
	sharedKey(t, confDir, "good.key")
	writeFile(t, confDir, "short.key", base64.RawURLEncoding.EncodeToString([]byte("sixteen bytes!!!")))
	shared := writeFile(t, confDir, "shared.secret", "whsec_"+strings.Repeat("bm90IGEga2V5", 4)) // valid, but readable by all
	if err := os.Chmod(shared, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"missing TLS key", "tls: {cert_file: cert.pem, key_file: nope-key.pem}",
			[]string{"tls.key_file", filepath.Join(confDir, "nope-key.pem"), "no such file"}},
		{"missing TLS cert", "tls: {cert_file: nope-cert.pem, key_file: key.pem}",
			[]string{"tls.cert_file", filepath.Join(confDir, "nope-cert.pem")}},
		{"TLS key that is not a key", "tls: {cert_file: cert.pem, key_file: garbage.pem}",
			[]string{"tls.cert_file", "tls.key_file", filepath.Join(confDir, "garbage.pem")}},
		{"missing handshake key file", `handshake:
  audiences:
    "https://b.example": { format: jwt, alg: HS256, key_file: nope.key }`,
			[]string{`handshake.audiences["https://b.example"].key_file`, filepath.Join(confDir, "nope.key")}},
		{"missing public key file", `handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: HS256, key_file: good.key }
    - { issuer: "https://x.example", format: jwt, alg: EdDSA, public_key_file: keys/x.pem }`,
			[]string{"handshake.trusted_issuers[1].public_key_file", filepath.Join(confDir, "keys", "x.pem")}},
		{"trusted issuer key too short", `handshake:
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: HS256, key_file: short.key }`,
			[]string{"at least 32"}},
		{"missing webhook secret", `webhooks: [{url: "https://hooks.example/t", secret_file: nope.secret}]`,
			[]string{"webhooks[0].secret_file", filepath.Join(confDir, "nope.secret"), "no such file"}},
		{"webhook secret others can read", `webhooks: [{url: "https://hooks.example/t", secret_file: shared.secret}]`,
			[]string{"webhooks[0].secret_file", filepath.Join(confDir, "shared.secret"), "mode 0644"}},
		{"webhook to plain http", `webhooks: [{url: "http://hooks.example/t", secret_file: shared.secret}]`,
			[]string{"webhooks[0].url", "must be https"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, confDir, strings.ReplaceAll(tt.name, " ", "-")+".yaml", tt.yaml+"\n")
			dataDir := filepath.Join(t.TempDir(), "data")
			// No TETHER_ADMIN_KEY: a late check would have generated one.
			code, out := runToExit(t, nil, "serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", dataDir, "--config", cfg)
			if code != 1 {
				t.Errorf("exit status: got %d, want 1:\n%s", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "tether ready") || strings.Contains(out, "admin key") {
				t.Errorf("serve went on past the check:\n%s", out)
			}
			if strings.Contains(out, "bm90IGEga2V5") {
				t.Errorf("the output shows a file's content:\n%s", out)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("data dir %s: got %v, want it never created", dataDir, err)
			}
		})
	}
}

// TestE2EServeTLS: with tls.cert_file and tls.key_file (relative to the
// config file, the node started elsewhere), the public listener serves HTTPS
// with HSTS; the admin listener, plain HTTP, sends no HSTS, and neither does
// a public listener without TLS.
func TestE2EServeTLS(t *testing.T) {
	confDir := t.TempDir()
	pool := selfSigned(t, confDir)
	cfg := writeFile(t, confDir, "tether.yaml", "tls: {cert_file: cert.pem, key_file: key.pem}\n")
	n := startNode(t, nodeSpec{args: []string{"--config", cfg}})

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	hstsOf := func(url string) string {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		// Any answer carries the header or not; the admin one is a 401.
		return resp.Header.Get("Strict-Transport-Security")
	}
	public := "https://" + strings.TrimPrefix(n.pub, "http://")
	if got, want := hstsOf(public+"/healthz"), "max-age=63072000; includeSubDomains"; got != want {
		t.Errorf("public listener over TLS: Strict-Transport-Security %q, want %q", got, want)
	}
	if got := hstsOf(n.adm + "/healthz"); got != "" {
		t.Errorf("admin listener (plain HTTP): Strict-Transport-Security %q, want none", got)
	}
	plain := startNode(t, nodeSpec{})
	if got := hstsOf(plain.pub + "/healthz"); got != "" {
		t.Errorf("public listener without TLS: Strict-Transport-Security %q, want none", got)
	}
}

// TestServeRefusesIdleTimeoutPastLifetime: an idle timeout that could never
// fire is refused at start, by name (issue 10 item 12).
func TestServeRefusesIdleTimeoutPastLifetime(t *testing.T) {
	// Free ports, a fresh data dir and a deadline: should the check be
	// missing, the node starts and stops instead of taking the real ports.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--sessions-lifetime", "1h", "--sessions-idle-timeout", "2h"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit status: got %d, want 1:\n%s", code, &stderr)
	}
	if want := "sessions.idle_timeout (2h0m0s) is longer than sessions.lifetime (1h0m0s)"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, &stderr)
	}
}

// TestE2EStoreOptionsFromFile: a store option set in the YAML file (here
// redis.prefix) reaches the store: the session's keys carry the prefix.
func TestE2EStoreOptionsFromFile(t *testing.T) {
	needBinary(t)
	addr := servicetest.SharedRedis(t)
	prefix := servicetest.RedisPrefix(t, addr)
	cfg := writeFile(t, t.TempDir(), "tether.yaml", fmt.Sprintf("store: \"redis://%s/0\"\nredis: {prefix: %q, timeout: 3s}\n", addr, prefix))
	n := startNode(t, nodeSpec{args: []string{"--config", cfg}})
	_, id := n.create(`{"subject":"alice"}`)

	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n2, err := c.Do(t.Context(), c.B().Exists().Key(prefix+"{s:"+id+"}").Build()).AsInt64()
	if err != nil || n2 != 1 {
		t.Errorf("EXISTS %s{s:%s}: got %d, %v; want the session stored under the file's prefix", prefix, id, n2, err)
	}
}
