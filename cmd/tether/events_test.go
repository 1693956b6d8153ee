package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestEventsReadsToTheEnd: `tether events` follows the cursor until it stops
// moving, past short and empty pages (a store that skipped filtered-out
// events in bounded reads returns them), and prints every event.
func TestEventsReadsToTheEnd(t *testing.T) {
	pages := map[string]string{ // after → page
		"":   `{"events":[{"id":"evt_1","time":"2026-03-01T12:00:00Z","type":"session.created","subject":"alice","actor":{"kind":"admin"},"detail":{}}],"next":"10"}`,
		"10": `{"events":[],"next":"20"}`,
		"20": `{"events":[{"id":"evt_2","time":"2026-03-01T12:01:00Z","type":"session.revoked","subject":"alice","actor":{"kind":"self"},"detail":{}}],"next":"30"}`,
		"30": `{"events":[],"next":"30"}`,
	}
	var mu sync.Mutex
	var asked []string
	adminEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after := r.URL.Query().Get("after")
		mu.Lock()
		asked = append(asked, after)
		mu.Unlock()
		page, ok := pages[after]
		if !ok || r.URL.Query().Get("subject") != "alice" {
			http.Error(w, `{"error":"bad_request","message":"unexpected"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(page))
	}))
	code, stdout, stderr := runCLI(t, "", "events", "--subject", "alice")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"session.created", "session.revoked"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %s:\n%s", want, stdout)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(asked, ","); got != ",10,20,30" {
		t.Errorf("cursors asked for: %q, want \",10,20,30\"", got)
	}
}
