// Package config gathers the server's settings from defaults, a YAML file,
// the environment and flags, in that order of precedence (flags win).
//
// Every setting is one row of the table in settings.go (YAML key,
// environment variable, flag, default, help), and Load is the only reader.
// Relative paths written in the file (every key ending in _file or _dir)
// resolve against the file's directory; relative paths from the environment
// or flags resolve against the working directory, as a shell user expects.
// Every file a _file key names is opened by CheckFiles before the server
// writes or listens.
//
// # Adding a section
//
// One file: the section's struct (YAML tags; paths in keys ending in _file
// or _dir), its rows in a []Setting (a row per scalar; one row with no field
// for a list or map only the file can set), and, if the server needs it in
// another shape, the conversion as a method on Config. Then one field in
// Config and one line in Settings. TestTable fails until every YAML key has a
// row, TestPrecedence covers the new rows, and TestREADME -update puts them
// in README.md.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tetherhq/tether/handshake"
)

// Config is everything `tether serve` needs. The YAML names are the file's
// keys; settings.go says where each value comes from.
type Config struct {
	Addr      string `yaml:"addr"`       // public API listener
	AdminAddr string `yaml:"admin_addr"` // admin API listener
	Store     string `yaml:"store"`      // a store URL; empty means bolt in DataDir
	DataDir   string `yaml:"data_dir"`
	Issuer    string `yaml:"issuer"` // this node's identity in handshakes
	LogLevel  string `yaml:"log_level"`

	TLS       TLS              `yaml:"tls"`
	Sessions  Sessions         `yaml:"sessions"`
	Bolt      Bolt             `yaml:"bolt"`
	Redis     Redis            `yaml:"redis"`
	Postgres  Postgres         `yaml:"postgres"`
	Server    Server           `yaml:"server"`    // listener limits and shutdown: server.go
	Handshake handshake.Config `yaml:"handshake"` // whom this node mints for and whose tokens it exchanges
	DPoP      DPoP             `yaml:"dpop"`
	// Tether in front of apps behind a proxy: see forwardauth.go.
	ForwardAuth ForwardAuth `yaml:"forward_auth"`
	Cookie      Cookie      `yaml:"cookie"`
	OIDC        OIDC        `yaml:"oidc"`
	DBSC        DBSC        `yaml:"dbsc"`
	Events      Events      `yaml:"events"`
	Webhooks    []Webhook   `yaml:"webhooks"`
	SSF         SSF         `yaml:"ssf"` // revocations across services

	// File is the path the file settings came from, if any.
	File string `yaml:"-"`
	// AdminKey comes only from the environment; empty: serve makes one.
	AdminKey string `yaml:"-"`
	// AdminURL is where the admin commands find the server.
	AdminURL string `yaml:"-"`
}

// TLS makes the public listener serve HTTPS, so cookies get the __Host- prefix.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Source is where Load finds the layers above the defaults.
type Source struct {
	Getenv func(string) string // nil: no environment
	Flags  Flags               // what the command line set
}

// Load reads the settings: the defaults, then the file (named by --config or
// TETHER_CONFIG), then the environment, then the flags; and checks them.
func Load(src Source) (Config, error) {
	c, err := load(src)
	if err != nil {
		return Config{}, err
	}
	return c, c.Resolve()
}

// load is Load without the checks: the layers alone.
func load(src Source) (Config, error) {
	// The file's own path comes from the environment or a flag, never from
	// the file, so those two layers are read once to find it.
	first := Default()
	if err := first.apply(src); err != nil {
		return Config{}, err
	}
	c := Default()
	if first.File != "" {
		if err := c.LoadFile(first.File); err != nil {
			return Config{}, err
		}
	}
	if err := c.apply(src); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ClientEnv is what the admin commands take from the environment over the
// defaults: the rows marked Client (admin URL, admin key, data dir). They
// read no file, and the server's other variables are not theirs to refuse.
func ClientEnv(getenv func(string) string) (Config, error) {
	var rows []Setting
	for _, s := range Settings() {
		if s.Client {
			rows = append(rows, s)
		}
	}
	c := Default()
	if err := c.applyEnv(getenv, rows); err != nil {
		return Config{}, err
	}
	return c, nil
}

// apply layers the environment, then the flags, over c.
func (c *Config) apply(src Source) error {
	if src.Getenv != nil {
		if err := c.applyEnv(src.Getenv, Settings()); err != nil {
			return err
		}
	}
	for _, s := range Settings() {
		if v, ok := src.Flags[s.Flag]; ok && s.Flag != "" {
			if err := s.set(c, v); err != nil {
				return fmt.Errorf("config: --%s: %w", s.Flag, err)
			}
		}
	}
	return nil
}

// applyEnv sets the rows whose variable is set. An empty variable is unset,
// not "set to empty".
func (c *Config) applyEnv(getenv func(string) string, rows []Setting) error {
	for _, s := range rows {
		if s.field == nil || s.Env == "" {
			continue
		}
		if v := strings.TrimSpace(getenv(s.Env)); v != "" {
			if err := s.set(c, v); err != nil {
				return fmt.Errorf("config: %s: %w", s.Env, err)
			}
		}
	}
	return nil
}

// MaxFileBytes bounds the configuration file.
const MaxFileBytes = 1 << 20

// LoadFile merges the YAML file at path into c. Unknown keys are errors, so a
// misspelt setting is never silently ignored. Relative paths in it resolve
// against its directory.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return fmt.Errorf("config: %s is larger than %d bytes", path, MaxFileBytes)
	}
	// Absolute, so that the paths resolved against it stay right whatever
	// the working directory becomes.
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if err := c.parse(data, dir); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	c.File = path
	return nil
}

// parse merges the YAML in data into c, resolving the file's relative paths
// against dir.
func (c *Config) parse(data []byte, dir string) error {
	// The strict decode reports unknown keys and type errors with the file's
	// line numbers; the merge below then decodes the checked document with
	// its paths rewritten.
	var check Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&check); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty, or only comments
		}
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	resolveNode(&doc, dir, false)
	return doc.Decode(c)
}

// isPathKey says whether a YAML key holds a path: by the naming rule every
// section follows (key_file, cert_file, client_secret_file, data_dir, …).
func isPathKey(key string) bool {
	return strings.HasSuffix(key, "_file") || strings.HasSuffix(key, "_dir")
}

// resolveNode rewrites relative paths under n to absolute ones against dir.
// isPath says whether n is the value of a path key.
func resolveNode(n *yaml.Node, dir string, isPath bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, child := range n.Content {
			resolveNode(child, dir, false)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			resolveNode(n.Content[i+1], dir, isPathKey(n.Content[i].Value))
		}
	case yaml.ScalarNode:
		if isPath && n.Tag == "!!str" && n.Value != "" && !filepath.IsAbs(n.Value) {
			n.Value = filepath.Join(dir, n.Value)
		}
	}
	// Aliases point at nodes resolved where they are anchored.
}

// Resolve checks the settings and makes the data dir absolute.
func (c *Config) Resolve() error {
	if c.Addr == "" || c.AdminAddr == "" {
		return errors.New("config: addr and admin_addr must be set")
	}
	// Port 0 asks the kernel for a free port, so two ":0" addresses are two
	// listeners (tests and the contract checks start nodes that way).
	if _, port, _ := net.SplitHostPort(c.Addr); c.Addr == c.AdminAddr && port != "0" {
		return errors.New("config: addr and admin_addr must differ: the admin API belongs on its own listener")
	}
	if c.DataDir == "" {
		return errors.New("config: data_dir must be set")
	}
	// Absolute, so that the store URL built from it (bolt:///dir/tether.db)
	// names a path, never a host, and the ready line says where the data is.
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("config: data_dir: %w", err)
	}
	c.DataDir = dir
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("config: tls needs both cert_file and key_file")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if err := c.Server.check(); err != nil {
		return err
	}
	if err := c.Sessions.check(); err != nil {
		return err
	}
	if err := c.DBSC.check(c.Sessions); err != nil {
		return err
	}
	if err := c.checkFront(); err != nil {
		return err
	}
	return c.checkWebhooks()
}
