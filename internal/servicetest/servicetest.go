// Package servicetest starts the real services that store and end-to-end tests
// run against: throw-away redis-server processes, Redis Clusters and Sentinel
// groups on free ports, fresh PostgreSQL databases, a PostgreSQL primary with
// a streaming standby, and a TCP proxy that a test can cut and restore. Everything it starts is stopped, and everything it creates is
// removed, by t.Cleanup.
//
// A test that needs a server that is missing is skipped, except on CI
// (CI=true), where it fails: a silently skipped backend would hide a broken
// pipeline. The shared servers come from the environment:
//
//	TETHER_TEST_REDIS_ADDR     default 127.0.0.1:6379
//	TETHER_TEST_POSTGRES_URL   default postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//
// It is for tests only; no production package imports it.
package servicetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
)

// SkipOrFail skips t, or fails it on CI.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// SkipShort skips t under -short, because it starts servers of its own
// (why says which), except on CI, where every backend must run.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip(why)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// poll calls cond every few milliseconds until it returns nil or within has
// passed, and returns its last error. It waits for a process or a cluster to
// come up; it times nothing.
func poll(within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- Redis ----

// SharedRedis returns the address of the long-running test Redis once it
// answers PING.
func SharedRedis(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TETHER_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	if err := PingRedis(addr); err != nil {
		SkipOrFail(t, "no Redis at %s (set TETHER_TEST_REDIS_ADDR): %v", addr, err)
	}
	return addr
}

// RedisPrefix returns a key prefix no other test, run or process uses, for a
// redisstore URL's ?prefix=, and removes its keys from addr when t ends
// (never FLUSHDB: the server is shared).
func RedisPrefix(t testing.TB, addr string) string {
	prefix := KeyPrefix(t)
	t.Cleanup(func() { cleanPrefix(t, addr, prefix) })
	return prefix
}

// KeyPrefix returns a key prefix no other test, run or process uses, like
// RedisPrefix, but removes nothing: for a server that the test owns and that
// goes away with it (StartRedis, StartRedisCluster, StartSentinels).
func KeyPrefix(t testing.TB) string {
	name := strings.NewReplacer("{", "(", "}", ")", " ", "_", "/", ".").Replace(t.Name())
	return fmt.Sprintf("tethertest:%s:%d:%d:", name, os.Getpid(), time.Now().UnixNano())
}

func cleanPrefix(t testing.TB, addr, prefix string) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Logf("cleaning %s*: %v", prefix, err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("cleaning %s*: %v", prefix, err)
			return
		}
		if len(e.Elements) > 0 {
			c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build())
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

// PingRedis sends PING over a plain connection: enough to tell that a server
// is up without a client library's reconnect logic in the way.
func PingRedis(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// process is a server process owned by one test; Redis and Postgres embed
// it for Kill, Pause and Resume.
type process struct {
	t    testing.TB
	what string // names it in messages: "redis-server on port 6379"
	tree bool   // signal the children it started too

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
}

// launch starts cmd, which must not be running yet, and returns a channel
// closed when it exits.
func (p *process) launch(cmd *exec.Cmd) <-chan struct{} {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("%s is already running", p.what)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.what, err)
	}
	exit := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exit)
	}()
	p.cmd, p.exit = cmd, exit
	return exit
}

// Kill ends the server with SIGKILL, as a crash of its host would, and waits
// until it has exited (its sockets are closed by then). A stopped server is
// left alone.
func (p *process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.send(syscall.SIGKILL)
	<-p.exit
	p.cmd = nil
}

// Pause stops the server with SIGSTOP: it keeps its connections but reads,
// answers and replicates nothing, like a hung host. Resume undoes it.
func (p *process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (p *process) Resume() { p.signal(syscall.SIGCONT) }

func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		p.t.Fatalf("%s is not running", p.what)
	}
	if err := p.send(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.what, err)
	}
}

// send signals the process and, with tree, its children, which PostgreSQL
// puts in process groups of their own (a signal to the parent's group would
// miss them); they are found in /proc by their parent, and signalled first,
// so that none runs on without its parent.
func (p *process) send(sig syscall.Signal) error {
	pid := p.cmd.Process.Pid
	if p.tree {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		for _, e := range entries {
			child, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue // gone meanwhile
			}
			// pid (comm) state ppid …; comm may hold spaces, so cut after ')'.
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				syscall.Kill(child, sig)
			}
		}
	}
	return syscall.Kill(pid, sig)
}

// Redis is a redis-server process owned by one test.
type Redis struct {
	process
	bin  string
	Port int
	Dir  string // its working directory: RDB and AOF files live here
	args []string
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// StartRedis starts redis-server on a free port in a temporary directory,
// without persistence unless extra says otherwise (later arguments win), and
// waits until it answers. t.Cleanup kills it.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	return startRedis(t, FreePort(t), extra...)
}

func startRedis(t testing.TB, port int, extra ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		SkipOrFail(t, "redis-server not installed: %v", err)
	}
	r := &Redis{process: process{t: t, what: fmt.Sprintf("redis-server on port %d", port)},
		bin: bin, Port: port, Dir: t.TempDir()}
	r.args = append([]string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
	}, extra...)
	t.Cleanup(r.Kill) // registered after TempDir, so it runs before the dir goes
	r.Start()
	return r
}

// Start starts the server again, on the same port, directory and arguments
// (so an AOF written before a Kill is loaded), and waits until it answers.
func (r *Redis) Start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, r.args...)
	cmd.Dir = r.Dir
	exit := r.launch(cmd)
	err := poll(10*time.Second, func() error {
		select {
		case <-exit:
			return fmt.Errorf("exited at start (%v)", cmd.ProcessState)
		default:
		}
		return PingRedis(r.Addr())
	})
	if err != nil {
		r.t.Fatalf("redis-server on port %d not up: %v", r.Port, err)
	}
}

// StartSentinel starts a master (as StartRedis does) and one Sentinel that
// monitors it under the name master, and returns the Sentinel's address.
// t.Cleanup kills both.
func StartSentinel(t testing.TB, master string) string {
	t.Helper()
	return StartSentinels(t, master, 0, 1).Sentinels[0].Addr()
}

// Sentinels is a primary, its replicas and the Sentinels that watch them,
// all owned by one test.
type Sentinels struct {
	Master    string // the name the Sentinels know the primary by
	Primary   *Redis // the primary at the start
	Replicas  []*Redis
	Sentinels []*Redis
	cli       string
}

// Addrs returns the Sentinels' addresses, for a redis+sentinel:// URL.
func (g *Sentinels) Addrs() []string { return addrs(g.Sentinels) }

func addrs(rs []*Redis) []string {
	var a []string
	for _, r := range rs {
		a = append(a, r.Addr())
	}
	return a
}

// waitInSync waits until r, if it is a replica, is in sync with its master.
func waitInSync(t testing.TB, cli string, r *Redis) {
	t.Helper()
	err := poll(30*time.Second, func() error {
		out, err := exec.Command(cli, "-p", strconv.Itoa(r.Port), "info", "replication").Output()
		if err != nil {
			return err
		}
		if strings.Contains(string(out), "role:slave") && !strings.Contains(string(out), "master_link_status:up") {
			return errors.New("replica not in sync with its master")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redis-server %s: %v", r.Addr(), err)
	}
}

// StartSentinels starts a primary, the given number of replicas of it, and
// the given number of Sentinels monitoring it under the name master, with a
// majority quorum
// and a one-second down-after, all on free loopback ports; it waits until
// every Sentinel knows every replica and every other Sentinel, so that a
// failover can start at once. t.Cleanup kills them all.
func StartSentinels(t testing.TB, master string, replicas, sentinels int) *Sentinels {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		SkipOrFail(t, "redis-cli not installed: %v", err)
	}
	// No delay before the first sync (the default waits 5 s for more
	// replicas): a replica that has not synced would lose everything.
	g := &Sentinels{Master: master, Primary: StartRedis(t, "--repl-diskless-sync-delay", "0"), cli: cli}
	for range replicas {
		r := StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(g.Primary.Port), "--repl-diskless-sync-delay", "0")
		waitInSync(t, cli, r)
		g.Replicas = append(g.Replicas, r)
	}
	body := fmt.Sprintf(`sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d
sentinel down-after-milliseconds %[1]s 1000
sentinel failover-timeout %[1]s 10000
sentinel parallel-syncs %[1]s 2
`, master, g.Primary.Port, sentinels/2+1)
	for range sentinels {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		port := FreePort(t)
		r := &Redis{process: process{t: t, what: fmt.Sprintf("redis-sentinel on port %d", port)},
			bin: g.Primary.bin, Port: port, Dir: dir}
		// A Sentinel rewrites its configuration file, which must come first.
		r.args = []string{conf, "--sentinel", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
			"--daemonize", "no", "--loglevel", "warning"}
		t.Cleanup(r.Kill)
		r.Start()
		g.Sentinels = append(g.Sentinels, r)
	}
	for _, s := range g.Sentinels {
		err := poll(30*time.Second, func() error {
			m, err := g.master(s)
			if err != nil {
				return err
			}
			if m["num-slaves"] != strconv.Itoa(replicas) || m["num-other-sentinels"] != strconv.Itoa(sentinels-1) {
				return fmt.Errorf("knows %s replicas and %s other sentinels", m["num-slaves"], m["num-other-sentinels"])
			}
			return nil
		})
		if err != nil {
			t.Fatalf("sentinel %s: %v", s.Addr(), err)
		}
	}
	return g
}

// CutReplication partitions the primary from its replicas until they are
// resumed: it pauses them (Pause) and closes the primary's links to them
// (CLIENT KILL TYPE replica), so that what the primary accepts from then on
// reaches none of them; what it had sent before stays in their sockets and
// is applied once they resume. Resume the replicas to end it; they then find
// their links closed and reconnect.
func (g *Sentinels) CutReplication(t testing.TB) {
	t.Helper()
	for _, r := range g.Replicas {
		r.Pause()
	}
	out, err := exec.Command(g.cli, "-p", strconv.Itoa(g.Primary.Port), "client", "kill", "type", "replica").CombinedOutput()
	if err != nil {
		t.Fatalf("client kill type replica: %v: %s", err, out)
	}
}

// master returns SENTINEL MASTER's fields as one Sentinel sees them.
func (g *Sentinels) master(s *Redis) (map[string]string, error) {
	out, err := exec.Command(g.cli, "-p", strconv.Itoa(s.Port), "sentinel", "master", g.Master).Output()
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	m := make(map[string]string, len(lines)/2)
	for i := 0; i+1 < len(lines); i += 2 {
		m[lines[i]] = lines[i+1]
	}
	return m, nil
}

// WaitPromoted waits until every Sentinel names a primary other than old,
// and that primary says it is one; it returns its address.
func (g *Sentinels) WaitPromoted(t testing.TB, old *Redis, within time.Duration) string {
	t.Helper()
	var addr string
	err := poll(within, func() error {
		for _, s := range g.Sentinels {
			m, err := g.master(s)
			if err != nil {
				return err
			}
			a := net.JoinHostPort(m["ip"], m["port"])
			if a == old.Addr() {
				return fmt.Errorf("sentinel %s still names %s", s.Addr(), a)
			}
			addr = a
		}
		host, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command(g.cli, "-h", host, "-p", port, "role").Output()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(out), "master") {
			return fmt.Errorf("%s is %s", addr, strings.Fields(string(out))[0])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no failover within %v: %v", within, err)
	}
	return addr
}

// StartRedisCluster starts a three-master Redis Cluster with no replicas and
// returns its node addresses once every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB) []string {
	t.Helper()
	return addrs(startCluster(t, 0, nil))
}

// StartProxiedRedisCluster starts a cluster as StartRedisCluster does, with a
// Proxy in front of each node that the node announces as its address: a
// client that follows the cluster's topology reaches every node only through
// the proxies, so stopping them all cuts it off the whole cluster. The nodes
// talk to each other directly.
func StartProxiedRedisCluster(t testing.TB) []*Proxy {
	t.Helper()
	var proxies []*Proxy
	startCluster(t, 0, func(port int) []string {
		px := NewProxy(t, "127.0.0.1:"+strconv.Itoa(port))
		proxies = append(proxies, px)
		_, pxPort, _ := net.SplitHostPort(px.Addr)
		return []string{"--cluster-announce-ip", "127.0.0.1", "--cluster-announce-port", pxPort}
	})
	return proxies
}

// Cluster is a Redis Cluster whose masters each have a replica.
type Cluster struct {
	Nodes []*Redis
	cli   string
}

// Addrs returns every node's address.
func (c *Cluster) Addrs() []string { return addrs(c.Nodes) }

// StartReplicatedRedisCluster starts a three-master Redis Cluster with one
// replica per master, and returns once every node reports cluster_state:ok
// and every replica is in sync.
func StartReplicatedRedisCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{Nodes: startCluster(t, 1, nil)}
	c.cli, _ = exec.LookPath("redis-cli")
	for _, n := range c.Nodes {
		waitInSync(t, c.cli, n)
	}
	return c
}

func (c *Cluster) run(n *Redis, args ...string) (string, error) {
	out, err := exec.Command(c.cli, append([]string{"-p", strconv.Itoa(n.Port)}, args...)...).Output()
	return string(out), err
}

// ReplicaOf returns the replica of the master that serves key.
func (c *Cluster) ReplicaOf(t testing.TB, key string) *Redis {
	t.Helper()
	slotOut, err := c.run(c.Nodes[0], "cluster", "keyslot", key)
	if err != nil {
		t.Fatalf("cluster keyslot: %v", err)
	}
	slot, err := strconv.Atoi(strings.TrimSpace(slotOut))
	if err != nil {
		t.Fatalf("cluster keyslot: %q", slotOut)
	}
	nodes, err := c.run(c.Nodes[0], "cluster", "nodes")
	if err != nil {
		t.Fatalf("cluster nodes: %v", err)
	}
	// Lines: id host:port@bus flags master-id ping pong epoch state slots...
	var master string
	ports := map[string]string{} // node id to port
	type replica struct{ id, of string }
	var replicas []replica
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		_, port, _ := strings.Cut(strings.Split(f[1], "@")[0], ":")
		ports[f[0]] = port
		if strings.Contains(f[2], "slave") {
			replicas = append(replicas, replica{f[0], f[3]})
		}
		for _, r := range f[8:] {
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && l <= slot && slot <= h {
				master = f[0]
			}
		}
	}
	for _, r := range replicas {
		if r.of != master {
			continue
		}
		for _, n := range c.Nodes {
			if strconv.Itoa(n.Port) == ports[r.id] {
				return n
			}
		}
	}
	t.Fatalf("no replica serves slot %d:\n%s", slot, nodes)
	return nil
}

// startCluster starts three masters with replicas replicas each, each node
// with the extra arguments announce returns for its port, and joins them.
func startCluster(t testing.TB, replicas int, announce func(port int) []string) []*Redis {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		SkipOrFail(t, "redis-cli not installed: %v", err)
	}
	var nodes []*Redis
	for range 3 * (1 + replicas) {
		port := FreePort(t)
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"}
		if announce != nil {
			args = append(args, announce(port)...)
		}
		r := startRedis(t, port, args...)
		nodes = append(nodes, r)
	}
	args := append([]string{"--cluster", "create"}, addrs(nodes)...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs(nodes) {
		host, port, _ := net.SplitHostPort(a)
		err := poll(30*time.Second, func() error {
			out, err := exec.Command(cli, "-h", host, "-p", port, "cluster", "info").Output()
			if err != nil {
				return err
			}
			if !strings.Contains(string(out), "cluster_state:ok") {
				return fmt.Errorf("cluster info: %s", out)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("cluster node %s not ok: %v", a, err)
		}
	}
	return nodes
}

// ---- PostgreSQL ----

// PostgresURL is the server tests create their databases on.
func PostgresURL() string {
	if u := os.Getenv("TETHER_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// FreshPostgres creates an empty database, dropped WITH (FORCE) when t ends,
// and returns its URL. Random names keep concurrent runs apart.
func FreshPostgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		SkipOrFail(t, "PostgreSQL unreachable (set TETHER_TEST_POSTGRES_URL): %v", err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "tether_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatalf("parse TETHER_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// WithHost returns rawURL with its host:port replaced by addr.
func WithHost(t testing.TB, rawURL, addr string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// HostOf returns rawURL's host:port.
func HostOf(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// ---- TCP proxy ----

// Proxy forwards TCP connections from Addr to a target. Stop cuts every
// forwarded connection at once and refuses new ones (connection refused, as
// if the server were down); Start listens on the same address again.
type Proxy struct {
	Addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port; t.Cleanup stops it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target, conns: make(map[net.Conn]struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Stop)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

// track registers c, or closes it if the proxy is stopped.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) forward(c net.Conn) {
	if !p.track(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 3*time.Second)
	if err != nil {
		c.Close()
		p.untrack(c)
		return
	}
	if !p.track(up) {
		c.Close()
		p.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
	p.untrack(c, up)
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// Stop closes the listener and every forwarded connection, and waits until
// every forwarding goroutine has ended.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Start listens again on the same address; a running proxy is left alone.
func (p *Proxy) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	running := p.ln != nil
	p.mu.Unlock()
	if running {
		return
	}
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatalf("proxy relisten on %s: %v", p.Addr, err)
	}
	p.serve(ln)
}
