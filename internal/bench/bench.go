// Package bench measures what `tether bench` prints: validation cost against
// self-contained tokens, token sizes, HTTP throughput and latency under a
// built-in load generator, and revocation propagation between nodes.
package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NsPerOp runs f repeatedly for about d and returns its mean cost.
func NsPerOp(d time.Duration, f func()) float64 {
	f() // warm up
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for range 64 {
			f()
		}
		n += 64
	}
	return math.Round(float64(time.Since(start).Nanoseconds())/float64(n)*10) / 10 // 0.1 ns is noise already
}

// Load is the outcome of a load run.
type Load struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"` // transport errors and unexpected statuses
	Elapsed  time.Duration `json:"elapsed_ns"`
	RPS      float64       `json:"requests_per_s"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
}

// HTTPLoad sends GET url with the Bearer token from conc keep-alive clients for
// d and reports throughput and latency. Statuses other than want count as
// errors. Progress, if not nil, receives a progress bar.
func HTTPLoad(ctx context.Context, url, token string, want, conc int, d time.Duration, progress io.Writer) Load {
	transport := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()

	var errs atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[i] = append(lat[i], time.Since(t0))
				if resp.StatusCode != want {
					errs.Add(1)
				}
			}
		})
	}
	var drawing sync.WaitGroup // the bar is erased only once it has stopped
	if progress != nil {
		drawing.Go(func() { bar(ctx, progress, start, d) })
	}
	wg.Wait() // the workers stop only when ctx has ended, which stops the bar too
	drawing.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	l := Load{Requests: len(all), Errors: int(errs.Load()), Elapsed: elapsed}
	l.RPS = math.Round(float64(len(all))/elapsed.Seconds()*10) / 10
	l.P50, l.P99 = Percentile(all, 50), Percentile(all, 99)
	ClearProgress(progress)
	return l
}

func bar(ctx context.Context, w io.Writer, start time.Time, d time.Duration) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			Progress(w, "load", float64(time.Since(start))/float64(d))
		}
	}
}

// Percentile returns the p-th percentile of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// Progress draws a progress bar for a step that is frac done on w, a
// terminal; it does nothing when w is nil.
func Progress(w io.Writer, label string, frac float64) {
	if w == nil {
		return
	}
	frac = min(max(frac, 0), 1)
	n := int(frac * 30)
	fmt.Fprintf(w, "\r  %-10s [%s%s] %3.0f%%", label, strings.Repeat("#", n), strings.Repeat(".", 30-n), frac*100)
}

// ClearProgress erases the progress bar from w; it does nothing when w is nil.
func ClearProgress(w io.Writer) {
	if w != nil {
		fmt.Fprintf(w, "\r%s\r", strings.Repeat(" ", 60))
	}
}
