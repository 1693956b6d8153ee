package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether/internal/bench"
	"github.com/tetherhq/tether/internal/servicetest"
)

// tinyBench runs the whole bench machinery with tiny durations, writing the
// JSON and the chart into a temporary directory.
func tinyBench(t *testing.T, storeURL string) (rep bench.Report, raw map[string]any, svg []byte, out string) {
	t.Helper()
	dir := t.TempDir()
	o := benchOptions{
		quick: true, jsonFile: filepath.Join(dir, "bench.json"), chartFile: filepath.Join(dir, "bench.svg"),
		storeURL: storeURL, conc: 2, opDur: 5 * time.Millisecond, loadDur: 150 * time.Millisecond, trials: 5,
	}
	var stdout bytes.Buffer
	if err := runBench(context.Background(), o, &stdout, nil); err != nil {
		t.Fatalf("runBench: %v\n%s", err, stdout.String())
	}
	js, err := os.ReadFile(o.jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(&rep); err != nil {
		t.Fatalf("JSON does not decode into bench.Report: %v\n%s", err, js)
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	if svg, err = os.ReadFile(o.chartFile); err != nil {
		t.Fatal(err)
	}
	return rep, raw, svg, stdout.String()
}

func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes and loads them")
	}
	rep, raw, svg, out := tinyBench(t, "")

	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range raw {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"http", "jwt_revocation_window_ns", "machine", "propagation", "schema", "validation"}; !slices.Equal(keys, want) {
		t.Errorf("JSON keys: got %v, want %v", keys, want)
	}
	if rep.Schema != bench.Schema || rep.Machine.CPUs < 1 || rep.Machine.GoVersion == "" || rep.Machine.Mode != "quick" || rep.Machine.Date.IsZero() {
		t.Errorf("header: got schema %d, machine %+v", rep.Schema, rep.Machine)
	}
	if rep.JWTRevocationWindow != 15*time.Minute {
		t.Errorf("JWT window: got %v, want 15m", rep.JWTRevocationWindow)
	}
	var names []string
	for _, v := range rep.Validation {
		names = append(names, v.Name)
		if v.NsPerOp <= 0 || v.TokenBytes <= 0 || v.XCachedOpaque <= 0 {
			t.Errorf("validation %+v: want positive figures", v)
		}
	}
	if want := []string{"opaque, cached", "opaque, store read (bolt)", "JWT HS256", "JWT EdDSA", "JWT ES256", "PASETO v4.public", "PASETO v4.local"}; !slices.Equal(names, want) {
		t.Errorf("validation rows: got %q, want %q", names, want)
	}
	if len(rep.HTTP) != 3 {
		t.Fatalf("got %d HTTP rows, want 3", len(rep.HTTP))
	}
	for _, h := range rep.HTTP {
		if h.Requests == 0 || h.Errors != 0 || h.RPS <= 0 || h.P50 <= 0 || h.P99 < h.P50 || h.Elapsed <= 0 || h.Concurrency != 2 || (runtime.GOOS == "linux" && h.CPUPerRequest <= 0) {
			t.Errorf("HTTP %q: got %+v, want requests, no errors, 0 < p50 ≤ p99, CPU per request", h.Name, h)
		}
	}
	p := rep.Propagation
	if p.Trials != 5 || p.Nodes != 1 || p.P50 <= 0 || p.P50 > p.P99 || p.P99 > p.Max {
		t.Errorf("propagation: got %+v, want 5 trials on 1 node, 0 < p50 ≤ p99 ≤ max", p)
	}
	for _, want := range []string{"Validation of one session token", "HTTP GET /v1/session", "CPU/req", "req/s ÷ floor",
		"Revocation:", "Figures written to", "Chart written to"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkChart(t, svg, "opaque, cached", "PASETO v4.local", "bare net/http + map lookup", "Tether p99", "JWT, 15 min lifetime")
}

// With a shared store, propagation is measured between two nodes, the store
// read row reads that store, and the run leaves no key behind.
func TestBenchTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes and loads them")
	}
	addr := servicetest.SharedRedis(t)
	prefix := servicetest.RedisPrefix(t, addr)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A key the run must not touch, under the prefix the run is given.
	if err := c.Do(t.Context(), c.B().Set().Key(prefix+"neighbour").Value("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	before := redisKeys(t, c, prefix)

	rep, _, svg, out := tinyBench(t, "redis://"+addr+"/0?prefix="+prefix)
	if p := rep.Propagation; p.Nodes != 2 || p.Trials != 5 || !strings.HasPrefix(p.Store, "redis://") || p.P50 <= 0 || p.Max < p.P99 {
		t.Errorf("propagation: got %+v, want 5 trials between 2 nodes on redis", p)
	}
	if got := rep.Validation[1].Name; got != "opaque, store read (redis)" {
		t.Errorf("store read row: got %q, want it to read redis", got)
	}
	checkChart(t, svg, "on the other of 2 nodes")
	if after := redisKeys(t, c, prefix); !slices.Equal(after, before) {
		t.Errorf("keys under %s: %d before the run, %d after: %q", prefix, len(before), len(after), after)
	}
	if !strings.Contains(out, "keys this run wrote to redis://") {
		t.Errorf("output does not say the run's keys were deleted:\n%s", out)
	}
}

// redisKeys lists the keys under prefix, sorted.
func redisKeys(t *testing.T, c rueidis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	var cursor uint64
	for {
		e, err := c.Do(t.Context(), c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, e.Elements...)
		if cursor = e.Cursor; cursor == 0 {
			slices.Sort(keys)
			return keys
		}
	}
}

// A run that could not write its files, or reach its store, fails at once:
// exit 1, a message that names the flag, and not a line of measurements.
func TestBenchChecksBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		args     []string
		wantErr  string
		wantCode int
	}{
		{"chart in a missing directory", []string{"--chart", filepath.Join(dir, "nope", "b.svg")}, "no directory", 1},
		{"chart is a directory", []string{"--chart", dir}, "is a directory", 1},
		{"json in a missing directory", []string{"--json", filepath.Join(dir, "nope", "b.json")}, "--json", 1},
		{"json under a file", []string{"--json", filepath.Join(notDir, "b.json")}, "no directory", 1},
		{"unreachable redis", []string{"--store", "redis://127.0.0.1:1/0"}, "not reachable", 1},
		{"unreachable postgres", []string{"--store", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1"}, "not reachable", 1},
		{"unknown store", []string{"--store", "mongodb://127.0.0.1"}, "unknown scheme", 1},
		{"a store nodes cannot share", []string{"--store", "memory:"}, "want a store that nodes share", 2},
		{"the embedded store named", []string{"--store", "bolt:///tmp/x.db"}, "want a store that nodes share", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"bench", "--quick"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) || stdout.Len() != 0 {
				t.Errorf("exit %d, stderr %q, stdout %q: want exit %d, %q, nothing measured", code, stderr.String(), stdout.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the checks left files behind: %v", left)
	}
}

// checkChart parses svg with encoding/xml: one root <svg> in the SVG
// namespace, with a <title>, whose texts include want.
func checkChart(t *testing.T, svg []byte, want ...string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	var elems []string
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Errorf("root element: got %v, want svg in the SVG namespace", tok.Name)
			}
			elems = append(elems, tok.Name.Local)
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			text.Write(tok)
		}
	}
	if !slices.Contains(elems, "title") || !slices.Contains(elems, "rect") {
		t.Errorf("chart elements: got %v, want a title and bars", slices.Compact(slices.Sorted(slices.Values(elems))))
	}
	for _, w := range want {
		if !strings.Contains(text.String(), w) {
			t.Errorf("chart text lacks %q", w)
		}
	}
}

// BenchmarkSessionHTTP is the HTTP row of tether bench as a Go benchmark, so
// that -cpuprofile can show where a request's time goes with the cache on and
// off (BENCHMARKS.md). Each sub-benchmark starts its own node on bolt.
func BenchmarkSessionHTTP(b *testing.B) {
	for _, v := range []struct {
		name      string
		staleness time.Duration
	}{{"cache-on", time.Second}, {"cache-off", 0}} {
		b.Run(v.name, func(b *testing.B) {
			cfg := localConfig(b.TempDir(), "")
			cfg.Sessions.MaxStaleness = v.staleness
			target, stop, err := benchNodeHTTP(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { stop() })
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			b.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			var failed atomic.Int64
			b.SetParallelism(8) // 16 clients on 2 cores, as tether bench
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, target.URL, nil)
					req.Header.Set("Authorization", "Bearer "+target.Token)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			if f := failed.Load(); f > 0 {
				b.Errorf("%d of %d requests failed", f, b.N)
			}
		})
	}
}
