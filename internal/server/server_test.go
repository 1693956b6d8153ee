package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer serves h on loopback within lim and returns it with its base URL.
// Requests whose path starts with /block wait until release is closed.
func testServer(t *testing.T, lim Limits) (s *Server, url string, entered <-chan struct{}, release func()) {
	t.Helper()
	in := make(chan struct{}, 64)
	gate := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/block") {
			in <- struct{}{}
			<-gate
		}
		io.WriteString(w, "ok")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s = New("test", &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, ln, lim, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() {
		release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !IsClosed(err) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String(), in, release
}

// get makes a request on a fresh connection and returns the response with its body read.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestInflightLimit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxInflight int
	}{{"one", 1}, {"three", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			s, url, entered, release := testServer(t, Limits{MaxInflight: tc.maxInflight})
			var wg sync.WaitGroup
			for range tc.maxInflight {
				wg.Go(func() {
					if resp, _ := get(t, url+"/block"); resp.StatusCode != http.StatusOK {
						t.Errorf("blocked request: got %d, want 200", resp.StatusCode)
					}
				})
				<-entered
			}
			resp, body := get(t, url+"/")
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
				!strings.Contains(body, `"error":"overloaded"`) {
				t.Errorf("over the limit: got %d, Retry-After %q, body %s; want 503 overloaded with Retry-After",
					resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			if got := s.Stats().Shed; got != 1 {
				t.Errorf("Shed = %d, want 1", got)
			}
			release()
			wg.Wait()
			if resp, _ := get(t, url+"/"); resp.StatusCode != http.StatusOK {
				t.Errorf("after the load: got %d, want 200", resp.StatusCode)
			}
		})
	}
}

// dialSilent opens n connections that never send a byte.
func dialSilent(t *testing.T, url string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// waitFor polls cond: connection accounting follows closes that happen in
// other goroutines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnCap(t *testing.T) {
	t.Run("idle connections make room", func(t *testing.T) {
		const maxConns = 4
		s, url, _, _ := testServer(t, Limits{MaxConns: maxConns, PressureIdle: time.Hour})
		held := dialSilent(t, url, maxConns)
		waitFor(t, "the held connections to be accepted", func() bool { return s.Stats().Conns == maxConns })
		for i := range 3 {
			if resp, _ := get(t, url+"/"); resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d at the cap: got %d, want 200", i, resp.StatusCode)
			}
		}
		// The first request made room by closing one held connection; a later
		// one may find that room again or, if the server has not yet seen the
		// request before close, take another.
		waitFor(t, "the requests' connections to close", func() bool { return s.Stats().Conns < maxConns })
		if st := s.Stats(); st.Evicted < 1 || st.Evicted > 3 || st.Refused != 0 {
			t.Errorf("Stats = %+v; want 1 to 3 evicted, none refused", st)
		}
		// The longest-idle went first: the first held connection is closed.
		held[0].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := held[0].Read(make([]byte, 1)); err == nil {
			t.Errorf("the longest-idle connection is still open")
		}
	})
	t.Run("silent connections go before used keep-alive ones", func(t *testing.T) {
		const maxConns = 3
		s, url, _, _ := testServer(t, Limits{MaxConns: maxConns, PressureIdle: time.Hour})
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		keepAlive := &http.Client{Transport: tr}
		fetch := func() {
			resp, err := keepAlive.Get(url + "/")
			if err != nil {
				t.Fatalf("keep-alive client: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		fetch() // its connection is now idle, and older than the silent ones
		dialSilent(t, url, maxConns-1)
		waitFor(t, "the cap to fill", func() bool { return s.Stats().Conns == maxConns })
		for range 5 {
			dialSilent(t, url, 1)
		}
		waitFor(t, "evictions", func() bool { return s.Stats().Evicted == 5 })
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url+"/", nil)
		resp, err := keepAlive.Do(req)
		if err != nil {
			t.Fatalf("keep-alive client after the crowd: %v", err)
		}
		resp.Body.Close()
		if !reused {
			t.Errorf("the used keep-alive connection was cut while silent ones were open")
		}
	})
	t.Run("busy connections are never cut", func(t *testing.T) {
		const maxConns = 2
		s, url, entered, release := testServer(t, Limits{MaxConns: maxConns, PressureIdle: time.Hour})
		var wg sync.WaitGroup
		for range maxConns {
			wg.Go(func() {
				if resp, _ := get(t, url+"/block"); resp.StatusCode != http.StatusOK {
					t.Errorf("busy request: got %d, want 200", resp.StatusCode)
				}
			})
			<-entered
		}
		c := dialSilent(t, url, 1)[0]
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("a connection over the cap was served while every slot was busy")
		}
		if got := s.Stats().Refused; got != 1 {
			t.Errorf("Refused = %d, want 1", got)
		}
		release()
		wg.Wait()
	})
	t.Run("pressure shortens keep-alive", func(t *testing.T) {
		const maxConns = 8
		s, url, _, _ := testServer(t, Limits{MaxConns: maxConns, PressureIdle: 20 * time.Millisecond})
		dialSilent(t, url, maxConns)
		// Above three quarters of the cap, idle connections are closed down to
		// it, and no further: without pressure nothing is reaped.
		const reaped = maxConns - maxConns*3/4
		waitFor(t, "idle connections to be reaped", func() bool { st := s.Stats(); return st.Evicted >= reaped && st.Conns == maxConns-reaped })
		if st := s.Stats(); st.Evicted != reaped || st.Conns != maxConns-reaped {
			t.Errorf("after reaping: %+v, want %d evicted and %d open", st, reaped, maxConns-reaped)
		}
	})
}

func TestDrain(t *testing.T) {
	s, url, _, _ := testServer(t, Limits{})
	for _, tc := range []struct {
		path   string
		status int
	}{{"/readyz", http.StatusOK}, {"/v1/session", http.StatusOK}} {
		if resp, _ := get(t, url+tc.path); resp.StatusCode != tc.status {
			t.Errorf("before Drain, GET %s: got %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
	s.Drain()
	for _, tc := range []struct {
		path   string
		status int
	}{{"/readyz", http.StatusServiceUnavailable}, {"/v1/session", http.StatusOK}} {
		resp, _ := get(t, url+tc.path)
		if resp.StatusCode != tc.status || !resp.Close {
			t.Errorf("draining, GET %s: got %d (close %v), want %d and Connection: close", tc.path, resp.StatusCode, resp.Close, tc.status)
		}
	}
}

// Shutdown lets a request in flight finish, and leaves no goroutine behind.
func TestShutdownFinishesInflight(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, gate := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-gate
		io.WriteString(w, "finished")
	})
	s := New("test", &http.Server{Handler: h}, ln, Limits{}, slog.New(slog.DiscardHandler))
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(gate)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight failed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "finished" {
		t.Errorf("in-flight request: got %d %q, want 200 finished", resp.StatusCode, body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !IsClosed(err) {
		t.Errorf("Serve: %v", err)
	}
	conn.Close()
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
