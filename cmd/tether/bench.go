package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
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
	"github.com/tetherhq/tether/store/redisstore"
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

func runBench(ctx context.Context, o benchOptions, out, progress io.Writer) (err error) {
	o.defaults()
	if o.conc < 1 {
		return usageError{fmt.Errorf("--concurrency must be at least 1"), "tether bench"}
	}
	// Everything that can fail for want of a file or a store fails now, not
	// after a minute of measuring.
	for _, f := range []struct{ flag, path string }{{"--json", o.jsonFile}, {"--chart", o.chartFile}} {
		if err := checkWritable(f.path); err != nil {
			return fmt.Errorf("%s %s: %w", f.flag, f.path, err)
		}
	}
	dir, err := os.MkdirTemp("", "tether-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bs, err := openBenchStore(ctx, o.storeURL, dir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := bs.close(ctx, out); err == nil {
			err = cerr
		}
	}()
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	rep := bench.Report{Schema: bench.Schema, Machine: bench.ThisMachine(mode), JWTRevocationWindow: jwtLifetime}
	fmt.Fprintf(out, "tether bench on %d CPUs, %s %s/%s (%s)\n\n", rep.Machine.CPUs, rep.Machine.GoVersion, rep.Machine.OS, rep.Machine.Arch, mode)

	// 1. Validation cost and token bytes, in process.
	rows, err := benchValidation(ctx, bs, o.opDur, progress)
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

	// 2. HTTP throughput against real nodes and a bare handler, all up at
	// once and loaded in turn, a slice at a time.
	fmt.Fprintf(out, "\nHTTP GET /v1/session on loopback (%d keep-alive clients, %v each, in %d rounds)\n", o.conc, o.loadDur, httpRounds)
	names := []string{"tether, cache on", "tether, cache off", "bare net/http + map lookup"}
	var targets []bench.Target
	for i, staleness := range []time.Duration{time.Second, 0} {
		cfg := localConfig(filepath.Join(dir, fmt.Sprint("http", i)), bs.url)
		cfg.Sessions.MaxStaleness = staleness
		t, stop, err := benchNodeHTTP(ctx, cfg)
		if err != nil {
			return err
		}
		defer stop()
		targets = append(targets, t)
	}
	t, stop, err := benchBareHTTP()
	if err != nil {
		return err
	}
	defer stop()
	targets = append(targets, t)
	loads := bench.HTTPLoads(ctx, targets, http.StatusOK, o.conc, o.loadDur, httpRounds, progress)
	if err := ctx.Err(); err != nil {
		return err // interrupted: the loads stopped early and mean nothing
	}
	for i, l := range loads {
		rep.HTTP = append(rep.HTTP, bench.HTTPResult{Name: names[i], Concurrency: o.conc, Load: l})
	}
	floor := loads[len(loads)-1]
	fmt.Fprintf(w, "server\treq/s\tp50\tp99\terrors\tCPU/req\treq/s ÷ floor\t\n")
	for _, r := range rep.HTTP {
		fmt.Fprintf(w, "%s\t%.0f\t%v\t%v\t%d\t%v\t%.2f\t\n", r.Name, r.RPS, r.P50.Round(time.Microsecond),
			r.P99.Round(time.Microsecond), r.Errors, r.CPUPerRequest.Round(100*time.Nanosecond), r.RPS/floor.RPS)
	}
	w.Flush()
	fmt.Fprintln(out, "(floor: the bare handler, which does only what any server must; CPU/req: this")
	fmt.Fprintln(out, "process's CPU time per request, load generator included, which a busy machine")
	fmt.Fprintln(out, "skews less than req/s)")

	// 3. Revocation propagation.
	prop, err := benchPropagation(ctx, dir, bs, o.trials, progress)
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

// benchStore is the store a run measures: the embedded one, or --store. On
// Redis the run keeps its keys under a prefix of its own, below the URL's, and
// deletes every one of them when it ends.
type benchStore struct {
	url     string       // what the run's nodes open: "" for the embedded store, each in its own directory
	display string       // the store as printed: --store without its password
	kind    string       // "bolt", "redis", "postgres", …
	st      tether.Store // for the in-process rows: the same store as the nodes', or bolt in the run's directory
}

// openBenchStore opens the run's store and checks that it answers.
func openBenchStore(ctx context.Context, storeURL, dir string) (*benchStore, error) {
	bs := &benchStore{url: storeURL, display: "embedded bolt", kind: "bolt"}
	if storeURL != "" {
		bs.display = store.Redact(storeURL)
		bs.kind, _, _ = strings.Cut(storeURL, ":")
		if bs.kind == "memory" || bs.kind == "bolt" {
			// Two nodes cannot share either, and without --store the run measures bolt.
			return nil, usageError{fmt.Errorf("--store %s: want a store that nodes share (redis://…, postgres://…); without --store the run measures the embedded store", bs.display), "tether bench"}
		}
		if strings.HasPrefix(bs.kind, "redis") {
			u, err := url.Parse(storeURL)
			if err != nil {
				return nil, fmt.Errorf("--store %s: %w", bs.display, err)
			}
			q := u.Query()
			prefix := cmp.Or(q.Get("prefix"), redisstore.DefaultPrefix)
			q.Set("prefix", prefix+"bench-"+strings.ToLower(rand.Text()[:10])+":")
			u.RawQuery = q.Encode()
			bs.url = u.String()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, bs.url, dir, store.Options{})
	if err == nil {
		if err = st.Ping(ctx); err != nil {
			st.Close()
		}
	}
	if errors.Is(err, tether.ErrUnavailable) {
		return nil, fmt.Errorf("--store %s: not reachable: %w", bs.display, err)
	}
	if err != nil {
		return nil, fmt.Errorf("--store %s: %w", bs.display, err)
	}
	bs.st = st
	return bs, nil
}

// close deletes what the run wrote to a shared store that can say so, and
// closes it. It runs even when the run was interrupted.
func (bs *benchStore) close(ctx context.Context, out io.Writer) error {
	defer bs.st.Close()
	r, ok := bs.st.(*redisstore.Store)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	n, err := r.DeleteAll(ctx)
	if err != nil {
		return fmt.Errorf("delete the run's keys from %s: %w", bs.display, err)
	}
	fmt.Fprintf(out, "\nDeleted the %d keys this run wrote to %s\n", n, bs.display)
	return nil
}

// checkWritable reports whether a file can be written at path, without
// leaving one there; an empty path is no file, so fine.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return errors.New("is a directory")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // no O_TRUNC: the old file stays until the run ends
		if err != nil {
			return fmt.Errorf("cannot write it: %w", err)
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("no directory %s", dir)
	}
	f, err := os.CreateTemp(dir, ".tether-bench-check-*")
	if err != nil {
		return fmt.Errorf("cannot write there: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func benchValidation(ctx context.Context, bs *benchStore, d time.Duration, progress io.Writer) ([]bench.Validation, error) {
	now := time.Now()
	claims := selfcontained.Claims{Issuer: "https://a.example", Subject: "bench", SessionID: tether.NewID(),
		Roles: []string{"admin"}, IssuedAt: now, Expiry: now.Add(jwtLifetime)}
	formats := selfcontained.Formats(claims.Issuer)
	total := 2 + len(formats)
	var rows []bench.Validation
	for _, v := range []struct {
		name      string
		staleness time.Duration
	}{{"opaque, cached", 0}, {"opaque, store read (" + bs.kind + ")", -1}} {
		bench.Progress(progress, "validation", float64(len(rows))/float64(total))
		m, err := tether.NewManager(tether.Config{Store: bs.st, MaxStaleness: v.staleness})
		if err != nil {
			return nil, err
		}
		token, err := warmToken(ctx, m, v.staleness >= 0)
		if err != nil {
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

// warmToken makes a session on m and validates it until the validation is
// served as measured: from the cache when cached, which on a shared store
// waits for its change channel to come up.
func warmToken(ctx context.Context, m *tether.Manager, cached bool) (string, error) {
	token, _, err := m.Create(ctx, tether.CreateParams{Subject: "bench", Roles: []string{"admin"}})
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		hits := m.Stats().CacheHits
		if _, err := m.Validate(ctx, token); err != nil {
			return "", err
		}
		if !cached || m.Stats().CacheHits > hits {
			return token, nil
		}
		if time.Now().After(deadline) {
			return "", errors.New("the cache never served the session: is the store's change channel up?")
		}
		time.Sleep(time.Millisecond)
	}
}

// httpRounds is how many slices each HTTP load is cut into.
const httpRounds = 3

// benchNodeHTTP starts a node and makes a session to load it with.
func benchNodeHTTP(ctx context.Context, cfg config.Config) (bench.Target, func() error, error) {
	n, err := startLocalNode(ctx, cfg)
	if err != nil {
		return bench.Target{}, nil, err
	}
	token, err := n.createSession(ctx, "bench")
	if err != nil {
		n.stop()
		return bench.Target{}, nil, err
	}
	return bench.Target{URL: n.public + "/v1/session", Token: token}, n.stop, nil
}

// benchBareHTTP serves a handler that does only what no session service can
// avoid: read the header, look it up in a map, write JSON.
func benchBareHTTP() (bench.Target, func() error, error) {
	sessions := map[string]string{"bare-token": `{"subject":"bench","roles":["admin"]}`}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return bench.Target{}, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := sessions[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, s)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return bench.Target{URL: "http://" + ln.Addr().String() + "/", Token: "bare-token"}, srv.Close, nil
}

// benchPropagation revokes sessions through node 1's admin API and times how
// long until node 2 (node 1 itself on a one-node store) refuses them. Each
// trial has its own subject, so the per-subject limit on creations never
// throttles the run.
func benchPropagation(ctx context.Context, dir string, bs *benchStore, trials int, progress io.Writer) (bench.Propagation, error) {
	row := bench.Propagation{Store: bs.display, Nodes: 1, Trials: trials}
	n1, err := startLocalNode(ctx, localConfig(filepath.Join(dir, "prop1"), bs.url))
	if err != nil {
		return row, err
	}
	defer n1.stop()
	n2 := n1
	if bs.url != "" {
		row.Nodes = 2
		if n2, err = startLocalNode(ctx, localConfig(filepath.Join(dir, "prop2"), bs.url)); err != nil {
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
