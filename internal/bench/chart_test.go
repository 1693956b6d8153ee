package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sampleReport() Report {
	return Report{
		Schema:  Schema,
		Machine: Machine{CPUs: 2, GoVersion: "go1.26", OS: "linux", Arch: "amd64", Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Mode: "quick"},
		Validation: []Validation{
			{Name: "opaque, cached", Opaque: true, NsPerOp: 310, TokenBytes: 59, XCachedOpaque: 1, RevokedWhen: "next request"},
			{Name: "JWT <EdDSA> & co", NsPerOp: 52000, TokenBytes: 316, XCachedOpaque: 167.7, RevokedWhen: "at expiry"},
		},
		HTTP: []HTTPResult{
			{Name: "tether, cache on", Concurrency: 16, Load: Load{Requests: 1000, RPS: 12000, P50: 900 * time.Microsecond, P99: 4 * time.Millisecond}},
			{Name: "bare net/http + map lookup", Concurrency: 16, Load: Load{Requests: 2000, RPS: 24000, P50: 400 * time.Microsecond, P99: 2 * time.Millisecond}},
		},
		Propagation:         Propagation{Store: "redis://127.0.0.1:6379", Nodes: 2, Trials: 1000, P50: 800 * time.Microsecond, P99: 3 * time.Millisecond, Max: 9 * time.Millisecond},
		JWTRevocationWindow: 15 * time.Minute,
	}
}

// checkSVG parses an SVG with encoding/xml and checks that it is one <svg>
// element whose numeric geometry is finite and whose texts include want.
func checkSVG(t *testing.T, svg []byte, want ...string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var texts strings.Builder
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root element is %v, want svg in the SVG namespace", tok.Name)
				}
			}
			depth++
			for _, a := range tok.Attr {
				switch a.Name.Local {
				case "x", "y", "x1", "x2", "y1", "y2", "width", "height":
					if a.Value == "100%" {
						continue
					}
					f, err := strconv.ParseFloat(a.Value, 64)
					if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
						t.Errorf("<%s %s=%q>: want a finite, non-negative number", tok.Name.Local, a.Name.Local, a.Value)
					}
				}
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			texts.Write(tok)
		}
	}
	if roots != 1 {
		t.Errorf("got %d root elements, want 1", roots)
	}
	for _, w := range want {
		if !strings.Contains(texts.String(), w) {
			t.Errorf("SVG text lacks %q", w)
		}
	}
}

func TestChart(t *testing.T) {
	var b bytes.Buffer
	if err := Chart(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes(), "2 CPUs", "go1.26", "2026-01-02", "opaque, cached", "JWT <EdDSA> & co",
		"310 ns", "52 µs", "316 B", "12,000 req/s", "4 ms", "Tether p99", "up to 15 min", "300,000× longer")
}

func TestChartEmptyReport(t *testing.T) {
	var b bytes.Buffer
	if err := Chart(&b, Report{}); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
}

func TestChartZeroValues(t *testing.T) {
	r := sampleReport()
	r.Validation[0].NsPerOp = 0
	r.HTTP[0].RPS, r.HTTP[0].P99 = 0, 0
	r.Propagation.P50, r.Propagation.P99, r.Propagation.Max = 0, 0, 0
	var b bytes.Buffer
	if err := Chart(&b, r); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes(), "0 ns")
}

func TestFmtDur(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 ns"}, {310, "310 ns"}, {1500, "1.5 µs"}, {52 * time.Microsecond, "52 µs"},
		{4560 * time.Microsecond, "4.56 ms"}, {1200 * time.Millisecond, "1.2 s"},
		{15 * time.Minute, "15 min"}, {2 * time.Hour, "2 h"},
	} {
		if got := fmtDur(c.d); got != c.want {
			t.Errorf("fmtDur(%v) = %q, want %q", c.d, got, c.want)
		}
	}
	for _, c := range []struct {
		x    float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567.4, "1,234,567"}, {-1234, "-1,234"}} {
		if got := fmtInt(c.x); got != c.want {
			t.Errorf("fmtInt(%v) = %q, want %q", c.x, got, c.want)
		}
	}
}
