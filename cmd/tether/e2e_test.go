package main

// End-to-end tests: the real binary, started as an operator would, spoken to
// over HTTP exactly as the contract checks do (shared/contract/check-core).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// tetherBin is the binary TestMain built; empty in -short mode.
var tetherBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the binary once for every end-to-end test, so each test
// starts a process in milliseconds instead of compiling.
func buildAndRun(m *testing.M) int {
	if !testing.Short() {
		dir, err := os.MkdirTemp("", "tether-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "tether")
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/tether: %v\n%s", err, out)
			return 1
		}
		tetherBin = bin
	}
	return m.Run()
}

func needBinary(t *testing.T) {
	t.Helper()
	if tetherBin == "" {
		t.Skip("end-to-end: skipped in -short mode")
	}
}

// e2eEnv is the environment without any TETHER_ variable of the developer's,
// plus extra.
func e2eEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TETHER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func newAdminKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "e2e-admin-" + hex.EncodeToString(b)
}

// nodeSpec says how to start a node. Zero fields take the defaults.
type nodeSpec struct {
	dataDir  string   // --data-dir: a fresh temporary directory if empty, no flag if "-"
	adminKey string   // TETHER_ADMIN_KEY: a fresh key if empty, unset if "-"
	args     []string // more serve arguments, after the listeners and data dir
	env      []string // more environment
}

// node is a running `tether serve`.
type node struct {
	t        *testing.T
	cmd      *exec.Cmd
	dataDir  string
	key      string // admin key
	pub, adm string // base URLs
	ready    map[string]any
	stderr   *logBuffer
	stdout   string // path of the file that holds its stdout
	done     chan struct{}
	killed   bool
	client   *http.Client
}

// startNode starts `tether serve` on free loopback ports (:0) and waits for
// its ready line, which names the ports it got. t.Cleanup stops it with
// SIGTERM and checks that it stops cleanly and leaked no secret in its output.
func startNode(t *testing.T, spec nodeSpec) *node {
	t.Helper()
	needBinary(t)
	n := &node{t: t, dataDir: spec.dataDir, key: spec.adminKey, stderr: newLogBuffer(), done: make(chan struct{})}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
	switch n.dataDir {
	case "":
		n.dataDir = t.TempDir()
		fallthrough
	default:
		args = append(args, "--data-dir", n.dataDir)
	case "-":
		n.dataDir = ""
	}
	args = append(args, spec.args...)
	var env []string
	switch n.key {
	case "":
		n.key = newAdminKey()
		fallthrough
	default:
		env = append(env, "TETHER_ADMIN_KEY="+n.key)
	case "-":
		n.key = ""
	}
	stdout, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close() // the child has its own descriptor
	n.stdout = stdout.Name()
	n.cmd = exec.Command(tetherBin, args...)
	n.cmd.Env = e2eEnv(append(env, spec.env...)...)
	n.cmd.Dir = t.TempDir() // so a relative default data dir lands in the test's own space
	n.cmd.Stdout = stdout   // a file: what it printed before the ready line is there when we look
	n.cmd.Stderr = n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		n.cmd.Wait()
		close(n.done)
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	n.client = &http.Client{Timeout: 15 * time.Second, Transport: tr}
	t.Cleanup(n.stop)
	t.Cleanup(tr.CloseIdleConnections)

	n.ready = n.waitLog("tether ready", 20*time.Second)
	pub, _ := n.ready["public"].(string)
	adm, _ := n.ready["admin"].(string)
	if pub == "" || adm == "" {
		t.Fatalf("ready line without addresses: %v", n.ready)
	}
	n.pub, n.adm = "http://"+pub, "http://"+adm
	return n
}

// waitLog waits for the JSON log line whose msg is msg and returns it.
func (n *node) waitLog(msg string, within time.Duration) map[string]any {
	n.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if line, ok := n.stderr.find(msg); ok {
			return line
		}
		select {
		case <-n.stderr.changed:
		case <-n.done:
			if line, ok := n.stderr.find(msg); ok {
				return line
			}
			n.t.Fatalf("tether exited (%v) before logging %q:\n%s", n.cmd.ProcessState, msg, n.stderr)
		case <-deadline.C:
			n.t.Fatalf("no %q log line within %v:\n%s", msg, within, n.stderr)
		}
	}
}

// kill ends the node with SIGKILL, as a crash or the OOM killer would.
func (n *node) kill() {
	n.t.Helper()
	n.killed = true
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		n.t.Fatal(err)
	}
	<-n.done
}

// stop sends SIGTERM and checks a clean exit: status 0 within 10 s and the
// "tether stopped" line. Then it checks that nothing the node printed holds
// a session token or the admin key.
func (n *node) stop() {
	t := n.t
	if !n.killed {
		select {
		case <-n.done:
			t.Errorf("tether exited on its own (%v):\n%s", n.cmd.ProcessState, n.stderr)
		default:
			n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.done:
				if code := n.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("exit status after SIGTERM: got %d, want 0:\n%s", code, n.stderr)
				}
				if _, ok := n.stderr.find("tether stopped"); !ok {
					t.Errorf("no \"tether stopped\" log line after SIGTERM:\n%s", n.stderr)
				}
			case <-time.After(10 * time.Second):
				n.cmd.Process.Kill()
				<-n.done
				t.Errorf("tether did not exit within 10 s of SIGTERM")
			}
		}
	}
	stdout, _ := os.ReadFile(n.stdout)
	for name, out := range map[string]string{"stderr": n.stderr.String(), "stdout": string(stdout)} {
		if strings.Contains(out, "tts_") {
			t.Errorf("%s holds a session token (tts_…):\n%s", name, out)
		}
		if n.key != "" && strings.Contains(out, n.key) {
			t.Errorf("%s holds the admin key:\n%s", name, out)
		}
	}
}

// call makes one request. body, if not empty, is sent with contentType.
func (n *node) call(method, url, auth, contentType, body string) (int, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	n.recordAnswer(req, resp.StatusCode, resp.Header, b)
	return resp.StatusCode, b, err
}

func (n *node) mustCall(method, url, auth, contentType, body string) (int, []byte) {
	n.t.Helper()
	code, b, err := n.call(method, url, auth, contentType, body)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, b
}

// admin calls the admin API with the node's key.
func (n *node) admin(method, path, body string) (int, []byte) {
	n.t.Helper()
	return n.mustCall(method, n.adm+path, "Bearer "+n.key, "application/json", body)
}

// bearer calls the public API with a session token.
func (n *node) bearer(method, path, token string) (int, []byte) {
	n.t.Helper()
	return n.mustCall(method, n.pub+path, "Bearer "+token, "", "")
}

// create makes a session and returns its token and ID.
func (n *node) create(body string) (token, id string) {
	n.t.Helper()
	code, b := n.admin(http.MethodPost, "/v1/sessions", body)
	if code != http.StatusCreated {
		n.t.Fatalf("create %s: got %d %s, want 201", body, code, b)
	}
	var c struct {
		Token   string
		Session struct{ ID string }
	}
	mustJSON(n.t, b, &c)
	return c.Token, c.Session.ID
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// logBuffer collects a process's stderr and says when more arrived.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{}, 1)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// find returns the first complete JSON log line whose msg is msg.
func (b *logBuffer) find(msg string) (map[string]any, bool) {
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			return line, true
		}
	}
	return nil, false
}

// TestE2EContractFlow walks the contract's core flow (check-core) against a
// node on the default embedded store, logging at debug level so the leak
// check in stop sees everything the server can log.
func TestE2EContractFlow(t *testing.T) {
	n := startNode(t, nodeSpec{args: []string{"--log-level", "debug"}})
	if got := n.ready["store"]; !strings.HasPrefix(fmt.Sprint(got), "bolt") {
		t.Errorf("store without --store: got %v, want bolt", got)
	}

	var sess struct {
		Subject string
		Roles   []string
	}
	whoami := func(token string) int {
		t.Helper()
		code, b := n.bearer(http.MethodGet, "/v1/session", token)
		if code == http.StatusOK {
			mustJSON(t, b, &sess)
		}
		return code
	}

	alice, _ := n.create(`{"subject":"alice","roles":["admin"],"metadata":{"user_agent":"e2e"}}`)
	if len(alice) > 64 {
		t.Errorf("token length: got %d, want <= 64", len(alice))
	}
	if code := whoami(alice); code != http.StatusOK || sess.Subject != "alice" || strings.Join(sess.Roles, ",") != "admin" {
		t.Errorf("whoami: got %d %+v, want 200 alice [admin]", code, sess)
	}

	if code, _ := n.mustCall(http.MethodPost, n.adm+"/v1/sessions", "Bearer wrong", "application/json", `{"subject":"mallory"}`); code != http.StatusUnauthorized {
		t.Errorf("wrong admin key: got %d, want 401", code)
	}

	if code, b := n.admin(http.MethodPut, "/v1/subjects/alice/roles", `{"roles":["viewer"]}`); code != http.StatusOK {
		t.Errorf("set roles: got %d %s, want 200", code, b)
	}
	if code := whoami(alice); code != http.StatusOK || strings.Join(sess.Roles, ",") != "viewer" {
		t.Errorf("roles on the very next request: got %d %v, want 200 [viewer]", code, sess.Roles)
	}

	for _, body := range []string{`{"subject": `, `{"subject":"x","ttl":"banana"}`} {
		if code, b := n.admin(http.MethodPost, "/v1/sessions", body); code != http.StatusBadRequest {
			t.Errorf("create %s: got %d %s, want 400", body, code, b)
		}
	}

	if code := whoami("tts_garbage_" + newAdminKey()); code != http.StatusUnauthorized {
		t.Errorf("garbage token: got %d, want 401", code)
	}
	resp, err := n.client.Get(n.pub + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: got %d with WWW-Authenticate %q, want 401 with Bearer…", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	bob, _ := n.create(`{"subject":"bob","roles":["user"]}`)
	carol, _ := n.create(`{"subject":"carol"}`)
	code, b := n.admin(http.MethodDelete, "/v1/subjects/alice/sessions", "")
	var revoked struct{ Revoked int }
	mustJSON(t, b, &revoked)
	if code != http.StatusOK || revoked.Revoked < 1 {
		t.Errorf("revoke-all: got %d %s, want 200 with revoked >= 1", code, b)
	}
	if code := whoami(alice); code != http.StatusUnauthorized {
		t.Errorf("revoked token: got %d, want 401", code)
	}

	code, b = n.bearer(http.MethodPost, "/v1/session/rotate", carol)
	var rotated struct{ Token string }
	mustJSON(t, b, &rotated)
	if code != http.StatusOK || whoami(rotated.Token) != http.StatusOK || whoami(carol) != http.StatusUnauthorized {
		t.Errorf("rotate: want the new token to work and the old one to be dead (rotate said %d %s)", code, b)
	}

	introspect := func(token string) (int, map[string]any) {
		t.Helper()
		code, b := n.mustCall(http.MethodPost, n.adm+"/v1/introspect", "Bearer "+n.key,
			"application/x-www-form-urlencoded", url.Values{"token": {token}}.Encode())
		var v map[string]any
		mustJSON(t, b, &v)
		return code, v
	}
	if code, v := introspect(bob); code != http.StatusOK || v["active"] != true || v["sub"] != "bob" {
		t.Errorf("introspect a live token: got %d %v, want 200 active for bob", code, v)
	}
	if code, v := introspect(alice); code != http.StatusOK || v["active"] != false {
		t.Errorf("introspect a revoked token: got %d %v, want 200 {active:false}", code, v)
	}

	if code, b := n.admin(http.MethodGet, "/metrics", ""); code != http.StatusOK || !bytes.Contains(b, []byte("# TYPE tether_validations_total")) {
		t.Errorf("metrics: got %d without # TYPE tether_validations_total", code)
	}
	if code, _ := n.mustCall(http.MethodGet, n.pub+"/readyz", "", "", ""); code != http.StatusOK {
		t.Errorf("readyz: got %d, want 200", code)
	}

	if code, _ := n.bearer(http.MethodDelete, "/v1/session", bob); code != http.StatusNoContent {
		t.Errorf("logout: got %d, want 204", code)
	}
	if code := whoami(bob); code != http.StatusUnauthorized {
		t.Errorf("after logout: got %d, want 401", code)
	}
}

// TestE2EAdminKeyGenerated: without TETHER_ADMIN_KEY the node makes a key
// once, keeps it in the data dir (0600), prints where, never the key, and
// reads the same key on the next start.
func TestE2EAdminKeyGenerated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.key")
	start := func() (*node, string) {
		n := startNode(t, nodeSpec{dataDir: dir, adminKey: "-", args: []string{"--store", "memory:"}})
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("admin key file: %v", err)
		}
		n.key = strings.TrimSpace(string(raw)) // for the API calls and the leak check in stop
		out, _ := os.ReadFile(n.stdout)
		return n, string(out)
	}

	n1, out := start()
	if !strings.Contains(out, path) {
		t.Errorf("stdout does not name %s:\n%s", path, out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin key mode: got %v, want 0600", fi.Mode().Perm())
	}
	if len(n1.key) < 32 {
		t.Errorf("admin key: got %d characters, want at least 32", len(n1.key))
	}
	if code, b := n1.admin(http.MethodGet, "/v1/subjects/alice/sessions", ""); code != http.StatusOK {
		t.Errorf("admin call with the generated key: got %d %s, want 200", code, b)
	}
	if code, _ := n1.mustCall(http.MethodGet, n1.adm+"/v1/subjects/alice/sessions", "Bearer wrong", "", ""); code != http.StatusUnauthorized {
		t.Errorf("admin call with a wrong key: got %d, want 401", code)
	}
	n1.stop()
	n1.killed = true // stopped and checked; Cleanup must not stop it again

	n2, out := start()
	if n2.key != n1.key {
		t.Error("the key changed on restart; want the saved one reused")
	}
	if !strings.Contains(out, path) {
		t.Errorf("stdout on restart does not name %s:\n%s", path, out)
	}
	if code, b := n2.admin(http.MethodGet, "/v1/subjects/alice/sessions", ""); code != http.StatusOK {
		t.Errorf("admin call after restart: got %d %s, want 200", code, b)
	}
}

// TestE2EKillAndRestart: on the default embedded store, kill -9 loses nothing
// that was acknowledged, and revocations stay revoked.
// TestE2EKillAndRestart: kill -9 of a node during concurrent creates loses no
// acknowledged session, on the embedded store and on PostgreSQL.
func TestE2EKillAndRestart(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testKillAndRestart(t, nil) })
	t.Run("postgres", func(t *testing.T) {
		testKillAndRestart(t, []string{"--store", servicetest.FreshPostgres(t)})
	})
}

func testKillAndRestart(t *testing.T, args []string) {
	dir := t.TempDir()
	key := newAdminKey()
	n1 := startNode(t, nodeSpec{dataDir: dir, adminKey: key, args: args})

	live, _ := n1.create(`{"subject":"bob","roles":["user"]}`)
	gone, _ := n1.create(`{"subject":"alice"}`)
	if code, _ := n1.admin(http.MethodDelete, "/v1/subjects/alice/sessions", ""); code != http.StatusOK {
		t.Fatalf("revoke-all: got %d", code)
	}
	old, _ := n1.create(`{"subject":"carol"}`)
	code, b := n1.bearer(http.MethodPost, "/v1/session/rotate", old)
	var rotated struct{ Token string }
	mustJSON(t, b, &rotated)
	if code != http.StatusOK {
		t.Fatalf("rotate: got %d %s", code, b)
	}

	// Concurrent creates, each its own subject (the create limit is per
	// subject); kill -9 once half of them are acknowledged, while the rest are
	// in flight. Every 201 is a promise the store must keep.
	const total, killAt, workers = 2000, 1000, 32
	var (
		mu    sync.Mutex
		acked []string
		next  atomic.Int64
		wg    sync.WaitGroup
		half  = make(chan struct{})
		once  sync.Once
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				code, b, err := n1.call(http.MethodPost, n1.adm+"/v1/sessions", "Bearer "+key, "application/json",
					fmt.Sprintf(`{"subject":"load-%d"}`, i))
				if err != nil {
					return // the node is gone
				}
				var c struct{ Token string }
				if code != http.StatusCreated || json.Unmarshal(b, &c) != nil || c.Token == "" {
					t.Errorf("create %d: got %d %s, want 201", i, code, b)
					return
				}
				mu.Lock()
				acked = append(acked, c.Token)
				if len(acked) >= killAt {
					once.Do(func() { close(half) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-half:
	case <-time.After(2 * time.Minute):
		t.Fatal("1000 creates not acknowledged within 2 minutes")
	}
	n1.kill()
	wg.Wait()
	mu.Lock()
	tokens := acked
	mu.Unlock()
	t.Logf("%d creates acknowledged before and around kill -9 (of %d started)", len(tokens), min(next.Load(), total))
	if next.Load() < killAt {
		t.Fatalf("only %d creates started, want at least %d", next.Load(), killAt)
	}

	n2 := startNode(t, nodeSpec{dataDir: dir, adminKey: key, args: args})
	status := func(token string) int {
		code, _, err := n2.call(http.MethodGet, n2.pub+"/v1/session", "Bearer "+token, "", "")
		if err != nil {
			t.Errorf("whoami after restart: %v", err)
		}
		return code
	}
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"live session", live, http.StatusOK},
		{"revoked session", gone, http.StatusUnauthorized},
		{"rotated-away token", old, http.StatusUnauthorized},
		{"rotated token", rotated.Token, http.StatusOK},
	} {
		if got := status(tt.token); got != tt.want {
			t.Errorf("after kill -9 and restart, %s: got %d, want %d", tt.name, got, tt.want)
		}
	}

	var lost atomic.Int64
	jobs := make(chan string)
	var vw sync.WaitGroup
	for range 16 {
		vw.Add(1)
		go func() {
			defer vw.Done()
			for tok := range jobs {
				if status(tok) != http.StatusOK {
					lost.Add(1)
				}
			}
		}()
	}
	for _, tok := range tokens {
		jobs <- tok
	}
	close(jobs)
	vw.Wait()
	if lost.Load() > 0 {
		t.Errorf("after kill -9: %d of %d acknowledged sessions lost", lost.Load(), len(tokens))
	}

	// The event log went down with the same transactions: every acknowledged
	// session has its session.created event, and every such event has its
	// session (none of them was revoked), so no event outlived a lost write.
	created := map[string]bool{}
	for after := ""; ; {
		code, b := n2.admin(http.MethodGet, "/v1/events?type=session.created&limit=1000&after="+after, "")
		var p struct {
			Events []tether.Event `json:"events"`
			Next   string         `json:"next"`
		}
		mustJSON(t, b, &p)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/events after restart: %d %s", code, b)
		}
		for _, e := range p.Events {
			if strings.HasPrefix(e.Subject, "load-") {
				created[e.SessionID] = true
			}
		}
		if len(p.Events) == 0 {
			break
		}
		after = p.Next
	}
	for _, tok := range tokens {
		if id := tokenID(t, tok); !created[id] {
			t.Errorf("acknowledged session %s has no session.created event after kill -9", id)
		}
	}
	orphans := 0
	for id := range created {
		if code, _ := n2.admin(http.MethodGet, "/v1/sessions/"+id, ""); code != http.StatusOK {
			orphans++
		}
	}
	if orphans > 0 {
		t.Errorf("%d session.created events without their session after kill -9", orphans)
	}
	t.Logf("after kill -9: %d session.created events, %d acknowledged, 0 orphans wanted, %d found", len(created), len(tokens), orphans)
}

// tokenID returns the session ID a token names.
func tokenID(t *testing.T, token string) string {
	t.Helper()
	info := tether.InspectToken(token)
	if !info.Recognised {
		t.Fatalf("not a token: %s", info.Description)
	}
	return info.SessionID
}

// TestE2ESecondServerSameDataDir: the embedded store is one process's; a
// second server on the same data dir fails at once with a clear error
// instead of hanging on the file lock.
func TestE2ESecondServerSameDataDir(t *testing.T) {
	n := startNode(t, nodeSpec{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tetherBin, "serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", n.dataDir)
	cmd.Env = e2eEnv("TETHER_ADMIN_KEY=" + n.key)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("second server still running after 30 s; want a prompt failure:\n%s", &stderr)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("second server: got %v, want exit status 1", err)
	}
	if !strings.Contains(stderr.String(), "locked") {
		t.Errorf("second server's error does not say the store is locked:\n%s", &stderr)
	}
	if strings.Contains(stderr.String(), "tether: tether:") {
		t.Errorf("second server's error has a doubled prefix:\n%s", &stderr)
	}
	if code, _ := n.mustCall(http.MethodGet, n.pub+"/readyz", "", "", ""); code != http.StatusOK {
		t.Errorf("the first server after the second one failed: readyz got %d, want 200", code)
	}
}

// TestE2ECommandLine: exit codes of serve (0 ok, 1 failure, 2 usage).
func TestE2ECommandLine(t *testing.T) {
	needBinary(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in stdout or stderr
	}{
		{"help", []string{"serve", "--help"}, 0, "--admin-addr"},
		{"unknown flag", []string{"serve", "--no-such-flag"}, 2, "no-such-flag"},
		{"bad flag value", []string{"serve", "--max-staleness", "banana"}, 2, "banana"},
		{"extra argument", []string{"serve", "now"}, 2, "serve"},
		{"bad log level", []string{"serve", "--log-level", "loud"}, 1, "log_level"},
		{"same listener twice", []string{"serve", "--addr", "127.0.0.1:18080", "--admin-addr", "127.0.0.1:18080"}, 1, "must differ"},
		{"unknown store", []string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--store", "nope://x"}, 1, "unknown scheme"},
		{"missing config file", []string{"serve", "--config", "/nonexistent/tether.yaml"}, 1, "/nonexistent/tether.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runToExit(t, []string{"TETHER_ADMIN_KEY=" + newAdminKey(), "TETHER_DATA_DIR=" + t.TempDir()}, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit status: got %d, want %d:\n%s", code, tt.wantCode, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not mention %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestE2EConfigPrecedence: defaults < file < environment < flags, seen in
// the ready line. The file's listeners are unusable on purpose: if the flags
// did not win over them, the node could not start.
func TestE2EConfigPrecedence(t *testing.T) {
	fileDir, envDir, flagDir := t.TempDir(), t.TempDir(), t.TempDir()
	cfg := filepath.Join(t.TempDir(), "tether.yaml")
	content := fmt.Sprintf("addr: 256.0.0.1:1\nadmin_addr: 256.0.0.1:2\ndata_dir: %q\nstore: \"memory:\"\n", fileDir)
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dataDir string // nodeSpec.dataDir
		env     []string
		want    string
	}{
		{"file over default", "-", []string{"TETHER_CONFIG=" + cfg}, fileDir},
		{"env over file", "-", []string{"TETHER_CONFIG=" + cfg, "TETHER_DATA_DIR=" + envDir}, envDir},
		{"flag over env", flagDir, []string{"TETHER_CONFIG=" + cfg, "TETHER_DATA_DIR=" + envDir}, flagDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, nodeSpec{dataDir: tt.dataDir, env: tt.env})
			if got := n.ready["data_dir"]; got != tt.want {
				t.Errorf("data_dir: got %v, want %s", got, tt.want)
			}
			if got := n.ready["store"]; got != "memory" {
				t.Errorf("store: got %v, want memory (from the file)", got)
			}
		})
	}
	t.Run("--config flag", func(t *testing.T) {
		n := startNode(t, nodeSpec{dataDir: "-", args: []string{"--config", cfg}})
		if got := n.ready["data_dir"]; got != fileDir {
			t.Errorf("data_dir: got %v, want %s", got, fileDir)
		}
	})
}
