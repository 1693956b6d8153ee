package remote_test

import (
	"context"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api/apitest"
	"github.com/tetherhq/tether/remote"
)

// BenchmarkValidateCached compares a cached validation in-process (the
// node's own Manager) with a cached validation by a remote client of that
// node, for the same session (IP and user-agent metadata, one role).
func BenchmarkValidateCached(b *testing.B) {
	ctx := context.Background()
	n := apitest.Start(b, "memory:", apitest.Options{MaxStaleness: time.Hour})
	token, _, err := n.Manager.Create(ctx, tether.CreateParams{
		Subject: "alice", Roles: []string{"editor"},
		Metadata: map[string]string{"ip": "192.0.2.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
	})
	if err != nil {
		b.Fatal(err)
	}
	c := benchClient(b, n)
	for _, v := range []struct {
		name string
		v    tether.Validator
	}{{"in-process", n.Manager}, {"remote", c}} {
		b.Run(v.name, func(b *testing.B) {
			if _, err := v.v.Validate(ctx, token); err != nil { // fills the cache
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := v.v.Validate(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRevocationRefused measures, over at least 1,000 trials, the time
// from the return of a revocation on the server (DELETE /v1/sessions/{id} on
// its admin API, on loopback) until a validator that held the token in its
// cache refuses it: a remote client of the server, and beside it an
// in-process Manager of a second node on the same store. It reports p50, p99
// and max in microseconds.
func BenchmarkRevocationRefused(b *testing.B) {
	ctx := context.Background()
	for _, st := range apitest.Stores() {
		b.Run(st.Name, func(b *testing.B) {
			n := apitest.Start(b, st.URL(b, ""), apitest.Options{MaxStaleness: time.Hour})
			node2, err := tether.NewManager(tether.Config{Store: n.Store, MaxStaleness: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { node2.Close() })
			c := benchClient(b, n)
			for _, v := range []struct {
				name string
				v    tether.Validator
			}{{"in-process", node2}, {"remote", c}} {
				b.Run(v.name, func(b *testing.B) {
					trials := max(b.N, 1000)
					lat := make([]time.Duration, 0, trials)
					for range trials {
						b.StopTimer()
						token, sess, err := n.Manager.Create(ctx, tether.CreateParams{Subject: "bench"})
						if err != nil {
							b.Fatal(err)
						}
						cached(b, v.v, token)
						b.StartTimer()
						revokeHTTP(b, n, sess.ID)
						start := time.Now()
						for {
							_, err := v.v.Validate(ctx, token)
							if err != nil {
								break
							}
							runtime.Gosched()
						}
						lat = append(lat, time.Since(start))
					}
					b.StopTimer()
					slices.Sort(lat)
					us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
					b.ReportMetric(us(lat[(len(lat)-1)*50/100]), "p50-µs")
					b.ReportMetric(us(lat[(len(lat)-1)*99/100]), "p99-µs")
					b.ReportMetric(us(lat[len(lat)-1]), "max-µs")
					b.ReportMetric(float64(len(lat)), "trials")
				})
			}
		})
	}
}

func benchClient(b *testing.B, n *apitest.Node) *remote.Client {
	b.Helper()
	c, err := remote.New(remote.Config{AdminURL: n.Admin.URL, AdminKey: apitest.AdminKey, MaxStaleness: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for deadline := time.Now().Add(waitFor); !c.Connected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the change stream did not come up")
		}
	}
	return c
}

// cached validates token until v answers it from its cache: a validation
// that returns at once twice in a row.
func cached(b *testing.B, v tether.Validator, token string) {
	b.Helper()
	for range 2 {
		if _, err := v.Validate(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}

var adminHTTP = &http.Client{}

func revokeHTTP(b *testing.B, n *apitest.Node, id string) {
	req, _ := http.NewRequest(http.MethodDelete, n.Admin.URL+"/v1/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+apitest.AdminKey)
	resp, err := adminHTTP.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b.Fatalf("revoke: got %d", resp.StatusCode)
	}
}
