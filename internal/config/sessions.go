package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/store"
)

// Sessions tunes the session manager.
type Sessions struct {
	Lifetime      time.Duration `yaml:"lifetime"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	TouchInterval time.Duration `yaml:"touch_interval"`
	MaxStaleness  time.Duration `yaml:"max_staleness"` // 0 (or negative): no cache, every validation reads the store
	CacheSize     int           `yaml:"cache_size"`
	MaxPerSubject int           `yaml:"max_per_subject"` // 0: no cap; else creating one more revokes the oldest
	// OnPrivilegeGain: keep (the default) or revoke the subject's sessions
	// when a role change adds a role.
	OnPrivilegeGain string `yaml:"on_privilege_gain"`
}

var sessionSettings = []Setting{
	{Key: "sessions.lifetime", Env: "TETHER_SESSIONS_LIFETIME", Flag: "sessions-lifetime", Default: "24h",
		Help:  "a session's absolute lifetime; sliding never extends it",
		field: func(c *Config) any { return &c.Sessions.Lifetime }},
	{Key: "sessions.idle_timeout", Env: "TETHER_SESSIONS_IDLE_TIMEOUT", Flag: "sessions-idle-timeout", Default: "2h",
		Help:  "a session unused this long ends; each use slides it; at most sessions.lifetime",
		field: func(c *Config) any { return &c.Sessions.IdleTimeout }},
	{Key: "sessions.touch_interval", Env: "TETHER_SESSIONS_TOUCH_INTERVAL", Flag: "sessions-touch-interval", Default: "1m",
		Help:  "last-seen writes at most this often (and at most a tenth of the idle timeout)",
		field: func(c *Config) any { return &c.Sessions.TouchInterval }},
	{Key: "sessions.max_staleness", Env: "TETHER_MAX_STALENESS", Flag: "max-staleness", Default: "1s",
		Help:  "longest a cached session is served without reading the store; 0: no cache",
		field: func(c *Config) any { return &c.Sessions.MaxStaleness }},
	{Key: "sessions.cache_size", Env: "TETHER_SESSIONS_CACHE_SIZE", Flag: "sessions-cache-size", Default: "100000",
		Help:  "most sessions kept in the cache",
		field: func(c *Config) any { return &c.Sessions.CacheSize }},
	{Key: "sessions.max_per_subject", Env: "TETHER_SESSIONS_MAX_PER_SUBJECT", Flag: "sessions-max-per-subject", Default: "0",
		Help:  "cap on a subject's live sessions; one more revokes the oldest; 0: none",
		field: func(c *Config) any { return &c.Sessions.MaxPerSubject }},
	{Key: "sessions.on_privilege_gain", Env: "TETHER_SESSIONS_ON_PRIVILEGE_GAIN", Flag: "sessions-on-privilege-gain", Default: "keep",
		Help:  "when a role change adds a role: keep the subject's sessions, or revoke them (sign in again)",
		field: func(c *Config) any { return &c.Sessions.OnPrivilegeGain }},
}

func (s Sessions) check() error {
	switch {
	case s.Lifetime <= 0 || s.IdleTimeout <= 0:
		return fmt.Errorf("config: sessions.lifetime (%v) and sessions.idle_timeout (%v) must be positive", s.Lifetime, s.IdleTimeout)
	case s.IdleTimeout > s.Lifetime:
		// Sliding never extends the lifetime, so such an idle timeout could
		// never fire: the setting would silently mean something else.
		return fmt.Errorf("config: sessions.idle_timeout (%v) is longer than sessions.lifetime (%v); a session never idles out past its lifetime, so make idle_timeout at most lifetime", s.IdleTimeout, s.Lifetime)
	case s.OnPrivilegeGain != tether.PrivilegeGainKeep && s.OnPrivilegeGain != tether.PrivilegeGainRevoke:
		return fmt.Errorf("config: sessions.on_privilege_gain is %q; want %q or %q", s.OnPrivilegeGain, tether.PrivilegeGainKeep, tether.PrivilegeGainRevoke)
	case s.TouchInterval < 0 || s.CacheSize < 0 || s.MaxPerSubject < 0:
		return fmt.Errorf("config: sessions.touch_interval, cache_size and max_per_subject must not be negative")
	}
	return nil
}

// Manager is the session manager's configuration: the one place where the
// file's sessions section becomes a tether.Config.
func (c *Config) Manager(st tether.Store, log *slog.Logger) tether.Config {
	// In the file 0 means "no cache" (DESIGN §2); in tether.Config 0 means
	// "the default" and negative means no cache.
	staleness := c.Sessions.MaxStaleness
	if staleness <= 0 {
		staleness = -1
	}
	return tether.Config{
		Store: st, Logger: log,
		Lifetime: c.Sessions.Lifetime, IdleTimeout: c.Sessions.IdleTimeout,
		TouchInterval: c.Sessions.TouchInterval, MaxStaleness: staleness,
		CacheSize: c.Sessions.CacheSize, MaxSessionsPerSubject: c.Sessions.MaxPerSubject,
		OnPrivilegeGain: c.Sessions.OnPrivilegeGain,
		EventRetention:  c.Events.retention(),
		// An embedded store is held by one process: no other node can be
		// shown a proof, so this node's memory is the whole replay guard.
		DPoP:               dpop.Config{RequireNonce: c.DPoP.RequireNonce, SingleNode: store.Embedded(c.Store)},
		DBSCCookieLifetime: c.DBSC.CookieLifetime,
	}
}
