package adminclient

import (
	"net/http"
	"testing"
	"time"
)

func TestNewHTTPClient(t *testing.T) {
	tests := []struct {
		name string
		hc   *http.Client
		want time.Duration
	}{
		{"nil gets the default timeout", nil, DefaultTimeout},
		{"no timeout gets the default", &http.Client{}, DefaultTimeout},
		{"a timeout is kept", &http.Client{Timeout: 5 * time.Second}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before http.Client
			if tt.hc != nil {
				before = *tt.hc
			}
			c, err := New("http://127.0.0.1:8081", "k", tt.hc)
			if err != nil {
				t.Fatal(err)
			}
			if c.hc.Timeout != tt.want {
				t.Errorf("timeout %v, want %v", c.hc.Timeout, tt.want)
			}
			if c.hc.CheckRedirect == nil {
				t.Error("redirects are followed, want them refused")
			}
			if tt.hc != nil && (tt.hc.CheckRedirect != nil || tt.hc.Timeout != before.Timeout) {
				t.Error("New changed the caller's http.Client")
			}
		})
	}
}
