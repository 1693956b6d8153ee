package redisstore

// Starting throw-away Redis servers and clusters for tests. Kept in a file of
// its own so that it can move to an internal test package if another package
// needs it.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// skipOrFail skips a test that needs something missing, except on CI, where
// a silently skipped Redis test would hide a broken pipeline.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// sharedRedisAddr returns the address of the long-running test Redis, from
// TETHER_TEST_REDIS_ADDR (default 127.0.0.1:6379), once it answers PING.
func sharedRedisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TETHER_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	if err := ping(addr); err != nil {
		skipOrFail(t, "no Redis at %s (set TETHER_TEST_REDIS_ADDR): %v", addr, err)
	}
	return addr
}

// testPrefix is a key prefix no other test, run or process uses, so that
// tests can share one Redis; cleanPrefix removes its keys afterwards (never
// FLUSHDB: the server is shared).
func testPrefix(t testing.TB) string {
	name := strings.NewReplacer("{", "(", "}", ")", " ", "_").Replace(t.Name())
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

// ping sends PING over a plain connection: enough to tell that a server is up
// without a client library's reconnect logic in the way.
func ping(addr string) error {
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

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// redisServer is a redis-server process owned by one test; t.Cleanup kills it.
type redisServer struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
	exit chan struct{}
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// startRedis starts redis-server on a free port in a temporary directory,
// with extra arguments, and waits until it answers.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "redis-server not installed: %v", err)
	}
	r := &redisServer{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	r.args = append([]string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
	}, extra...)
	t.Cleanup(r.kill) // registered after TempDir, so it runs before the dir goes
	r.start()
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, r.args...)
	r.cmd.Dir = r.dir
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	r.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) {
		cmd.Wait()
		close(exit)
	}(r.cmd, r.exit)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(r.addr())
		if err == nil {
			return
		}
		select {
		case <-r.exit:
			r.t.Fatalf("redis-server on port %d exited at start", r.port)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d not up after 10s: %v", r.port, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a process's start-up, not timing a test
	}
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (r *redisServer) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exit
	r.cmd = nil
}

// startCluster starts a three-master Redis Cluster with no replicas and
// returns its node addresses once every node reports cluster_state:ok.
func startCluster(t testing.TB) []string {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		skipOrFail(t, "redis-cli not installed: %v", err)
	}
	var addrs []string
	for range 3 {
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
		addrs = append(addrs, r.addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		for {
			out, err := exec.Command(cli, "-h", host, "-p", port, "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok after 30s: %v\n%s", a, err, out)
			}
			time.Sleep(50 * time.Millisecond) // polling cluster convergence
		}
	}
	return addrs
}

// startSentinel starts a master and one Sentinel monitoring it as NAME
// "tether", and returns the Sentinel's address.
func startSentinel(t testing.TB) string {
	t.Helper()
	master := startRedis(t)
	dir := t.TempDir()
	conf := dir + "/sentinel.conf"
	body := fmt.Sprintf("sentinel monitor tether 127.0.0.1 %d 1\nsentinel down-after-milliseconds tether 5000\n", master.port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &redisServer{t: t, bin: master.bin, port: freePort(t), dir: dir}
	r.args = []string{conf, "--sentinel", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--daemonize", "no", "--loglevel", "warning"}
	t.Cleanup(r.kill)
	r.start()
	return r.addr()
}
