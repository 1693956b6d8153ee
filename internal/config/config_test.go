package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeFile writes a config file into a fresh directory and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tether.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile(t *testing.T) {
	path := writeFile(t, `
addr: 127.0.0.1:9080
admin_addr: 127.0.0.1:9081
store: "memory:"
data_dir: /var/lib/tether
issuer: https://a.example
log_level: debug
tls: {cert_file: cert.pem, key_file: /etc/tls/key.pem}
sessions:
  lifetime: 12h
  idle_timeout: 30m
  touch_interval: 90s
  max_staleness: -1ns
  cache_size: 500
`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: "127.0.0.1:9080", AdminAddr: "127.0.0.1:9081", Store: "memory:", DataDir: "/var/lib/tether",
		Issuer: "https://a.example", LogLevel: "debug",
		TLS: TLS{CertFile: "cert.pem", KeyFile: "/etc/tls/key.pem"},
		Sessions: Sessions{Lifetime: 12 * time.Hour, IdleTimeout: 30 * time.Minute, TouchInterval: 90 * time.Second,
			MaxStaleness: -1, CacheSize: 500},
		Server: DefaultServer(),
		File:   path,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestLoadFileHandshakeExample: the handshake part of DESIGN §6, which
// outside checks write verbatim, loads under the strict decoder.
func TestLoadFileHandshakeExample(t *testing.T) {
	path := writeFile(t, `
issuer: "https://a.example"          # this node's identity: iss it mints, aud it accepts
handshake:
  ttl: 60s                            # lifetime of the tokens this node mints (max 5m)
  audiences:                          # whom this node mints handshake tokens for
    "https://b.example": { format: jwt, alg: HS256, key_file: b.key }
    "https://partner.example": { format: jwt, alg: EdDSA }          # the node's own key pair
    "https://c.example": { format: paseto, alg: v4.public }         # the node's own Ed25519 key
    "https://d.example": { format: paseto, alg: v4.local, key_file: d.key }
  trusted_issuers:                    # whose handshake tokens this node exchanges
    - { issuer: "https://a.example", format: jwt, alg: HS256, key_file: b.key }
    - { issuer: "https://x.example", format: jwt, alg: EdDSA, public_key_file: x.pem }   # or ES256
    - { issuer: "https://y.example", format: jwt, alg: EdDSA, jwks_url: "https://y.example/.well-known/jwks.json" }
    - { issuer: "https://z.example", format: paseto, alg: v4.public, public_key_file: z.pem }
`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	h := c.Handshake
	if c.Issuer != "https://a.example" || h.TTL != time.Minute || len(h.Audiences) != 4 || len(h.TrustedIssuers) != 4 {
		t.Errorf("got issuer %q, ttl %v, %d audiences, %d trusted issuers; want https://a.example, 1m, 4, 4",
			c.Issuer, h.TTL, len(h.Audiences), len(h.TrustedIssuers))
	}
	if got := h.Audiences["https://d.example"]; got.Format != "paseto" || got.Alg != "v4.local" || got.KeyFile != "d.key" {
		t.Errorf("audience d.example: got %+v, want paseto v4.local d.key", got)
	}
	if got := h.TrustedIssuers[2]; got.JWKSURL != "https://y.example/.well-known/jwks.json" {
		t.Errorf("trusted issuer y.example: got %+v, want its jwks_url", got)
	}
}

// TestLoadFileKeepsWhatItDoesNotSet: a file sets some keys; the rest keep
// their defaults.
func TestLoadFileKeepsWhatItDoesNotSet(t *testing.T) {
	c := Default()
	if err := c.LoadFile(writeFile(t, "log_level: warn\n")); err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.LogLevel != "warn" || c.Addr != d.Addr || c.AdminAddr != d.AdminAddr || c.DataDir != d.DataDir {
		t.Errorf("got %+v, want the defaults with log_level warn", c)
	}
	for _, empty := range []string{"", "# only a comment\n", "---\n"} {
		c := Default()
		if err := c.LoadFile(writeFile(t, empty)); err != nil {
			t.Errorf("file %q: got %v, want no error", empty, err)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // each must appear in the error
	}{
		{"unknown key", "addr: 127.0.0.1:1\nadmin_adr: 127.0.0.1:2\n", []string{"admin_adr"}},
		{"unknown nested key", "sessions:\n  lifetme: 1h\n", []string{"lifetme"}},
		// yaml.v3 names the line, not the key, for type errors.
		{"duration as number", "sessions:\n  lifetime: 5\n", []string{"line 2", "time.Duration"}},
		{"bad duration", "sessions:\n  idle_timeout: banana\n", []string{"banana"}},
		{"wrong type", "tls: [a, b]\n", []string{"line 1", "TLS"}},
		{"cache size as text", "sessions:\n  cache_size: lots\n", []string{"lots"}},
		{"not YAML", "addr: [unclosed\n", []string{"tether.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			c := Default()
			err := c.LoadFile(path)
			if err == nil {
				t.Fatalf("got no error, want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		c := Default()
		if err := c.LoadFile(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Errorf("got %v, want an error naming nope.yaml", err)
		}
	})
	t.Run("oversize file", func(t *testing.T) {
		c := Default()
		path := writeFile(t, "# "+strings.Repeat("x", MaxFileBytes)+"\n")
		if err := c.LoadFile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("got %v, want a size error", err)
		}
	})
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"TETHER_ADDR":       "127.0.0.1:7000",
		"TETHER_ADMIN_ADDR": "127.0.0.1:7001",
		"TETHER_STORE":      "memory:",
		"TETHER_DATA_DIR":   "/srv/tether",
		"TETHER_ISSUER":     "https://b.example",
		"TETHER_LOG_LEVEL":  "error",
	}
	c := Default()
	c.ApplyEnv(func(k string) string { return env[k] })
	want := Default()
	want.Addr, want.AdminAddr, want.Store, want.DataDir, want.Issuer, want.LogLevel =
		"127.0.0.1:7000", "127.0.0.1:7001", "memory:", "/srv/tether", "https://b.example", "error"
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}

	// An empty variable is unset, not "set to empty".
	c = Default()
	c.ApplyEnv(func(string) string { return "" })
	if diff := cmp.Diff(Default(), c); diff != "" {
		t.Errorf("an empty environment changed the config (-want +got):\n%s", diff)
	}
}

// TestPrecedence: defaults < file < environment. (Flags, the last layer, are
// applied by `tether serve` and tested end to end in cmd/tether.)
func TestPrecedence(t *testing.T) {
	path := writeFile(t, "addr: 127.0.0.1:1111\nadmin_addr: 127.0.0.1:2222\nlog_level: debug\n")
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	c.ApplyEnv(func(k string) string {
		return map[string]string{"TETHER_ADDR": "127.0.0.1:3333"}[k]
	})
	if c.Addr != "127.0.0.1:3333" {
		t.Errorf("addr: got %s, want the environment's 127.0.0.1:3333 over the file's", c.Addr)
	}
	if c.AdminAddr != "127.0.0.1:2222" {
		t.Errorf("admin_addr: got %s, want the file's 127.0.0.1:2222 over the default", c.AdminAddr)
	}
	if c.DataDir != Default().DataDir {
		t.Errorf("data_dir: got %s, want the default %s", c.DataDir, Default().DataDir)
	}
}

func TestResolve(t *testing.T) {
	valid := func(f func(c *Config)) Config {
		c := Default()
		f(&c)
		return c
	}
	tests := []struct {
		name string
		c    Config
		want string // "" for no error, else a substring of it
	}{
		{"defaults", Default(), ""},
		{"same address for both", valid(func(c *Config) { c.AdminAddr = c.Addr }), "must differ"},
		// Port 0 is two different free ports, which is how tests start nodes.
		{"both on port 0", valid(func(c *Config) { c.Addr, c.AdminAddr = "127.0.0.1:0", "127.0.0.1:0" }), ""},
		{"no addr", valid(func(c *Config) { c.Addr = "" }), "addr"},
		{"no admin addr", valid(func(c *Config) { c.AdminAddr = "" }), "admin_addr"},
		{"no data dir", valid(func(c *Config) { c.DataDir = "" }), "data_dir"},
		{"bad log level", valid(func(c *Config) { c.LogLevel = "loud" }), `log_level "loud"`},
		{"upper-case log level", valid(func(c *Config) { c.LogLevel = "INFO" }), "log_level"},
		{"cert without key", valid(func(c *Config) { c.TLS.CertFile = "c.pem" }), "both cert_file and key_file"},
		{"key without cert", valid(func(c *Config) { c.TLS.KeyFile = "k.pem" }), "both cert_file and key_file"},
		{"negative lifetime", valid(func(c *Config) { c.Sessions.Lifetime = -time.Hour }), "negative"},
		{"negative cache size", valid(func(c *Config) { c.Sessions.CacheSize = -1 }), "negative"},
		{"negative staleness disables the cache", valid(func(c *Config) { c.Sessions.MaxStaleness = -1 }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Resolve()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && err == nil:
				t.Errorf("got no error, want one mentioning %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("got %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestResolvePaths: paths in the file are relative to the file, wherever the
// server was started; the data dir becomes absolute so the store URL built
// from it names a path.
func TestResolvePaths(t *testing.T) {
	path := writeFile(t, "tls: {cert_file: certs/cert.pem, key_file: /abs/key.pem}\n")
	dir := filepath.Dir(path)
	t.Chdir(t.TempDir()) // somewhere else than the file

	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "certs", "cert.pem"); c.TLS.CertFile != want {
		t.Errorf("cert_file: got %s, want %s", c.TLS.CertFile, want)
	}
	if c.TLS.KeyFile != "/abs/key.pem" {
		t.Errorf("key_file: got %s, want /abs/key.pem unchanged", c.TLS.KeyFile)
	}
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "tether-data"); c.DataDir != want {
		t.Errorf("data_dir: got %s, want %s", c.DataDir, want)
	}

	t.Run("without a file, against the working directory", func(t *testing.T) {
		c := Default()
		c.TLS = TLS{CertFile: "c.pem", KeyFile: "k.pem"}
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		if c.TLS.CertFile != "c.pem" {
			t.Errorf("cert_file: got %s, want c.pem (relative to the working directory)", c.TLS.CertFile)
		}
	})
}

// FuzzConfigParse: the YAML parser never panics, and what it accepts survives
// Resolve without a panic either.
func FuzzConfigParse(f *testing.F) {
	for _, seed := range []string{
		"addr: 127.0.0.1:8080\nadmin_addr: 127.0.0.1:8081\n",
		"sessions:\n  lifetime: 24h\n  max_staleness: -1ns\n",
		"tls: {cert_file: a, key_file: b}\n",
		"issuer: \"https://a.example\"\nhandshake:\n  ttl: 60s\n",
		"a: &a [*a, *a]\n",
		"addr: !!binary aGVsbG8=\n",
		"sessions: {cache_size: 99999999999999999999}\n",
		"---\n---\n",
		"\t- x",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := c.parse(data); err != nil {
			return
		}
		_ = c.Resolve()
	})
}
