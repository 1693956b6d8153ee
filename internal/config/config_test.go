package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/store"
	"github.com/tetherhq/tether/store/boltstore"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/pgstore"
	"github.com/tetherhq/tether/store/redisstore"
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
tls: {cert_file: /etc/tls/cert.pem, key_file: /etc/tls/key.pem}
sessions:
  lifetime: 12h
  idle_timeout: 30m
  touch_interval: 90s
  max_staleness: -1ns
  cache_size: 500
  on_privilege_gain: revoke
redis: {prefix: "app:", timeout: 3s}
postgres: {max_conns: 7}
bolt: {lock_timeout: 4s}
`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Addr, want.AdminAddr, want.Store, want.DataDir = "127.0.0.1:9080", "127.0.0.1:9081", "memory:", "/var/lib/tether"
	want.Issuer, want.LogLevel = "https://a.example", "debug"
	want.TLS = TLS{CertFile: "/etc/tls/cert.pem", KeyFile: "/etc/tls/key.pem"}
	want.Sessions = Sessions{Lifetime: 12 * time.Hour, IdleTimeout: 30 * time.Minute, TouchInterval: 90 * time.Second,
		MaxStaleness: -1, CacheSize: 500, OnPrivilegeGain: tether.PrivilegeGainRevoke}
	want.Redis.Prefix, want.Redis.Timeout = "app:", 3*time.Second
	want.Postgres.MaxConns = 7
	want.Bolt.LockTimeout = 4 * time.Second
	want.File = path
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestLoadFileHandshakeExample: the handshake part of DESIGN §6, which
// outside checks write verbatim, loads under the strict decoder, and its key
// files resolve against the file's directory.
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
	dir := filepath.Dir(path)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	h := c.Handshake
	if c.Issuer != "https://a.example" || h.TTL != time.Minute || len(h.Audiences) != 4 || len(h.TrustedIssuers) != 4 {
		t.Errorf("got issuer %q, ttl %v, %d audiences, %d trusted issuers; want https://a.example, 1m, 4, 4",
			c.Issuer, h.TTL, len(h.Audiences), len(h.TrustedIssuers))
	}
	if got, want := h.Audiences["https://d.example"], (handshake.AudienceSpec{Format: "paseto", Alg: "v4.local", KeyFile: filepath.Join(dir, "d.key")}); got != want {
		t.Errorf("audience d.example: got %+v, want %+v", got, want)
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
	want := Default()
	want.LogLevel, want.File = "warn", c.File
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
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
		{"unknown store option", "redis:\n  prefx: a\n", []string{"prefx"}},
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

// layerValues are three values of a setting's type, one per layer above the
// defaults, each different from the layer below. yamlValue is what the file
// holds, raw what the environment and the flag hold.
func layerValues(t *testing.T, s Setting, layer int) (yamlValue any, raw string) {
	var def Config
	if s.Default != "" {
		if err := s.set(&def, s.Default); err != nil {
			t.Fatal(err)
		}
	}
	switch p := s.field(&def).(type) {
	case *string:
		// Absolute, so that the file's path resolution leaves it alone.
		v := fmt.Sprintf("/layer%d/%s", layer, s.name())
		return v, v
	case *int:
		v := *p + 11*layer
		return v, fmt.Sprint(v)
	case *time.Duration:
		v := *p + time.Duration(layer)*11*time.Second
		return v.String(), v.String()
	case *bool:
		v := *p != (layer%2 == 1)
		return v, fmt.Sprint(v)
	case *[]string:
		v := []string{fmt.Sprintf("a%d", layer), fmt.Sprintf("b%d", layer)}
		return v, strings.Join(v, ",")
	}
	t.Fatalf("%s: no test values for %s", s.name(), s.kind())
	return nil, ""
}

// yamlFor nests value under the dotted key: "a.b" → {a: {b: value}}.
func yamlFor(t *testing.T, key string, value any) string {
	parts := strings.Split(key, ".")
	var doc any = value
	for i := len(parts) - 1; i >= 0; i-- {
		doc = map[string]any{parts[i]: doc}
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPrecedence: for every row of the table, each layer wins over the one
// below: defaults < file < environment < flags. The flags are parsed by a
// real flag set, as `tether serve` does.
func TestPrecedence(t *testing.T) {
	for _, s := range Settings() {
		if s.field == nil || s.Flag == "config" {
			continue // a file-only section (TestLoadFile*), and the file's own path (below)
		}
		t.Run(s.name(), func(t *testing.T) {
			fileYAML := ""
			var want [4]any // per layer: default, file, env, flag
			want[0] = reflect.ValueOf(s.field(ptr(Default()))).Elem().Interface()
			for layer := 1; layer <= 3; layer++ {
				want[layer] = want[layer-1]
			}
			if s.Key != "" {
				v, raw := layerValues(t, s, 1)
				fileYAML = yamlFor(t, s.Key, v)
				want[1] = parsedValue(t, s, raw)
				want[2], want[3] = want[1], want[1]
			}
			_, envRaw := layerValues(t, s, 2)
			if s.Env != "" {
				want[2] = parsedValue(t, s, envRaw)
				want[3] = want[2]
			}
			_, flagRaw := layerValues(t, s, 3)
			if s.Flag != "" {
				want[3] = parsedValue(t, s, flagRaw)
			}

			file := writeFile(t, fileYAML)
			env := map[string]string{}
			var args []string
			for layer := 0; layer <= 3; layer++ {
				switch layer {
				case 1:
					env["TETHER_CONFIG"] = file
				case 2:
					if s.Env != "" {
						env[s.Env] = envRaw
					}
				case 3:
					if s.Flag != "" {
						args = []string{"--" + s.Flag + "=" + flagRaw}
					}
				}
				c, err := load(Source{Getenv: mapEnv(env), Flags: parseFlags(t, args)})
				if err != nil {
					t.Fatalf("layer %d: %v", layer, err)
				}
				got := reflect.ValueOf(s.field(&c)).Elem().Interface()
				if diff := cmp.Diff(want[layer], got); diff != "" {
					t.Errorf("with layers up to %s (-want +got):\n%s", []string{"defaults", "file", "env", "flags"}[layer], diff)
				}
			}
		})
	}

	t.Run("the file named by flag over the one named by env", func(t *testing.T) {
		envFile, flagFile := writeFile(t, "log_level: warn\n"), writeFile(t, "log_level: error\n")
		c, err := load(Source{Getenv: mapEnv(map[string]string{"TETHER_CONFIG": envFile}), Flags: parseFlags(t, []string{"--config", flagFile})})
		if err != nil {
			t.Fatal(err)
		}
		if c.File != flagFile || c.LogLevel != "error" {
			t.Errorf("got file %s, log_level %s; want %s, error", c.File, c.LogLevel, flagFile)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// parsedValue is the field's value after the setting takes raw.
func parsedValue(t *testing.T, s Setting, raw string) any {
	t.Helper()
	var c Config
	if err := s.set(&c, raw); err != nil {
		t.Fatal(err)
	}
	return reflect.ValueOf(s.field(&c)).Elem().Interface()
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func parseFlags(t *testing.T, args []string) Flags {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	flags := Flags{}
	flags.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return flags
}

// TestLoadErrors: a bad value names where it came from; a bad flag is refused
// while parsing, as a usage error.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad duration in env", map[string]string{"TETHER_MAX_STALENESS": "banana"}, `TETHER_MAX_STALENESS: "banana" is not a duration`},
		{"bad number in env", map[string]string{"TETHER_POSTGRES_MAX_CONNS": "many"}, "TETHER_POSTGRES_MAX_CONNS"},
		{"missing file", map[string]string{"TETHER_CONFIG": "/nonexistent/tether.yaml"}, "/nonexistent/tether.yaml"},
		{"checks after loading", map[string]string{"TETHER_LOG_LEVEL": "loud"}, `log_level "loud"`},
		{"idle timeout past lifetime", map[string]string{"TETHER_SESSIONS_IDLE_TIMEOUT": "25h"}, "sessions.idle_timeout (25h0m0s) is longer than sessions.lifetime (24h0m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Source{Getenv: mapEnv(tt.env)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	Flags{}.Register(fs)
	if err := fs.Parse([]string{"--max-staleness", "banana"}); err == nil || !strings.Contains(err.Error(), "banana") {
		t.Errorf("--max-staleness banana: got %v, want a parse error naming the value", err)
	}
}

// TestTable: the table is complete and consistent, and the contract's names
// (DESIGN §6) are in it unchanged.
func TestTable(t *testing.T) {
	keys, envs, flags := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range Settings() {
		switch {
		case s.Key == "" && s.Env == "" && s.Flag == "":
			t.Errorf("%+v: a row that nothing can set", s)
		case s.field == nil && (s.Env != "" || s.Flag != "" || s.Default != ""):
			t.Errorf("%s: a file-only section has no variable, flag or default", s.name())
		case s.Help == "":
			t.Errorf("%s: no help", s.name())
		case s.Env != "" && !strings.HasPrefix(s.Env, "TETHER_"):
			t.Errorf("%s: variable %s does not start with TETHER_", s.name(), s.Env)
		case s.Flag != "" && s.Flag != strings.ToLower(s.Flag):
			t.Errorf("%s: flag %s is not lower case", s.name(), s.Flag)
		}
		for _, seen := range []struct {
			set  map[string]bool
			name string
		}{{keys, s.Key}, {envs, s.Env}, {flags, s.Flag}} {
			if seen.name != "" && seen.set[seen.name] {
				t.Errorf("%s appears in two rows", seen.name)
			}
			seen.set[seen.name] = true
		}
	}

	// Every YAML key of Config has a row, and every row's key is in Config.
	var missing []string
	walkKeys(reflect.TypeFor[Config](), "", keys, &missing)
	if len(missing) > 0 {
		t.Errorf("YAML keys without a row in the table: %v", missing)
	}
	for k := range keys {
		if k != "" {
			t.Errorf("row %s names no YAML key of Config", k)
		}
	}

	contract := []struct{ flag, env, def string }{
		{"addr", "TETHER_ADDR", "127.0.0.1:8080"},
		{"admin-addr", "TETHER_ADMIN_ADDR", "127.0.0.1:8081"},
		{"store", "TETHER_STORE", ""},
		{"data-dir", "TETHER_DATA_DIR", "./tether-data"},
		{"config", "TETHER_CONFIG", ""},
		{"", "TETHER_ADMIN_KEY", ""},
	}
	for _, c := range contract {
		found := false
		for _, s := range Settings() {
			if s.Env == c.env {
				found = true
				if s.Flag != c.flag || s.Default != c.def {
					t.Errorf("%s: got flag %q, default %q; want --%s, %q (DESIGN §6)", c.env, s.Flag, s.Default, c.flag, c.def)
				}
			}
		}
		if !found {
			t.Errorf("%s: not in the table (DESIGN §6)", c.env)
		}
	}
	if d := Default(); d.AdminURL != "http://"+d.AdminAddr {
		t.Errorf("the admin commands' default URL %s is not serve's default admin address %s", d.AdminURL, d.AdminAddr)
	}
}

// walkKeys deletes from rows the YAML keys of t that have a row, descending
// into sections, and lists in missing those that have none.
func walkKeys(t reflect.Type, prefix string, rows map[string]bool, missing *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		switch {
		case rows[key]:
			delete(rows, key)
		case f.Type.Kind() == reflect.Struct:
			walkKeys(f.Type, key+".", rows, missing)
		default:
			*missing = append(*missing, key)
		}
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
		{"negative lifetime", valid(func(c *Config) { c.Sessions.Lifetime = -time.Hour }), "must be positive"},
		{"zero idle timeout", valid(func(c *Config) { c.Sessions.IdleTimeout = 0 }), "must be positive"},
		{"idle timeout past lifetime", valid(func(c *Config) { c.Sessions.Lifetime, c.Sessions.IdleTimeout = time.Hour, 2*time.Hour }),
			"sessions.idle_timeout (2h0m0s) is longer than sessions.lifetime (1h0m0s)"},
		{"idle timeout equal to lifetime", valid(func(c *Config) { c.Sessions.Lifetime, c.Sessions.IdleTimeout = time.Hour, time.Hour }), ""},
		{"negative cache size", valid(func(c *Config) { c.Sessions.CacheSize = -1 }), "negative"},
		{"negative staleness disables the cache", valid(func(c *Config) { c.Sessions.MaxStaleness = -1 }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.c.Resolve(), tt.want)
		})
	}
}

// TestFilePaths: every path written in the file (each key ending in _file or
// _dir, in any section, map or list) resolves against the file's directory,
// wherever the server was started; paths from the environment or flags, and
// the defaults, resolve against the working directory.
func TestFilePaths(t *testing.T) {
	path := writeFile(t, `
data_dir: data
tls: {cert_file: certs/cert.pem, key_file: /abs/key.pem}
handshake:
  audiences:
    "https://b.example": { format: jwt, alg: HS256, key_file: keys/b.key }
  trusted_issuers:
    - { issuer: "https://x.example", format: jwt, alg: EdDSA, public_key_file: ../x.pem }
    - { issuer: "https://y.example", format: jwt, alg: EdDSA, jwks_url: "jwks.json" }
webhooks:
  - { url: "https://hooks.example/t", secret_file: secrets/hook.secret }
`)
	dir := filepath.Dir(path)
	wd := t.TempDir()
	t.Chdir(wd) // somewhere else than the file

	c, err := Load(Source{Getenv: mapEnv(map[string]string{"TETHER_CONFIG": path})})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, got, want string }{
		{"data_dir", c.DataDir, filepath.Join(dir, "data")},
		{"tls.cert_file", c.TLS.CertFile, filepath.Join(dir, "certs", "cert.pem")},
		{"tls.key_file (absolute)", c.TLS.KeyFile, "/abs/key.pem"},
		{"handshake audience key_file", c.Handshake.Audiences["https://b.example"].KeyFile, filepath.Join(dir, "keys", "b.key")},
		{"handshake issuer public_key_file", c.Handshake.TrustedIssuers[0].PublicKeyFile, filepath.Join(filepath.Dir(dir), "x.pem")},
		{"jwks_url (not a path)", c.Handshake.TrustedIssuers[1].JWKSURL, "jwks.json"},
		{"webhooks secret_file", c.Webhooks[0].SecretFile, filepath.Join(dir, "secrets", "hook.secret")},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, tt.got, tt.want)
		}
	}

	t.Run("from the environment and flags, against the working directory", func(t *testing.T) {
		c, err := Load(Source{
			Getenv: mapEnv(map[string]string{"TETHER_CONFIG": path, "TETHER_TLS_CERT_FILE": "env.pem"}),
			Flags:  parseFlags(t, []string{"--tls-key-file", "flag.pem", "--data-dir", "flagdata"}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.TLS.CertFile != "env.pem" || c.TLS.KeyFile != "flag.pem" || c.DataDir != filepath.Join(wd, "flagdata") {
			t.Errorf("got cert %s, key %s, data dir %s; want env.pem, flag.pem, %s", c.TLS.CertFile, c.TLS.KeyFile, c.DataDir, filepath.Join(wd, "flagdata"))
		}
	})
	t.Run("the default data dir, against the working directory", func(t *testing.T) {
		c, err := Load(Source{Getenv: mapEnv(map[string]string{"TETHER_CONFIG": writeFile(t, "log_level: info\n")})})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(wd, "tether-data"); c.DataDir != want {
			t.Errorf("data_dir: got %s, want %s", c.DataDir, want)
		}
	})
}

// TestCheckFiles: every file the settings name is opened before the start;
// the error names the setting and the path.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := os.WriteFile(good, []byte("s3cret-content"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		set  func(c *Config)
		want []string // "" for no error
	}{
		{"none named", func(c *Config) {}, nil},
		{"all there", func(c *Config) {
			c.TLS = TLS{CertFile: good, KeyFile: good}
			c.Handshake.TrustedIssuers = []handshake.IssuerSpec{{PublicKeyFile: good}}
		}, nil},
		{"tls key missing", func(c *Config) { c.TLS = TLS{CertFile: good, KeyFile: missing} }, []string{"tls.key_file", missing, "no such file"}},
		{"audience key missing", func(c *Config) {
			c.Handshake.Audiences = map[string]handshake.AudienceSpec{"https://b.example": {KeyFile: missing}}
		}, []string{`handshake.audiences["https://b.example"].key_file`, missing}},
		{"issuer public key missing", func(c *Config) {
			c.Handshake.TrustedIssuers = []handshake.IssuerSpec{{KeyFile: good}, {PublicKeyFile: missing}}
		}, []string{"handshake.trusted_issuers[1].public_key_file", missing}},
		{"a directory", func(c *Config) { c.TLS = TLS{CertFile: dir, KeyFile: good} }, []string{"tls.cert_file", "is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.set(&c)
			err := c.CheckFiles()
			if tt.want == nil {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows a file's content", err)
			}
		})
	}
}

func TestClientEnv(t *testing.T) {
	c, err := ClientEnv(mapEnv(map[string]string{
		"TETHER_ADMIN_URL": "http://127.0.0.1:9", "TETHER_ADMIN_KEY": " k \n", "TETHER_DATA_DIR": "d",
		"TETHER_MAX_STALENESS": "banana", // the server's, not the admin commands' to refuse
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminURL != "http://127.0.0.1:9" || c.AdminKey != "k" || c.DataDir != "d" {
		t.Errorf("got %s, %q, %s; want http://127.0.0.1:9, k, d", c.AdminURL, c.AdminKey, c.DataDir)
	}
	if c, _ := ClientEnv(mapEnv(nil)); c.AdminURL != Default().AdminURL || c.DataDir != Default().DataDir {
		t.Errorf("empty environment: got %s, %s; want the defaults", c.AdminURL, c.DataDir)
	}
}

// FuzzConfigParse: the YAML parser never panics, and what it accepts survives
// Resolve and CheckFiles without a panic either.
func FuzzConfigParse(f *testing.F) {
	for _, seed := range []string{
		"addr: 127.0.0.1:8080\nadmin_addr: 127.0.0.1:8081\n",
		"sessions:\n  lifetime: 24h\n  max_staleness: -1ns\n",
		"tls: {cert_file: a, key_file: b}\n",
		"issuer: \"https://a.example\"\nhandshake:\n  ttl: 60s\n",
		"handshake:\n  audiences:\n    b: &k { key_file: x }\n    c: *k\n",
		"a: &a [*a, *a]\n",
		"addr: !!binary aGVsbG8=\n",
		"sessions: {cache_size: 99999999999999999999}\n",
		"redis: {prefix: '{x}'}\n",
		"events: {retention: 720h}\nwebhooks: [{url: 'https://h.example/x?t=1', secret_file: s, events: [session.revoked]}]\n",
		"store: 'redis+cluster://a:1'\nwebhooks: [{url: 'http://127.0.0.1:9/', secret_file: /dev/null}]\n",
		"---\n---\n",
		"\t- x",
		"",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := c.parse(data, dir); err != nil {
			return
		}
		_ = c.Resolve()
		_ = c.CheckFiles()
		_, _ = c.WebhookEndpoints()
	})
}

// TestManager: the sessions section becomes a tether.Config field by field,
// with the file's "0: no cache" turned into the library's negative; the
// defaults make a working Manager.
func TestManager(t *testing.T) {
	c := Default()
	c.Sessions = Sessions{Lifetime: 3 * time.Hour, IdleTimeout: time.Hour, TouchInterval: 5 * time.Second, MaxStaleness: 2 * time.Second, CacheSize: 9, MaxPerSubject: 4}
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	got := c.Manager(st, log)
	want := tether.Config{Store: st, Logger: log, Lifetime: 3 * time.Hour, IdleTimeout: time.Hour, TouchInterval: 5 * time.Second,
		MaxStaleness: 2 * time.Second, CacheSize: 9, MaxSessionsPerSubject: 4, EventRetention: 30 * 24 * time.Hour,
		DPoP: dpop.Config{SingleNode: true}, DBSCCookieLifetime: 10 * time.Minute}
	if got.Store != want.Store || got.Logger != want.Logger {
		t.Errorf("store or logger not passed on")
	}
	got.Store, got.Logger, want.Store, want.Logger = nil, nil, nil, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tether.Config (-want +got):\n%s", diff)
	}
	for _, staleness := range []time.Duration{0, -time.Second} {
		c.Sessions.MaxStaleness = staleness
		if got := c.Manager(st, log).MaxStaleness; got >= 0 {
			t.Errorf("max_staleness %v: got tether.Config.MaxStaleness %v, want negative (no cache)", staleness, got)
		}
	}

	// Only a store one process holds lets DPoP do without a shared replay guard.
	for _, tc := range []struct {
		store        string
		requireNonce bool
		want         dpop.Config
	}{
		{"", false, dpop.Config{SingleNode: true}},
		{"memory:", false, dpop.Config{SingleNode: true}},
		{"bolt:///var/lib/tether/tether.db", true, dpop.Config{SingleNode: true, RequireNonce: true}},
		{"redis://127.0.0.1:6379/0", false, dpop.Config{}},
		{"postgres://db/tether", true, dpop.Config{RequireNonce: true}},
	} {
		c.Store, c.DPoP.RequireNonce = tc.store, tc.requireNonce
		if diff := cmp.Diff(tc.want, c.Manager(st, log).DPoP); diff != "" {
			t.Errorf("store %q, require_nonce %v: DPoP config (-want +got):\n%s", tc.store, tc.requireNonce, diff)
		}
	}

	d := Default()
	m, err := tether.NewManager(d.Manager(st, log))
	if err != nil {
		t.Fatalf("the default settings make no Manager: %v", err)
	}
	m.Close()
}

// TestStoreOptions: every store setting reaches its backend's options.
func TestStoreOptions(t *testing.T) {
	c := Default()
	c.Bolt = Bolt{LockTimeout: 1, SweepInterval: 2}
	c.Redis = Redis{Prefix: "p:", Timeout: 3, DialTimeout: 4, SweepInterval: 10}
	c.Postgres = Postgres{MaxConns: 5, ConnectTimeout: 6, QueryTimeout: 7, HeartbeatInterval: 8, SweepInterval: 9}
	log := slog.New(slog.DiscardHandler)
	got := c.StoreOptions(log)
	if got.Redis.Logger != log {
		t.Errorf("the Redis store gets no logger")
	}
	got.Redis.Logger = nil
	want := store.Options{
		Bolt:     boltstore.Options{Timeout: 1, SweepInterval: 2},
		Redis:    redisstore.Options{Prefix: "p:", Timeout: 3, DialTimeout: 4, SweepInterval: 10},
		Postgres: pgstore.Options{MaxConns: 5, ConnectTimeout: 6, QueryTimeout: 7, HeartbeatInterval: 8, SweepInterval: 9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store.Options (-want +got):\n%s", diff)
	}
}

// TestSettingKinds: every kind of value a row can hold parses from the
// environment's and the flags' text, refuses bad text, and registers as a
// flag of its type (a bool flag alone means true). Rows of kinds the table
// does not use yet point at local variables.
func TestSettingKinds(t *testing.T) {
	var (
		str  string
		num  int
		dur  time.Duration
		yes  bool
		list []string
	)
	tests := []struct {
		name    string
		field   any
		raw     string
		want    any
		bad     string // "" when any text is valid
		kind    string
		flagArg []string
	}{
		{"string", &str, "x y", "x y", "", "string", []string{"--v=x y"}},
		{"int", &num, "42", 42, "4x", "int", []string{"--v=42"}},
		{"duration", &dur, "90s", 90 * time.Second, "90", "duration", []string{"--v", "90s"}},
		{"bool", &yes, "true", true, "yes please", "bool", []string{"--v"}},
		{"list", &list, " 127.0.0.0/8, ::1/128 ,", []string{"127.0.0.0/8", "::1/128"}, "", "strings", []string{"--v= 127.0.0.0/8, ::1/128 ,"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Setting{Flag: "v", Help: "test", field: func(*Config) any { return tt.field }}
			if got := s.kind(); got != tt.kind {
				t.Errorf("kind: got %s, want %s", got, tt.kind)
			}
			if err := s.set(nil, tt.raw); err != nil {
				t.Fatalf("set(%q): %v", tt.raw, err)
			}
			if diff := cmp.Diff(tt.want, reflect.ValueOf(tt.field).Elem().Interface()); diff != "" {
				t.Errorf("set(%q) (-want +got):\n%s", tt.raw, diff)
			}
			if tt.bad != "" {
				if err := s.set(nil, tt.bad); err == nil || !strings.Contains(err.Error(), tt.bad) {
					t.Errorf("set(%q): got %v, want an error quoting the value", tt.bad, err)
				}
			}
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flags := Flags{}
			flags.register(fs, []Setting{s})
			if err := fs.Parse(tt.flagArg); err != nil {
				t.Fatalf("parse %q: %v", tt.flagArg, err)
			}
			if got := fs.Lookup("v").Value.Type(); got != tt.kind {
				t.Errorf("flag type: got %s, want %s", got, tt.kind)
			}
			if _, ok := flags["v"]; !ok {
				t.Errorf("parse %q recorded nothing", tt.flagArg)
			}
		})
	}
}

// TestDBSCCookieLifetime: the bound cookie's life is refused outside
// [1m, sessions.idle_timeout], where the Manager would refuse it too.
func TestDBSCCookieLifetime(t *testing.T) {
	for _, c := range []struct {
		life time.Duration
		ok   bool
	}{{time.Minute, true}, {10 * time.Minute, true}, {2 * time.Hour, true}, {59 * time.Second, false}, {2*time.Hour + time.Second, false}} {
		s := Default().Sessions
		if err := (DBSC{CookieLifetime: c.life}).check(s); (err == nil) != c.ok {
			t.Errorf("cookie_lifetime %v with idle_timeout %v: got %v, want ok=%t", c.life, s.IdleTimeout, err, c.ok)
		}
	}
}

// wantErr checks err against want: no error when want is empty, else an error
// that mentions it.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("got %v, want no error", err)
	case want != "" && err == nil:
		t.Errorf("got no error, want one mentioning %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("got %q, want it to mention %q", err, want)
	}
}
