package boltstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	bolt "go.etcd.io/bbolt"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/storetest"
)

var ctx = context.Background()

func openTemp(t testing.TB, o Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "tether.db")
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	newStore := func(t *testing.T) tether.Store {
		s, _ := openTemp(t, Options{})
		return s
	}
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
}

func TestExpiryEvents(t *testing.T) {
	storetest.RunExpiryEvents(t, func(t *testing.T) tether.Store {
		s, _ := openTemp(t, Options{SweepInterval: 50 * time.Millisecond})
		return s
	})
	// No sweep within the case: only Create can report the replaced
	// session's expiry.
	storetest.RunExpiryOnReplace(t, func(t *testing.T) tether.Store {
		s, _ := openTemp(t, Options{SweepInterval: time.Hour})
		return s
	})
}

// clock is a settable Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var seq atomic.Int64

func newRecord(subject string, now time.Time, lifetime time.Duration) *tether.Record {
	r := &tether.Record{
		ID: tether.NewID(), Subject: subject,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(lifetime), IdleExpiresAt: now.Add(lifetime),
		IdleTimeout: lifetime, Metadata: map[string]string{"ip": "192.0.2.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
		AuthTime: now, AuthMethod: "password",
	}
	copy(r.SecretHash[:], fmt.Sprintf("secret-hash-%020d", seq.Add(1)))
	return r
}

// seed writes records a thousand per transaction, quicker than a Create
// each. (bbolt splits nodes only at commit, so much larger transactions of
// random keys get slow.)
func seed(t testing.TB, s *Store, recs ...*tether.Record) {
	t.Helper()
	for chunk := range slices.Chunk(recs, 1000) {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, r := range chunk {
				if err := bucketsOf(tx).putSession(r, encodeRecord(r)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// keys counts the keys in every bucket, to see what the sweep left behind.
func keys(t *testing.T, s *Store) map[string]int {
	t.Helper()
	n := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweep(t *testing.T) {
	clk := newClock()
	// A long interval: the test drives Sweep itself.
	s, _ := openTemp(t, Options{Now: clk.Now, SweepInterval: time.Hour})
	now := clk.Now()
	const n = 2500 // more than two sweep transactions' worth
	var alice []*tether.Record
	for i := range n {
		alice = append(alice, newRecord("alice", now, time.Duration(i%2+1)*time.Hour))
	}
	seed(t, s, alice...)
	long := newRecord("bob", now, 24*time.Hour)
	idle := newRecord("bob", now, 24*time.Hour)
	for _, r := range []*tether.Record{long, idle} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Only idle expiry moves: the sweep must still find it.
	if err := s.Touch(ctx, idle.ID, now, now.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(ctx, "jti-1", now.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	if got, err := s.Sweep(ctx); err != nil || got != n/2+1 {
		t.Fatalf("Sweep after 1h = %d, %v; want %d (half of alice's, and the key)", got, err, n/2+1)
	}
	clk.Advance(time.Hour)
	if got, err := s.Sweep(ctx); err != nil || got != n/2+1 {
		t.Fatalf("Sweep after 2h = %d, %v; want %d (the rest of alice's, and bob's idle one)", got, err, n/2+1)
	}
	// Each swept session leaves its session.expired event.
	want := map[string]int{"sessions": 1, "subjects": 1, "expiry": 1, "consumed": 0, "roles": 0, "events": n + 1, "state": 0}
	if d := cmp.Diff(want, keys(t, s)); d != "" {
		t.Fatalf("keys left after the sweep (-want +got):\n%s", d)
	}
	if _, err := s.Get(ctx, long.ID); err != nil {
		t.Fatalf("the sweep removed a live session: %v", err)
	}
	if err := s.Consume(ctx, "jti-1", clk.Now().Add(time.Minute)); err != nil {
		t.Fatalf("Consume of a swept key: %v", err)
	}
}

func TestSweeperRuns(t *testing.T) {
	clk := newClock()
	s, _ := openTemp(t, Options{Now: clk.Now, SweepInterval: time.Millisecond})
	if err := s.Create(ctx, newRecord("alice", clk.Now(), time.Minute)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	for deadline := time.Now().Add(10 * time.Second); keys(t, s)["sessions"] != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the background sweeper did not remove an expired session within 10s")
		}
		time.Sleep(time.Millisecond) // waiting on a real goroutine, not simulating time
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	s, path := openTemp(t, Options{})
	r := newRecord("alice", time.Now().UTC().Truncate(time.Microsecond), time.Hour)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoles(ctx, "alice", []string{"admin"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, got); d != "" {
		t.Fatalf("record after reopen (-want +got):\n%s", d)
	}
	if roles, err := s.Roles(ctx, "alice"); err != nil || !cmp.Equal(roles, []string{"admin"}) {
		t.Fatalf("Roles after reopen = %v, %v; want [admin]", roles, err)
	}
}

func TestFileModes(t *testing.T) {
	_, path := openTemp(t, Options{})
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestLocked(t *testing.T) {
	_, path := openTemp(t, Options{})
	// flock locks belong to an open file, so a second Open in this process
	// meets the lock just as another process would.
	_, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, tether.ErrUnavailable) || !strings.Contains(err.Error(), "database is locked by another process") {
		t.Fatalf("second Open = %v; want ErrUnavailable saying the database is locked", err)
	}
}

func TestOpenFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notBolt := filepath.Join(t.TempDir(), "tether.db")
	if err := os.WriteFile(notBolt, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"parent is a file": filepath.Join(file, "tether.db"),
		"not a database":   notBolt,
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := Open(path, Options{}); !errors.Is(err, tether.ErrUnavailable) || s != nil {
				t.Fatalf("Open = %v, %v; want nil, ErrUnavailable", s, err)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := newRecord("alice", time.Now(), time.Hour)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]func() error{
		"Create":        func() error { return s.Create(ctx, newRecord("alice", time.Now(), time.Hour)) },
		"Get":           func() error { _, err := s.Get(ctx, r.ID); return err },
		"Touch":         func() error { return s.Touch(ctx, r.ID, time.Now(), time.Now().Add(time.Hour)) },
		"Rotate":        func() error { return s.Rotate(ctx, r.ID, r.SecretHash, [32]byte{}) },
		"Delete":        func() error { return s.Delete(ctx, r.ID) },
		"DeleteSubject": func() error { _, err := s.DeleteSubject(ctx, "alice", ""); return err },
		"List":          func() error { _, err := s.List(ctx, "alice"); return err },
		"Roles":         func() error { _, err := s.Roles(ctx, "alice"); return err },
		"SetRoles":      func() error { return s.SetRoles(ctx, "alice", []string{"x"}) },
		"Consume":       func() error { return s.Consume(ctx, "k", time.Now().Add(time.Hour)) },
		"Ping":          func() error { return s.Ping(ctx) },
		"Sweep":         func() error { _, err := s.Sweep(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, tether.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
}

// TestWriteFailure makes the file unwritable under an open store: writes
// must fail with ErrUnavailable, leave nothing behind, and not hurt the file,
// while reads go on.
func TestWriteFailure(t *testing.T) {
	cases := map[string]bolt.Options{
		// Opened read-only behind bbolt's back, every write to the file fails
		// with EBADF, as on a disk gone read-only. (Root ignores file modes,
		// so chmod could not do this.)
		"write error": {OpenFile: func(name string, _ int, _ os.FileMode) (*os.File, error) { return os.Open(name) }},
		// bbolt refuses write transactions: a read-only data directory.
		"read-only": {ReadOnly: true},
	}
	for name, bo := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tether.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			kept := newRecord("alice", time.Now(), time.Hour)
			if err := s.Create(ctx, kept); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = open(path, Options{}, bo)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			lost := newRecord("alice", time.Now(), time.Hour)
			err = s.Create(ctx, lost)
			if !errors.Is(err, tether.ErrUnavailable) {
				t.Fatalf("Create = %v, want ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), lost.ID) || strings.Contains(err.Error(), string(lost.SecretHash[:])) {
				t.Fatalf("the error leaks the record: %v", err)
			}
			t.Logf("Create: %v", err)
			if _, err := s.Get(ctx, lost.ID); !errors.Is(err, tether.ErrNotFound) {
				t.Fatalf("Get of the failed Create = %v, want ErrNotFound", err)
			}
			if err := s.Consume(ctx, "jti", time.Now().Add(time.Hour)); !errors.Is(err, tether.ErrUnavailable) {
				t.Fatalf("Consume = %v, want ErrUnavailable", err)
			}
			if _, err := s.Get(ctx, kept.ID); err != nil {
				t.Fatalf("reads must go on: %v", err)
			}
			s.Close()

			checkFile(t, path)
			s, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			list, err := s.List(ctx, "alice")
			if err != nil || len(list) != 1 || list[0].ID != kept.ID {
				t.Fatalf("after reopen List = %d records, %v; want only the one created before the failure", len(list), err)
			}
			if err := s.Consume(ctx, "jti", time.Now().Add(time.Hour)); err != nil {
				t.Fatalf("the failed Consume was half-written: %v", err)
			}
		})
	}
}

// checkFile runs bbolt's consistency check on the file at path.
func checkFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt cannot open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("consistency check: %v", err)
	}
}

const helperEnv = "BOLTSTORE_HELPER_DB"

// TestHelperProcess is not a test: TestKillNine runs the test binary again
// with it as a child that creates sessions until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("only run as TestKillNine's child")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex // one whole line per write to stdout
	var wg sync.WaitGroup
	for range 32 { // concurrent, so that group commit is what is under test
		wg.Go(func() {
			for {
				r := newRecord("crash", time.Now(), time.Hour)
				if err := s.Create(ctx, r); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Println(r.ID) // acknowledged: Create returned nil
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKillNine checks that every Create acknowledged before a kill -9 is in
// the file afterwards, and that the file is consistent. (A kill leaves the
// page cache alone, so it cannot prove the fsync reaches the disk; that part
// rests on bbolt syncing every commit, which Open leaves on.)
func TestKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "tether.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 2000
	var acked []string
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// EOF after the kill; a line cut short was never acknowledged.
			if err != io.EOF {
				t.Errorf("reading the child's output: %v", err)
			}
			break
		}
		id := strings.TrimSuffix(line, "\n")
		if !tether.ValidID(id) {
			t.Fatalf("the child printed %q, not a session ID", line)
		}
		acked = append(acked, id)
		if len(acked) == killAfter {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	if err := cmd.Wait(); err == nil || len(acked) < killAfter {
		t.Fatalf("the child ended by itself (%v) after %d sessions", err, len(acked))
	}

	checkFile(t, path)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("acknowledged session %s lost after kill -9: %v", id, err)
		}
	}
	list, err := s.List(ctx, "crash")
	if err != nil || len(list) < len(acked) {
		t.Fatalf("List = %d records, %v; want at least the %d acknowledged", len(list), err, len(acked))
	}
	t.Logf("%d acknowledged sessions survived, %d in the file", len(acked), len(list))
}

func TestCodec(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	full := newRecord("alice", now, time.Hour)
	bare := &tether.Record{ID: "bare", Subject: "bob", ExpiresAt: now, IdleExpiresAt: now}
	for name, r := range map[string]*tether.Record{"full": full, "bare": bare} {
		t.Run(name, func(t *testing.T) {
			b := encodeRecord(r)
			got, err := decodeRecord(r.ID, b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(r, got, cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("round trip (-want +got):\n%s", d)
			}
			for i := range b { // every truncation is caught, never a panic
				if _, err := decodeRecord(r.ID, b[:i]); err == nil {
					t.Fatalf("decoding the first %d of %d bytes succeeded", i, len(b))
				}
			}
		})
	}
	if size := len(encodeRecord(full)); size > 200 {
		t.Errorf("a typical record encodes to %d bytes, want at most 200", size)
	}
	roles := []string{"admin", "user"}
	if got, err := decodeRoles(encodeRoles(roles)); err != nil || !cmp.Equal(got, roles) {
		t.Fatalf("roles round trip = %v, %v; want %v", got, err, roles)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(newRecord("alice", time.Now(), time.Hour)))
	f.Add([]byte{recordV1})
	f.Add([]byte{recordV2})
	f.Add([]byte{recordV3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord("id", b)
		if err != nil {
			return
		}
		again, err := decodeRecord("id", encodeRecord(r))
		if err != nil {
			t.Fatalf("re-encoding a decoded record: %v", err)
		}
		if d := cmp.Diff(r, again, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("decode(encode(decode(b))) differs (-first +second):\n%s", d)
		}
	})
}

// BenchmarkCreateParallel measures group-committed, fsynced Creates from many
// goroutines, as from concurrent logins.
func BenchmarkCreateParallel(b *testing.B) {
	s, _ := openTemp(b, Options{})
	now := time.Now()
	b.SetParallelism(64) // 64 × GOMAXPROCS callers: requests, not CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Create(ctx, newRecord("bench", now, time.Hour)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	var size int64
	s.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	b.ReportMetric(float64(size)/float64(b.N), "file-B/session")
}

// BenchmarkGet measures the read a validation does, over 100,000 sessions.
func BenchmarkGet(b *testing.B) {
	s, _ := openTemp(b, Options{})
	now := time.Now()
	recs := make([]*tether.Record, 100_000)
	ids := make([]string, len(recs))
	for i := range recs {
		recs[i] = newRecord(fmt.Sprintf("subject-%d", i%1000), now, time.Hour)
		ids[i] = recs[i].ID
	}
	seed(b, s, recs...)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := next.Add(7919); pb.Next(); i += 7919 {
			if _, err := s.Get(ctx, ids[i%int64(len(ids))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEventCost: what an event adds to a revocation and to creates.
func BenchmarkEventCost(b *testing.B) {
	s, _ := openTemp(b, Options{})
	storetest.BenchmarkEventCost(b, s)
}

// BenchmarkSweep measures the sweeper removing expired sessions, each with its
// session.expired event, sweepChunk per fsynced transaction.
func BenchmarkSweep(b *testing.B) {
	clk := newClock()
	s, _ := openTemp(b, Options{Now: clk.Now, SweepInterval: time.Hour})
	recs := make([]*tether.Record, b.N)
	for i := range recs {
		recs[i] = newRecord(fmt.Sprintf("subject-%d", i%1000), clk.Now(), time.Minute)
	}
	seed(b, s, recs...)
	clk.Advance(time.Minute)
	b.ResetTimer()
	if n, err := s.Sweep(ctx); err != nil || n != b.N {
		b.Fatalf("Sweep = %d, %v; want %d", n, err, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
