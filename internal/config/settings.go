package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Setting is one row of the settings table: where a value can come from,
// what it is when nothing sets it, and what it means. The table is the only
// place that names a default, an environment variable or a flag of
// `tether serve`; the loader, the flags, Default and the README's table are
// all read from it.
type Setting struct {
	Key     string // YAML key, dotted for nested sections; "" when the file cannot set it
	Env     string // environment variable; "" for none
	Flag    string // flag of `tether serve`, without dashes; "" for none
	Default string // as a user would write it; "" for none (the zero value)
	Help    string
	Client  bool // the admin commands (sessions, roles, keys) read it too

	// field points into a Config at the setting's value: *string, *int,
	// *bool, *time.Duration or *[]string (comma-separated in env and flags).
	// nil for a structured section that only the file can set (its Key then
	// names the whole section).
	field func(*Config) any
}

// Settings is the table, section by section. A new section is a file with
// its struct, a field in Config and a slice of rows listed here.
func Settings() []Setting {
	var all []Setting
	for _, section := range [][]Setting{
		serverSettings,
		tlsSettings,
		sessionSettings,
		listenerSettings,
		storeSettings,
		handshakeSettings,
		dpopSettings,
		frontSettings,
		dbscSettings,
		eventSettings,
		ssfSettings,
	} {
		all = append(all, section...)
	}
	return all
}

var serverSettings = []Setting{
	{Key: "", Env: "TETHER_CONFIG", Flag: "config",
		Help:  "YAML file of settings; relative paths in it resolve against its directory",
		field: func(c *Config) any { return &c.File }},
	{Key: "addr", Env: "TETHER_ADDR", Flag: "addr", Default: "127.0.0.1:8080",
		Help:  "public API listen address",
		field: func(c *Config) any { return &c.Addr }},
	{Key: "admin_addr", Env: "TETHER_ADMIN_ADDR", Flag: "admin-addr", Default: "127.0.0.1:8081",
		Help:  "admin API listen address",
		field: func(c *Config) any { return &c.AdminAddr }},
	{Key: "store", Env: "TETHER_STORE", Flag: "store",
		Help:  "store URL (bolt:///path, memory:, redis://…, postgres://…); none: tether.db in the data dir, embedded",
		field: func(c *Config) any { return &c.Store }},
	{Key: "data_dir", Env: "TETHER_DATA_DIR", Flag: "data-dir", Default: "./tether-data", Client: true,
		Help:  "data directory: embedded store, admin key, signing keys",
		field: func(c *Config) any { return &c.DataDir }},
	{Key: "issuer", Env: "TETHER_ISSUER", Flag: "issuer", Default: "http://127.0.0.1:8080",
		Help:  "this node's identity in handshakes: the iss it mints, the aud it accepts",
		field: func(c *Config) any { return &c.Issuer }},
	{Key: "log_level", Env: "TETHER_LOG_LEVEL", Flag: "log-level", Default: "info",
		Help:  "debug, info, warn or error",
		field: func(c *Config) any { return &c.LogLevel }},
	// Never a flag (it would be kept in shell history and the process list)
	// and never in the file (which is often shared or checked in).
	{Key: "", Env: "TETHER_ADMIN_KEY", Client: true,
		Help:  "admin API key; none: generated once into admin.key in the data dir (mode 0600)",
		field: func(c *Config) any { return &c.AdminKey }},
	// Read by the admin commands (sessions, roles, keys), not by serve.
	{Key: "", Env: "TETHER_ADMIN_URL", Default: "http://127.0.0.1:8081", Client: true,
		Help:  "admin API URL the admin commands call (their --server flag wins)",
		field: func(c *Config) any { return &c.AdminURL }},
}

var tlsSettings = []Setting{
	{Key: "tls.cert_file", Env: "TETHER_TLS_CERT_FILE", Flag: "tls-cert-file",
		Help:  "PEM certificate chain: the public listener serves HTTPS (with HSTS)",
		field: func(c *Config) any { return &c.TLS.CertFile }},
	{Key: "tls.key_file", Env: "TETHER_TLS_KEY_FILE", Flag: "tls-key-file",
		Help:  "PEM private key of tls.cert_file",
		field: func(c *Config) any { return &c.TLS.KeyFile }},
}

var handshakeSettings = []Setting{
	{Key: "handshake", Help: "whom this node mints handshake tokens for and whose it exchanges (see Handshakes between services)"},
}

// set parses raw into the setting's field of c. Errors name the value, which
// is never a secret except TETHER_ADMIN_KEY, a string that cannot fail.
func (s Setting) set(c *Config, raw string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = raw
	case *int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 90s, 2h)", raw)
		}
		*p = d
	case *[]string:
		*p = nil
		for _, v := range strings.Split(raw, ",") {
			if v = strings.TrimSpace(v); v != "" {
				*p = append(*p, v)
			}
		}
	default:
		panic(fmt.Sprintf("config: setting %s has a field of unsupported type %T", s.name(), p))
	}
	return nil
}

// kind names the value's type, as flags show it.
func (s Setting) kind() string {
	switch s.field(&Config{}).(type) {
	case *int:
		return "int"
	case *bool:
		return "bool"
	case *time.Duration:
		return "duration"
	case *[]string:
		return "strings"
	default:
		return "string"
	}
}

// name is how errors refer to the setting.
func (s Setting) name() string {
	switch {
	case s.Key != "":
		return s.Key
	case s.Env != "":
		return s.Env
	default:
		return "--" + s.Flag
	}
}

// Default returns the settings a bare `tether serve` uses: each row's
// Default and nothing else.
func Default() Config {
	var c Config
	for _, s := range Settings() {
		if s.field != nil && s.Default != "" {
			if err := s.set(&c, s.Default); err != nil {
				panic(fmt.Sprintf("config: default of %s: %v", s.name(), err)) // a typo in the table; TestTable catches it
			}
		}
	}
	return c
}

// Flags holds what the command line set, by flag name, as raw text; the
// loader applies it last.
type Flags map[string]string

// Register adds a flag to fs for every row that has one. Each checks its
// value when the command line is parsed, so a bad one is a usage error.
func (f Flags) Register(fs *pflag.FlagSet) { f.register(fs, Settings()) }

func (f Flags) register(fs *pflag.FlagSet, rows []Setting) {
	for _, s := range rows {
		if s.Flag == "" {
			continue
		}
		fl := fs.VarPF(&flagValue{flags: f, s: s}, s.Flag, "", s.Help)
		if s.kind() == "bool" {
			fl.NoOptDefVal = "true" // --flag alone means true
		}
	}
}

// flagValue records one setting's flag into Flags.
type flagValue struct {
	flags Flags
	s     Setting
}

func (v *flagValue) String() string { return v.s.Default }
func (v *flagValue) Type() string   { return v.s.kind() }

func (v *flagValue) Set(raw string) error {
	var scratch Config
	if err := v.s.set(&scratch, raw); err != nil {
		return err
	}
	v.flags[v.s.Flag] = raw
	return nil
}
