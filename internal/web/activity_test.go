package web_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// activityRows returns the event IDs and types of the console's activity
// table, in page order, and fails on a cell without a label.
func activityRows(t *testing.T, body string) (ids, types []string) {
	t.Helper()
	i := strings.Index(body, `<table class="activity"`)
	if i < 0 {
		return nil, nil
	}
	table := body[i:]
	table = table[:strings.Index(table, "</table>")]
	for _, m := range regexp.MustCompile(`<tr data-event="([^"]+)">\s*<td[^>]*>.*?</td>\s*<th scope="row" data-label="Event"><code>([^<]+)</code>`).FindAllStringSubmatch(table, -1) {
		ids, types = append(ids, m[1]), append(types, m[2])
	}
	for _, m := range regexp.MustCompile(`<td([^>]*)>`).FindAllStringSubmatch(table, -1) {
		if !strings.Contains(m[1], `data-label="`) {
			t.Errorf("an activity cell without a label: %s", m[0])
		}
	}
	return ids, types
}

// TestConsoleActivity: a subject's page lists its events newest first, with
// who acted and from where, and only its own.
func TestConsoleActivity(t *testing.T) {
	e := newEnv(t)
	_, laptop := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	e.login(t, "alice", uaFirefoxWin, "192.0.2.8")
	e.login(t, "bob", uaFirefoxWin, "192.0.2.9")
	cookie, csrf := e.consoleSignIn(t)
	if w := call(e.adm, "POST", "/admin/sessions/revoke", url.Values{"csrf": {csrf}, "subject": {"alice"}, "id": {laptop.ID}},
		with(cookie, sameOrigin, []string{"Remote", "198.51.100.4:5555"})...); w.Code != 303 {
		t.Fatalf("revoke: %d", w.Code)
	}

	body := call(e.adm, "GET", "/admin/?subject=alice", nil, cookie...).Body.String()
	_, types := activityRows(t, body)
	if got, want := strings.Join(types, " "), "session.revoked session.created session.created"; got != want {
		t.Errorf("alice's activity: %s; want %s", got, want)
	}
	row := body[strings.Index(body, `<tr data-event=`):]
	row = row[:strings.Index(row, "</tr>")]
	for _, want := range []string{`data-label="By">admin<`, "198.51.100.4", laptop.ID} {
		if !strings.Contains(row, want) {
			t.Errorf("the revocation's row lacks %q:\n%s", want, row)
		}
	}
	if !strings.Contains(body, "The latest 3 events, newest first") {
		t.Error("the activity table does not say what it shows")
	}
	if strings.Contains(body, tether.TokenPrefix) {
		t.Error("the console shows a token")
	}
	if body := call(e.adm, "GET", "/admin/?subject=carol", nil, cookie...).Body.String(); !strings.Contains(body, "No events in the log.") {
		t.Error("a subject without events: no word of it")
	}
}

// TestConsoleActivityLong: of a long history, the newest 50 are shown,
// newest first, read to the end of the log; past what one view reads, the
// page says newer events may be missing.
func TestConsoleActivityLong(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	e := newEnvOn(t, st)
	cookie, _ := e.consoleSignIn(t)
	appendEvents := func(subject string, n int) []string {
		evs := make([]tether.Event, n)
		ids := make([]string, n)
		for i := range evs {
			ids[i] = fmt.Sprintf("evt_%s_%06d", subject, i)
			evs[i] = tether.Event{ID: ids[i], Time: time.Now(), Type: tether.EventHandshakeRefused, Subject: subject,
				Actor: tether.Actor{Kind: tether.ActorSystem}, Detail: map[string]any{"reason": "expired"}}
		}
		// Another subject's events between, so pages skip some.
		evs = append(evs, tether.Event{ID: "evt_other_" + subject, Time: time.Now(), Type: tether.EventSessionCreated, Subject: "other", Actor: tether.Actor{Kind: tether.ActorSystem}})
		if err := st.AppendEvents(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		return ids
	}

	tests := []struct {
		subject     string
		n           int
		wantPartial bool
	}{
		{"dave", 2500, false},         // three pages
		{"erin", 100*1000 + 10, true}, // more than one view reads
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			ids := appendEvents(tt.subject, tt.n)
			body := call(e.adm, "GET", "/admin/?subject="+tt.subject, nil, cookie...).Body.String()
			got, _ := activityRows(t, body)
			if len(got) != 50 {
				t.Fatalf("%d rows, want 50", len(got))
			}
			if partial := strings.Contains(body, "newer ones may be missing"); partial != tt.wantPartial {
				t.Errorf("says newer events may be missing: %v, want %v", partial, tt.wantPartial)
			}
			if tt.wantPartial {
				return // the rows are the newest of what was read
			}
			for i, id := range got {
				if want := ids[len(ids)-1-i]; id != want {
					t.Fatalf("row %d: %s, want %s (the newest first)", i, id, want)
				}
			}
		})
	}
}

// noLog is a store whose event log cannot be read, as when it is down.
type noLog struct{ *memstore.Store }

func (noLog) Events(context.Context, tether.EventQuery) (tether.EventPage, error) {
	return tether.EventPage{}, fmt.Errorf("%w: no event log here", tether.ErrUnavailable)
}

// TestConsoleActivityUnavailable: without a readable log the subject's page
// still shows sessions and roles, and says the activity could not be read.
func TestConsoleActivityUnavailable(t *testing.T) {
	st := noLog{memstore.New()}
	t.Cleanup(func() { st.Close() })
	e := newEnvOn(t, st)
	e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	cookie, _ := e.consoleSignIn(t)
	w := call(e.adm, "GET", "/admin/?subject=alice", nil, cookie...)
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "1 live session") || !strings.Contains(body, "The event log could not be read") {
		t.Errorf("got %d:\n%s", w.Code, body)
	}
	if strings.Contains(body, "no event log here") {
		t.Error("the page shows the store's error text")
	}
}
