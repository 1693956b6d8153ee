package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/bench"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/internal/selfcontained"
	"github.com/tetherhq/tether/store"
)

func newBenchCmd() *cobra.Command {
	var o benchOptions
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure opaque sessions against JWT and PASETO on this machine",
		Long: `Measure, in one run on this machine and side by side:
  - validation cost: a cached opaque token vs verifying JWTs (HS256, EdDSA, ES256)
    and PASETO v4 tokens with the same claims, with well-kept libraries;
  - token bytes on the wire for the same session;
  - HTTP GET /v1/session throughput and p50/p99 against a node it starts,
    next to a bare net/http handler that only does a map lookup;
  - revocation propagation (between two nodes when --store names a shared store)
    next to a JWT's revocation window: its whole remaining lifetime.

The full run takes under a minute (1,000 revocation trials); --quick under
20 s. --json writes every figure (durations in ns), --chart draws them.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			var progress io.Writer // a progress bar only where a person watches
			if f, ok := c.ErrOrStderr().(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					progress = f
				}
			}
			return runBench(c.Context(), o, c.OutOrStdout(), progress)
		},
	}
	f := c.Flags()
	f.BoolVar(&o.quick, "quick", false, "shorter runs: under 20 s in all, against about a minute")
	f.StringVar(&o.jsonFile, "json", "", "also write the figures to this JSON file (durations in ns)")
	f.StringVar(&o.chartFile, "chart", "", "also draw the figures as a self-contained SVG in this file")
	f.StringVar(&o.storeURL, "store", "", "a shared store URL (redis://…, postgres://…) to measure propagation between two nodes; default: the embedded store, one node")
	f.IntVar(&o.conc, "concurrency", 16, "concurrent HTTP clients")
	return c
}

type benchOptions struct {
	quick     bool
	jsonFile  string
	chartFile string
	storeURL  string
	conc      int

	// How long each measurement runs; zero takes the --quick or full default.
	// Tests set them tiny.
	opDur, loadDur time.Duration
	trials         int
}

// defaults fills in the lengths of the measurements. On two CPUs the full
// run takes about 40 s and --quick about 12 s; most of it is the three HTTP
// loads.
func (o *benchOptions) defaults() {
	opDur, loadDur, trials := 800*time.Millisecond, 8*time.Second, 1000
	if o.quick {
		opDur, loadDur, trials = 250*time.Millisecond, 2500*time.Millisecond, 100
	}
	if o.opDur == 0 {
		o.opDur = opDur
	}
	if o.loadDur == 0 {
		o.loadDur = loadDur
	}
	if o.trials == 0 {
		o.trials = trials
	}
}

// jwtLifetime is the customary access-token lifetime that a JWT session's
// revocation window is compared at.
const jwtLifetime = 15 * time.Minute

func runBench(ctx context.Context, o benchOptions, out, progress io.Writer) error {
	o.defaults()
	if o.conc < 1 {
		return usageError{fmt.Errorf("--concurrency must be at least 1"), "tether bench"}
	}
	dir, err := os.MkdirTemp("", "tether-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	rep := bench.Report{Schema: bench.Schema, Machine: bench.ThisMachine(mode), JWTRevocationWindow: jwtLifetime}
	fmt.Fprintf(out, "tether bench on %d CPUs, %s %s/%s (%s)\n\n", rep.Machine.CPUs, rep.Machine.GoVersion, rep.Machine.OS, rep.Machine.Arch, mode)

	// 1. Validation cost and token bytes, in process.
	rows, err := benchValidation(ctx, dir, o.opDur, progress)
	if err != nil {
		return err
	}
	rep.Validation = rows
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(out, "Validation of one session token (lower is better)")
	fmt.Fprintf(w, "token\tns/op\tx cached opaque\tbytes\trevoked when\t\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%.0f\t%.1f\t%d\t%s\t\n", r.Name, r.NsPerOp, r.XCachedOpaque, r.TokenBytes, r.RevokedWhen)
	}
	w.Flush()

	// 2. HTTP throughput against real nodes and a bare handler.
	fmt.Fprintf(out, "\nHTTP GET /v1/session on loopback (%d keep-alive clients, %v each)\n", o.conc, o.loadDur)
	for _, v := range []struct {
		name      string
		staleness time.Duration
	}{{"tether, cache on", time.Second}, {"tether, cache off", 0}} {
		cfg := localConfig(filepath.Join(dir, fmt.Sprint("http", len(rep.HTTP))), o.storeURL)
		cfg.Sessions.MaxStaleness = v.staleness
		l, err := benchNodeHTTP(ctx, cfg, o.conc, o.loadDur, progress)
		if err != nil {
			return err
		}
		rep.HTTP = append(rep.HTTP, bench.HTTPResult{Name: v.name, Concurrency: o.conc, Load: l})
	}
	bare, err := benchBareHTTP(ctx, o.conc, o.loadDur, progress)
	if err != nil {
		return err
	}
	rep.HTTP = append(rep.HTTP, bench.HTTPResult{Name: "bare net/http + map lookup", Concurrency: o.conc, Load: bare})
	if err := ctx.Err(); err != nil {
		return err // interrupted: the loads stopped early and mean nothing
	}
	fmt.Fprintf(w, "server\treq/s\tp50\tp99\terrors\tx bare req/s\t\n")
	for _, r := range rep.HTTP {
		fmt.Fprintf(w, "%s\t%.0f\t%v\t%v\t%d\t%.2f\t\n", r.Name, r.RPS, r.P50.Round(time.Microsecond),
			r.P99.Round(time.Microsecond), r.Errors, bare.RPS/r.RPS)
	}
	w.Flush()

	// 3. Revocation propagation.
	prop, err := benchPropagation(ctx, dir, o.storeURL, o.trials, progress)
	if err != nil {
		return err
	}
	rep.Propagation = prop
	fmt.Fprintf(out, "\nRevocation: from the revoke's return until a request to node %d is refused (%d trials, %s)\n", prop.Nodes, prop.Trials, prop.Store)
	fmt.Fprintf(w, "token\tp50\tp99\tmax\t\n")
	fmt.Fprintf(w, "tether opaque\t%v\t%v\t%v\t\n", prop.P50.Round(time.Microsecond), prop.P99.Round(time.Microsecond), prop.Max.Round(time.Microsecond))
	fmt.Fprintf(w, "JWT, %v lifetime\tup to %v\tup to %v\t%v\t\n", jwtLifetime, jwtLifetime, jwtLifetime, jwtLifetime)
	w.Flush()

	if o.jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nFigures written to %s\n", o.jsonFile)
	}
	if o.chartFile != "" {
		var b bytes.Buffer
		if err := bench.Chart(&b, rep); err != nil {
			return err
		}
		if err := os.WriteFile(o.chartFile, b.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "Chart written to %s\n", o.chartFile)
	}
	return nil
}

func benchValidation(ctx context.Context, dir string, d time.Duration, progress io.Writer) ([]bench.Validation, error) {
	st, err := store.Open(ctx, "", dir, store.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	now := time.Now()
	claims := selfcontained.Claims{Issuer: "https://a.example", Subject: "bench", SessionID: tether.NewID(),
		Roles: []string{"admin"}, IssuedAt: now, Expiry: now.Add(jwtLifetime)}
	formats := selfcontained.Formats(claims.Issuer)
	total := 2 + len(formats)
	var rows []bench.Validation
	for _, v := range []struct {
		name      string
		staleness time.Duration
	}{{"opaque, cached", 0}, {"opaque, store read (bolt)", -1}} {
		bench.Progress(progress, "validation", float64(len(rows))/float64(total))
		m, err := tether.NewManager(tether.Config{Store: st, MaxStaleness: v.staleness})
		if err != nil {
			return nil, err
		}
		token, _, err := m.Create(ctx, tether.CreateParams{Subject: "bench", Roles: []string{"admin"}})
		if err != nil {
			m.Close()
			return nil, err
		}
		if _, err := m.Validate(ctx, token); err != nil {
			m.Close()
			return nil, err
		}
		ns := bench.NsPerOp(d, func() { m.Validate(ctx, token) })
		m.Close()
		rows = append(rows, bench.Validation{Name: v.name, Opaque: true, NsPerOp: ns, TokenBytes: len(token), RevokedWhen: "next request"})
	}
	for _, f := range formats {
		bench.Progress(progress, "validation", float64(len(rows))/float64(total))
		raw, err := f.Mint(claims)
		if err != nil {
			return nil, err
		}
		if _, err := f.Verify(raw, now); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		ns := bench.NsPerOp(d, func() { f.Verify(raw, now) })
		rows = append(rows, bench.Validation{Name: f.Name, NsPerOp: ns, TokenBytes: len(raw), RevokedWhen: "at expiry"})
	}
	bench.ClearProgress(progress)
	for i := range rows {
		rows[i].XCachedOpaque = math.Round(rows[i].NsPerOp/rows[0].NsPerOp*1000) / 1000
	}
	return rows, nil
}

// benchNodeHTTP starts a node, makes a session and loads GET /v1/session.
func benchNodeHTTP(ctx context.Context, cfg config.Config, conc int, d time.Duration, progress io.Writer) (bench.Load, error) {
	n, err := startLocalNode(ctx, cfg)
	if err != nil {
		return bench.Load{}, err
	}
	defer n.stop()
	token, err := n.createSession(ctx, "bench")
	if err != nil {
		return bench.Load{}, err
	}
	return bench.HTTPLoad(ctx, n.public+"/v1/session", token, http.StatusOK, conc, d, progress), nil
}

// benchBareHTTP loads a handler that does only what no session service can
// avoid: read the header, look it up in a map, write JSON.
func benchBareHTTP(ctx context.Context, conc int, d time.Duration, progress io.Writer) (bench.Load, error) {
	sessions := map[string]string{"bare-token": `{"subject":"bench","roles":["admin"]}`}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return bench.Load{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := sessions[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, s)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	return bench.HTTPLoad(ctx, "http://"+ln.Addr().String()+"/", "bare-token", http.StatusOK, conc, d, progress), nil
}

// benchPropagation revokes sessions through node 1's admin API and times how
// long until node 2 (node 1 itself on a one-node store) refuses them. Each
// trial has its own subject, so the per-subject limit on creations never
// throttles the run.
func benchPropagation(ctx context.Context, dir, storeURL string, trials int, progress io.Writer) (bench.Propagation, error) {
	row := bench.Propagation{Store: "embedded bolt", Nodes: 1, Trials: trials}
	n1, err := startLocalNode(ctx, localConfig(filepath.Join(dir, "prop1"), storeURL))
	if err != nil {
		return row, err
	}
	defer n1.stop()
	n2 := n1
	if storeURL != "" {
		row.Store, row.Nodes = store.Redact(storeURL), 2
		if n2, err = startLocalNode(ctx, localConfig(filepath.Join(dir, "prop2"), storeURL)); err != nil {
			return row, err
		}
		defer n2.stop()
	}
	client := &http.Client{Timeout: 5 * time.Second}
	lat := make([]time.Duration, 0, trials)
	run := rand.Text()[:8]
	for i := range trials {
		if err := ctx.Err(); err != nil {
			return row, err
		}
		if i%10 == 0 {
			bench.Progress(progress, "revocation", float64(i)/float64(trials))
		}
		token, err := n1.createSession(ctx, fmt.Sprintf("propagation-%s-%d", run, i))
		if err != nil {
			return row, err
		}
		if code, err := callJSON(client, "GET", n2.public+"/v1/session", token, nil, nil); err != nil || code != http.StatusOK {
			return row, fmt.Errorf("warm-up on node %d: status %d: %v", row.Nodes, code, err)
		}
		id := tether.InspectToken(token).SessionID
		if err := n1.adminAPI.RevokeSession(ctx, id); err != nil {
			return row, fmt.Errorf("revoke: %w", err)
		}
		t0 := time.Now()
		for {
			code, err := callJSON(client, "GET", n2.public+"/v1/session", token, nil, nil)
			if err != nil {
				return row, err
			}
			if code == http.StatusUnauthorized {
				break
			}
			if time.Since(t0) > 10*time.Second {
				return row, fmt.Errorf("node %d still accepts a revoked session after 10s", row.Nodes)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	bench.ClearProgress(progress)
	slices.Sort(lat)
	row.P50, row.P99, row.Max = bench.Percentile(lat, 50), bench.Percentile(lat, 99), lat[len(lat)-1]
	return row, nil
}
