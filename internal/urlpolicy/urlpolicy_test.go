package urlpolicy

import (
	"strings"
	"testing"
)

func TestHTTPSOrLoopback(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example.com/.well-known/jwks.json", true},
		{"http://127.0.0.1:9000/hook", true},
		{"http://[::1]:9000/hook", true},
		{"http://localhost:8080/", true},
		{"http://idp.example.com/", false},
		{"https://user:pw@idp.example.com/", false},
		{"/relative", false},
		{"ftp://idp.example.com/", false},
		{"http://127.0.0.1.evil.example/", false},
	} {
		if err := HTTPSOrLoopback(c.url); (err == nil) != c.ok {
			t.Errorf("HTTPSOrLoopback(%q) = %v; want ok %v", c.url, err, c.ok)
		}
	}
	if err := HTTPSOrLoopback("http://idp.example.com/x?token=secret"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v shows the query", err)
	}
}
