package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SoakNode is one running `tether serve` that a soak drives.
type SoakNode struct {
	Public string // base URL of the public API, on a loopback address
	Admin  string // base URL of the admin API, on a loopback address
	PID    int    // for resident memory; 0: not sampled
}

// SoakConfig is a soak run. Zero fields take the defaults in brackets.
type SoakConfig struct {
	Nodes    []SoakNode
	AdminKey string
	Rate     int           // GET /v1/session per second, over all nodes [1000]
	Duration time.Duration // how long to hold the rate [10m]
	Sessions int           // live sessions in the pool [1000]
	// RevokeEvery and RolesEvery pace the churn beside the reads: a session
	// revoked (and replaced) through a random node's admin API [500ms], and a
	// subject's roles replaced [1s].
	RevokeEvery, RolesEvery time.Duration
	// Staleness is how long another node may still accept a session after a
	// revoke returned: the nodes' cache bound [1s]. The revoking node must
	// refuse at once. A 200 later than that counts as an error.
	Staleness time.Duration
	Window    time.Duration // latency percentiles per window [1m]
	Sample    time.Duration // resident memory sampled this often [10s]
	Workers   int           // concurrent requests at most [64]
	// RetryRevoked: one GET in this many is sent with a recently revoked
	// token, to check that revocations hold [100].
	RetryRevoked int
	Progress     io.Writer // if not nil, a line per window as it closes
	// Faults are injected during the run. Errors from a fault's start until
	// Settle after it ends are the fault's, reported apart from the run's;
	// a revoked session accepted is never excused.
	Faults []SoakFault
	Settle time.Duration // [10s]
}

// SoakFault is one fault: at At, either Do runs (a store restart, a
// failover…) and the fault lasts until it returns, or, with Flood > 0, that
// many clients send GET /v1/session as fast as they can for For.
type SoakFault struct {
	Name  string
	At    time.Duration
	Do    func(ctx context.Context) error
	Flood int
	For   time.Duration
}

// SoakFaultReport is what happened during one fault.
type SoakFaultReport struct {
	Name   string        `json:"name"`
	Start  time.Duration `json:"start_ns"` // since the run began
	End    time.Duration `json:"end_ns"`
	Err    string        `json:"err,omitempty"` // Do's error
	Errors int64         `json:"errors"`        // the soak's errors during it and its settling
	// A flood's own requests: those answered 503 with Retry-After were shed
	// by the node's in-flight limit, the contract's answer to overload.
	FloodRequests int64 `json:"flood_requests,omitempty"`
	FloodShed     int64 `json:"flood_shed,omitempty"`
}

// SoakReport is the outcome of a soak run; durations are in nanoseconds.
type SoakReport struct {
	Rate       int              `json:"rate_per_s"`
	Duration   time.Duration    `json:"duration_ns"`
	Sessions   int              `json:"sessions"`
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	// RevokedRefused counts 401s for tokens this run revoked on purpose: the
	// expected answer, not an error.
	RevokedRefused int64         `json:"revoked_refused"`
	Revocations    int64         `json:"revocations"`
	RoleChanges    int64         `json:"role_changes"`
	P50            time.Duration `json:"p50_ns"`
	P99            time.Duration `json:"p99_ns"`
	Max            time.Duration `json:"max_ns"`
	Windows        []SoakWindow  `json:"windows"`
	Memory         []MemSample   `json:"memory"`
	// Shed counts the soak's own requests answered 503 with Retry-After:
	// load shed by a node, not errors. FaultErrors are the errors counted
	// against a fault (see Faults), not in Errors.
	Shed        int64             `json:"shed"`
	FaultErrors int64             `json:"fault_errors"`
	Faults      []SoakFaultReport `json:"faults,omitempty"`
}

// SoakWindow is one window of a soak (a minute by default).
type SoakWindow struct {
	Start    time.Duration `json:"start_ns"` // since the run began
	Requests int           `json:"requests"`
	Errors   int64         `json:"errors"`
	// FaultErrors are errors counted against a fault, not in Errors.
	FaultErrors int64         `json:"fault_errors"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	// ServiceP99 is the p99 from when a request was sent rather than when it
	// was due: when it is far below P99, the requests waited to be sent (the
	// load generator or the machine stalled), not for the nodes.
	ServiceP99 time.Duration `json:"service_p99_ns"`
}

// MemSample is every node's resident memory at one moment.
type MemSample struct {
	At       time.Duration `json:"at_ns"`     // since the run began
	RSSBytes []int64       `json:"rss_bytes"` // one per node, in order; -1: unreadable
}

func (c *SoakConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.Sessions == 0 {
		c.Sessions = 1000
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
	if c.RetryRevoked == 0 {
		c.RetryRevoked = 100
	}
	def(&c.Duration, 10*time.Minute)
	def(&c.RevokeEvery, 500*time.Millisecond)
	def(&c.RolesEvery, time.Second)
	def(&c.Staleness, time.Second)
	def(&c.Window, time.Minute)
	def(&c.Sample, 10*time.Second)
	def(&c.Settle, 10*time.Second)
}

// checkLoopback refuses any URL whose host is not a loopback IP literal: a
// soak is a load generator and must never be pointed at someone else.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("soak: %q is not on a loopback IP (127.0.0.1); refusing to load it", raw)
	}
	return nil
}

// soak is the state of one run.
type soak struct {
	cfg    SoakConfig
	client *http.Client
	start  time.Time

	mu      sync.RWMutex
	pool    []soakSession           // live sessions; reads pick at random
	revoked map[string]revocation   // every token revoked on purpose
	recent  []string                // the last revoked tokens, re-tried now and then
	errKind map[string]int64        // guarded by mu too
	lat     map[int][]time.Duration // from when due, by window index
	svc     map[int][]time.Duration // from when sent, by window index
	werr    map[int]int64           // errors by window index
	wferr   map[int]int64           // fault errors by window index
	faults  []SoakFaultReport       // as they start; End 0 while running

	requests, errors, refused, revocations, roleChanges, shed, faultErrors atomic.Int64
}

type soakSession struct{ subject, token, id string }

// revocation is when a revoke of a token was sent and when it returned, and
// through which node.
type revocation struct {
	sent, done time.Time // done is zero while the DELETE is in flight
	node       int
}

// Soak holds cfg.Rate requests per second against the nodes for cfg.Duration:
// mostly GET /v1/session with a random pooled session on alternating nodes,
// while revoking and replacing sessions and changing roles beside it. Latency
// is measured from when each request was due, so a stall shows up in the
// percentiles instead of lowering the rate (no coordinated omission).
func Soak(ctx context.Context, cfg SoakConfig) (SoakReport, error) {
	cfg.defaults()
	if len(cfg.Nodes) == 0 {
		return SoakReport{}, errors.New("soak: no nodes")
	}
	for _, n := range cfg.Nodes {
		for _, u := range []string{n.Public, n.Admin} {
			if err := checkLoopback(u); err != nil {
				return SoakReport{}, err
			}
		}
	}
	transport := &http.Transport{MaxIdleConnsPerHost: cfg.Workers, MaxConnsPerHost: cfg.Workers}
	defer transport.CloseIdleConnections()
	s := &soak{
		cfg:     cfg,
		client:  &http.Client{Transport: transport, Timeout: 5 * time.Second},
		revoked: make(map[string]revocation),
		errKind: make(map[string]int64),
		lat:     make(map[int][]time.Duration),
		svc:     make(map[int][]time.Duration),
		werr:    make(map[int]int64),
		wferr:   make(map[int]int64),
	}
	run := rand.Int64()
	s.pool = make([]soakSession, cfg.Sessions)
	for i := range s.pool {
		sess, err := s.create(ctx, i%len(cfg.Nodes), fmt.Sprintf("soak-%x-%d", run, i))
		if err != nil {
			return SoakReport{}, fmt.Errorf("soak: filling the pool: %w", err)
		}
		s.pool[i] = sess
	}

	s.start = time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var rep SoakReport
	var bg sync.WaitGroup
	bg.Go(func() { s.churn(ctx) })
	bg.Go(func() { rep.Memory = s.sampleMemory(ctx) })
	if cfg.Progress != nil {
		bg.Go(func() { s.progress(ctx) })
	}
	for _, f := range cfg.Faults {
		bg.Go(func() { s.inject(ctx, f) })
	}
	s.drive(ctx)
	bg.Wait()

	elapsed := time.Since(s.start)
	rep.Rate, rep.Duration, rep.Sessions = cfg.Rate, elapsed, cfg.Sessions
	rep.Requests, rep.Errors, rep.RevokedRefused = s.requests.Load(), s.errors.Load(), s.refused.Load()
	rep.Revocations, rep.RoleChanges = s.revocations.Load(), s.roleChanges.Load()
	rep.Shed, rep.FaultErrors = s.shed.Load(), s.faultErrors.Load()
	s.mu.Lock()
	rep.Faults = s.faults
	defer s.mu.Unlock()
	if len(s.errKind) > 0 {
		rep.ErrorKinds = s.errKind
	}
	var all []time.Duration
	for w := 0; w <= int(elapsed/cfg.Window); w++ {
		lat := s.lat[w]
		if len(lat) == 0 && s.werr[w] == 0 && s.wferr[w] == 0 {
			continue
		}
		slices.Sort(lat)
		slices.Sort(s.svc[w])
		all = append(all, lat...)
		win := SoakWindow{Start: time.Duration(w) * cfg.Window, Requests: len(lat), Errors: s.werr[w], FaultErrors: s.wferr[w],
			P50: Percentile(lat, 50), P99: Percentile(lat, 99), ServiceP99: Percentile(s.svc[w], 99)}
		if len(lat) > 0 {
			win.Max = lat[len(lat)-1]
		}
		rep.Windows = append(rep.Windows, win)
	}
	slices.Sort(all)
	rep.P50, rep.P99 = Percentile(all, 50), Percentile(all, 99)
	if len(all) > 0 {
		rep.Max = all[len(all)-1]
	}
	return rep, nil
}

// drive dispatches GETs at the fixed rate to a bounded set of workers until
// ctx ends. A request that finds every worker busy waits for one; its latency
// still counts from when it was due.
func (s *soak) drive(ctx context.Context) {
	due := make(chan time.Time, s.cfg.Workers)
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for t := range due {
				s.get(ctx, t)
			}
		})
	}
	interval := time.Second / time.Duration(s.cfg.Rate)
	next := s.start
	for ctx.Err() == nil {
		now := time.Now()
		for ; !next.After(now) && ctx.Err() == nil; next = next.Add(interval) {
			select {
			case due <- next:
			case <-ctx.Done():
			}
		}
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
		}
	}
	close(due)
	wg.Wait()
}

// get sends one GET /v1/session: one in cfg.RetryRevoked with a token revoked
// on purpose, the rest with a live one.
func (s *soak) get(ctx context.Context, due time.Time) {
	node := rand.IntN(len(s.cfg.Nodes))
	s.mu.RLock()
	token := s.pool[rand.IntN(len(s.pool))].token
	if len(s.recent) > 0 && rand.IntN(s.cfg.RetryRevoked) == 0 {
		token = s.recent[rand.IntN(len(s.recent))]
	}
	s.mu.RUnlock()

	sent := time.Now()
	code, hdr, err := s.request(ctx, http.MethodGet, s.cfg.Nodes[node].Public+"/v1/session", token, nil, nil)
	retryAfter := hdr.Get("Retry-After") != ""
	if ctx.Err() != nil {
		return // the run ended mid-request: neither a sample nor an error
	}
	lat, svc := time.Since(due), time.Since(sent)
	s.requests.Add(1)
	var kind string
	switch {
	case err != nil:
		kind = "transport: " + trimErr(err)
	case code == http.StatusOK:
		if r, ok := s.revocation(token); ok && !r.done.IsZero() && sent.After(r.done.Add(s.grace(node, r))) {
			kind = fmt.Sprintf("200 for a session revoked %v before the request", sent.Sub(r.done).Round(time.Millisecond))
		}
	case code == http.StatusUnauthorized:
		if _, ok := s.revocation(token); ok {
			s.refused.Add(1) // revoked on purpose: the right answer
		} else {
			kind = "401 for a live session"
		}
	case code == http.StatusServiceUnavailable && retryAfter:
		s.shed.Add(1)
	default:
		kind = "status " + strconv.Itoa(code)
	}
	w := int(due.Sub(s.start) / s.cfg.Window)
	s.mu.Lock()
	s.lat[w] = append(s.lat[w], lat)
	s.svc[w] = append(s.svc[w], svc)
	s.mu.Unlock()
	if kind != "" {
		// Only a revoked session accepted is never a fault's doing.
		// When the answer came decides which fault it belongs to.
		s.record(kind, time.Now(), !strings.HasPrefix(kind, "200 for a session revoked"))
	}
}

// record counts an error of kind that happened at t: against the fault in
// progress then, if excusable and there is one, else against the run.
func (s *soak) record(kind string, t time.Time, excusable bool) {
	at := t.Sub(s.start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if excusable {
		for i := range s.faults {
			f := &s.faults[i]
			if at >= f.Start && (f.End == 0 || at <= f.End+s.cfg.Settle) {
				f.Errors++
				s.wferr[int(at/s.cfg.Window)]++
				s.faultErrors.Add(1)
				return
			}
		}
	}
	s.errKind[kind]++
	s.werr[int(at/s.cfg.Window)]++
	s.errors.Add(1)
}

// inject runs fault f at its time, unless the run ends first.
func (s *soak) inject(ctx context.Context, f SoakFault) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(s.start.Add(f.At))):
	}
	s.mu.Lock()
	i := len(s.faults)
	s.faults = append(s.faults, SoakFaultReport{Name: f.Name, Start: time.Since(s.start)})
	s.mu.Unlock()
	var err error
	var requests, shed int64
	if f.Flood > 0 {
		requests, shed = s.flood(ctx, f.Flood, f.For)
	} else if f.Do != nil {
		err = f.Do(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.faults[i]
	r.End, r.FloodRequests, r.FloodShed = time.Since(s.start), requests, shed
	if err != nil {
		r.Err = err.Error()
	}
}

// flood sends GET /v1/session with pooled tokens from workers clients of
// their own, as fast as each gets answers, for d.
func (s *soak) flood(ctx context.Context, workers int, d time.Duration) (requests, shed int64) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var n, sh atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				s.mu.RLock()
				token := s.pool[rand.IntN(len(s.pool))].token
				s.mu.RUnlock()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.Nodes[rand.IntN(len(s.cfg.Nodes))].Public+"/v1/session", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
				if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
					sh.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return n.Load(), sh.Load()
}

// grace is how long node may still accept a session after r returned.
func (s *soak) grace(node int, r revocation) time.Duration {
	if node == r.node {
		return 0
	}
	return s.cfg.Staleness
}

func (s *soak) revocation(token string) (revocation, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.revoked[token]
	return r, ok
}

// churn revokes and replaces sessions, and replaces subjects' roles, through
// random nodes' admin APIs, until ctx ends.
func (s *soak) churn(ctx context.Context) {
	revoke := time.NewTicker(s.cfg.RevokeEvery)
	defer revoke.Stop()
	roles := time.NewTicker(s.cfg.RolesEvery)
	defer roles.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-revoke.C:
			s.revokeOne(ctx)
		case <-roles.C:
			s.changeRoles(ctx)
		}
	}
}

func (s *soak) revokeOne(ctx context.Context) {
	node := rand.IntN(len(s.cfg.Nodes))
	slot := rand.IntN(len(s.pool))
	s.mu.RLock()
	old := s.pool[slot]
	s.mu.RUnlock()
	fresh, err := s.create(ctx, node, old.subject)
	if err != nil {
		s.fail(ctx, "create: "+trimErr(err))
		return
	}
	s.mu.Lock()
	s.pool[slot] = fresh
	s.revoked[old.token] = revocation{sent: time.Now(), node: node}
	s.mu.Unlock()
	code, err := s.call(ctx, http.MethodDelete, s.cfg.Nodes[node].Admin+"/v1/sessions/"+old.id, s.cfg.AdminKey, nil, nil)
	if err != nil || code != http.StatusNoContent {
		s.fail(ctx, churnErr("revoke", code, err))
		return
	}
	s.revocations.Add(1)
	s.mu.Lock()
	r := s.revoked[old.token]
	r.done = time.Now()
	s.revoked[old.token] = r
	s.recent = append(s.recent, old.token)
	if len(s.recent) > 100 {
		s.recent = s.recent[1:]
	}
	s.mu.Unlock()
}

func (s *soak) changeRoles(ctx context.Context) {
	node := rand.IntN(len(s.cfg.Nodes))
	s.mu.RLock()
	subject := s.pool[rand.IntN(len(s.pool))].subject
	s.mu.RUnlock()
	roles := []string{"reader"}
	if rand.IntN(2) == 0 {
		roles = append(roles, "writer")
	}
	code, err := s.call(ctx, http.MethodPut, s.cfg.Nodes[node].Admin+"/v1/subjects/"+url.PathEscape(subject)+"/roles",
		s.cfg.AdminKey, map[string]any{"roles": roles}, nil)
	if err != nil || code != http.StatusOK {
		s.fail(ctx, churnErr("set roles", code, err))
		return
	}
	s.roleChanges.Add(1)
}

// fail counts an error of the churn, unless the run was ending anyway.
func (s *soak) fail(ctx context.Context, kind string) {
	if ctx.Err() != nil {
		return
	}
	s.record(kind, time.Now(), true)
}

func (s *soak) create(ctx context.Context, node int, subject string) (soakSession, error) {
	var created struct {
		Token   string `json:"token"`
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
	}
	code, err := s.call(ctx, http.MethodPost, s.cfg.Nodes[node].Admin+"/v1/sessions", s.cfg.AdminKey,
		map[string]any{"subject": subject, "roles": []string{"reader"}}, &created)
	if err != nil || code != http.StatusCreated {
		if err != nil {
			return soakSession{}, fmt.Errorf("create session: %w", err)
		}
		return soakSession{}, fmt.Errorf("create session: status %d", code)
	}
	if created.Token == "" || created.Session.ID == "" {
		return soakSession{}, errors.New("create session: no token or id in the reply")
	}
	return soakSession{subject: subject, token: created.Token, id: created.Session.ID}, nil
}

// call sends one request with a Bearer token and an optional JSON body, and
// decodes a 2xx reply into out when out is not nil.
func (s *soak) call(ctx context.Context, method, url, bearer string, body, out any) (int, error) {
	code, _, err := s.request(ctx, method, url, bearer, body, out)
	return code, err
}

// request is call that also returns the reply's header.
func (s *soak) request(ctx context.Context, method, url, bearer string, body, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode/100 == 2 {
		return resp.StatusCode, resp.Header, json.NewDecoder(resp.Body).Decode(out)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

// sampleMemory reads every node's resident memory now and every cfg.Sample
// until ctx ends, and once more at the end.
func (s *soak) sampleMemory(ctx context.Context) []MemSample {
	var out []MemSample
	take := func() {
		m := MemSample{At: time.Since(s.start)}
		for _, n := range s.cfg.Nodes {
			m.RSSBytes = append(m.RSSBytes, RSS(n.PID))
		}
		out = append(out, m)
	}
	t := time.NewTicker(s.cfg.Sample)
	defer t.Stop()
	take()
	for {
		select {
		case <-ctx.Done():
			if time.Since(s.start)-out[len(out)-1].At > time.Second {
				take()
			}
			return out
		case <-t.C:
			take()
		}
	}
}

// progress prints a line each time a window closes.
func (s *soak) progress(ctx context.Context) {
	t := time.NewTicker(s.cfg.Window)
	defer t.Stop()
	for w := 0; ; w++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.RLock()
		lat := slices.Clone(s.lat[w])
		errs := s.werr[w]
		s.mu.RUnlock()
		slices.Sort(lat)
		fmt.Fprintf(s.cfg.Progress, "  %v: %d requests, %d errors, p50 %v, p99 %v\n",
			time.Duration(w+1)*s.cfg.Window, len(lat), errs,
			Percentile(lat, 50).Round(time.Microsecond), Percentile(lat, 99).Round(time.Microsecond))
	}
}

// RSS returns the resident memory of process pid from /proc (Linux), or -1.
func RSS(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return -1
}

// trimErr keeps an error's last part, so that error kinds group together
// instead of each carrying a URL and a port.
func trimErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// WriteSoakReport prints rep as Markdown: a summary, latency per window and
// resident memory over time, ready to paste into docs/soak.md.
func WriteSoakReport(w io.Writer, rep SoakReport) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	mib := func(b int64) string {
		if b < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	fmt.Fprintf(w, "- duration %v at %d req/s target; %d requests (%.0f req/s achieved)\n",
		rep.Duration.Round(time.Second), rep.Rate, rep.Requests, float64(rep.Requests)/rep.Duration.Seconds())
	fmt.Fprintf(w, "- errors: %d", rep.Errors)
	kinds := slices.Sorted(maps.Keys(rep.ErrorKinds))
	for _, k := range kinds {
		fmt.Fprintf(w, "; %s × %d", k, rep.ErrorKinds[k])
	}
	fmt.Fprintf(w, "\n- churn: %d revocations, %d role changes; %d expected 401s for revoked tokens\n",
		rep.Revocations, rep.RoleChanges, rep.RevokedRefused)
	fmt.Fprintf(w, "- shed (503 + Retry-After, not errors): %d; errors during faults (apart from the above): %d\n", rep.Shed, rep.FaultErrors)
	fmt.Fprintf(w, "- latency over the run: p50 %s, p99 %s, max %s\n\n", ms(rep.P50), ms(rep.P99), ms(rep.Max))
	if len(rep.Faults) > 0 {
		fmt.Fprintln(w, "| fault | from | to | errors during it | its own requests | shed |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
		for _, f := range rep.Faults {
			name := f.Name
			if f.Err != "" {
				name += " (failed: " + f.Err + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %d |\n", name, clock(f.Start), clock(f.End), f.Errors, f.FloodRequests, f.FloodShed)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "| from | requests | errors | fault errors | p50 | p99 | max | p99 from send |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, win := range rep.Windows {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %s | %s | %s |\n", clock(win.Start), win.Requests, win.Errors, win.FaultErrors,
			ms(win.P50), ms(win.P99), ms(win.Max), ms(win.ServiceP99))
	}
	if len(rep.Memory) == 0 {
		return
	}
	// A flat line after warm-up is the target: compare a minute in (or the
	// first sample) with the end.
	first, last := rep.Memory[0], rep.Memory[len(rep.Memory)-1]
	for _, m := range rep.Memory {
		if m.At >= time.Minute {
			first = m
			break
		}
	}
	fmt.Fprintf(w, "\nResident memory from %s to %s:", clock(first.At), clock(last.At))
	for i := range last.RSSBytes {
		fmt.Fprintf(w, " node %d %s → %s;", i+1, mib(first.RSSBytes[i]), mib(last.RSSBytes[i]))
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "\n| at |")
	for i := range rep.Memory[0].RSSBytes {
		fmt.Fprintf(w, " node %d RSS |", i+1)
	}
	fmt.Fprint(w, "\n|---:|")
	for range rep.Memory[0].RSSBytes {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	// At most about twenty rows: every sample of a short run, one a minute or
	// so of a long one, and always the last.
	every := (len(rep.Memory) + 19) / 20
	for i, m := range rep.Memory {
		if i%every != 0 && i != len(rep.Memory)-1 {
			continue
		}
		fmt.Fprintf(w, "| %s |", clock(m.At))
		for _, b := range m.RSSBytes {
			fmt.Fprintf(w, " %s |", mib(b))
		}
		fmt.Fprintln(w)
	}
}

// clock prints d as minutes and seconds, 2:05.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int(d%time.Minute/time.Second))
}

func churnErr(op string, code int, err error) string {
	if err != nil {
		return op + ": transport: " + trimErr(err)
	}
	return op + ": status " + strconv.Itoa(code)
}
