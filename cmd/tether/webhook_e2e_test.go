package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/webhook"
)

// delivery is one request a webhook receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

// TestE2EWebhookDelivers: a real `tether serve` with a webhooks section
// (secret file relative to the config file) delivers a revocation to the
// receiver, signed with the configured secret, and counts it in /metrics.
// Only the subscribed type is sent.
func TestE2EWebhookDelivers(t *testing.T) {
	got := make(chan delivery, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	key := make([]byte, 32)
	rand.Read(key)
	dir := t.TempDir()
	writeFile(t, dir, "hook.secret", "whsec_"+base64.StdEncoding.EncodeToString(key)+"\n")
	cfg := writeFile(t, dir, "tether.yaml", fmt.Sprintf(
		"webhooks:\n  - { url: %q, secret_file: hook.secret, events: [session.revoked] }\n", rcv.URL+"/hooks/tether"))
	n := startNode(t, nodeSpec{args: []string{"--config", cfg}})

	_, id := n.create(`{"subject":"alice"}`)
	if code, body := n.admin(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second): // a deadline for a hang, not a timing
		t.Fatal("no webhook delivery within 30 s of the revoke")
	}

	id0, ts := d.header.Get("webhook-id"), d.header.Get("webhook-timestamp")
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", ts, err)
	}
	if want := webhook.Sign(key, id0, unix, d.body); d.header.Get("webhook-signature") != want {
		t.Errorf("webhook-signature %q, want %q", d.header.Get("webhook-signature"), want)
	}
	var p struct {
		Type string       `json:"type"`
		Data tether.Event `json:"data"`
	}
	if err := json.Unmarshal(d.body, &p); err != nil {
		t.Fatalf("body %s: %v", d.body, err)
	}
	if p.Type != tether.EventSessionRevoked || p.Data.ID != id0 || p.Data.SessionID != id || p.Data.Subject != "alice" || p.Data.Actor.Kind != tether.ActorAdmin {
		t.Errorf("delivered %s; want alice's session.revoked by the admin, with webhook-id its event id", d.body)
	}
	if bytes.Contains(d.body, key) || strings.Contains(string(d.body), base64.StdEncoding.EncodeToString(key)) {
		t.Error("the delivery carries the secret")
	}

	// The counter moves once the receiver's answer is back, a moment after
	// the receiver saw the request.
	want := fmt.Sprintf("tether_webhook_delivered_total{endpoint=%q} 1", rcv.URL+"/hooks/tether")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, metrics := n.admin(http.MethodGet, "/metrics", "")
		if code == http.StatusOK && strings.Contains(string(metrics), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics (%d) lacks %q:\n%s", code, want, metrics)
		}
	}
	select {
	case d := <-got:
		t.Errorf("a second delivery (only session.revoked is subscribed): %s", d.body)
	default:
	}
}
