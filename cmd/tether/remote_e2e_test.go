package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/remote"
)

// TestE2ERemoteClient runs DESIGN §14 against the binary: both listeners
// serve their OpenAPI document; a remote client validates from its cache
// until an RFC 7009 revocation on the public listener reaches it through the
// change stream, which takes no slot of the admin listener's in-flight
// budget; and SIGTERM ends the stream at once, so that an open stream does
// not hold the shutdown.
func TestE2ERemoteClient(t *testing.T) {
	// One request at a time on the admin listener: an open change stream must
	// not hold that slot, or nothing else would get through.
	n := startNode(t, nodeSpec{args: []string{"--server-admin-max-inflight", "1"}})
	for _, base := range []string{n.pub, n.adm} {
		code, b := n.mustCall(http.MethodGet, base+"/openapi.json", "", "", "")
		var doc struct{ OpenAPI string }
		if code != http.StatusOK || json.Unmarshal(b, &doc) != nil || doc.OpenAPI != "3.1.0" {
			t.Errorf("GET %s/openapi.json: got %d, openapi %q", base, code, doc.OpenAPI)
		}
	}

	c, err := remote.New(remote.Config{AdminURL: n.adm, AdminKey: n.key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	token, id := n.create(`{"subject":"alice","roles":["editor"]}`)
	ctx := context.Background()
	within(t, "the change stream to come up", c.Connected)
	s, err := c.Validate(ctx, token)
	if err != nil || s.ID != id || s.Subject != "alice" {
		t.Fatalf("remote Validate: got %+v, %v; want session %s of alice", s, err, id)
	}

	code, _ := n.mustCall(http.MethodPost, n.pub+"/oauth2/revoke", "", "application/x-www-form-urlencoded",
		url.Values{"token": {token}}.Encode())
	if code != http.StatusOK {
		t.Fatalf("POST /oauth2/revoke: got %d, want 200", code)
	}
	within(t, "the remote client to refuse the revoked token", func() bool {
		_, err := c.Validate(ctx, token)
		return errors.Is(err, tether.ErrInvalidToken)
	})

	// SIGTERM with the stream open: the server ends it at once, rather than
	// waiting out its 10 s shutdown deadline for a stream that never idles.
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		t.Fatal("tether still running 5 s after SIGTERM with a change stream open")
	}
	n.killed = true // stopped here; n.stop only checks what it printed
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status after SIGTERM: got %d, want 0", code)
	}
	within(t, "the remote client to see its stream end", func() bool { return !c.Connected() })
	if _, err := c.Validate(ctx, token); !errors.Is(err, tether.ErrUnavailable) {
		t.Errorf("server gone: got %v, want ErrUnavailable", err)
	}
}

// within polls cond until it holds, failing the test after 10 s. It waits;
// it times nothing.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
