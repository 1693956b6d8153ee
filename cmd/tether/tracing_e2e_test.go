package main

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collected is one span as an OTLP collector received it.
type collected struct {
	name                string
	trace, span, parent string
	client              bool
}

// otlpCollector is a minimal OTLP/HTTP traces receiver.
type otlpCollector struct {
	mu    sync.Mutex
	spans []collected
	raw   []byte // every export, to search for secrets
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if r.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", r.URL.Path, err), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.raw = append(c.raw, b...)
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans = append(c.spans, collected{name: s.Name, trace: hex.EncodeToString(s.TraceId),
					span: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId),
					client: s.Kind.String() == "SPAN_KIND_CLIENT"})
			}
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// find returns the first span that match accepts.
func (c *otlpCollector) find(match func(collected) bool) (collected, bool) {
	c.mu.Lock()
	spans := slices.Clone(c.spans) // match may call find
	c.mu.Unlock()
	for _, s := range spans {
		if match(s) {
			return s, true
		}
	}
	return collected{}, false
}

// TestE2ETracing: `tether serve` with OTEL_EXPORTER_OTLP_ENDPOINT sends
// spans to that collector: each request's span named by its route, the store
// calls under it, and a client span for each webhook delivery and JWKS fetch
// whose traceparent the other side got.
func TestE2ETracing(t *testing.T) {
	col := &otlpCollector{}
	colSrv := httptest.NewServer(col)
	defer colSrv.Close()
	traceparents := make(chan string, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traceparents <- r.Header.Get("traceparent")
	}))
	defer rcv.Close()
	jwksFetches := make(chan string, 16)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jwksFetches <- r.Header.Get("traceparent")
		w.Header().Set("Content-Type", "application/jwk-set+json")
		io.WriteString(w, `{"keys":[]}`)
	}))
	defer jwks.Close()

	key := make([]byte, 32)
	rand.Read(key)
	dir := t.TempDir()
	writeFile(t, dir, "hook.secret", "whsec_"+base64.StdEncoding.EncodeToString(key))
	cfg := writeFile(t, dir, "tether.yaml", fmt.Sprintf(`issuer: "https://b.example"
handshake:
  trusted_issuers:
    - { issuer: "https://x.example", format: jwt, alg: EdDSA, jwks_url: %q }
webhooks: [{url: %q, secret_file: hook.secret, events: [session.revoked]}]
`, jwks.URL+"/jwks.json", rcv.URL))
	n := startNode(t, nodeSpec{
		args: []string{"--config", cfg, "--max-staleness", "0"}, // no cache: validation reads the store
		env:  []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + colSrv.URL, "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=tether-e2e"},
	})
	if on, _ := n.ready["tracing"].(bool); !on {
		t.Fatalf("ready line says tracing %v, want on", n.ready["tracing"])
	}
	token, id := n.create(`{"subject":"alice"}`)
	if code, body := n.bearer(http.MethodGet, "/v1/session", token); code != http.StatusOK {
		t.Fatalf("validate: %d %s", code, body)
	}
	if code, body := n.admin(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	// A handshake token from x.example with a key ID the node has not seen:
	// the node fetches x.example's JWKS (which lacks it) within the request.
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	now := time.Now().Unix()
	sig := make([]byte, 64)
	rand.Read(sig)
	hs := seg(`{"alg":"EdDSA","typ":"handshake+jwt","kid":"unknown-kid"}`) + "." +
		seg(fmt.Sprintf(`{"iss":"https://x.example","aud":"https://b.example","sub":"alice","sid":"s1","jti":"j1","iat":%d,"exp":%d}`, now, now+60)) +
		"." + base64.RawURLEncoding.EncodeToString(sig)
	if code, body, err := n.call(http.MethodPost, n.pub+"/v1/handshakes/exchange", "", "application/json", `{"token":"`+hs+`"}`); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("exchange of a token signed by no known key: %d %s %v", code, body, err)
	}

	wait := func(what string, ch chan string) []string {
		t.Helper()
		select {
		case tp := <-ch:
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[0] != "00" {
				t.Fatalf("%s: traceparent %q is not W3C trace context", what, tp)
			}
			return parts
		case <-time.After(30 * time.Second): // a bound for a hang, not a timing
			t.Fatalf("no %s", what)
		}
		return nil
	}
	parts := wait("webhook delivery", traceparents)
	jwksParts := wait("JWKS fetch", jwksFetches)

	checks := []struct {
		what  string
		match func(collected) bool
	}{
		{"GET /v1/session with store.Get under it", func(s collected) bool { return s.name == "GET /v1/session" && col.child(s, "store.Get") }},
		{"POST /v1/sessions with store.Create under it", func(s collected) bool { return s.name == "POST /v1/sessions" && col.child(s, "store.Create") }},
		{"DELETE /v1/sessions/{id} with store.Delete under it", func(s collected) bool {
			return s.name == "DELETE /v1/sessions/{id}" && col.child(s, "store.Delete")
		}},
		{"the webhook's client span, named in its traceparent", func(s collected) bool { return s.client && s.trace == parts[1] && s.span == parts[2] }},
		// The fetch runs apart from the exchange that needed it (its callers
		// may give up), so it is a trace of its own.
		{"the JWKS fetch's client span, named in its traceparent", func(s collected) bool {
			return s.client && s.trace == jwksParts[1] && s.span == jwksParts[2]
		}},
		{"POST /v1/handshakes/exchange", func(s collected) bool { return s.name == "POST /v1/handshakes/exchange" }},
	}
	deadline := time.Now().Add(30 * time.Second) // spans are exported in batches
	for _, c := range checks {
		for {
			if _, ok := col.find(c.match); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the collector has no span: %s", c.what)
			}
			time.Sleep(50 * time.Millisecond) // polling the collector
		}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for name, secret := range map[string]string{"session token": token, "admin key": n.key, "token prefix": "tts_", "webhook secret": base64.StdEncoding.EncodeToString(key)} {
		if bytes.Contains(col.raw, []byte(secret)) {
			t.Errorf("the exported spans hold the %s", name)
		}
	}
}

// child reports whether some span named name has parent as its parent.
func (c *otlpCollector) child(parent collected, name string) bool {
	_, ok := c.find(func(s collected) bool { return s.name == name && s.parent == parent.span && s.trace == parent.trace })
	return ok
}
