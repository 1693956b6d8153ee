package ssf

import (
	"errors"
	"net/http/httptest"
	"testing"
)

// TestClientEndpoint: an endpoint a client names must be https to a public
// address; the node refuses its own network (SSRF).
func TestClientEndpoint(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://receiver.example.com/ssf/events", true},
		{"https://203.0.113.9/ssf", true},
		{"http://receiver.example.com/ssf", false},
		{"https://localhost/ssf", false},
		{"https://admin.localhost/ssf", false},
		{"https://127.0.0.1:8081/v1/sessions", false},
		{"https://[::1]/x", false},
		{"https://10.1.2.3/x", false},
		{"https://192.168.0.1/x", false},
		{"https://169.254.169.254/latest/meta-data", false},
		{"https://[fe80::1]/x", false},
		{"https://0.0.0.0/x", false},
		{"https://[::ffff:127.0.0.1]/x", false},
		{"https://user:pw@receiver.example.com/", false},
	} {
		if err := checkClientEndpoint(c.url); (err == nil) != c.ok {
			t.Errorf("checkClientEndpoint(%q) = %v; want ok %v", c.url, err, c.ok)
		}
	}
}

// TestPublicClientRefusesPrivateDial: a name that resolves inside the network
// is refused when dialled, not only when the stream is set.
func TestPublicClientRefusesPrivateDial(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	_, err := publicClient().Get(srv.URL) // 127.0.0.1
	if !errors.Is(err, errPrivateEndpoint) {
		t.Fatalf("dial to loopback: %v; want errPrivateEndpoint", err)
	}
}
