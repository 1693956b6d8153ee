package config

import (
	"log/slog"
	"time"

	"github.com/tetherhq/tether/store"
)

// Bolt, Redis and Postgres tune the store the store URL names; the sections
// of the other backends are ignored.
type Bolt struct {
	LockTimeout   time.Duration `yaml:"lock_timeout"`
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

type Redis struct {
	Prefix        string        `yaml:"prefix"`
	Timeout       time.Duration `yaml:"timeout"`
	DialTimeout   time.Duration `yaml:"dial_timeout"`
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

type Postgres struct {
	MaxConns          int           `yaml:"max_conns"`
	ConnectTimeout    time.Duration `yaml:"connect_timeout"`
	QueryTimeout      time.Duration `yaml:"query_timeout"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	SweepInterval     time.Duration `yaml:"sweep_interval"`
}

var storeSettings = []Setting{
	{Key: "bolt.lock_timeout", Env: "TETHER_BOLT_LOCK_TIMEOUT", Flag: "bolt-lock-timeout", Default: "1s",
		Help:  "wait this long for the file lock, then fail (another server holds the data dir)",
		field: func(c *Config) any { return &c.Bolt.LockTimeout }},
	{Key: "bolt.sweep_interval", Env: "TETHER_BOLT_SWEEP_INTERVAL", Flag: "bolt-sweep-interval", Default: "1m",
		Help:  "how often expired records are removed from the file",
		field: func(c *Config) any { return &c.Bolt.SweepInterval }},
	{Key: "redis.prefix", Env: "TETHER_REDIS_PREFIX", Flag: "redis-prefix", Default: "tether:",
		Help:  "namespace of every key, so deployments can share a server; the URL's ?prefix= wins",
		field: func(c *Config) any { return &c.Redis.Prefix }},
	{Key: "redis.timeout", Env: "TETHER_REDIS_TIMEOUT", Flag: "redis-timeout", Default: "2s",
		Help:  "bound on every call and on each connection's reads and writes",
		field: func(c *Config) any { return &c.Redis.Timeout }},
	{Key: "redis.dial_timeout", Env: "TETHER_REDIS_DIAL_TIMEOUT", Flag: "redis-dial-timeout", Default: "1s",
		Help:  "bound on connecting to a node",
		field: func(c *Config) any { return &c.Redis.DialTimeout }},
	{Key: "redis.sweep_interval", Env: "TETHER_REDIS_SWEEP_INTERVAL", Flag: "redis-sweep-interval", Default: "30s",
		Help:  "how often expired sessions are recorded (session.expired) and, on a Cluster, every slot's event outbox is checked",
		field: func(c *Config) any { return &c.Redis.SweepInterval }},
	{Key: "postgres.max_conns", Env: "TETHER_POSTGRES_MAX_CONNS", Flag: "postgres-max-conns", Default: "0",
		Help:  "pool size; 0: the URL's pool_max_conns, else max(4, CPUs)",
		field: func(c *Config) any { return &c.Postgres.MaxConns }},
	{Key: "postgres.connect_timeout", Env: "TETHER_POSTGRES_CONNECT_TIMEOUT", Flag: "postgres-connect-timeout", Default: "5s",
		Help:  "bound on each connection attempt; the URL's connect_timeout wins",
		field: func(c *Config) any { return &c.Postgres.ConnectTimeout }},
	{Key: "postgres.query_timeout", Env: "TETHER_POSTGRES_QUERY_TIMEOUT", Flag: "postgres-query-timeout", Default: "5s",
		Help:  "bound on each store call, also set as statement_timeout",
		field: func(c *Config) any { return &c.Postgres.QueryTimeout }},
	{Key: "postgres.heartbeat_interval", Env: "TETHER_POSTGRES_HEARTBEAT_INTERVAL", Flag: "postgres-heartbeat-interval", Default: "5s",
		Help:  "ping the change channel's connection when silent this long",
		field: func(c *Config) any { return &c.Postgres.HeartbeatInterval }},
	{Key: "postgres.sweep_interval", Env: "TETHER_POSTGRES_SWEEP_INTERVAL", Flag: "postgres-sweep-interval", Default: "1m",
		Help:  "how often expired rows are deleted; negative: never",
		field: func(c *Config) any { return &c.Postgres.SweepInterval }},
}

// StoreOptions is the one place where the file's store sections become the
// backends' options.
func (c *Config) StoreOptions(log *slog.Logger) store.Options {
	var o store.Options
	o.Bolt.Timeout, o.Bolt.SweepInterval = c.Bolt.LockTimeout, c.Bolt.SweepInterval
	o.Redis.Prefix, o.Redis.Timeout, o.Redis.DialTimeout, o.Redis.Logger = c.Redis.Prefix, c.Redis.Timeout, c.Redis.DialTimeout, log
	o.Redis.SweepInterval = c.Redis.SweepInterval
	o.Postgres.MaxConns = c.Postgres.MaxConns
	o.Postgres.ConnectTimeout, o.Postgres.QueryTimeout = c.Postgres.ConnectTimeout, c.Postgres.QueryTimeout
	o.Postgres.HeartbeatInterval, o.Postgres.SweepInterval = c.Postgres.HeartbeatInterval, c.Postgres.SweepInterval
	return o
}
