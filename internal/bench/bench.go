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
	// CPUPerRequest is the CPU time this process (load generator and server
	// alike) spent per request. Unlike RPS, it does not move with how much
	// of a busy machine the process happened to get. Zero where unmeasured.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns"`
}

// Target is a server to load with GET and a Bearer token.
type Target struct {
	URL, Token string
}

// HTTPLoad sends GET url with the Bearer token from conc keep-alive clients for
// d and reports throughput and latency. Statuses other than want count as
// errors. Progress, if not nil, receives a progress bar.
func HTTPLoad(ctx context.Context, url, token string, want, conc int, d time.Duration, progress io.Writer) Load {
	return loadOnce(ctx, Target{url, token}, want, conc, d, 0, progress).load()
}

// HTTPLoads loads each target for d in all, in rounds: each round gives every
// target d/rounds in turn. Interleaved, the targets share the machine's
// drifts (another process busy, the CPU's clock) instead of one target
// getting all of a quiet spell and the next all of a busy one.
func HTTPLoads(ctx context.Context, targets []Target, want, conc int, d time.Duration, rounds int, progress io.Writer) []Load {
	rounds = max(rounds, 1)
	all := make([]sample, len(targets))
	for range rounds {
		for i, t := range targets {
			if ctx.Err() != nil {
				break
			}
			all[i].add(loadOnce(ctx, t, want, conc, d/time.Duration(rounds), 0, progress))
		}
	}
	return loads(all)
}

// HTTPRequestLoads is HTTPLoads by count rather than time, for Go benchmarks
// whose b.N sets the work: each target answers n requests in all, n/rounds a
// round, with targets taking turns within each round.
func HTTPRequestLoads(ctx context.Context, targets []Target, want, conc, n, rounds int) []Load {
	rounds = max(rounds, 1)
	all := make([]sample, len(targets))
	for r := range rounds {
		share := n / rounds
		if r < n%rounds {
			share++
		}
		for i, t := range targets {
			if ctx.Err() != nil || share == 0 {
				break
			}
			all[i].add(loadOnce(ctx, t, want, conc, 0, share, nil))
		}
	}
	return loads(all)
}

func loads(all []sample) []Load {
	loads := make([]Load, len(all))
	for i := range all {
		loads[i] = all[i].load()
	}
	return loads
}

// sample is the raw outcome of one or more load runs of one target.
type sample struct {
	lat      []time.Duration
	errs     int
	elapsed  time.Duration
	cpu      time.Duration
	cpuKnown bool
}

func (s *sample) add(o sample) {
	s.lat = append(s.lat, o.lat...)
	s.errs += o.errs
	s.elapsed += o.elapsed
	s.cpu += o.cpu
	s.cpuKnown = o.cpuKnown
}

func (s sample) load() Load {
	slices.Sort(s.lat)
	l := Load{Requests: len(s.lat), Errors: s.errs, Elapsed: s.elapsed}
	if s.elapsed > 0 {
		l.RPS = math.Round(float64(len(s.lat))/s.elapsed.Seconds()*10) / 10
	}
	if s.cpuKnown && len(s.lat) > 0 {
		l.CPUPerRequest = s.cpu / time.Duration(len(s.lat))
	}
	l.P50, l.P99 = Percentile(s.lat, 50), Percentile(s.lat, 99)
	return l
}

// loadOnce loads t from conc clients for d, or, when n > 0, for n requests
// in all.
func loadOnce(ctx context.Context, t Target, want, conc int, d time.Duration, n int, progress io.Writer) sample {
	transport := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	var cancel context.CancelFunc
	if n > 0 {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()

	var errs atomic.Int64
	var left atomic.Int64
	left.Store(int64(n))
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	cpu0, cpuKnown := processCPU()
	start := time.Now()
	for i := range conc {
		wg.Go(func() {
			for ctx.Err() == nil && (n == 0 || left.Add(-1) >= 0) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
				req.Header.Set("Authorization", "Bearer "+t.Token)
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
	if progress != nil && n == 0 {
		drawing.Go(func() { bar(ctx, progress, start, d) })
	}
	wg.Wait() // the workers stop when ctx has ended (which stops the bar too) or n is spent
	drawing.Wait()
	s := sample{lat: slices.Concat(lat...), errs: int(errs.Load()), elapsed: time.Since(start)}
	if cpu1, ok := processCPU(); ok && cpuKnown {
		s.cpu, s.cpuKnown = cpu1-cpu0, true
	}
	ClearProgress(progress)
	return s
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
