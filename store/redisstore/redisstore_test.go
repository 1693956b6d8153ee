package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// openTest opens a store on url with a prefix of the test's own and closes it
// (and, on a shared server, deletes its keys) when the test ends.
func openTest(t testing.TB, url, cleanAddr string) *Store {
	t.Helper()
	return openTestOptions(t, url, cleanAddr, Options{})
}

// openTestOptions is openTest with opts.
func openTestOptions(t testing.TB, url, cleanAddr string, opts Options) *Store {
	t.Helper()
	prefix := servicetest.KeyPrefix(t)
	if cleanAddr != "" {
		prefix = servicetest.RedisPrefix(t, cleanAddr) // deletes the keys after s.Close below (LIFO)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	opts.Timeout = 10 * time.Second // generous: CI runs many packages at once
	s, err := Open(context.Background(), url+sep+"prefix="+prefix, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	newStore := func(t *testing.T) tether.Store {
		return openTest(t, "redis://"+addr+"/0", addr)
	}
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
	storetest.RunExpiryEvents(t, expiryOpener("redis://"+addr+"/0", addr))
	storetest.RunExpiryOnReplace(t, expiryOpener("redis://"+addr+"/0", addr))
}

// expiryOpener opens stores on url that sweep every 50ms, as RunExpiryEvents
// needs; cleanAddr as for openTest.
func expiryOpener(url, cleanAddr string) storetest.NewStore {
	return func(t *testing.T) tether.Store {
		return openTestOptions(t, url, cleanAddr, Options{SweepInterval: 50 * time.Millisecond})
	}
}

// TestConformanceCluster runs the conformance cases on a Redis Cluster, and,
// on the same cluster, the cases of the event outboxes (outbox_test.go).
func TestConformanceCluster(t *testing.T) {
	servicetest.SkipShort(t, "starts a Redis Cluster")
	url := "redis+cluster://" + strings.Join(servicetest.StartRedisCluster(t), ",")
	newStore := func(t *testing.T) tether.Store { return openTest(t, url, "") }
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
	storetest.RunExpiryEvents(t, expiryOpener(url, ""))
	storetest.RunExpiryOnReplace(t, expiryOpener(url, ""))
	runOutbox(t, url)
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want urlConfig
	}{
		{"redis://localhost", urlConfig{addrs: []string{"localhost:6379"}, prefix: DefaultPrefix}},
		{"redis://:s3cret@10.0.0.1:6380/2?prefix=app:", urlConfig{
			addrs: []string{"10.0.0.1:6380"}, password: "s3cret", db: 2, prefix: "app:"}},
		{"rediss://user:pw@h:1", urlConfig{tls: true, addrs: []string{"h:1"}, username: "user", password: "pw", prefix: DefaultPrefix}},
		{"redis+cluster://a:1,b:2,c", urlConfig{mode: modeCluster, addrs: []string{"a:1", "b:2", "c:6379"}, prefix: DefaultPrefix}},
		{"redis+sentinel://s1:26379,s2/3?master=mymaster", urlConfig{
			mode: modeSentinel, addrs: []string{"s1:26379", "s2:26379"}, db: 3, master: "mymaster", prefix: DefaultPrefix}},
		{"rediss+sentinel://s1?master=m", urlConfig{mode: modeSentinel, tls: true, addrs: []string{"s1:26379"}, master: "m", prefix: DefaultPrefix}},
		{"redis://[::1]:7000", urlConfig{addrs: []string{"[::1]:7000"}, prefix: DefaultPrefix}},
		{"redis+sentinel://s1,s2,s3?master=m&min_replicas=1&replica_timeout=250ms", urlConfig{
			mode: modeSentinel, addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, master: "m", prefix: DefaultPrefix,
			minReplicas: 1, replicaTimeout: 250 * time.Millisecond}},
		{"redis+cluster://a:1?min_replicas=2", urlConfig{mode: modeCluster, addrs: []string{"a:1"}, prefix: DefaultPrefix,
			minReplicas: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := parseURL(tt.url, DefaultPrefix)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if tt.want.replicaTimeout == 0 {
				tt.want.replicaTimeout = DefaultReplicaTimeout
			}
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(urlConfig{})); d != "" {
				t.Fatalf("parseURL (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseURLPrefixOption: Options.Prefix (the YAML redis.prefix) names the
// keys unless the URL has its own prefix.
func TestParseURLPrefixOption(t *testing.T) {
	tests := []struct{ url, option, want string }{
		{"redis://h", "app:", "app:"},
		{"redis://h?prefix=url:", "app:", "url:"},
		{"redis://h", "{bad}", ""},
	}
	for _, tt := range tests {
		got, err := parseURL(tt.url, tt.option)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("parseURL(%q, %q): got prefix %q, want an error", tt.url, tt.option, got.prefix)
		case tt.want != "" && (err != nil || got.prefix != tt.want):
			t.Errorf("parseURL(%q, %q): got %q, %v; want prefix %q", tt.url, tt.option, got.prefix, err, tt.want)
		}
	}
}

func TestParseURLErrorsHideThePassword(t *testing.T) {
	const pw = "hunter2-secret"
	for _, raw := range []string{
		"http://:" + pw + "@h:1",
		"redis://:" + pw + "@h:1/x",
		"redis://:" + pw + "@h:1/0?prefix={x}",
		"redis://:" + pw + "@h:99999",
		"redis://:" + pw + "@a:1,b:2",
		"redis://:" + pw + "@h:1?bogus=1",
		"redis+sentinel://:" + pw + "@h:1",
		"redis+cluster://:" + pw + "@h:1/3",
		"redis://:" + pw + "@h:1/%zz",
		"redis://:" + pw + " x@h:1",
		"redis://:" + pw + "@",
		"redis://:" + pw + "@h:1?min_replicas=-1",
		"redis://:" + pw + "@h:1?min_replicas=x",
		"redis://:" + pw + "@h:1?min_replicas=17",
		"redis://:" + pw + "@h:1?min_replicas=1&replica_timeout=0s",
		"redis://:" + pw + "@h:1?min_replicas=1&replica_timeout=100",
	} {
		_, err := parseURL(raw, DefaultPrefix)
		if err == nil {
			t.Errorf("parseURL(%q) succeeded, want an error", strings.ReplaceAll(raw, pw, "***"))
			continue
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := Open(context.Background(), "redis://127.0.0.1:1?min_replicas=1&replica_timeout=2s", Options{}); err == nil ||
		errors.Is(err, tether.ErrUnavailable) {
		t.Errorf("Open with replica_timeout not below the store timeout = %v; want a URL error", err)
	}
	_, err := Open(context.Background(), "redis://:"+pw+"@127.0.0.1:1", Options{DialTimeout: 200 * time.Millisecond})
	if !errors.Is(err, tether.ErrUnavailable) || strings.Contains(err.Error(), pw) {
		t.Fatalf("Open(unreachable) = %v; want ErrUnavailable without the password", err)
	}
}

func TestCodec(t *testing.T) {
	n := time.Now().UTC().Truncate(time.Microsecond)
	for _, r := range []*tether.Record{
		{ID: "a", Subject: "alice", CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour),
			IdleExpiresAt: n.Add(time.Minute), IdleTimeout: time.Minute, AuthTime: n.Add(-time.Second),
			AuthMethod: "password", Metadata: map[string]string{"ip": "192.0.2.1", "ua": strings.Repeat("x", 1024)}},
		{ID: "b", Subject: "ü}{", CreatedAt: n, LastSeenAt: n, ExpiresAt: n, IdleExpiresAt: n},
	} {
		copy(r.SecretHash[:], "0123456789abcdef0123456789abcdef")
		b := encode(r, 42)
		got, gen, err := decode(r.ID, b)
		if err != nil || gen != 42 {
			t.Fatalf("decode = gen %d, %v; want 42, nil", gen, err)
		}
		if d := cmp.Diff(r, got, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip (-want +got):\n%s", d)
		}
		for i := range len(b) { // every truncation is refused, never misread
			if _, _, err := decode(r.ID, b[:i]); err == nil {
				t.Fatalf("decode accepted a record truncated to %d of %d bytes", i, len(b))
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	n := time.Now()
	f.Add(encode(&tether.Record{Subject: "s", ExpiresAt: n, Metadata: map[string]string{"k": "v"}}, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, gen, err := decode("id", b)
		if err != nil {
			return
		}
		if got, gen2, err := decode("id", encode(r, gen)); err != nil || gen2 != gen ||
			!cmp.Equal(r, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })) {
			t.Fatalf("re-encoding a decoded record changed it: %v", err)
		}
	})
}

// TestKeptSessionIsNotRevived checks that DeleteSubject never keeps a session
// that an earlier revoke-all already killed, even while its record still
// exists (clean-up is best effort).
func TestKeptSessionIsNotRevived(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	s := openTest(t, "redis://"+addr, addr)
	ctx := context.Background()
	n := time.Now()
	rec := func(sub string) *tether.Record {
		return &tether.Record{ID: tether.NewID(), Subject: sub, CreatedAt: n, LastSeenAt: n,
			ExpiresAt: n.Add(time.Hour), IdleExpiresAt: n.Add(time.Hour), IdleTimeout: time.Hour}
	}
	a, b := rec("alice"), rec("alice")
	for _, r := range []*tether.Record{a, b} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Revoke both, then put a's record back as if clean-up had failed.
	raw, err := s.c.Do(ctx, s.c.B().Get().Key(s.recKey(a.ID)).Build()).AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteSubject(ctx, "alice", ""); err != nil || n != 2 {
		t.Fatalf("DeleteSubject = %d, %v; want 2", n, err)
	}
	if err := s.c.Do(ctx, s.c.B().Set().Key(s.recKey(a.ID)).Value(string(raw)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, a.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Get(revoked, record still there) = %v; want ErrNotFound", err)
	}
	if err := s.Touch(ctx, a.ID, n, n.Add(time.Hour)); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Touch(revoked) = %v; want ErrNotFound", err)
	}
	if _, err := s.DeleteSubject(ctx, "alice", a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, a.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("DeleteSubject(keep=revoked) revived it: Get = %v", err)
	}
	// Keeping a session twice in a row keeps it.
	c := rec("alice")
	if err := s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.DeleteSubject(ctx, "alice", c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, c.ID); err != nil {
			t.Fatalf("kept session: Get = %v", err)
		}
	}
	if list, err := s.List(ctx, "alice"); err != nil || len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("List = %d records, %v; want only the kept one", len(list), err)
	}
	// A session of another subject cannot be kept through this one.
	bob := rec("bob")
	if err := s.Create(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteSubject(ctx, "alice", bob.ID); err != nil || n != 1 {
		t.Fatalf("DeleteSubject(alice, keep=bob's) = %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, bob.ID); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
}

// TestTTLs checks that every key this store writes expires, except roles,
// and that no TTL goes past a record's absolute expiry.
func TestTTLs(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	s := openTest(t, "redis://"+addr, addr)
	ctx := context.Background()
	n := time.Now()
	r := &tether.Record{ID: tether.NewID(), Subject: "carol", CreatedAt: n, LastSeenAt: n,
		ExpiresAt: n.Add(time.Hour), IdleExpiresAt: n.Add(time.Minute), IdleTimeout: time.Minute}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	pttl := func(key string) time.Duration {
		ms, err := s.c.Do(ctx, s.c.B().Pttl().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return time.Duration(ms) * time.Millisecond
	}
	if d := pttl(s.recKey(r.ID)); d <= 0 || d > time.Minute+time.Second {
		t.Fatalf("record TTL %v; want the idle expiry (1m)", d)
	}
	for _, k := range []string{s.stateKey("carol"), s.indexKey("carol")} {
		if d := pttl(k); d <= time.Hour || d > time.Hour+subjectMargin+time.Second {
			t.Fatalf("%s TTL %v; want the absolute expiry (1h) plus %v", k, d, subjectMargin)
		}
	}
	// Sliding the idle expiry past the absolute one stops at the absolute one.
	if err := s.Touch(ctx, r.ID, n, n.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d := pttl(s.recKey(r.ID)); d > time.Hour+time.Second {
		t.Fatalf("record TTL after Touch %v; want at most the absolute expiry (1h)", d)
	}
	if err := s.Consume(ctx, "jti-1", n.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if d := pttl(s.consumeKey("jti-1")); d <= 0 || d > time.Minute+time.Second {
		t.Fatalf("replay guard TTL %v; want 1m", d)
	}
}

// TestConformanceSentinel runs the conformance and event cases through a
// Sentinel.
func TestConformanceSentinel(t *testing.T) {
	servicetest.SkipShort(t, "starts Redis and a Sentinel")
	url := "redis+sentinel://" + servicetest.StartSentinel(t, "tether") + "/0?master=tether"
	newStore := func(t *testing.T) tether.Store { return openTest(t, url, "") }
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
	storetest.RunExpiryEvents(t, expiryOpener(url, ""))
	storetest.RunExpiryOnReplace(t, expiryOpener(url, ""))
}

// TestMinReplicasUnreached: with min_replicas set and no replica to
// acknowledge, every write that must survive a failover fails with
// ErrUnavailable (a 503), reads go on, and Touch, which need not wait, works.
func TestMinReplicasUnreached(t *testing.T) {
	addr := servicetest.StartRedis(t).Addr() // a server of its own: surely no replica
	s := opener("redis://" + addr + "?min_replicas=1&replica_timeout=20ms")(t)
	plain := opener("redis://" + addr)(t)
	ctx := context.Background()
	n := time.Now()
	rec := func() *tether.Record {
		return &tether.Record{ID: tether.NewID(), Subject: "dave", CreatedAt: n, LastSeenAt: n,
			ExpiresAt: n.Add(time.Hour), IdleExpiresAt: n.Add(time.Hour), IdleTimeout: time.Hour}
	}
	r := rec()
	if err := plain.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	var h [32]byte
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return s.Create(ctx, rec()) }},
		{"Rotate", func() error { return s.Rotate(ctx, r.ID, r.SecretHash, h) }},
		{"Delete", func() error { return s.Delete(ctx, r.ID) }},
		{"DeleteSubject", func() error { _, err := s.DeleteSubject(ctx, "dave", ""); return err }},
		{"SetRoles", func() error { return s.SetRoles(ctx, "dave", []string{"x"}) }},
		{"Consume", func() error { return s.Consume(ctx, "jti-"+tether.NewID(), n.Add(time.Minute)) }},
	} {
		err := op.call()
		if !errors.Is(err, tether.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
			t.Errorf("%s without a replica = %v; want ErrUnavailable (0 of 1 replicas)", op.name, err)
		}
	}
	if err := s.Touch(ctx, tether.NewID(), n, n.Add(time.Hour)); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("Touch = %v; want ErrNotFound (it does not wait)", err)
	}
	if _, err := s.Roles(ctx, "dave"); err != nil {
		t.Errorf("Roles = %v; reads do not wait", err)
	}
	// A missing session is reported as missing, not as a replica shortfall.
	if err := s.Delete(ctx, tether.NewID()); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("Delete(missing) = %v; want ErrNotFound", err)
	}
}

// TestConformanceReplicated runs the suite with min_replicas=1 on a primary
// with one replica: every waited write goes through EVALSHA (or EVAL on a
// cold script cache) and WAIT on one connection.
func TestConformanceReplicated(t *testing.T) {
	servicetest.SkipShort(t, "starts two Redis servers")
	g := servicetest.StartSentinels(t, "tether", 1, 1)
	storetest.Run(t, func(t *testing.T) tether.Store {
		return openTest(t, "redis://"+g.Primary.Addr()+"?min_replicas=1&replica_timeout=5s", "") // generous: CI is loaded
	})
}

// TestMinReplicasCluster checks that in a Cluster the WAIT goes to the shard
// that took the write: with the replica of one shard hung, a write to that
// shard fails with ErrUnavailable while a write to another shard succeeds.
// A WAIT sent to any other connection would find a healthy replica.
func TestMinReplicasCluster(t *testing.T) {
	servicetest.SkipShort(t, "starts a Redis Cluster with replicas")
	c := servicetest.StartReplicatedRedisCluster(t)
	s := openTest(t, "redis+cluster://"+strings.Join(c.Addrs(), ",")+"?min_replicas=1&replica_timeout=1s", "") // generous: CI is loaded
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	if err := s.Consume(ctx, "first", until); err != nil {
		t.Fatalf("Consume with every replica up: %v", err)
	}
	hung := c.ReplicaOf(t, s.consumeKey("on-hung-shard"))
	other := ""
	for i := 0; other == ""; i++ {
		if k := fmt.Sprint("elsewhere-", i); c.ReplicaOf(t, s.consumeKey(k)) != hung {
			other = k
		}
	}
	hung.Pause()
	defer hung.Resume()
	if err := s.Consume(ctx, "on-hung-shard", until); !errors.Is(err, tether.ErrUnavailable) {
		t.Errorf("Consume on the shard whose replica hangs = %v; want ErrUnavailable", err)
	}
	if err := s.Consume(ctx, other, until); err != nil {
		t.Errorf("Consume on another shard = %v; want nil", err)
	}
}
