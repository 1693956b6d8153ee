// Package redisstore is a tether.Store on Redis (standalone, Sentinel or
// Cluster, Redis 7.0 or later) through rueidis: the distributed engine that
// many nodes share.
//
// # URLs
//
//	redis://[[user]:password@]host[:port][/db][?prefix=P][&min_replicas=N[&replica_timeout=D]]
//	rediss://…                                      (TLS)
//	redis+cluster://[[user]:password@]h1:p1,h2:p2[?prefix=P…]
//	redis+sentinel://[[user]:password@]h1:p1,h2:p2[/db]?master=NAME[&prefix=P…]
//
// rediss+cluster and rediss+sentinel are the TLS forms. The credentials are
// the data nodes'; sentinels are reached without AUTH. prefix (default
// Options.Prefix, else "tether:") namespaces every key, so that several
// deployments or test runs can share one server; it must not contain '{' or
// '}'. min_replicas and replica_timeout make the writes a failover must not
// lose wait for replicas (below); D is a Go duration such as 500ms (default
// 1s), shorter than Options.Timeout. Errors never contain the URL, since it
// may hold a password.
//
// # Key layout
//
// With p the prefix, S a subject, ID a session ID and K a replay-guard key:
//
//	p{s:ID}         session record, a compact binary string (codec.go) whose
//	                TTL is PEXPIREAT min(ExpiresAt, IdleExpiresAt)
//	p{u:S}:st       subject state, a hash: g = generation, k = the session kept
//	                by the last revoke-all; its TTL outlives every record of S
//	                (by a minute: no order of expiries can drop the generation
//	                before a record it revoked)
//	p{u:S}:ids      subject index, a sorted set of IDs scored by CreatedAt (µs),
//	                for List and DeleteSubject's count; same TTL as the state
//	p{u:S}:roles    the subject's roles (JSON); no TTL: roles belong to S
//	p{c:K}          replay guard: SET NX PXAT until
//	p{e}:events     the event log, a stream (events.go)
//	p{T}:outbox     on a Cluster only: the events of the changes on the
//	                slot that tag T hashes to, until moved into the log
//	                (outbox.go)
//	p{e}:moved      on a Cluster only: per slot, the last outbox entry
//	                moved into the log
//	p{x}:expiring   expiry index (expiry.go): a sorted set of the records
//	                (ID, ExpiresAt, subject) scored by their end, Unix µs;
//	                on a Cluster one per slot, p{T}:expiring, on the slot of
//	                its records
//	p{st:K}         the service's own state under K (GetState)
//	p + "changes"   the pub/sub channel announcing changes
//
// The hash tags put a subject's keys on one Cluster slot and each session on
// its own, so no command spans slots and sessions spread over the cluster.
//
// # Revoking all of a subject's sessions atomically
//
// A subject's records live on many slots, so they cannot be deleted in one
// atomic step. Instead every record is stamped, when created, with the
// subject's generation, and a record counts as live only while its stamp is at
// least the current generation (or it is the session kept by the last
// revoke-all). DeleteSubject bumps the generation in one script on the
// subject's slot: that is the moment all of them die, for every later Get on
// any node. Deleting the dead records afterwards only frees memory. Create
// reads the generation before it writes the record, so a session created
// concurrently with a revoke-all is either after it, or dead.
//
// Get therefore costs two round trips: the record, then its subject's state.
// A session with typical metadata takes about 310 bytes of Redis memory for
// its record and about 550 with its share of the subject's keys and its
// expiry index entry (measured by TestMemoryPerSession and BenchmarkCreate).
//
// # Cache invalidation (tether.Watcher)
//
// Changes are announced with PUBLISH on p + "changes" ("s:ID" for Rotate and
// Delete, "u:S" for DeleteSubject and SetRoles), issued inside the same Lua
// script as the write, so a write that happened is always announced: there is
// no window between the write and its announcement for a crash to fall in.
// In a Cluster a plain PUBLISH reaches subscribers on every node. Pub/sub was
// chosen over Redis client-side caching (RESP3 tracking) because the Manager
// already owns a cache with a staleness bound; tracking would be a second
// cache whose invalidations arrive after the command's reply (rueidis #534)
// and which tracks keys, while what callers drop is sessions and subjects.
//
// Watch runs store/changefeed's loop on a connection of its own: it reports
// ChannelRestored once the subscription is confirmed, and ChannelLost as soon
// as that connection breaks (changes may then be missed); it resubscribes with
// capped, jittered exponential backoff. A dead peer that sends no FIN is noticed by rueidis' periodic PING
// within about Options.Timeout plus one second.
//
// Staleness bound: a node's cache learns of a change one pub/sub hop after the
// write's script ran (about 0.1–0.5 ms on a LAN; BenchmarkRevocationPropagation
// measures it), and never later than the Manager's MaxStaleness in any case,
// because no cache entry outlives that. The node that makes a change reads the
// store, never its cache, since the invalidation reaches it only after the
// write's reply.
//
// # What Redis guarantees, and what to configure
//
//   - Replication is asynchronous: after a failover (Sentinel or Cluster) an
//     acknowledged write may be lost, so a revocation or a replay-guard key may
//     be undone, unless the URL sets min_replicas=N. Then Create, Rotate,
//     Delete, DeleteSubject, SetRoles and Consume send WAIT N on the same
//     connection right behind the write (in a Cluster, on the connection to
//     the key's shard) and return nil only once N replicas acknowledged it;
//     otherwise an error wrapping tether.ErrUnavailable (503), although the
//     primary may have applied the write. A failover that promotes one of
//     those replicas keeps the write. With N equal to the number of replicas
//     that holds whichever is promoted; with fewer it rests on the failover
//     choosing the replica with the most data, as Sentinel and Cluster do
//     after replica-priority. Touch does not wait: a lost idle slide only
//     shortens a session. TestSentinelFailover checks this against a real
//     Sentinel group.
//     Reads go to primaries only, never replicas.
//   - Configure maxmemory-policy noeviction. Under any eviction policy Redis
//     may silently delete replay-guard keys (a replay) or a subject's state
//     (revoked sessions come back). With noeviction a full Redis refuses
//     writes, and this store fails closed.
//   - Use AOF with appendfsync everysec (up to about a second of writes lost
//     on a crash) or always; not RDB alone.
//   - Expiry follows Redis' clock. Records also carry their expiry times,
//     which this store checks against its own clock (Options.Now) on every
//     read and in every script, so a Redis clock running late cannot extend a
//     session. Keep clocks in sync.
//
// # Limitations
//
//   - DeleteSubject's count can miss a session that a concurrent Delete
//     removed in the same instant; which sessions die is exact.
//   - min_replicas makes a write reach replicas' memory, not their disks:
//     WAITAOF is not used, so a crash of every node at once loses what Redis'
//     persistence setting (above) would lose.
//   - With min_replicas, a write that timed out waiting for replicas may still
//     have been applied: a consumed key then refuses a retry (fail closed).
//   - Sentinels are reached without AUTH.
//   - On a Cluster, the events of a write whose outcome was unknown, or on
//     a node that cannot be reached, or of a node that stopped before moving
//     them, reach the log late and may follow later changes' events of other
//     slots (events.go); the other slots' events move meanwhile. Every node
//     sweeps all 16,384 outboxes every Options.SweepInterval.
//   - On a Cluster without min_replicas, a failover that loses an outbox's
//     newest entries after they were moved, to a primary whose clock is
//     behind, could give new entries IDs at or below the recorded progress:
//     those events would not be moved.
//   - A session revoked by DeleteSubject whose clean-up failed, or created
//     concurrently with it and so born revoked, keeps its expiry index entry
//     and is reported expired when its time comes (expiry.go).
//   - The scripts use Redis' Lua struct library (Redis 7.x, Valkey).
//
// # Failure
//
// Every Redis or network error, including a timeout, wraps
// tether.ErrUnavailable; tether.ErrNotFound comes only from a real miss.
// Nothing is retried inside the store (rueidis retries are off): a write
// whose outcome is unknown is reported as failed, and the caller decides.
package redisstore

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/changefeed"
)

var (
	_ tether.Store   = (*Store)(nil)
	_ tether.Watcher = (*Store)(nil)
)

// Options configures a Store. Zero fields take the documented defaults.
type Options struct {
	// Timeout bounds every call whose context has no earlier deadline, and
	// every connection's reads and writes (rueidis ConnWriteTimeout, which
	// also paces the PINGs that find dead connections). Default 2s.
	Timeout time.Duration
	// DialTimeout bounds connecting to a node. Default 1s.
	DialTimeout time.Duration
	// TLSConfig is used by the rediss schemes. Default: the system roots,
	// TLS 1.2 or later, the server name taken from the URL.
	TLSConfig *tls.Config
	// Now is the clock that decides whether a record is live. Default time.Now.
	Now func() time.Time
	// Logger receives operational events (a lost change channel); never
	// secrets. Default slog.Default().
	Logger *slog.Logger
	// Prefix namespaces keys when the URL has no prefix parameter (the URL's
	// wins). Default DefaultPrefix.
	Prefix string
	// SweepInterval is how often the store records the expiry of sessions
	// that expired (expiry.go) and, on a Redis Cluster, looks into every
	// slot's event outbox for events that another node wrote but did not
	// move into the log (outbox.go). Default DefaultSweepInterval.
	SweepInterval time.Duration
}

// subjectMargin is how much longer a subject's state and index live than the
// longest-lived record they govern.
const subjectMargin = time.Minute

// DefaultSweepInterval is the sweep's interval when Options.SweepInterval
// is zero.
const DefaultSweepInterval = 30 * time.Second

// DefaultPrefix namespaces keys when neither the URL nor Options.Prefix sets one.
const DefaultPrefix = "tether:"

// DefaultReplicaTimeout is how long a write waits for min_replicas when the
// URL sets no replica_timeout.
const DefaultReplicaTimeout = time.Second

// maxReplicas bounds min_replicas: a typo must not make every write wait.
const maxReplicas = 16

// Store is a tether.Store and tether.Watcher on Redis. It is safe for
// concurrent use; Close it to release its connections.
type Store struct {
	c          rueidis.Client
	opt        rueidis.ClientOption // for Watch's own connections
	prefix     string
	channel    string
	stream     string  // the event log (events.go)
	outbox     *outbox // on a Cluster only: moves events into the log
	sweepEvery time.Duration
	timeout    time.Duration
	now        func() time.Time
	log        *slog.Logger

	// From the URL's min_replicas and replica_timeout: writes that must
	// survive a failover wait for this many replicas (see Store.write).
	minReplicas    int64
	replicaTimeout time.Duration

	closeOnce sync.Once
	done      chan struct{} // closed by Close; ends every Watch
	// stop ends the store's goroutines (Store.run, outbox.run), and
	// stopped closes once they ended; both nil if they never started.
	stop    context.CancelFunc
	stopped chan struct{}
}

// Open connects to the Redis named by rawURL (see the package doc). It fails
// with an error wrapping tether.ErrUnavailable if Redis cannot be reached.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	s, err := open(ctx, rawURL, opts)
	if err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// open is Open without starting the store's goroutines (Store.run,
// outbox.run): on a Cluster, a store whose events of unknown outcome stay
// in their outboxes until another store moves them, as if its node had
// stopped (tests).
func open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	cfg, err := parseURL(rawURL, opts.Prefix)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if cfg.minReplicas > 0 && cfg.replicaTimeout >= opts.Timeout {
		return nil, errURL("replica_timeout (%v) must be shorter than the store's timeout (%v)", cfg.replicaTimeout, opts.Timeout)
	}
	opt := rueidis.ClientOption{
		InitAddress:       cfg.addrs,
		Username:          cfg.username,
		Password:          cfg.password,
		SelectDB:          cfg.db,
		ForceSingleClient: cfg.mode == modeSingle,
		Dialer:            net.Dialer{Timeout: opts.DialTimeout, KeepAlive: time.Second},
		ConnWriteTimeout:  opts.Timeout,
		ClientName:        "tether",
		// No client-side caching: the Manager's cache is the only one, bounded
		// and invalidated through Watch.
		DisableCache: true,
		// Fail fast and never resend a write whose outcome is unknown.
		DisableRetry: true,
	}
	if cfg.mode == modeSentinel {
		opt.Sentinel = rueidis.SentinelOption{MasterSet: cfg.master, Dialer: opt.Dialer}
	}
	if cfg.tls {
		if opts.TLSConfig != nil {
			opt.TLSConfig = opts.TLSConfig.Clone()
		} else {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			if cfg.mode == modeSingle {
				opt.TLSConfig.ServerName, _, _ = net.SplitHostPort(cfg.addrs[0])
			}
		}
		if cfg.mode == modeSentinel {
			opt.Sentinel.TLSConfig = opt.TLSConfig
		}
	}
	c, err := dial(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("redisstore: connect: %w: %w", tether.ErrUnavailable, err)
	}
	s := &Store{
		c: c, opt: opt, prefix: cfg.prefix, channel: cfg.prefix + "changes", stream: cfg.prefix + "{e}:events",
		timeout: opts.Timeout, now: opts.Now, log: opts.Logger, sweepEvery: opts.SweepInterval,
		minReplicas: int64(cfg.minReplicas), replicaTimeout: cfg.replicaTimeout,
		done: make(chan struct{}),
	}
	if cfg.mode == modeCluster {
		s.outbox = newOutbox(s)
	}
	return s, nil
}

type mode int

const (
	modeSingle mode = iota
	modeCluster
	modeSentinel
)

type urlConfig struct {
	mode               mode
	tls                bool
	addrs              []string
	username, password string
	db                 int
	master             string
	prefix             string
	minReplicas        int
	replicaTimeout     time.Duration
}

// errURL never carries the URL: it may hold a password.
func errURL(format string, a ...any) error {
	return fmt.Errorf("redisstore: bad URL: "+format, a...)
}

// parseURL reads raw; prefix is the prefix unless the URL has its own.
func parseURL(raw, prefix string) (urlConfig, error) {
	if strings.ContainsAny(prefix, "{}") {
		return urlConfig{}, errors.New("redisstore: the prefix must be free of '{' and '}'")
	}
	cfg := urlConfig{prefix: prefix, replicaTimeout: DefaultReplicaTimeout}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return cfg, errURL("no scheme")
	}
	defaultPort := "6379"
	switch scheme {
	case "redis":
	case "rediss":
		cfg.tls = true
	case "redis+cluster":
		cfg.mode = modeCluster
	case "rediss+cluster":
		cfg.mode, cfg.tls = modeCluster, true
	case "redis+sentinel":
		cfg.mode, defaultPort = modeSentinel, "26379"
	case "rediss+sentinel":
		cfg.mode, cfg.tls, defaultPort = modeSentinel, true, "26379"
	default:
		return cfg, errURL("scheme must be redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel")
	}
	// net/url cannot parse a host list (h1:p1,h2 looks like a bad port), so
	// the hosts are cut out by hand and the rest is parsed around a stand-in.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse("redis://" + userinfo + "host" + tail)
	if err != nil {
		return cfg, errURL("malformed") // url.Error would quote the URL
	}
	if hosts == "" {
		return cfg, errURL("no host")
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil { // no port
			host, port = h, defaultPort
			if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
				host = h[1 : len(h)-1]
			} else if strings.Contains(h, ":") {
				return cfg, errURL("bad host")
			}
		}
		if host == "" || strings.ContainsAny(host, "/@ []") {
			return cfg, errURL("bad host")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return cfg, errURL("bad port")
		}
		cfg.addrs = append(cfg.addrs, net.JoinHostPort(host, port))
	}
	if cfg.mode == modeSingle && len(cfg.addrs) != 1 {
		return cfg, errURL("%s takes one host; use redis+cluster or redis+sentinel for several", scheme)
	}
	if u.User != nil {
		cfg.username = u.User.Username()
		cfg.password, _ = u.User.Password()
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return cfg, errURL("the path must be a database number")
		}
		if cfg.mode == modeCluster && db != 0 {
			return cfg, errURL("a cluster has only database 0")
		}
		cfg.db = db
	}
	for k, v := range u.Query() {
		switch k {
		case "prefix":
			cfg.prefix = v[0]
			if cfg.prefix == "" || strings.ContainsAny(cfg.prefix, "{}") {
				return cfg, errURL("prefix must be non-empty and free of '{' and '}'")
			}
		case "master":
			if cfg.mode != modeSentinel {
				return cfg, errURL("master is for redis+sentinel only")
			}
			cfg.master = v[0]
		case "min_replicas":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 || n > maxReplicas {
				return cfg, errURL("min_replicas must be a whole number from 0 to %d", maxReplicas)
			}
			cfg.minReplicas = n
		case "replica_timeout":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < time.Millisecond {
				return cfg, errURL("replica_timeout must be a duration of at least 1ms, such as 500ms")
			}
			cfg.replicaTimeout = d
		default:
			return cfg, errURL("unknown parameter %q", k)
		}
	}
	if cfg.mode == modeSentinel && cfg.master == "" {
		return cfg, errURL("redis+sentinel needs ?master=NAME")
	}
	return cfg, nil
}

// Keys. See the package doc for the layout and why the hash tags are where
// they are.
func (s *Store) recKey(id string) string    { return s.prefix + "{s:" + id + "}" }
func (s *Store) stateKey(sub string) string { return s.prefix + "{u:" + sub + "}:st" }
func (s *Store) indexKey(sub string) string { return s.prefix + "{u:" + sub + "}:ids" }
func (s *Store) rolesKey(sub string) string { return s.prefix + "{u:" + sub + "}:roles" }
func (s *Store) consumeKey(k string) string { return s.prefix + "{c:" + k + "}" }
func sessionMsg(id string) string {
	return changefeed.Payload(tether.Change{Kind: tether.SessionChanged, SessionID: id})
}
func subjectMsg(sub string) string {
	return changefeed.Payload(tether.Change{Kind: tether.SubjectChanged, Subject: sub})
}
func micros(t time.Time) string    { return itoa(t.UnixMicro()) }
func (s *Store) nowMicros() string { return micros(s.now()) }
func unavailable(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w: %w", op, tether.ErrUnavailable, err)
}

// ceilMillis is t in Unix milliseconds, rounded up so that a key never expires
// before the record's own expiry; the record's times, checked on every read,
// are what count.
func ceilMillis(t time.Time) int64 {
	us := t.UnixMicro()
	ms := us / 1000
	if us%1000 > 0 {
		ms++
	}
	return ms
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// bound gives a call the store's timeout unless ctx ends sooner. After
// Close the context is already over, so that every call fails whatever the
// closed client would do (a Cluster client may still answer a keyless PING).
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	select {
	case <-s.done:
		cancel()
	default:
	}
	return ctx, cancel
}

// write sends cmd, a write to key's slot. When the URL sets min_replicas it
// sends WAIT right behind it on the same connection (in a Cluster, the
// connection to key's shard), and the write counts as done only once that
// many replicas acknowledged it: a failover to one of them keeps it. The
// returned error is that shortfall, an error wrapping tether.ErrUnavailable,
// set only when the write itself succeeded; it may then have been applied
// on the primary, and the caller must report failure all the same.
func (s *Store) write(ctx context.Context, op, key string, cmd rueidis.Completed) (rueidis.RedisResult, error) {
	if s.minReplicas == 0 {
		return s.c.Do(ctx, cmd), nil
	}
	wait := s.c.B().Wait().Numreplicas(s.minReplicas).Timeout(s.replicaTimeout.Milliseconds()).Build().SetSlot(key)
	res := s.c.DoMulti(ctx, cmd, wait)
	if res[0].Error() != nil { // nothing written (a nil reply included)
		return res[0], nil
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return res[0], unavailable(op+": wait for replicas", err)
	}
	if n < s.minReplicas {
		return res[0], unavailable(op, fmt.Errorf("%d of %d replicas acknowledged within %v", n, s.minReplicas, s.replicaTimeout))
	}
	return res[0], nil
}

// eval runs sc, as write runs a command, on the slot of its first key.
func (s *Store) eval(ctx context.Context, op string, sc *script, keys, args []string) (rueidis.RedisResult, error) {
	if s.minReplicas == 0 {
		return sc.Exec(ctx, s.c, keys, args), nil
	}
	n := int64(len(keys))
	res, werr := s.write(ctx, op, keys[0], s.c.B().Evalsha().Sha1(sc.sha).Numkeys(n).Key(keys...).Arg(args...).Build())
	if e, ok := rueidis.IsRedisErr(res.Error()); ok && e.IsNoScript() {
		// A new primary after a failover has an empty script cache.
		res, werr = s.write(ctx, op, keys[0], s.c.B().Eval().Script(sc.src).Numkeys(n).Key(keys...).Arg(args...).Build())
	}
	return res, werr
}

// evalEach runs sc once per call, pipelined, each on the slot of its first
// key: EVALSHA, then EVAL where a node's script cache lacks sc.
func (s *Store) evalEach(ctx context.Context, sc *script, calls []rueidis.LuaExec) []rueidis.RedisResult {
	build := func(c rueidis.LuaExec, sha bool) rueidis.Completed {
		if sha {
			return s.c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(c.Keys))).Key(c.Keys...).Arg(c.Args...).Build()
		}
		return s.c.B().Eval().Script(sc.src).Numkeys(int64(len(c.Keys))).Key(c.Keys...).Arg(c.Args...).Build()
	}
	cmds := make(rueidis.Commands, len(calls))
	for i, c := range calls {
		cmds[i] = build(c, true)
	}
	results := s.c.DoMulti(ctx, cmds...)
	var again []int
	for i, res := range results {
		if e, ok := rueidis.IsRedisErr(res.Error()); ok && e.IsNoScript() {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		cmds = cmds[:0]
		for _, i := range again {
			cmds = append(cmds, build(calls[i], false))
		}
		for j, res := range s.c.DoMulti(ctx, cmds...) {
			results[again[j]] = res
		}
	}
	return results
}

// current reports whether a record stamped with gen is still current for its
// subject: not revoked by a DeleteSubject since it was created.
func (s *Store) current(ctx context.Context, sub, id string, gen int64) (bool, error) {
	vals, err := s.c.Do(ctx, s.c.B().Hmget().Key(s.stateKey(sub)).Field("g", "k").Build()).ToArray()
	if err != nil {
		return false, err
	}
	g, keep, err := parseState(vals)
	if err != nil {
		return false, err
	}
	return gen >= g || id == keep, nil
}

// parseState reads the generation and kept id from HMGET g k (or the same two
// values returned by a script); a missing state is generation 0.
func parseState(vals []rueidis.RedisMessage) (gen int64, keep string, err error) {
	if len(vals) < 2 {
		return 0, "", errors.New("malformed subject state")
	}
	if !vals[0].IsNil() {
		if gen, err = vals[0].AsInt64(); err != nil {
			return 0, "", err
		}
	}
	if !vals[1].IsNil() {
		if keep, err = vals[1].ToString(); err != nil {
			return 0, "", err
		}
	}
	return gen, keep, nil
}

// decodeLive decodes a record fetched by a script or GET and reports whether it
// is live: by the store's clock and by its subject's generation.
func (s *Store) decodeLive(ctx context.Context, id string, b []byte) (*tether.Record, bool, error) {
	r, gen, err := decode(id, b)
	if err != nil {
		return nil, false, err
	}
	if !r.Live(s.now()) {
		return r, false, nil
	}
	ok, err := s.current(ctx, r.Subject, id, gen)
	return r, ok, err
}

// Create stores r: it takes the subject's generation (creating the subject's
// state), writes the record if its ID is free, then indexes it. In this order,
// every record carries a generation read before it existed, and every indexed
// ID whose record is missing is gone for good (List may prune it).
func (s *Store) Create(ctx context.Context, r *tether.Record, evs ...tether.Event) error {
	if len(r.ID) > maxIDLen {
		return tether.BadInput("a session ID is at most %d bytes", maxIDLen)
	}
	if !r.Live(s.now()) {
		return nil // born dead: nothing to keep, like memstore
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	// The subject's state and index outlive the record by a margin, so that
	// no ordering of expiries can show a revoked record without the
	// generation that revoked it.
	exp := itoa(ceilMillis(r.ExpiresAt.Add(subjectMargin)))
	g, err := stampScript.Exec(ctx, s.c, []string{s.stateKey(r.Subject)}, []string{exp}).AsInt64()
	if err != nil {
		return unavailable("create", err)
	}
	ttl := ceilMillis(minTime(r.ExpiresAt, r.IdleExpiresAt))
	val := encode(r, g)
	_, werr, err := s.evalEvents(ctx, "create", createScript, []string{s.recKey(r.ID), s.expiryKey(keySlot(s.recKey(r.ID)))}, evs,
		rueidis.BinaryString(val), itoa(ttl), r.Subject, r.ID, micros(minTime(r.ExpiresAt, r.IdleExpiresAt)))
	if rueidis.IsRedisNil(err) {
		return tether.ErrExists
	}
	if err != nil {
		return unavailable("create", err)
	}
	if werr != nil {
		return werr
	}
	res, werr := s.eval(ctx, "create: index", indexScript, []string{s.indexKey(r.Subject)}, []string{micros(r.CreatedAt), r.ID, exp})
	if err := res.Error(); err != nil {
		// The record exists and is live; it is only missing from List. Report
		// the failure: the caller cannot know the session is usable.
		return unavailable("create: index", err)
	}
	return werr
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Get returns the live record with this id.
func (s *Store) Get(ctx context.Context, id string) (*tether.Record, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b, err := s.c.Do(ctx, s.c.B().Get().Key(s.recKey(id)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, tether.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("get", err)
	}
	r, live, err := s.decodeLive(ctx, id, b)
	if err != nil {
		return nil, unavailable("get", err)
	}
	if !live {
		return nil, tether.ErrNotFound
	}
	return r, nil
}

// Touch slides a live record's idle expiry; see touchScript.
func (s *Store) Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b, err := touchScript.Exec(ctx, s.c, []string{s.recKey(id), s.expiryKey(keySlot(s.recKey(id)))},
		[]string{touchPatch(lastSeen, idleExpires), itoa(ceilMillis(idleExpires)), s.nowMicros(), micros(idleExpires), id}).AsBytes()
	return s.afterWrite("touch", ctx, id, b, err)
}

// Rotate swaps the secret hash of a live record if it still equals old.
func (s *Store) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rec, werr, err := s.evalEvents(ctx, "rotate", rotateScript, []string{s.recKey(id)}, evs,
		string(old[:]), string(new[:]), s.nowMicros(), s.channel, sessionMsg(id))
	var b []byte
	if err == nil {
		b, err = rec.AsBytes()
	}
	if err := s.afterWrite("rotate", ctx, id, b, err); err != nil {
		return err
	}
	return werr
}

// afterWrite turns the result of a script that returns the record as it was
// into ErrNotFound unless that record was live. A record revoked by its
// subject's generation may have been written to; that is harmless, as it is
// dead whatever it holds.
func (s *Store) afterWrite(op string, ctx context.Context, id string, b []byte, err error) error {
	if rueidis.IsRedisNil(err) {
		return tether.ErrNotFound
	}
	if err != nil {
		return unavailable(op, err)
	}
	_, live, err := s.decodeLive(ctx, id, b)
	if err != nil {
		return unavailable(op, err)
	}
	if !live {
		return tether.ErrNotFound
	}
	return nil
}

// Delete removes one record; ErrNotFound unless it was live.
func (s *Store) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rec, werr, err := s.evalEvents(ctx, "delete", deleteScript, []string{s.recKey(id), s.expiryKey(keySlot(s.recKey(id)))}, evs,
		s.channel, sessionMsg(id), s.nowMicros(), id)
	var b []byte
	if err == nil {
		b, err = rec.AsBytes()
	}
	if rueidis.IsRedisNil(err) {
		return tether.ErrNotFound
	}
	if err != nil {
		return unavailable("delete", err)
	}
	r, live, err := s.decodeLive(ctx, id, b)
	if err != nil {
		return unavailable("delete", err)
	}
	// Best effort: List prunes IDs whose record is gone.
	s.c.Do(ctx, s.c.B().Zrem().Key(s.indexKey(r.Subject)).Member(id).Build())
	if !live {
		return tether.ErrNotFound
	}
	return werr
}

// DeleteSubject revokes every record of subject but keepID atomically (see
// revokeScript), then deletes the revoked records and counts the live ones.
// If that clean-up fails the revocation has still happened, but the count is
// unknown, and the error says so.
func (s *Store) DeleteSubject(ctx context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	keepGen := int64(-1)
	if keepID != "" {
		b, err := s.c.Do(ctx, s.c.B().Get().Key(s.recKey(keepID)).Build()).AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
		case err != nil:
			return 0, unavailable("delete subject", err)
		default:
			r, gen, err := decode(keepID, b)
			if err != nil {
				return 0, unavailable("delete subject", err)
			}
			if r.Subject == subject && r.Live(s.now()) {
				keepGen = gen // the script checks it against the generation
			}
		}
	}
	// A record already dead at the revoke is reported expired by the sweep,
	// not deleted here (cleanupScript).
	now := s.now()
	reply, werr, err := s.evalEvents(ctx, "delete subject", revokeScript, []string{s.stateKey(subject), s.indexKey(subject)}, evs,
		keepID, itoa(keepGen), s.channel, subjectMsg(subject), subject)
	var res []rueidis.RedisMessage
	if err == nil {
		res, err = reply.ToArray()
	}
	if err != nil {
		return 0, unavailable("delete subject", err)
	}
	if werr != nil {
		return 0, werr
	}
	if len(res) != 3 {
		return 0, unavailable("delete subject", errors.New("malformed script reply"))
	}
	oldGen, oldKeep, err := parseState(res[:2])
	if err != nil {
		return 0, unavailable("delete subject", err)
	}
	ids, err := res[2].AsStrSlice()
	if err != nil {
		return 0, unavailable("delete subject", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// One script per record, so that of a racing Delete and this clean-up
	// only one sees each record, and its expiry index entry goes with it.
	calls := make([]rueidis.LuaExec, len(ids))
	for i, id := range ids {
		calls[i] = rueidis.LuaExec{Keys: []string{s.recKey(id), s.expiryKey(keySlot(s.recKey(id)))}, Args: []string{id, micros(now)}}
	}
	n := 0
	for i, res := range s.evalEach(ctx, cleanupScript, calls) {
		b, err := res.AsBytes()
		if rueidis.IsRedisNil(err) {
			continue
		}
		if err != nil {
			return 0, unavailable("delete subject: revoked, but cleaning up failed", err)
		}
		r, gen, err := decode(ids[i], b)
		if err == nil && r.Subject == subject && (gen >= oldGen || ids[i] == oldKeep) {
			n++
		}
	}
	return n, nil
}

// List returns the subject's live records in index order: by CreatedAt, then
// ID, oldest first. It prunes the index of IDs whose record is gone or dead.
func (s *Store) List(ctx context.Context, subject string) ([]*tether.Record, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ids, err := s.c.Do(ctx, s.c.B().Zrange().Key(s.indexKey(subject)).Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil {
		return nil, unavailable("list", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make(rueidis.Commands, len(ids))
	for i, id := range ids {
		cmds[i] = s.c.B().Get().Key(s.recKey(id)).Build()
	}
	results := s.c.DoMulti(ctx, cmds...)
	// Read the generation after the records: a revoke-all that returned
	// before List began is seen either way, and one that ran meanwhile may be.
	vals, err := s.c.Do(ctx, s.c.B().Hmget().Key(s.stateKey(subject)).Field("g", "k").Build()).ToArray()
	if err != nil {
		return nil, unavailable("list", err)
	}
	g, keep, err := parseState(vals)
	if err != nil {
		return nil, unavailable("list", err)
	}
	now := s.now()
	var out []*tether.Record
	var prune []string
	for i, res := range results {
		b, err := res.AsBytes()
		if rueidis.IsRedisNil(err) {
			prune = append(prune, ids[i])
			continue
		}
		if err != nil {
			return nil, unavailable("list", err)
		}
		r, gen, err := decode(ids[i], b)
		if err != nil {
			return nil, unavailable("list", err)
		}
		switch {
		case r.Subject != subject || (gen < g && ids[i] != keep) || !r.Live(now):
			// Dead for good: nothing revives a revoked or expired record.
			prune = append(prune, ids[i])
		default:
			out = append(out, r)
		}
	}
	if len(prune) > 0 { // best effort
		s.c.Do(ctx, s.c.B().Zrem().Key(s.indexKey(subject)).Member(prune...).Build())
	}
	return out, nil
}

// Roles returns the subject's roles.
func (s *Store) Roles(ctx context.Context, subject string) ([]string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b, err := s.c.Do(ctx, s.c.B().Get().Key(s.rolesKey(subject)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("roles", err)
	}
	var roles []string
	if err := json.Unmarshal(b, &roles); err != nil {
		return nil, unavailable("roles", fmt.Errorf("corrupt roles: %w", err))
	}
	return roles, nil
}

// SetRoles replaces the subject's roles and announces the change.
func (s *Store) SetRoles(ctx context.Context, subject string, roles []string, evs ...tether.Event) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	enc := ""
	if len(roles) > 0 {
		b, err := json.Marshal(roles)
		if err != nil {
			return fmt.Errorf("redisstore: set roles: %w", err)
		}
		enc = string(b)
	}
	_, werr, err := s.evalEvents(ctx, "set roles", rolesScript, []string{s.rolesKey(subject)}, evs,
		enc, s.channel, subjectMsg(subject), subject)
	if err != nil {
		return unavailable("set roles", err)
	}
	return werr
}

// Consume records key as used until the given time: one SET NX PXAT, atomic
// on the key's node, so exactly one of any number of racing calls wins.
func (s *Store) Consume(ctx context.Context, key string, until time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if !until.After(s.now()) {
		return nil // a window already over guards nothing, as in memstore
	}
	// Rounded up: a replay-guard key may outlive its window, never fall short.
	res, werr := s.write(ctx, "consume", s.consumeKey(key),
		s.c.B().Set().Key(s.consumeKey(key)).Value("1").Nx().Pxat(time.UnixMilli(ceilMillis(until))).Build())
	err := res.Error()
	if rueidis.IsRedisNil(err) {
		return tether.ErrReplayed
	}
	if err != nil {
		return unavailable("consume", err)
	}
	return werr
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.c.Do(ctx, s.c.B().Ping().Build()).Error(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close stops the sweep, waits for it, on a Cluster moves this node's
// queued events into the log, then releases the connections and ends every
// Watch. Later calls fail with tether.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
			<-s.stopped
		}
		if s.outbox != nil {
			// What this node wrote goes into the log now rather than at
			// another node's sweep; if Redis is away, it waits for that.
			// Before done closes: bound cancels every call after that.
			_ = s.outbox.drain(context.Background())
		}
		close(s.done)
		s.c.Close()
	})
	return nil
}
