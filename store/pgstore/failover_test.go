package pgstore

import (
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// TestStandbyFailover is the PostgreSQL counterpart of redisstore's
// TestSentinelFailover: a primary and a streaming standby, four workers of
// storetest.Traffic, then the nemesis: the standby is cut off for a moment
// (paused, and the primary's WAL sender ended, so that the primary runs
// ahead of it), the primary is killed with SIGKILL, the standby resumes and
// is promoted, and the stores follow it through a
// two-host URL (target_session_attrs=read-write). Every acknowledged write
// is then read back from the new primary. With the standby synchronous
// (synchronous_standby_names) nothing acknowledged may be lost; with it
// asynchronous the test reports what was lost.
func TestStandbyFailover(t *testing.T) {
	servicetest.SkipShort(t, "starts two PostgreSQL servers")
	for _, sync := range []bool{true, false} {
		name := map[bool]string{true: "synchronous", false: "async"}[sync]
		t.Run(name, func(t *testing.T) {
			pair := servicetest.StartPostgresPair(t, sync)
			opts := Options{ConnectTimeout: time.Second, QueryTimeout: 2 * time.Second, HeartbeatInterval: time.Second}
			s := openStore(t, pair.URL(), opts)
			tr := storetest.StartTraffic(s, 4)
			defer tr.Stop()
			tr.WaitAcknowledged(t, 1000)

			pair.CutReplication(t)
			paused := time.Now()
			// Let writes reach the primary while the standby is cut off: 40
			// calls when they are acknowledged at once (async); synchronous
			// COMMITs wait, so give them longer than QueryTimeout, which must
			// end them with 503, never with a success the standby lacks.
			calls := tr.Calls()
			for tr.Calls() < calls+40 && time.Since(paused) < opts.QueryTimeout+time.Second {
				time.Sleep(time.Millisecond) // a poll interval
			}
			hung := tr.Calls() - calls
			pair.Primary.Kill()
			killed := time.Now()
			pair.Standby.Resume()
			pair.Promote(t)
			promoted := time.Since(killed)
			acked := tr.Acknowledged()
			tr.WaitAcknowledged(t, acked+200)
			recovered := time.Since(killed)

			check := openStore(t, pair.Standby.URL(), opts)
			l := tr.Check(t, check)
			t.Logf("%s: %d calls while the standby was cut off, primary killed; standby promoted after %v; traffic acknowledged again within %v; %d of %d calls acknowledged in all; %v",
				name, hung, promoted.Round(time.Millisecond), recovered.Round(time.Millisecond), tr.Acknowledged(), tr.Calls(), l)
			for _, w := range l.Wrong {
				t.Error(w)
			}
			if sync && !l.Zero() {
				t.Errorf("with a synchronous standby the failover lost acknowledged writes: %v", l)
			}
		})
	}
}
