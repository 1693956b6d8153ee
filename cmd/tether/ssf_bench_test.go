package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/adminclient"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/internal/servicetest"
)

// BenchmarkSSFRevocation measures revocation across services (DESIGN §11):
// from A's revoke returning until B refuses the session it made from A's
// handshake, with A pushing the SET to B over loopback. A and B are
// in-process nodes, each with its own store on one server. Each iteration is
// one trial; it reports the p50 and p99 over them (budget: p99 ≤ 100 ms).
//
//	go test -run '^$' -bench SSFRevocation -benchtime 200x ./cmd/tether/
func BenchmarkSSFRevocation(b *testing.B) {
	for _, be := range ssfBackends {
		b.Run(be.name, func(b *testing.B) { benchSSFRevocation(b, be.url(b), be.url(b)) })
	}
}

func benchSSFRevocation(b *testing.B, storeA, storeB string) {
	dir := b.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	hsKey := write("a-to-b.key", "c2hhcmVkLWtleS1mb3ItdGhlLXNzZi1iZW5jaG1hcmstMzJi")
	pushSecret := write("push.secret", "bench-push-secret-0123456789")
	bAddr := "127.0.0.1:" + strconv.Itoa(servicetest.FreePort(b))

	cfgA := localConfig(filepath.Join(dir, "a"), storeA)
	cfgA.Issuer = e2eIssuerA
	cfgA.Handshake.Audiences = map[string]handshake.AudienceSpec{e2eIssuerB: {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: hsKey}}
	cfgA.SSF.Receivers = []config.SSFReceiver{{Audience: e2eIssuerB, Endpoint: "http://" + bAddr + "/ssf/events", AuthorizationFile: pushSecret}}
	a, err := startLocalNode(b.Context(), cfgA)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.stop() })
	cfgB := localConfig(filepath.Join(dir, "b"), storeB)
	cfgB.Addr, cfgB.Issuer = bAddr, e2eIssuerB
	cfgB.Handshake.TrustedIssuers = []handshake.IssuerSpec{{Issuer: e2eIssuerA, Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: hsKey}}
	cfgB.SSF.Transmitters = []config.SSFTransmitter{{Issuer: e2eIssuerA, JWKSURL: a.public + "/.well-known/jwks.json", AuthorizationFile: pushSecret}}
	bNode, err := startLocalNode(b.Context(), cfgB)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bNode.stop() })

	client := &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()
	samples := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		aToken, aSess, err := a.adminAPI.CreateSession(ctx, adminclient.CreateSessionRequest{Subject: fmt.Sprint("user-", i)})
		if err != nil {
			b.Fatal(err)
		}
		var minted struct{ Token string }
		if code, err := callJSON(client, http.MethodPost, a.public+"/v1/handshakes", aToken, map[string]string{"audience": e2eIssuerB}, &minted); code != http.StatusCreated {
			b.Fatalf("mint: %d %v", code, err)
		}
		var exchanged struct{ Token string }
		if code, err := callJSON(client, http.MethodPost, bNode.public+"/v1/handshakes/exchange", "", map[string]string{"token": minted.Token}, &exchanged); code != http.StatusCreated {
			b.Fatalf("exchange: %d %v", code, err)
		}
		for range 2 { // the second is served from B's cache
			if code, err := callJSON(client, http.MethodGet, bNode.public+"/v1/session", exchanged.Token, nil, nil); code != http.StatusOK {
				b.Fatalf("B before the revoke: %d %v", code, err)
			}
		}
		if err := a.adminAPI.RevokeSession(ctx, aSess.ID); err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		for {
			code, err := callJSON(client, http.MethodGet, bNode.public+"/v1/session", exchanged.Token, nil, nil)
			if code == http.StatusUnauthorized {
				break
			}
			if code != http.StatusOK || time.Since(returned) > 30*time.Second {
				b.Fatalf("B after the revoke: %d %v", code, err)
			}
			// A pause, so that asking does not take the CPU the answer
			// needs (two cores here): the figure is good to 0.2 ms.
			time.Sleep(200 * time.Microsecond)
		}
		samples = append(samples, time.Since(returned))
	}
	slices.Sort(samples)
	p50, p99 := pct(samples, 50), pct(samples, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(samples[len(samples)-1].Microseconds())/1000, "max-ms")
}
