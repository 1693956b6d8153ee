package webhook_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/webhook"
)

// TestSignVector is the Standard Webhooks specification's own example.
func TestSignVector(t *testing.T) {
	secret, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := webhook.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s; want %s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32)), true},
		{base64.StdEncoding.EncodeToString(make([]byte, 32)), false}, // no prefix
		{"whsec_not base64!", false},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8)), false}, // too short
	} {
		if _, err := webhook.ParseSecret(c.in); (err == nil) != c.ok {
			t.Errorf("ParseSecret(%q) = %v; want ok %v", c.in, err, c.ok)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/tether", true},
		{"http://127.0.0.1:9000/hook", true},
		{"http://[::1]:9000/hook", true},
		{"http://hooks.example.com/hook", false},
		{"https://user:pw@hooks.example.com/", false},
		{"/relative", false},
		{"ftp://hooks.example.com/", false},
	} {
		if err := webhook.CheckURL(c.url); (err == nil) != c.ok {
			t.Errorf("CheckURL(%q) = %v; want ok %v", c.url, err, c.ok)
		}
	}
}

func newSecret(t *testing.T) (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	s := "whsec_" + base64.StdEncoding.EncodeToString(b)
	key, err := webhook.ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

// receiver is a Go receiver that checks signatures written from the spec, and
// can be down (503).
type receiver struct {
	secret []byte
	down   atomic.Bool
	mu     sync.Mutex
	got    []tether.Event // in arrival order, duplicates included
	bad    int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
	var p struct {
		Type string       `json:"type"`
		Data tether.Event `json:"data"`
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if webhook.Sign(rc.secret, r.Header.Get("webhook-id"), ts, body) != r.Header.Get("webhook-signature") ||
		json.Unmarshal(body, &p) != nil || p.Data.ID != r.Header.Get("webhook-id") || p.Type != p.Data.Type {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, p.Data)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) events() ([]tether.Event, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]tether.Event(nil), rc.got...), rc.bad
}

// waitFor polls cond; the bound is for a hang, not a timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stores opens two nodes' stores on one shared backend, for each backend.
var backends = []struct {
	name string
	open func(t *testing.T) (a, b tether.Store)
	// perSlot: the log keeps commit order per hash slot (a session's own
	// events), not across nodes writing to different slots at once.
	perSlot bool
}{
	{"memory", func(t *testing.T) (tether.Store, tether.Store) {
		s := memstore.New()
		return s, s
	}, false},
	{"redis", func(t *testing.T) (tether.Store, tether.Store) {
		addr := servicetest.SharedRedis(t)
		u := "redis://" + addr + "/0?prefix=" + servicetest.RedisPrefix(t, addr)
		return openStore(t, u), openStore(t, u)
	}, false},
	{"postgres", func(t *testing.T) (tether.Store, tether.Store) {
		u := servicetest.FreshPostgres(t)
		return openStore(t, u), openStore(t, u)
	}, false},
	// Events reach a Cluster's log through per-slot outboxes.
	{"redis-cluster", func(t *testing.T) (tether.Store, tether.Store) {
		servicetest.SkipShort(t, "starts a Redis Cluster")
		u := "redis+cluster://" + strings.Join(servicetest.StartRedisCluster(t), ",")
		return openStore(t, u), openStore(t, u)
	}, true},
}

func openStore(t *testing.T, u string) tether.Store {
	s, err := store.Open(context.Background(), u, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newManager(t *testing.T, s tether.Store) *tether.Manager {
	m, err := tether.NewManager(tether.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newDeliverer(t *testing.T, m *tether.Manager, eps ...webhook.Endpoint) *webhook.Deliverer {
	d, err := webhook.New(webhook.Config{Manager: m, Endpoints: eps, Poll: 20 * time.Millisecond, LeaseWindow: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestDeliveryTwoNodes: two nodes deliver one endpoint while it is down for a
// while; once it is back every event arrives, in order, each signed; any
// duplicate has the same webhook-id.
func TestDeliveryTwoNodes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			sa, sb := b.open(t)
			ma, mb := newManager(t, sa), newManager(t, sb)
			_, key := newSecret(t)
			rc := &receiver{secret: key}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			ep := webhook.Endpoint{URL: srv.URL + "/hook", Secret: key,
				Events: []string{tether.EventSessionCreated, tether.EventSessionRevoked}}
			newDeliverer(t, ma, ep)
			newDeliverer(t, mb, ep)
			waitFor(t, "the endpoint's state", func() bool { st, _ := ma.State(context.Background(), webhook.StateKey(ep.URL)); return st != nil })

			rc.down.Store(true)
			ctx := context.Background()
			var want []string
			for i := range 10 {
				m := ma
				if i%2 == 1 {
					m = mb
				}
				_, s, err := m.Create(ctx, tether.CreateParams{Subject: fmt.Sprint("user", i), Roles: []string{"x"}})
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, tether.EventSessionCreated+"/"+s.ID)
				if err := m.Revoke(ctx, s.ID); err != nil {
					t.Fatal(err)
				}
				want = append(want, tether.EventSessionRevoked+"/"+s.ID)
			}
			time.Sleep(300 * time.Millisecond) // a few failed attempts while down
			rc.down.Store(false)

			waitFor(t, "every event", func() bool {
				got, _ := rc.events()
				return len(dedupe(got)) >= len(want)
			})
			got, bad := rc.events()
			if bad != 0 {
				t.Errorf("%d deliveries failed the signature check", bad)
			}
			uniq := dedupe(got)
			delivered := make([]string, len(uniq))
			for i, e := range uniq {
				delivered[i] = e.Type + "/" + e.SessionID
			}
			if b.perSlot {
				// Each session's events in order; sessions may interleave.
				bySession := func(a, b string) int { return strings.Compare(path.Base(a), path.Base(b)) }
				slices.SortStableFunc(want, bySession)
				slices.SortStableFunc(delivered, bySession)
			}
			for i := range want {
				if delivered[i] != want[i] {
					t.Fatalf("delivery %d: %s; want %s (roles.changed filtered out, order kept)", i, delivered[i], want[i])
				}
			}
			t.Logf("%s: %d events, %d deliveries (%d duplicates, each with its event's webhook-id)", b.name, len(uniq), len(got), len(got)-len(uniq))
		})
	}
}

// dedupe keeps the first delivery of each webhook-id, and fails on a repeat
// that is not an exact duplicate.
func dedupe(evs []tether.Event) []tether.Event {
	seen := map[string]bool{}
	var out []tether.Event
	for _, e := range evs {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

// TestStandardWebhooksReceiver delivers to a receiver that verifies every
// request with the reference implementation from npm.
func TestStandardWebhooksReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm and node")
	}
	dir := filepath.Join("testdata", "receiver")
	servicetest.NPMInstall(t, dir)
	secretText, key := newSecret(t)
	port := servicetest.FreePort(t)
	downFile := filepath.Join(t.TempDir(), "down")
	cmd := exec.Command("node", filepath.Join(dir, "receiver.mjs"), strconv.Itoa(port), downFile)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secretText)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var v map[string]any
			if json.Unmarshal(sc.Bytes(), &v) == nil {
				lines <- v
			}
		}
		close(lines)
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case v, ok := <-lines:
			if !ok {
				t.Fatal("the receiver exited")
			}
			return v
		case <-time.After(30 * time.Second):
			t.Fatal("no word from the receiver")
		}
		return nil
	}
	if v := next(); v["listening"] == nil {
		t.Fatalf("receiver: %v", v)
	}

	m := newManager(t, memstore.New())
	newDeliverer(t, m, webhook.Endpoint{URL: fmt.Sprintf("http://127.0.0.1:%d/", port), Secret: key})
	time.Sleep(100 * time.Millisecond) // let the endpoint's start be recorded before the events
	ctx := context.Background()
	_, s, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RevokeSubject(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{tether.EventSessionCreated, tether.EventSubjectRevoked} {
		v := next()
		if v["ok"] != true || v["type"] != want {
			t.Fatalf("the reference receiver says %v; want a verified %s", v, want)
		}
		if want == tether.EventSessionCreated {
			if d, _ := v["data"].(map[string]any); d["session_id"] != s.ID {
				t.Errorf("data: %v; want session %s", d, s.ID)
			}
		}
	}
}
