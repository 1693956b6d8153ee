package storetest

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// ScaleSessions skips t unless TETHER_SCALE=1 and returns how many sessions a
// scale test loads: TETHER_SCALE_SESSIONS, 1,000,000 by default.
func ScaleSessions(t *testing.T) int {
	t.Helper()
	if os.Getenv("TETHER_SCALE") != "1" {
		t.Skip("set TETHER_SCALE=1 to load a million sessions")
	}
	total := 1_000_000
	if v := os.Getenv("TETHER_SCALE_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TETHER_SCALE_SESSIONS=%q", v)
		}
		total = n
	}
	return total
}

// SubjectOps holds p50 and p99 of List and DeleteSubject.
type SubjectOps struct{ List, Del [2]time.Duration }

func (o SubjectOps) String() string {
	return fmt.Sprintf("List of a 10-session subject p50 %v p99 %v; DeleteSubject p50 %v p99 %v",
		o.List[0], o.List[1], o.Del[0], o.Del[1])
}

// ScaleRecord is a session of subject with typical metadata, as a scale
// test's bulk loader writes it.
func ScaleRecord(subject string) *tether.Record {
	n := now()
	r := &tether.Record{ID: tether.NewID(), Subject: subject, CreatedAt: n, LastSeenAt: n,
		ExpiresAt: n.Add(24 * time.Hour), IdleExpiresAt: n.Add(2 * time.Hour), IdleTimeout: 2 * time.Hour,
		Metadata: map[string]string{"ip": "192.0.2.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"},
		AuthTime: n, AuthMethod: "password"}
	copy(r.SecretHash[:], r.ID)
	return r
}

// MeasureSubjectOps makes 100 subjects of 10 sessions on every store, lists
// 50 of them 20 times each and revokes all sessions of the other 50, taking
// turns between the stores call by call so that a busy machine slows all
// alike.
func MeasureSubjectOps(t *testing.T, stores []tether.Store) []SubjectOps {
	t.Helper()
	const subjects, per = 100, 10
	sub := func(i int) string { return fmt.Sprintf("target-%d", i) }
	for _, s := range stores {
		for i := range subjects {
			for range per {
				if err := s.Create(ctx, ScaleRecord(sub(i))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	list := make([][]time.Duration, len(stores))
	del := make([][]time.Duration, len(stores))
	for rep := range 21 {
		for i := range subjects / 2 {
			for _, j := range order(rep*subjects+i, len(stores)) {
				start := time.Now()
				recs, err := stores[j].List(ctx, sub(i))
				d := time.Since(start)
				if err != nil || len(recs) != per {
					t.Fatalf("List = %d records, %v; want %d", len(recs), err, per)
				}
				if rep > 0 { // the first round warms up
					list[j] = append(list[j], d)
				}
			}
		}
	}
	for i := subjects / 2; i < subjects; i++ {
		for _, j := range order(i, len(stores)) {
			start := time.Now()
			n, err := stores[j].DeleteSubject(ctx, sub(i), "")
			d := time.Since(start)
			if err != nil || n != per {
				t.Fatalf("DeleteSubject = %d, %v; want %d", n, err, per)
			}
			del[j] = append(del[j], d)
		}
	}
	out := make([]SubjectOps, len(stores))
	for j := range stores {
		out[j] = SubjectOps{List: percentiles(list[j]), Del: percentiles(del[j])}
	}
	return out
}

// CheckSubjectScaling compares the medians measured among about 1,000
// sessions (small) and total+1,000 (large): O(all sessions) would make the
// large ones about ×1000; more than ×3 fails t.
func CheckSubjectScaling(t *testing.T, small, large SubjectOps, total int) {
	t.Helper()
	for _, c := range []struct {
		op         string
		small, big time.Duration
	}{{"List", small.List[0], large.List[0]}, {"DeleteSubject", small.Del[0], large.Del[0]}} {
		ratio := float64(c.big) / float64(c.small)
		t.Logf("%s of a 10-session subject, p50: %v among 1,000 sessions, %v among %d: ×%.2f", c.op, c.small, c.big, total+1000, ratio)
		// O(all sessions) would be ×1000; this allows for a noisy machine.
		if ratio > 3 {
			t.Errorf("%s for a 10-session subject is %.1f× slower with %d sessions loaded: not O(subject)", c.op, ratio, total)
		}
	}
}

// order is 0…n-1, reversed when turn is odd: neither store always goes first.
func order(turn, n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	if turn%2 == 1 {
		slices.Reverse(o)
	}
	return o
}

func percentiles(d []time.Duration) [2]time.Duration {
	slices.Sort(d)
	return [2]time.Duration{
		d[(len(d)-1)*50/100].Round(time.Microsecond),
		d[(len(d)-1)*99/100].Round(time.Microsecond),
	}
}
