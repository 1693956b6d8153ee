package pgstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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

// TestExpiryRowsMatchGo: the session.expired events Create builds in SQL
// (expiryRows) are those tether.ExpiryEvents makes, in every field a reader
// sees, for times whose fraction Go prints in full, shortened or not at all.
func TestExpiryRowsMatchGo(t *testing.T) {
	dbURL, _ := freshDB(t)
	s := openStore(t, dbURL, Options{SweepInterval: -1})
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		name                string
		subject             string
		expires, idleExpire time.Time
	}{
		{"LifetimeWholeSecond", "alice", base, base},
		{"LifetimeMicros", "alice", base.Add(123456 * time.Microsecond), base.Add(time.Hour)},
		{"IdleTrailingZeros", "alice", base.Add(time.Hour), base.Add(120 * time.Millisecond)},
		{"IdleOneMicro", "alice", base.Add(time.Hour), base.Add(time.Microsecond)},
		{"Bookkeeping", tether.BookkeepingPrefixes()[1] + "x", base, base},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &tether.Record{ID: tether.NewID(), Subject: c.subject, ExpiresAt: c.expires, IdleExpiresAt: c.idleExpire}
			now := base.Add(2 * time.Hour)
			template := tether.ExpiryEvents(&tether.Record{ID: r.ID}, now)[0]
			rows, err := s.pool.Query(ctx, `
WITH d AS (SELECT $1::text AS id, $2::text AS subject, $3::timestamptz AS expires_at, $4::timestamptz AS idle_expires_at)
SELECT body FROM (`+expiryRows("d", 5, 6)+`) rows`,
				r.ID, r.Subject, r.ExpiresAt, r.IdleExpiresAt, tether.MarshalEvent(&template), tether.BookkeepingPrefixes())
			if err != nil {
				t.Fatal(err)
			}
			bodies, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
			if err != nil {
				t.Fatal(err)
			}
			var got []tether.Event
			for _, b := range bodies {
				e, err := tether.UnmarshalEvent(b)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			want := tether.ExpiryEvents(r, now)
			for i := range want {
				want[i].ID = template.ID // random: the template's is the one kept
				if err := json.Unmarshal(tether.MarshalEvent(&want[i]), &want[i]); err != nil {
					t.Fatal(err) // as read back: detail values as JSON decodes them
				}
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events (-Go +SQL):\n%s", diff)
			}
		})
	}
}
