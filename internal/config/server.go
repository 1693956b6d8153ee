package config

import (
	"errors"
	"time"
)

// Server bounds the listeners (DESIGN §13). It lives in its own file, beside
// the settings it extends, as the `server:` section of the YAML file:
//
//	server:
//	  max_inflight: 1024     # public listener: requests at once; past it, 503 + Retry-After
//	  max_conns: 4096        # public listener: open connections
//	  shutdown_timeout: 10s  # how long in-flight requests may take to finish on SIGTERM
//	  drain_delay: 1s        # /readyz answers 503 this long before the listeners close
//	  admin: { max_inflight: 64, max_conns: 256 }   # the admin listener's own budget
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

// DefaultServer is what a bare `tether serve` uses. The admin budget is small
// and separate, so that a revocation gets through a flood of the public API.
func DefaultServer() Server {
	return Server{
		MaxInflight: 1024, MaxConns: 4096,
		ShutdownTimeout: 10 * time.Second, DrainDelay: time.Second,
		Admin: Listener{MaxInflight: 64, MaxConns: 256},
	}
}

func (s Server) check() error {
	if s.MaxInflight <= 0 || s.MaxConns <= 0 || s.Admin.MaxInflight <= 0 || s.Admin.MaxConns <= 0 {
		return errors.New("config: server max_inflight and max_conns (and admin's) must be positive")
	}
	if s.ShutdownTimeout <= 0 || s.DrainDelay < 0 {
		return errors.New("config: server shutdown_timeout must be positive and drain_delay not negative")
	}
	return nil
}
