package pgstore

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// TestEventsLateCommit: an event whose transaction began first but commits
// last is not skipped by a reader that already read a later one. While the
// early transaction runs, the reader sees neither; a transaction in another
// database does not hold the reader back.
func TestEventsLateCommit(t *testing.T) {
	dbURL, _ := freshDB(t)
	s := openStore(t, dbURL, Options{})
	ev := func(sub string) tether.Event {
		return tether.Event{ID: "evt_" + tether.NewID(), Type: tether.EventAdminAuthFailed, Subject: sub, Detail: map[string]any{}}
	}

	// A long transaction elsewhere on the server: not ours to wait for.
	other, err := pgx.Connect(ctx, servicetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	otx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer otx.Rollback(ctx)
	if _, err := otx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil { // takes an xid
		t.Fatal(err)
	}

	early, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Rollback(ctx)
	if _, err := early.Exec(ctx, `WITH s AS (SELECT ''::text AS subject), `+insertEvents("s", "true", 1)+` SELECT 1`,
		eventsParam([]tether.Event{ev("early")})); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, ev("late")); err != nil {
		t.Fatal(err)
	}
	p, err := s.Events(ctx, tether.EventQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 0 {
		t.Fatalf("while an older transaction runs: %d events; want none yet", len(p.Events))
	}
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p, err = s.Events(ctx, tether.EventQuery{After: p.Next, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 2 || p.Events[0].Subject != "early" || p.Events[1].Subject != "late" {
		t.Fatalf("after the commit: %+v; want early, then late", p.Events)
	}
}
