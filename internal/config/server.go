package config

import (
	"errors"
	"time"
)

// Server bounds the listeners and says how the node stops (DESIGN §13): the
// `server:` section of the file.
type Server struct {
	MaxInflight     int           `yaml:"max_inflight"`
	MaxConns        int           `yaml:"max_conns"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	DrainDelay      time.Duration `yaml:"drain_delay"`
	Admin           Listener      `yaml:"admin"`
}

// Listener is one listener's budget.
type Listener struct {
	MaxInflight int `yaml:"max_inflight"`
	MaxConns    int `yaml:"max_conns"`
}

// The admin listener's budget is small and its own, so that a revocation
// gets through while the public listener is flooded.
var listenerSettings = []Setting{
	{Key: "server.max_inflight", Env: "TETHER_SERVER_MAX_INFLIGHT", Flag: "server-max-inflight", Default: "1024",
		Help:  "requests the public listener handles at once; past it, 503 with Retry-After at once",
		field: func(c *Config) any { return &c.Server.MaxInflight }},
	{Key: "server.max_conns", Env: "TETHER_SERVER_MAX_CONNS", Flag: "server-max-conns", Default: "4096",
		Help:  "open connections on the public listener; past it, idle ones are closed, silent ones first",
		field: func(c *Config) any { return &c.Server.MaxConns }},
	{Key: "server.shutdown_timeout", Env: "TETHER_SERVER_SHUTDOWN_TIMEOUT", Flag: "server-shutdown-timeout", Default: "10s",
		Help:  "on SIGTERM, how long requests in flight may take to finish",
		field: func(c *Config) any { return &c.Server.ShutdownTimeout }},
	{Key: "server.drain_delay", Env: "TETHER_SERVER_DRAIN_DELAY", Flag: "server-drain-delay", Default: "1s",
		Help:  "on SIGTERM, how long /readyz answers 503 before the listeners close, for load balancers to notice",
		field: func(c *Config) any { return &c.Server.DrainDelay }},
	{Key: "server.admin.max_inflight", Env: "TETHER_SERVER_ADMIN_MAX_INFLIGHT", Flag: "server-admin-max-inflight", Default: "64",
		Help:  "requests the admin listener handles at once",
		field: func(c *Config) any { return &c.Server.Admin.MaxInflight }},
	{Key: "server.admin.max_conns", Env: "TETHER_SERVER_ADMIN_MAX_CONNS", Flag: "server-admin-max-conns", Default: "256",
		Help:  "open connections on the admin listener",
		field: func(c *Config) any { return &c.Server.Admin.MaxConns }},
}

func (s Server) check() error {
	if s.MaxInflight <= 0 || s.MaxConns <= 0 || s.Admin.MaxInflight <= 0 || s.Admin.MaxConns <= 0 {
		return errors.New("config: server.max_inflight, server.max_conns and their server.admin counterparts must be positive")
	}
	if s.ShutdownTimeout <= 0 || s.DrainDelay < 0 {
		return errors.New("config: server.shutdown_timeout must be positive and server.drain_delay not negative")
	}
	return nil
}
