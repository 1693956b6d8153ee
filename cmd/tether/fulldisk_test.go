package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/servicetest"
)

// TestFullDisk runs a node whose data dir is a small file system that the
// test fills (DESIGN §13, issue 15 item 4): creates answer 503 with a log
// line that says the disk is full; validations, listings and /readyz go on;
// once space returns, creates succeed again without a restart; and after a
// restart every acknowledged session is there.
func TestFullDisk(t *testing.T) {
	needBinary(t)
	dir := servicetest.SmallFS(t, 8<<20)
	n := startNode(t, nodeSpec{dataDir: dir})

	var tokens []string
	for i := range 10 {
		tok, _ := n.create(fmt.Sprintf(`{"subject":"user%d"}`, i%3))
		tokens = append(tokens, tok)
	}
	free := servicetest.FillFS(t, dir)

	var status int
	var body []byte
	for i := 0; i < 20_000; i++ {
		status, body = n.admin(http.MethodPost, "/v1/sessions", fmt.Sprintf(`{"subject":"user%d"}`, i%3))
		if status != http.StatusCreated {
			break
		}
		tokens = append(tokens, tokenOf(t, body))
	}
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("create on a full disk: got %d %s, want 503 unavailable", status, body)
	}
	// The line reaches us through the child's stderr pipe, maybe after the reply.
	line := n.waitLog("store unavailable", 10*time.Second)
	if !strings.Contains(fmt.Sprint(line["err"]), "no space left on device") {
		t.Errorf("no log line saying the disk is full; got %v", line)
	} else {
		t.Logf("log line: %v", line["err"])
	}

	// Reads go on.
	for _, tok := range tokens {
		if code, b := n.bearer(http.MethodGet, "/v1/session", tok); code != http.StatusOK {
			t.Fatalf("validation on a full disk: got %d %s, want 200", code, b)
		}
	}
	if code, b := n.admin(http.MethodGet, "/v1/subjects/user0/sessions", ""); code != http.StatusOK {
		t.Errorf("listing on a full disk: got %d %s, want 200", code, b)
	}
	if code, b, err := n.call(http.MethodGet, n.pub+"/readyz", "", "", ""); err != nil || code != http.StatusOK {
		t.Errorf("/readyz on a full disk: got %d %s %v, want 200: reads are served", code, b, err)
	}

	// Space returns: writes resume without a restart.
	free()
	for i := range 5 {
		tok, _ := n.create(fmt.Sprintf(`{"subject":"after%d"}`, i))
		tokens = append(tokens, tok)
	}

	// Nothing acknowledged was lost.
	n.stop()
	n.killed = true // stopped and checked above
	again := startNode(t, nodeSpec{dataDir: dir, adminKey: n.key})
	for _, tok := range tokens {
		if code, b := again.bearer(http.MethodGet, "/v1/session", tok); code != http.StatusOK {
			t.Errorf("an acknowledged session after the restart: got %d %s, want 200", code, b)
		}
	}
	t.Logf("%d acknowledged sessions, all there after the restart", len(tokens))
}

func tokenOf(t *testing.T, body []byte) string {
	t.Helper()
	var c struct{ Token string }
	mustJSON(t, body, &c)
	return c.Token
}
