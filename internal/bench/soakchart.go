package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// SoakChart draws a soak over time as one SVG: errors per window (those
// counted against a fault apart), p99 latency per window and each node's
// resident memory, with every injected fault shaded across all three.
func SoakChart(w io.Writer, rep SoakReport) error {
	const (
		width, left, right = 820, 70, 20
		panelH, gap, top   = 150, 40, 30
	)
	plotW := float64(width - left - right)
	total := rep.Duration
	if total <= 0 {
		total = time.Second
	}
	x := func(d time.Duration) float64 { return left + plotW*float64(d)/float64(total) }
	var b strings.Builder
	height := top + 3*(panelH+gap) + 20 // room for the time axis
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="13">soak: %d req/s for %v, %d requests, %d errors, %d during faults, %d shed</text>`+"\n",
		left, rep.Rate, rep.Duration.Round(time.Second), rep.Requests, rep.Errors, rep.FaultErrors, rep.Shed)

	var panelTop float64 // of the panel being drawn
	window := time.Minute
	if len(rep.Windows) > 1 {
		window = rep.Windows[1].Start - rep.Windows[0].Start
	}
	panels := []struct {
		title string
		unit  string
		max   float64
		draw  func(y func(float64) float64)
	}{
		{"errors per window (red: the run's; orange: during a fault)", "", 0, nil},
		{"p99 latency per window", "ms", 0, nil},
		{"resident memory per node", "MiB", 0, nil},
	}
	for _, win := range rep.Windows {
		panels[0].max = max(panels[0].max, float64(win.Errors+win.FaultErrors))
		panels[1].max = max(panels[1].max, float64(win.P99)/1e6)
	}
	for _, m := range rep.Memory {
		for _, r := range m.RSSBytes {
			panels[2].max = max(panels[2].max, float64(r)/(1<<20))
		}
	}
	panels[0].draw = func(y func(float64) float64) {
		for _, win := range rep.Windows {
			x0, x1 := x(win.Start), x(win.Start+window)-1
			base := y(0)
			for _, bar := range []struct {
				n     int64
				color string
			}{{win.Errors, "#c0392b"}, {win.FaultErrors, "#e67e22"}} {
				if bar.n == 0 {
					continue
				}
				top := y(float64(bar.n)) - (y(0) - base)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x0, top, max(x1-x0, 1), base-top, bar.color)
				base = top
			}
		}
	}
	panels[1].draw = func(y func(float64) float64) {
		var pts []string
		for _, win := range rep.Windows {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(win.Start+window/2), y(float64(win.P99)/1e6)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#2c3e50" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(pts, " "))
	}
	colors := []string{"#2980b9", "#27ae60", "#8e44ad", "#7f8c8d"}
	panels[2].draw = func(y func(float64) float64) {
		if len(rep.Memory) == 0 {
			return
		}
		for node := range rep.Memory[0].RSSBytes {
			var pts []string
			for _, m := range rep.Memory {
				if node < len(m.RSSBytes) && m.RSSBytes[node] >= 0 {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(m.At), y(float64(m.RSSBytes[node])/(1<<20))))
				}
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colors[node%len(colors)], strings.Join(pts, " "))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="%s">node %d</text>`+"\n", width-right-50, panelTop+12+12*float64(node), colors[node%len(colors)], node+1)
		}
	}

	for i, p := range panels {
		y0 := float64(top + gap + i*(panelH+gap)) // the panel's top edge
		panelTop = y0
		top := p.max * 1.1
		if top == 0 {
			top = 1
		}
		y := func(v float64) float64 { return y0 + panelH - panelH*v/top }
		for _, f := range rep.Faults {
			end := f.End
			if end < f.Start {
				end = f.Start
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="#f1c40f" fill-opacity="0.25"/>`+"\n",
				x(f.Start), y0, max(x(end)-x(f.Start), 2), panelH)
			if i == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x(f.Start)+2, y0+12, esc(f.Name))
			}
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12">%s</text>`+"\n", left, y0-8, esc(p.title))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#555"/>`+"\n", left, y0+panelH, width-right, y0+panelH)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#555"/>`+"\n", left, y0, left, y0+panelH)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s %s</text>`+"\n", left-4, y0+10, sig3(top), p.unit)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">0</text>`+"\n", left-4, y0+panelH)
		p.draw(y)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">0:00</text><text x="%d" y="%d" text-anchor="end">%s</text>`+"\n",
		left, height-8, width-right, height-8, clock(rep.Duration))
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
