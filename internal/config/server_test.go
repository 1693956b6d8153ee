package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestServerSettingsFromTheFile(t *testing.T) {
	path := writeFile(t, `
server:
  max_inflight: 200
  max_conns: 1000
  shutdown_timeout: 30s
  drain_delay: 0s
  admin: {max_inflight: 8, max_conns: 32}
`)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	want := Server{MaxInflight: 200, MaxConns: 1000, ShutdownTimeout: 30 * time.Second,
		Admin: Listener{MaxInflight: 8, MaxConns: 32}}
	if diff := cmp.Diff(want, c.Server); diff != "" {
		t.Errorf("server settings (-want +got):\n%s", diff)
	}
	if err := c.Resolve(); err != nil {
		t.Errorf("Resolve: %v", err)
	}
}

func TestServerSettingsChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(s *Server)
		want string // "" for no error
	}{
		{"defaults", func(*Server) {}, ""},
		{"no drain delay", func(s *Server) { s.DrainDelay = 0 }, ""},
		{"zero in-flight", func(s *Server) { s.MaxInflight = 0 }, "max_inflight"},
		{"negative conns", func(s *Server) { s.MaxConns = -1 }, "max_conns"},
		{"zero admin in-flight", func(s *Server) { s.Admin.MaxInflight = 0 }, "admin"},
		{"zero shutdown timeout", func(s *Server) { s.ShutdownTimeout = 0 }, "shutdown_timeout"},
		{"negative drain delay", func(s *Server) { s.DrainDelay = -time.Second }, "drain_delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.f(&c.Server)
			err := c.Resolve()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
