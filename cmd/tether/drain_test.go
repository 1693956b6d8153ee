package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowCreate starts POST /v1/sessions on the admin listener and sends its body
// a byte at a time over about d, so that the request is in flight all that
// while. The returned channel yields the status and the new session's token.
func slowCreate(t *testing.T, n *node, subject string, d time.Duration) <-chan slowResult {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.adm, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"subject":%q}`, subject)
	fmt.Fprintf(c, "POST /v1/sessions HTTP/1.1\r\nHost: tether\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", n.key, len(body))
	out := make(chan slowResult, 1)
	go func() {
		defer c.Close()
		step := d / time.Duration(len(body))
		for i := range len(body) {
			time.Sleep(step)
			if _, err := io.WriteString(c, body[i:i+1]); err != nil {
				out <- slowResult{err: err}
				return
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			out <- slowResult{err: err}
			return
		}
		defer resp.Body.Close()
		var created struct{ Token string }
		json.NewDecoder(resp.Body).Decode(&created)
		out <- slowResult{status: resp.StatusCode, token: created.Token}
	}()
	return out
}

type slowResult struct {
	status int
	token  string
	err    error
}

// TestGracefulDrain sends SIGTERM to a node under load (DESIGN §13, issue 15
// item 3): /readyz must turn 503 at once; requests go on being served until
// the load balancer (here a poller of /readyz) stops sending; a request in
// flight across the listeners' close finishes and its write is kept; and the
// process exits 0. Zero requests that had been accepted may fail.
func TestGracefulDrain(t *testing.T) {
	for _, tc := range []struct {
		name       string
		drainDelay time.Duration
		balanced   bool // clients that stop when /readyz says 503
	}{
		{"behind a load balancer", 400 * time.Millisecond, true},
		{"no drain delay", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, fmt.Sprintf("server:\n  drain_delay: %v\n  shutdown_timeout: 10s\n", tc.drainDelay))
			n := startNode(t, nodeSpec{args: []string{"--config", cfg}}) // the embedded bolt store
			token, _ := n.create(`{"subject":"alice"}`)

			var (
				wg                sync.WaitGroup
				lbGone            atomic.Bool // the load balancer saw /readyz 503 and stopped sending
				sawDraining       atomic.Bool
				served, failed    atomic.Int64
				firstFailure      atomic.Value
				client            = &http.Client{Timeout: 10 * time.Second}
				balancerReadyzErr atomic.Value
			)
			if tc.balanced {
				wg.Go(func() { // the load balancer's health check
					for !lbGone.Load() {
						resp, err := client.Get(n.pub + "/readyz")
						if err != nil {
							balancerReadyzErr.Store(err.Error())
							lbGone.Store(true)
							return
						}
						resp.Body.Close()
						if resp.StatusCode == http.StatusServiceUnavailable {
							sawDraining.Store(true)
							lbGone.Store(true)
						}
						time.Sleep(5 * time.Millisecond)
					}
				})
				for range 8 { // traffic it routes to this node
					wg.Go(func() {
						for !lbGone.Load() {
							req, _ := http.NewRequest(http.MethodGet, n.pub+"/v1/session", nil)
							req.Header.Set("Authorization", "Bearer "+token)
							resp, err := client.Do(req)
							if err == nil {
								io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
							}
							switch {
							case err != nil:
								failed.Add(1)
								firstFailure.CompareAndSwap(nil, err.Error())
							case resp.StatusCode != http.StatusOK:
								failed.Add(1)
								firstFailure.CompareAndSwap(nil, resp.Status)
							default:
								served.Add(1)
							}
						}
					})
				}
			}

			// In flight from before the signal until after the listeners close.
			slow := slowCreate(t, n, "bob", tc.drainDelay+time.Second)
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			var exited time.Duration
			select {
			case <-n.done:
				exited = time.Since(start)
			case <-time.After(20 * time.Second):
				t.Fatalf("no exit within 20s of SIGTERM")
			}
			n.killed = true // the checks of a clean stop are made here
			lbGone.Store(true)
			wg.Wait()

			if code := n.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit status after SIGTERM: got %d, want 0:\n%s", code, n.stderr)
			}
			if _, ok := n.stderr.find("tether stopped"); !ok {
				t.Errorf("no \"tether stopped\" log line:\n%s", n.stderr)
			}
			res := <-slow
			if res.err != nil || res.status != http.StatusCreated {
				t.Errorf("the request in flight during the drain: got %d, %v; want 201", res.status, res.err)
			}
			t.Logf("exit %v after SIGTERM; %d requests served while the load balancer sent traffic, %d failed", exited, served.Load(), failed.Load())
			if tc.balanced {
				if !sawDraining.Load() {
					t.Errorf("the load balancer never saw /readyz 503 (its last error: %v)", balancerReadyzErr.Load())
				}
				if failed.Load() != 0 {
					t.Errorf("%d accepted requests failed during the drain (first: %v); want 0", failed.Load(), firstFailure.Load())
				}
				if served.Load() == 0 {
					t.Errorf("no request was served during the test")
				}
			}

			// The session created by the request in flight was committed.
			again := startNode(t, nodeSpec{dataDir: n.dataDir, adminKey: n.key})
			if code, b := again.bearer(http.MethodGet, "/v1/session", res.token); code != http.StatusOK {
				t.Errorf("the session created during the drain, after a restart: got %d %s, want 200", code, b)
			}
		})
	}
}
