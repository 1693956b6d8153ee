// Package config gathers the server's settings from defaults, a YAML file,
// the environment and flags, in that order of precedence (flags win).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tetherhq/tether/handshake"
)

// Config is everything `tether serve` needs. The YAML names are the file's keys.
type Config struct {
	Addr      string `yaml:"addr"`       // public API listener
	AdminAddr string `yaml:"admin_addr"` // admin API listener
	Store     string `yaml:"store"`      // a store URL; empty means bolt in DataDir
	DataDir   string `yaml:"data_dir"`
	Issuer    string `yaml:"issuer"` // this node's identity in handshakes
	LogLevel  string `yaml:"log_level"`

	TLS       TLS              `yaml:"tls"`
	Sessions  Sessions         `yaml:"sessions"`
	Handshake handshake.Config `yaml:"handshake"` // whom this node mints for and whose tokens it exchanges
	Front     Front            `yaml:",inline"`   // forward_auth, cookie and oidc: see forwardauth.go

	// File is the path the file settings came from, if any; relative paths in
	// it resolve against its directory.
	File string `yaml:"-"`
}

// TLS makes the public listener serve HTTPS, so cookies get the __Host- prefix.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Sessions tunes the session manager; zero values take tether.Config defaults.
type Sessions struct {
	Lifetime      time.Duration `yaml:"lifetime"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	TouchInterval time.Duration `yaml:"touch_interval"`
	MaxStaleness  time.Duration `yaml:"max_staleness"` // default 1s; 0 (or negative): no cache, every validation reads the store
	CacheSize     int           `yaml:"cache_size"`
	MaxPerSubject int           `yaml:"max_per_subject"` // 0: no cap; else creating one more revokes the oldest
}

// Default returns the settings a bare `tether serve` uses.
func Default() Config {
	return Config{
		Addr:      "127.0.0.1:8080",
		AdminAddr: "127.0.0.1:8081",
		DataDir:   "./tether-data",
		Issuer:    "http://127.0.0.1:8080",
		LogLevel:  "info",
		Sessions:  Sessions{MaxStaleness: time.Second},
	}
}

// MaxFileBytes bounds the configuration file.
const MaxFileBytes = 1 << 20

// LoadFile merges the YAML file at path into c. Unknown keys are errors, so a
// misspelt setting is never silently ignored.
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
	if err := c.parse(data); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	c.File = path
	return nil
}

func (c *Config) parse(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Env names each setting's environment variable.
var Env = map[string]func(c *Config) *string{
	"TETHER_ADDR":       func(c *Config) *string { return &c.Addr },
	"TETHER_ADMIN_ADDR": func(c *Config) *string { return &c.AdminAddr },
	"TETHER_STORE":      func(c *Config) *string { return &c.Store },
	"TETHER_DATA_DIR":   func(c *Config) *string { return &c.DataDir },
	"TETHER_ISSUER":     func(c *Config) *string { return &c.Issuer },
	"TETHER_LOG_LEVEL":  func(c *Config) *string { return &c.LogLevel },
}

// ApplyEnv merges the settings found in the environment.
func (c *Config) ApplyEnv(getenv func(string) string) {
	for name, field := range Env {
		if v := getenv(name); v != "" {
			*field(c) = v
		}
	}
}

// Resolve makes relative paths absolute against the file's directory (or the
// working directory) and checks the settings.
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
	if c.Sessions.Lifetime < 0 || c.Sessions.IdleTimeout < 0 || c.Sessions.TouchInterval < 0 || c.Sessions.CacheSize < 0 || c.Sessions.MaxPerSubject < 0 {
		return errors.New("config: session durations and cache_size must not be negative")
	}
	for _, p := range []*string{&c.TLS.CertFile, &c.TLS.KeyFile} {
		*p = c.Path(*p)
	}
	return c.checkFront()
}

// BaseDir is the directory relative paths in the file resolve against.
func (c *Config) BaseDir() string {
	if c.File == "" {
		return "."
	}
	return filepath.Dir(c.File)
}

// Path resolves a path from the file against the file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}
