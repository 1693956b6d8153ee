package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// The chart is hand-written SVG with no scripts, fonts or links, so it shows
// the same in a browser, an image viewer and a README.
const (
	chartWidth = 960
	labelRight = 250 // right edge of the row labels
	barLeft    = 262
	barRight   = chartWidth - 170 // room for the value text after the longest bar
	rowHeight  = 24
	barHeight  = 15
)

// Bar colours by kind, with enough contrast on white for print.
var barColour = map[string]string{
	"opaque":        "#0f766e", // Tether
	"selfcontained": "#c2410c", // JWT, PASETO
	"baseline":      "#6b7280", // the bare handler
}

type chartBar struct {
	label string
	value float64 // in the panel's unit; ≤ 0 draws no bar
	text  string  // printed after the bar
	kind  string  // a key of barColour
}

type chartPanel struct {
	title, note string
	log         bool                 // a log scale of durations in ns; else linear from 0
	tick        func(float64) string // axis labels
	bars        []chartBar
	footer      string // a line under the axis, if not empty
}

// Chart draws r as a self-contained SVG: horizontal bar charts of validation
// cost, token size, HTTP throughput and p99, and the revocation window.
func Chart(w io.Writer, r Report) error {
	var panels []chartPanel
	if len(r.Validation) > 0 {
		p := chartPanel{title: "Validating one session token", note: "ns per validation, log scale; lower is better",
			log: true, tick: func(v float64) string { return fmtDur(time.Duration(v)) }}
		q := chartPanel{title: "Token size on the wire", note: "bytes; lower is better",
			tick: func(v float64) string { return fmtInt(v) + " B" }}
		for _, v := range r.Validation {
			kind := "selfcontained"
			if v.Opaque {
				kind = "opaque"
			}
			p.bars = append(p.bars, chartBar{v.Name, v.NsPerOp,
				fmt.Sprintf("%s  (%s× cached opaque)", fmtDur(time.Duration(v.NsPerOp)), fmtRatio(v.XCachedOpaque)), kind})
			q.bars = append(q.bars, chartBar{v.Name, float64(v.TokenBytes), fmtInt(float64(v.TokenBytes)) + " B", kind})
		}
		panels = append(panels, p, q)
	}
	if len(r.HTTP) > 0 {
		conc := r.HTTP[0].Concurrency
		p := chartPanel{title: "HTTP GET /v1/session on loopback: throughput",
			note: fmt.Sprintf("requests per second, %d keep-alive clients; higher is better", conc), tick: fmtInt}
		q := chartPanel{title: "HTTP GET /v1/session on loopback: p99 latency",
			note: "lower is better", tick: func(v float64) string {
				if v == 0 {
					return "0"
				}
				return fmtDur(time.Duration(v))
			}}
		for _, h := range r.HTTP {
			kind := "opaque"
			if strings.HasPrefix(h.Name, "bare") {
				kind = "baseline"
			}
			p.bars = append(p.bars, chartBar{h.Name, h.RPS, fmtInt(h.RPS) + " req/s", kind})
			q.bars = append(q.bars, chartBar{h.Name, float64(h.P99), fmtDur(h.P99) + "  (p50 " + fmtDur(h.P50) + ")", kind})
		}
		panels = append(panels, p, q)
	}
	if pr := r.Propagation; pr.Trials > 0 {
		where := "on the same node"
		if pr.Nodes > 1 {
			where = fmt.Sprintf("on the other of %d nodes", pr.Nodes)
		}
		p := chartPanel{title: "Revocation window: how long a revoked token still works",
			note: fmt.Sprintf("Tether: from the revoke's return until refused %s (%s, %d trials); log scale", where, storeName(pr.Store), pr.Trials),
			log:  true, tick: func(v float64) string { return fmtDur(time.Duration(v)) }}
		for _, b := range []struct {
			name string
			d    time.Duration
		}{{"Tether p50", pr.P50}, {"Tether p99", pr.P99}, {"Tether max", pr.Max}} {
			p.bars = append(p.bars, chartBar{b.name, float64(b.d), fmtDur(b.d), "opaque"})
		}
		if jw := r.JWTRevocationWindow; jw > 0 {
			p.bars = append(p.bars, chartBar{"JWT, " + fmtDur(jw) + " lifetime", float64(jw), "up to " + fmtDur(jw), "selfcontained"})
			if pr.P99 > 0 {
				p.footer = fmt.Sprintf("A revoked or stolen JWT keeps working up to %s× longer than Tether's p99.",
					fmtRatio(float64(jw)/float64(pr.P99)))
			}
		}
		panels = append(panels, p)
	}

	var b strings.Builder
	y := 0
	m := r.Machine
	fmt.Fprintf(&b, `<text x="24" y="36" font-size="22" font-weight="bold" fill="#111827">%s</text>`+"\n",
		esc("Tether opaque sessions vs self-contained tokens"))
	fmt.Fprintf(&b, `<text x="24" y="60" font-size="13" fill="#4b5563">%s</text>`+"\n",
		esc(fmt.Sprintf("tether bench (%s) · %d CPUs · %s %s/%s · %s", m.Mode, m.CPUs, m.GoVersion, m.OS, m.Arch, m.Date.UTC().Format("2006-01-02 15:04 MST"))))
	x := 24
	for _, k := range []struct{ kind, name string }{{"opaque", "Tether (opaque token)"}, {"selfcontained", "JWT / PASETO (self-contained)"}, {"baseline", "bare net/http baseline"}} {
		fmt.Fprintf(&b, `<rect x="%d" y="74" width="12" height="12" fill="%s"/><text x="%d" y="85" font-size="12" fill="#374151">%s</text>`+"\n",
			x, barColour[k.kind], x+17, esc(k.name))
		x += 17 + 7*len(k.name) + 24
	}
	y = 100
	for _, p := range panels {
		y = drawPanel(&b, p, y) + 28
	}
	height := y - 10
	_, err := fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">
<title>%s</title>
<rect width="100%%" height="100%%" fill="#ffffff"/>
%s</svg>
`, chartWidth, height, chartWidth, height, esc("tether bench, "+m.Date.UTC().Format("2006-01-02")), b.String())
	return err
}

// drawPanel draws p from y down and returns the y below it.
func drawPanel(b *strings.Builder, p chartPanel, y int) int {
	fmt.Fprintf(b, `<text x="24" y="%d" font-size="16" font-weight="bold" fill="#111827">%s</text>`+"\n", y+16, esc(p.title))
	fmt.Fprintf(b, `<text x="24" y="%d" font-size="12" fill="#4b5563">%s</text>`+"\n", y+33, esc(p.note))
	y += 44
	scale, ticks := linearScale(p.bars)
	if p.log {
		scale, ticks = logScale(p.bars)
	}
	top, bottom := y, y+len(p.bars)*rowHeight
	for _, t := range ticks {
		tx := barLeft + scale(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e7eb"/>`+"\n", tx, top, tx, bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" fill="#6b7280" text-anchor="middle">%s</text>`+"\n", tx, bottom+14, esc(p.tick(t)))
	}
	for i, bar := range p.bars {
		ry := top + i*rowHeight + (rowHeight-barHeight)/2
		width := 0.0
		if bar.value > 0 {
			width = max(1, scale(bar.value))
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" fill="#111827" text-anchor="end">%s</text>`+"\n", labelRight, ry+12, esc(bar.label))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", barLeft, ry, width, barHeight, barColour[bar.kind])
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="12" fill="#1f2937">%s</text>`+"\n", float64(barLeft)+width+6, ry+12, esc(bar.text))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#9ca3af"/>`+"\n", barLeft, top, barLeft, bottom)
	y = bottom + 18
	if p.footer != "" {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" font-weight="bold" fill="#111827">%s</text>`+"\n", barLeft, y+12, esc(p.footer))
		y += 20
	}
	return y
}

// linearScale maps [0, a round number above the largest value] onto the bar
// width, with ticks at round steps.
func linearScale(bars []chartBar) (func(float64) float64, []float64) {
	hi := 0.0
	for _, b := range bars {
		hi = max(hi, b.value)
	}
	if hi <= 0 {
		hi = 1
	}
	step := niceStep(hi / 5)
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for t := 0.0; t <= hi*1.0001; t += step {
		ticks = append(ticks, t)
	}
	width := float64(barRight - barLeft)
	return func(v float64) float64 { return min(max(v, 0), hi) / hi * width }, ticks
}

// logScale maps durations (ns) onto the bar width on a log scale, from a
// decade below the smallest value (so that it still gets a visible bar) to
// the decade above the largest, or to the largest itself past a minute (so
// that a 15-minute bar ends at the edge, not two thirds of the way). Ticks
// fall on round durations.
func logScale(bars []chartBar) (func(float64) float64, []float64) {
	lo, hi := math.Inf(1), 0.0
	for _, b := range bars {
		if b.value > 0 {
			lo, hi = min(lo, b.value), max(hi, b.value)
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	l0 := math.Floor(math.Log10(lo / 2))
	l1 := math.Ceil(math.Log10(hi))
	if hi > float64(time.Minute) {
		l1 = math.Log10(hi)
	}
	if l1 <= l0 {
		l1 = l0 + 1
	}
	var ticks []float64
	for _, t := range roundDurations {
		if e := math.Log10(float64(t)); e >= l0-1e-9 && e <= l1+1e-9 {
			ticks = append(ticks, float64(t))
		}
	}
	width := float64(barRight - barLeft)
	return func(v float64) float64 {
		if v <= 0 {
			return 0
		}
		return min(max(math.Log10(v)-l0, 0), l1-l0) / (l1 - l0) * width
	}, ticks
}

var roundDurations = []time.Duration{
	1, 10, 100, time.Microsecond, 10 * time.Microsecond, 100 * time.Microsecond,
	time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond,
	time.Second, 10 * time.Second, time.Minute, 15 * time.Minute, time.Hour,
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= x {
			return m * mag
		}
	}
	return 10 * mag
}

// fmtDur prints a duration with three significant figures in the unit a
// reader expects: 850 ns, 12.3 µs, 4.56 ms, 1.2 s, 15 min.
func fmtDur(d time.Duration) string {
	f := float64(d)
	switch {
	case d < time.Microsecond:
		return sig3(f) + " ns"
	case d < time.Millisecond:
		return sig3(f/1e3) + " µs"
	case d < time.Second:
		return sig3(f/1e6) + " ms"
	case d < time.Minute:
		return sig3(f/1e9) + " s"
	case d < time.Hour:
		return sig3(d.Minutes()) + " min"
	default:
		return sig3(d.Hours()) + " h"
	}
}

// sig3 prints x with up to three significant figures and no trailing zeros.
func sig3(x float64) string {
	if x >= 100 {
		return strconv.FormatFloat(math.Round(x), 'f', -1, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}

func fmtRatio(x float64) string {
	if x >= 10 {
		return fmtInt(x)
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

// fmtInt prints x rounded, with thousands separators.
func fmtInt(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// storeName is a store URL without its query (a key prefix, options), which
// only makes the chart wider.
func storeName(u string) string {
	u, _, _ = strings.Cut(u, "?")
	return u
}

func esc(s string) string { return html.EscapeString(s) }
