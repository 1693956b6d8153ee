package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/api/apitest"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/internal/sse"
	"github.com/tetherhq/tether/store/memstore"
)

// waitFor bounds how long a test waits for an event that should come at once;
// it fails the test, it times nothing.
const waitFor = 10 * time.Second

// stream is an open GET /v1/changes.
type stream struct {
	resp   *http.Response
	blocks chan sse.Block
	end    chan error
}

func openChanges(t *testing.T, n *apitest.Node, lastID string) *stream {
	t.Helper()
	resp := changesRequest(t, n, lastID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/changes: got %d, want 200", resp.StatusCode)
	}
	// The body is a stream: the document is checked for status and headers.
	checkResponse(t, "admin", resp.Request, resp.StatusCode, resp.Header, nil)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type: got %q, want text/event-stream", ct)
	}
	s := &stream{resp: resp, blocks: make(chan sse.Block, 1024), end: make(chan error, 1)}
	go func() {
		r := sse.NewReader(resp.Body)
		for {
			b, err := r.Next()
			if err != nil {
				s.end <- err
				close(s.blocks)
				return
			}
			s.blocks <- b
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return s
}

func changesRequest(t *testing.T, n *apitest.Node, lastID string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.Admin.URL+"/v1/changes", nil)
	r.Header.Set("Authorization", "Bearer "+apitest.AdminKey)
	if lastID != "" {
		r.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := n.Admin.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// next returns the next event (skipping comments), failing the test if none
// comes.
func (s *stream) next(t *testing.T) sse.Block {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case b, ok := <-s.blocks:
			if !ok {
				t.Fatalf("the stream ended: %v", <-s.end)
			}
			if b.IsEvent() {
				return b
			}
		case <-timeout:
			t.Fatalf("no event within %v", waitFor)
		}
	}
}

// until returns the first event of type typ whose data is want, and the IDs
// of every event up to it.
func (s *stream) until(t *testing.T, typ, want string) (ids []string) {
	t.Helper()
	for {
		b := s.next(t)
		ids = append(ids, b.ID)
		if b.Type == typ && b.Data == want {
			return ids
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestChanges(t *testing.T) {
	ctx := context.Background()
	for _, st := range apitest.Stores() {
		t.Run(st.Name, func(t *testing.T) {
			n := apitest.Start(t, st.URL(t, ""), apitest.Options{})
			m := n.Manager
			s := openChanges(t, n, "")
			_, a, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			bobToken, bob, err := m.Create(ctx, tether.CreateParams{Subject: "bob"})
			if err != nil {
				t.Fatal(err)
			}

			var ids []string
			steps := []struct {
				name      string
				do        func() error
				typ, data string
			}{
				{"revoke", func() error { return m.Revoke(ctx, a.ID) }, "session", jsonOf(map[string]string{"id": a.ID})},
				{"roles", func() error { return m.SetRoles(ctx, "alice", []string{"ops"}) }, "subject", `{"subject":"alice"}`},
				{"rotate", func() error { _, _, err := m.Rotate(ctx, bobToken); return err }, "session", jsonOf(map[string]string{"id": bob.ID})},
				{"revoke all", func() error { _, err := m.RevokeSubject(ctx, "bob", ""); return err }, "subject", `{"subject":"bob"}`},
			}
			for _, step := range steps {
				if err := step.do(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				ids = append(ids, s.until(t, step.typ, step.data)...)
			}
			for i, id := range ids {
				epoch, _, ok := strings.Cut(id, ".")
				if !ok || epoch == "" || (i > 0 && !strings.HasPrefix(ids[0], epoch+".")) {
					t.Errorf("event ids: got %q, want <epoch>.<seq> of one epoch", ids)
					break
				}
			}

			t.Run("resume with Last-Event-ID", func(t *testing.T) {
				s.resp.Body.Close()
				// A change while nobody listens is still kept for the resumption.
				if _, err := m.RevokeSubject(ctx, "carol", ""); err != nil {
					t.Fatal(err)
				}
				r := openChanges(t, n, ids[0])
				var got []string
				for _, want := range ids[1:] {
					b := r.next(t)
					got = append(got, b.ID)
					if b.ID != want {
						t.Fatalf("replayed ids: got %q, want %q", got, ids[1:])
					}
				}
				if b := r.next(t); b.Type != "subject" || b.Data != `{"subject":"carol"}` {
					t.Errorf("after the replay: got %+v, want the change made while disconnected", b)
				}
			})
			t.Run("unknown Last-Event-ID resets", func(t *testing.T) {
				r := openChanges(t, n, "nosuchepoch.3")
				if b := r.next(t); b.Type != "reset" || b.ID == "" {
					t.Errorf("got %+v, want a reset event with an id", b)
				}
			})
		})
	}
}

func TestChangesHeartbeat(t *testing.T) {
	t.Cleanup(api.SetChangesHeartbeat(20 * time.Millisecond)) // runs after the node's cleanup
	n := apitest.Start(t, "memory:", apitest.Options{})
	s := openChanges(t, n, "")
	timeout := time.After(waitFor)
	for beats := 0; beats < 2; {
		select {
		case b := <-s.blocks:
			if len(b.Comments) > 0 && b.Comments[0] == "heartbeat" && !b.IsEvent() {
				beats++
			}
		case <-timeout:
			t.Fatal("no heartbeat")
		}
	}
}

func TestChangesNeedsAdminKey(t *testing.T) {
	n := apitest.Start(t, "memory:", apitest.Options{})
	for _, auth := range []string{"", "Bearer wrong-key-0123456789abcdef"} {
		r, _ := http.NewRequest(http.MethodGet, n.Admin.URL+"/v1/changes", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkResponse(t, "admin", r, resp.StatusCode, resp.Header, body)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: got %d, want 401", auth, resp.StatusCode)
		}
	}
}

// TestChangesChannelLost: when the node loses its store's change channel,
// every stream gets an error event and ends, so that clients stop trusting
// their caches; once the channel is back, streams open again.
func TestChangesChannelLost(t *testing.T) {
	for _, st := range apitest.Stores() {
		if st.Target == nil {
			continue // an in-process channel cannot be lost
		}
		t.Run(st.Name, func(t *testing.T) {
			proxy := servicetest.NewProxy(t, st.Target(t))
			n := apitest.Start(t, st.URL(t, proxy.Addr), apitest.Options{})
			s := openChanges(t, n, "")
			proxy.Stop()
			b := s.next(t)
			if b.Type != "error" || b.Data != `{"error":"channel_lost"}` {
				t.Fatalf("got %+v, want event: error with channel_lost", b)
			}
			select {
			case _, open := <-s.blocks:
				if open {
					t.Error("the stream went on after its error event")
				}
			case <-time.After(waitFor):
				t.Error("the stream did not end after its error event")
			}

			proxy.Start(t)
			r := openChanges(t, n, "") // waits for the channel to come back
			// The store's pooled connections were cut too: the first calls may fail.
			deadline := time.Now().Add(waitFor)
			for _, err := n.Manager.RevokeSubject(context.Background(), "alice", ""); err != nil; _, err = n.Manager.RevokeSubject(context.Background(), "alice", "") {
				if time.Now().After(deadline) {
					t.Fatalf("the store did not come back: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			r.until(t, "subject", `{"subject":"alice"}`)
		})
	}
}

// TestChangesClose: Server.Close (run by http.Server.Shutdown) ends every
// stream with an error event, so that shutdown is not held up by streams and
// clients go elsewhere; new streams are refused.
func TestChangesClose(t *testing.T) {
	n := apitest.Start(t, "memory:", apitest.Options{})
	s := openChanges(t, n, "")
	n.Server.Close()
	if b := s.next(t); b.Type != "error" || b.Data != `{"error":"shutdown"}` {
		t.Fatalf("got %+v, want event: error with shutdown", b)
	}
	resp := changesRequest(t, n, "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkResponse(t, "admin", resp.Request, resp.StatusCode, resp.Header, body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Close: got %d, want 503", resp.StatusCode)
	}
}

// TestChangesWithoutWatcher: a store that announces no changes has no stream
// to offer: 503, so that clients never cache on its account.
func TestChangesWithoutWatcher(t *testing.T) {
	st := struct{ tether.Store }{memstore.New()} // only the Store methods: no Watch
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(t)})
	if err != nil {
		t.Fatal(err)
	}
	w := serve(validated(t, "admin", srv.Admin()), req(http.MethodGet, "/v1/changes", nil, "Authorization", "Bearer "+testAdminKey))
	wantError(t, w, http.StatusServiceUnavailable, "unavailable", "announces no changes")
}
