package storetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// The steps of one round of Traffic, all on one fresh subject: a session a
// that survives the round (the worker's next round revokes it, so that some
// revocations hit sessions written well before them), b that is revoked
// alone, c that is revoked with the subject (keeping a).
const (
	stepDeletePrevA = iota
	stepCreateA
	stepCreateB
	stepGetA
	stepRotateA
	stepDeleteB
	stepSetRoles
	stepConsume
	stepCreateC
	stepDeleteSubject
	steps
)

var stepNames = [steps]string{"Delete(previous round's a)", "Create(a)", "Create(b)", "Get(a)", "Rotate(a)", "Delete(b)",
	"SetRoles", "Consume", "Create(c)", "DeleteSubject(keep a)"}

// call is one recorded store call.
type call struct {
	ran        bool
	start, end time.Time
	err        error
}

// round is one pass through the steps.
type round struct {
	subject string
	a, b, c *tether.Record
	rotated [32]byte // a's secret hash after Rotate
	role    string
	key     string // consumed
	calls   [steps]call
	gotA    *tether.Record // what Get(a) returned
	prev    *round         // the worker's round before, whose a this one deletes
	next    *round
}

// Traffic is a stream of creates, reads, rotations, revocations (one session
// and a whole subject), role changes and replay-guard consumes, driven
// against one store by a few workers, every call recorded with its result.
// Start it, cause a fault, Stop it, and Check what survived: the history
// tells which writes were acknowledged, and so which must have taken effect.
type Traffic struct {
	s    tether.Store
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	rounds []*round
	calls  int
	acked  int
	cond   chan struct{} // closed and replaced after every call
}

// StartTraffic starts workers goroutines, each running rounds against s until
// Stop.
func StartTraffic(s tether.Store, workers int) *Traffic {
	tr := &Traffic{s: s, stop: make(chan struct{}), cond: make(chan struct{})}
	base := fmt.Sprintf("traffic-%d-%d", time.Now().UnixNano(), seq.Add(1))
	for w := range workers {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			var prev *round
			for i := 0; ; i++ {
				var more bool
				if prev, more = tr.run(fmt.Sprintf("%s-w%d-r%d", base, w, i), prev); !more {
					return
				}
			}
		}()
	}
	return tr
}

// run runs one round after prev (nil for the first); false once Stop was
// called. A round, once begun, runs to its end, so that the last round's
// session a, which no later round revokes, shows whether its Create and
// Rotate held.
func (tr *Traffic) run(subject string, prev *round) (*round, bool) {
	select {
	case <-tr.stop:
		return prev, false
	default:
	}
	r := &round{subject: subject, a: record(subject, time.Hour), b: record(subject, time.Hour),
		c: record(subject, time.Hour), role: "role-" + subject, key: "jti-" + subject, prev: prev}
	rand.Read(r.rotated[:])
	tr.mu.Lock()
	tr.rounds = append(tr.rounds, r)
	if prev != nil {
		prev.next = r
	}
	tr.mu.Unlock()
	for step := range steps {
		if step == stepDeletePrevA && prev == nil {
			continue
		}
		c := call{ran: true, start: time.Now()}
		switch step {
		case stepDeletePrevA:
			c.err = tr.s.Delete(ctx, prev.a.ID)
		case stepCreateA:
			c.err = tr.s.Create(ctx, r.a)
		case stepCreateB:
			c.err = tr.s.Create(ctx, r.b)
		case stepGetA:
			r.gotA, c.err = tr.s.Get(ctx, r.a.ID)
		case stepRotateA:
			c.err = tr.s.Rotate(ctx, r.a.ID, r.a.SecretHash, r.rotated)
		case stepDeleteB:
			c.err = tr.s.Delete(ctx, r.b.ID)
		case stepSetRoles:
			c.err = tr.s.SetRoles(ctx, subject, []string{r.role})
		case stepConsume:
			c.err = tr.s.Consume(ctx, r.key, time.Now().Add(time.Hour))
		case stepCreateC:
			c.err = tr.s.Create(ctx, r.c)
		case stepDeleteSubject:
			_, c.err = tr.s.DeleteSubject(ctx, subject, r.a.ID)
		}
		c.end = time.Now()
		tr.mu.Lock()
		r.calls[step] = c
		tr.calls++
		if c.err == nil {
			tr.acked++
		}
		close(tr.cond)
		tr.cond = make(chan struct{})
		tr.mu.Unlock()
		if c.err != nil && errors.Is(c.err, tether.ErrUnavailable) {
			// Back off a little, as a real client would: against a dead
			// server every call fails at once, and the workers would spin.
			time.Sleep(time.Millisecond)
		}
	}
	return r, true
}

// Calls returns how many calls have completed.
func (tr *Traffic) Calls() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.calls
}

// WaitCalls waits until n calls have completed, failing tb after a minute.
func (tr *Traffic) WaitCalls(tb testing.TB, n int) {
	tb.Helper()
	tr.wait(tb, "calls", n, func() int { return tr.calls })
}

// WaitAcknowledged waits until n calls have succeeded, failing tb after a
// minute.
func (tr *Traffic) WaitAcknowledged(tb testing.TB, n int) {
	tb.Helper()
	tr.wait(tb, "acknowledged calls", n, func() int { return tr.acked })
}

// wait waits until count (read under mu) reaches n.
func (tr *Traffic) wait(tb testing.TB, what string, n int, count func() int) {
	tb.Helper()
	deadline := time.After(time.Minute)
	for {
		tr.mu.Lock()
		done, cond := count(), tr.cond
		tr.mu.Unlock()
		if done >= n {
			return
		}
		select {
		case <-cond:
		case <-deadline:
			tb.Fatalf("traffic: %d of %d %s after a minute", done, n, what)
		}
	}
}

// Stop ends the traffic once every worker has finished its round, and waits
// for them.
func (tr *Traffic) Stop() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

// Acknowledged returns how many calls have succeeded.
func (tr *Traffic) Acknowledged() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.acked
}

// FailedSince stops the traffic and counts the calls that started at or
// after t, with a line for each that did not fail with
// tether.ErrUnavailable: with the backend unreachable since t, anything else
// is a stale or wrong answer.
func (tr *Traffic) FailedSince(t time.Time) (calls int, wrong []string) {
	tr.Stop()
	for _, r := range tr.rounds {
		for step, c := range r.calls {
			if !c.ran || c.start.Before(t) {
				continue
			}
			calls++
			if !errors.Is(c.err, tether.ErrUnavailable) {
				wrong = append(wrong, fmt.Sprintf("%s with the backend unreachable = %v; want ErrUnavailable", stepNames[step], c.err))
			}
		}
	}
	return calls, wrong
}

// Losses is what Check found: acknowledged effects that did not survive, and
// answers no history allows.
type Losses struct {
	Sessions    int      // acknowledged creates whose session is gone or was reported missing
	Revocations int      // acknowledged Delete, DeleteSubject or Rotate whose old session or secret is accepted again
	Replays     int      // acknowledged consumes whose key can be consumed again
	Roles       int      // acknowledged role changes that were undone
	Wrong       []string // answers that no history allows (a wrong error, a torn record)
	Rounds      int      // rounds checked
}

// Zero reports whether nothing was lost and nothing was wrong.
func (l Losses) Zero() bool {
	return l.Sessions == 0 && l.Revocations == 0 && l.Replays == 0 && l.Roles == 0 && len(l.Wrong) == 0
}

func (l Losses) String() string {
	return fmt.Sprintf("%d rounds: lost %d sessions, %d revocations, %d consumes (replayable), %d role changes; %d wrong answers",
		l.Rounds, l.Sessions, l.Revocations, l.Replays, l.Roles, len(l.Wrong))
}

// Check stops the traffic and reads, through s (a store on the same backend,
// reachable again), what became of every round: a write that was
// acknowledged must have taken effect, wholly; one that failed with
// ErrUnavailable may have taken effect or not, but never in part. It
// consumes every key again to test the replay guard, so call it once.
func (tr *Traffic) Check(tb testing.TB, s tether.Store) Losses {
	tb.Helper()
	tr.Stop()
	var l Losses
	wrong := func(r *round, format string, a ...any) {
		l.Wrong = append(l.Wrong, r.subject+": "+fmt.Sprintf(format, a...))
	}
	for _, r := range tr.rounds {
		if !slices.ContainsFunc(r.calls[:], func(c call) bool { return c.ran }) {
			continue
		}
		l.Rounds++
		ok := func(step int) bool { return r.calls[step].ran && r.calls[step].err == nil }
		ran := func(step int) bool { return r.calls[step].ran }
		// a is revoked by the next round, if that got so far.
		aRevoked := r.next != nil && r.next.calls[stepDeletePrevA].ran && r.next.calls[stepDeletePrevA].err == nil
		aMaybeRevoked := r.next != nil && r.next.calls[stepDeletePrevA].ran
		lost := map[string]bool{} // sessions reported missing during the traffic

		// Answers during the traffic: ErrUnavailable always may be; a miss
		// only for a session whose Create was not acknowledged.
		for step, c := range r.calls {
			if !c.ran || c.err == nil || errors.Is(c.err, tether.ErrUnavailable) {
				continue
			}
			var of *tether.Record
			created := false
			switch step {
			case stepGetA, stepRotateA:
				of, created = r.a, ok(stepCreateA)
			case stepDeleteB:
				of, created = r.b, ok(stepCreateB)
			case stepDeletePrevA:
				p := r.prev.calls[stepCreateA]
				of, created = r.prev.a, p.ran && p.err == nil
			}
			if of != nil && errors.Is(c.err, tether.ErrNotFound) {
				if created {
					lost[of.ID] = true
				}
				continue
			}
			wrong(r, "%s = %v", stepNames[step], c.err)
		}
		if ok(stepGetA) && (r.gotA.ID != r.a.ID || r.gotA.SecretHash != r.a.SecretHash || r.gotA.Subject != r.subject) {
			wrong(r, "Get(a) returned another or a torn record")
		}

		// a survives the round: its Create and Rotate must hold, until the
		// next round's Delete.
		got, err := s.Get(ctx, r.a.ID)
		switch {
		case err == nil && aRevoked:
			l.Revocations++
		case err == nil:
			if got.Subject != r.subject || !got.ExpiresAt.Equal(r.a.ExpiresAt) {
				wrong(r, "a read back torn: %+v", got)
			}
			switch got.SecretHash {
			case r.rotated:
			case r.a.SecretHash:
				if ok(stepRotateA) {
					l.Revocations++ // the secret Rotate killed is accepted again
				}
			default:
				wrong(r, "a has a secret hash it never had")
			}
		case errors.Is(err, tether.ErrNotFound):
			if (ok(stepCreateA) || ok(stepRotateA)) && !aMaybeRevoked {
				lost[r.a.ID] = true
			}
		default:
			tb.Fatalf("Check: Get(a) = %v", err)
		}

		// b dies with Delete(b) or DeleteSubject, c with DeleteSubject.
		for _, x := range []struct {
			rec          *tether.Record
			create       int
			revokedBy    []int
			maybeRevoked bool
		}{
			{r.b, stepCreateB, []int{stepDeleteB, stepDeleteSubject}, ran(stepDeleteB) || ran(stepDeleteSubject)},
			{r.c, stepCreateC, []int{stepDeleteSubject}, ran(stepDeleteSubject)},
		} {
			_, err := s.Get(ctx, x.rec.ID)
			if err != nil && !errors.Is(err, tether.ErrNotFound) {
				tb.Fatalf("Check: Get = %v", err)
			}
			found := err == nil
			revoked := slices.ContainsFunc(x.revokedBy, ok)
			switch {
			case found && revoked:
				l.Revocations++
			case !found && ok(x.create) && !x.maybeRevoked:
				lost[x.rec.ID] = true
			}
		}
		l.Sessions += len(lost)

		if ran(stepSetRoles) {
			roles, err := s.Roles(ctx, r.subject)
			if err != nil {
				tb.Fatalf("Check: Roles = %v", err)
			}
			switch {
			case slices.Equal(roles, []string{r.role}):
			case len(roles) == 0:
				if ok(stepSetRoles) {
					l.Roles++
				}
			default:
				wrong(r, "roles %q, never set", roles)
			}
		}
		if ran(stepConsume) {
			err := s.Consume(ctx, r.key, time.Now().Add(time.Hour))
			switch {
			case errors.Is(err, tether.ErrReplayed):
			case err == nil:
				if ok(stepConsume) {
					l.Replays++
				}
			default:
				tb.Fatalf("Check: Consume = %v", err)
			}
		}
	}
	return l
}
