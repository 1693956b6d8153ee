package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRelease: a long handler that gives back its in-flight slot no longer
// counts against MaxInflight, so short requests still get through; giving it
// back twice gives back one slot.
func TestRelease(t *testing.T) {
	entered := make(chan struct{}, 8)
	gate := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			Release(r)
			Release(r)
			entered <- struct{}{}
			<-gate
		}
		io.WriteString(w, "ok")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New("test", &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, ln, Limits{MaxInflight: 1}, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	url := "http://" + ln.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})

	streams := make(chan int, 3)
	for range 3 {
		go func() {
			resp, err := http.Get(url + "/stream")
			if err != nil {
				streams <- 0
				return
			}
			resp.Body.Close()
			streams <- resp.StatusCode
		}()
		<-entered
	}
	if got := s.Stats().Inflight; got != 0 {
		t.Errorf("in flight with three released streams open: got %d, want 0", got)
	}
	if resp, _ := get(t, url+"/"); resp.StatusCode != http.StatusOK {
		t.Errorf("a short request beside three released streams (MaxInflight 1): got %d, want 200", resp.StatusCode)
	}
	close(gate)
	for range 3 {
		if code := <-streams; code != http.StatusOK {
			t.Errorf("stream: got %d, want 200", code)
		}
	}
	if got := s.Stats().Inflight; got != 0 {
		t.Errorf("in flight after the streams ended: got %d, want 0", got)
	}

	Release(httptest.NewRequest(http.MethodGet, "/", nil)) // not served by a Server: a no-op
}
