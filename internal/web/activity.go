package web

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tetherhq/tether"
)

const (
	// activityShown is how many of a subject's events the console lists.
	activityShown = 50
	// activityPages bounds how many pages of the subject's events one view
	// reads: 100 pages of 1,000 events. A subject with more in the retention
	// window is told to use the CLI, which follows the log to its end.
	activityPages = 100
)

// activity is a subject's most recent events, newest first.
type activity struct {
	Events []activityRow
	// Partial: the log held more of the subject's events than one view
	// reads, so newer ones may be missing.
	Partial bool
	// Error says the log could not be read (the store is down or answers
	// with an error); the rest of the page still works.
	Error string
}

// activityRow is one event as the console lists it: never a token or a
// secret, since events hold none.
type activityRow struct {
	tether.Event
	At     string // with seconds: events often come in bursts
	Detail string // the detail's fields, as key=value in key order
}

// ActorText names who acted: the kind, and its ID when there is one.
func (r activityRow) ActorText() string {
	if r.Actor.ID != "" {
		return r.Actor.Kind + " " + r.Actor.ID
	}
	return r.Actor.Kind
}

// subjectActivity reads the subject's events to the end of the log (the log
// is oldest first and its cursor only goes forward), keeping the last
// activityShown.
func (p *Pages) subjectActivity(ctx context.Context, subject string) activity {
	q := tether.EventQuery{Subject: subject, Limit: tether.MaxEventLimit}
	var evs []tether.Event
	var a activity
	for page := 0; ; page++ {
		if page == activityPages {
			a.Partial = true
			break
		}
		pg, err := p.m.Events(ctx, q)
		if err != nil {
			p.log.Warn("console: cannot read the event log", "err", err)
			return activity{Error: "The event log could not be read from the store."}
		}
		evs = append(evs, pg.Events...)
		if n := len(evs) - activityShown; n > 0 {
			evs = append(evs[:0], evs[n:]...)
		}
		// A page may stop short of the end when filters skip much of the
		// log; only a call that moves the cursor no further is the end.
		if pg.Next == q.After {
			break
		}
		q.After = pg.Next
	}
	slices.Reverse(evs)
	for _, e := range evs {
		a.Events = append(a.Events, activityRow{Event: e, At: e.Time.UTC().Format("2 Jan 2006, 15:04:05 UTC"), Detail: detailText(e.Detail)})
	}
	return a
}

func detailText(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%v", k, d[k])
	}
	return b.String()
}
