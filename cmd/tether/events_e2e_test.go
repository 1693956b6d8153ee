package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// TestE2EEventsFollow runs `tether events --follow` against a real node, as
// another terminal would, and revokes a session: the revocation appears, with
// the admin as its actor.
func TestE2EEventsFollow(t *testing.T) {
	n := startNode(t, nodeSpec{})
	_, id := n.create(`{"subject":"alice"}`)

	cmd := exec.CommandContext(t.Context(), tetherBin, "events", "--follow", "--json", "--subject", "alice")
	cmd.Env = e2eEnv("TETHER_ADMIN_URL="+n.adm, "TETHER_ADMIN_KEY="+n.key)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan tether.Event)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e tether.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	next := func() tether.Event {
		t.Helper()
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatal("tether events --follow ended")
			}
			return e
		case <-time.After(20 * time.Second): // a deadline for a hang, not a timing
			t.Fatal("no event from tether events --follow")
		}
		return tether.Event{}
	}
	if e := next(); e.Type != tether.EventSessionCreated || e.SessionID != id {
		t.Fatalf("first event: %+v; want alice's session.created", e)
	}
	start := time.Now()
	if code, body := n.admin(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	e := next()
	t.Logf("the revocation showed in tether events --follow %v after the revoke returned", time.Since(start).Round(time.Millisecond))
	if e.Type != tether.EventSessionRevoked || e.SessionID != id || e.Subject != "alice" || e.Actor.Kind != tether.ActorAdmin {
		t.Fatalf("after the revoke: %+v; want alice's session.revoked by the admin", e)
	}
}
