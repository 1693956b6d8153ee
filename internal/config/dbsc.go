package config

import (
	"fmt"
	"time"
)

// DBSC tunes browser sessions bound to a device key by W3C Device Bound
// Session Credentials.
type DBSC struct {
	CookieLifetime time.Duration `yaml:"cookie_lifetime"`
}

var dbscSettings = []Setting{
	{Key: "dbsc.cookie_lifetime", Env: "TETHER_DBSC_COOKIE_LIFETIME", Flag: "dbsc-cookie-lifetime", Default: "10m",
		Help:  "how long the cookie of a DBSC-bound browser session is accepted after the last refresh signed by its device key; a copied cookie dies with it (1m to sessions.idle_timeout)",
		field: func(c *Config) any { return &c.DBSC.CookieLifetime }},
}

func (d DBSC) check(s Sessions) error {
	if d.CookieLifetime < time.Minute || d.CookieLifetime > s.IdleTimeout {
		return fmt.Errorf("config: dbsc.cookie_lifetime (%v) must be between 1m and sessions.idle_timeout (%v)", d.CookieLifetime, s.IdleTimeout)
	}
	return nil
}
