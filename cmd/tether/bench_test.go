package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
		if h.Requests == 0 || h.Errors != 0 || h.RPS <= 0 || h.P50 <= 0 || h.P99 < h.P50 || h.Elapsed <= 0 || h.Concurrency != 2 {
			t.Errorf("HTTP %q: got %+v, want requests, no errors, 0 < p50 ≤ p99", h.Name, h)
		}
	}
	p := rep.Propagation
	if p.Trials != 5 || p.Nodes != 1 || p.P50 <= 0 || p.P50 > p.P99 || p.P99 > p.Max {
		t.Errorf("propagation: got %+v, want 5 trials on 1 node, 0 < p50 ≤ p99 ≤ max", p)
	}
	for _, want := range []string{"Validation of one session token", "HTTP GET /v1/session", "Revocation:", "Figures written to", "Chart written to"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	checkChart(t, svg, "opaque, cached", "PASETO v4.local", "bare net/http + map lookup", "Tether p99", "JWT, 15 min lifetime")
}

// With a shared store, propagation is measured between two nodes.
func TestBenchTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes and loads them")
	}
	addr := servicetest.SharedRedis(t)
	rep, _, svg, _ := tinyBench(t, "redis://"+addr+"/0?prefix="+servicetest.RedisPrefix(t, addr))
	if p := rep.Propagation; p.Nodes != 2 || p.Trials != 5 || !strings.HasPrefix(p.Store, "redis://") || p.P50 <= 0 || p.Max < p.P99 {
		t.Errorf("propagation: got %+v, want 5 trials between 2 nodes on redis", p)
	}
	checkChart(t, svg, "on the other of 2 nodes")
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
