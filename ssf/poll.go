package ssf

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tetherhq/tether"
)

// PollRequest is a poll (RFC 8936 §2.4): acknowledge what was received,
// ask for more.
type PollRequest struct {
	MaxEvents         *int                `json:"maxEvents,omitempty"`
	ReturnImmediately bool                `json:"returnImmediately,omitempty"`
	Ack               []string            `json:"ack,omitempty"`
	SetErrs           map[string]SETError `json:"setErrs,omitempty"`
}

// SETError is a receiver's complaint about one SET (RFC 8936 §2.4).
type SETError struct {
	Err         string `json:"err"`
	Description string `json:"description,omitempty"`
}

// PollResponse carries SETs by jti (RFC 8936 §2.5).
type PollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable,omitempty"`
}

// pollState is a poll stream's progress in the store. Cursor is where
// every earlier event has been acknowledged; Out are the SETs sent after it,
// in log order, and whether each was acknowledged; Held are SETs outside the
// log (verification events) waiting for the next poll.
type pollState struct {
	Cursor string            `json:"cursor"`
	Since  time.Time         `json:"since"`
	Out    []outstanding     `json:"out,omitempty"`
	Held   map[string]string `json:"held,omitempty"`
}

type outstanding struct {
	JTI    string `json:"jti"`
	Cursor string `json:"cursor"`
	Acked  bool   `json:"acked,omitempty"`
}

func pollKey(streamID string) string { return "ssf-poll/" + streamID }

// longPoll bounds how long a poll waits for events when the receiver did
// not ask to return at once.
const longPoll = 20 * time.Second

func (t *Transmitter) loadPoll(ctx context.Context, id string) (pollState, error) {
	raw, err := t.cfg.Manager.State(ctx, pollKey(id))
	if err != nil {
		return pollState{}, err
	}
	if len(raw) == 0 { // a new stream hears of what happens from now on
		return pollState{Since: t.cfg.Now()}, nil
	}
	var st pollState
	if err := json.Unmarshal(raw, &st); err != nil {
		return pollState{}, fmt.Errorf("ssf: corrupt poll state: %w", err)
	}
	return st, nil
}

func (t *Transmitter) savePoll(ctx context.Context, id string, st pollState) error {
	raw, _ := json.Marshal(st)
	return t.cfg.Manager.SetState(ctx, pollKey(id), raw)
}

// holdForPoll keeps a SET outside the log for the stream's next poll.
func (t *Transmitter) holdForPoll(ctx context.Context, s *Stream, c *Claims) error {
	set, err := t.sign.sign(c)
	if err != nil {
		return err
	}
	st, err := t.loadPoll(ctx, s.ID)
	if err != nil {
		return err
	}
	if st.Held == nil {
		st.Held = map[string]string{}
	}
	if len(st.Held) >= maxPollEvents {
		return tether.BadInput("too many unacknowledged verification events")
	}
	st.Held[c.ID] = set
	return t.savePoll(ctx, s.ID, st)
}

// Poll answers a poll of the client's poll stream (RFC 8936): it records
// the acknowledgements, then returns the SETs not yet acknowledged, in log
// order, up to maxEvents (default and at most 100). Unless the receiver asks
// to return at once, it waits up to 20 s for a first SET. Delivery is at
// least once: a SET is sent again until acknowledged.
func (t *Transmitter) Poll(ctx context.Context, c *Client, req *PollRequest) (*PollResponse, error) {
	max := maxPollEvents
	if req.MaxEvents != nil {
		if *req.MaxEvents < 0 || *req.MaxEvents > maxPollEvents {
			return nil, tether.BadInput("maxEvents must be between 0 and %d", maxPollEvents)
		}
		max = *req.MaxEvents
	}
	if len(req.Ack)+len(req.SetErrs) > 10*maxPollEvents {
		return nil, tether.BadInput("too many acknowledgements")
	}
	s, err := t.own(ctx, c, "")
	if err != nil {
		return nil, err
	}
	if s.Delivery.Method != DeliveryPoll {
		return nil, tether.BadInput("this stream is delivered by push")
	}
	done := map[string]bool{}
	for _, j := range req.Ack {
		done[j] = true
	}
	for j, e := range req.SetErrs {
		done[j] = true // refused: sending it again cannot help
		t.log.Warn("ssf: the receiver refused a SET", "receiver", s.Audience, "jti", truncate(j, 64), "err", truncate(e.Err, 64))
	}
	deadline := time.Now().Add(longPoll)
	for {
		resp, err := t.pollOnce(ctx, s, done, max)
		if err != nil || len(resp.Sets) > 0 || max == 0 || req.ReturnImmediately || time.Now().After(deadline) {
			return resp, err
		}
		done = nil // recorded already
		select {
		case <-ctx.Done():
			return resp, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pollOnce records acks in done and collects up to max SETs.
func (t *Transmitter) pollOnce(ctx context.Context, s *Stream, done map[string]bool, max int) (*PollResponse, error) {
	st, err := t.loadPoll(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	for i := range st.Out {
		if done[st.Out[i].JTI] {
			st.Out[i].Acked = true
		}
	}
	for j := range st.Held {
		if done[j] {
			delete(st.Held, j)
		}
	}
	for len(st.Out) > 0 && st.Out[0].Acked {
		st.Cursor = st.Out[0].Cursor
		st.Out = st.Out[1:]
	}
	acked := map[string]bool{}
	for _, o := range st.Out {
		if o.Acked {
			acked[o.JTI] = true
		}
	}
	resp := &PollResponse{Sets: map[string]string{}}
	for j, set := range st.Held {
		if len(resp.Sets) == max {
			resp.MoreAvailable = true
			break
		}
		resp.Sets[j] = set
	}
	var out []outstanding
	after := st.Cursor
	for pages := 0; pages < 10 && !resp.MoreAvailable; pages++ {
		p, err := t.cfg.Manager.Events(ctx, tether.EventQuery{After: after, Limit: 100})
		if err != nil {
			return nil, err
		}
		for i := range p.Events {
			e := &p.Events[i]
			c, ok := fromEvent(t.cfg.Issuer, s.Audience, e, t.cfg.Now())
			if !ok || e.Time.Before(st.Since) || !s.covers(e) || !requested(s, c) {
				if len(out) == 0 {
					st.Cursor = e.Cursor // nothing to send before it: no need to read it again
				}
				continue
			}
			if acked[e.ID] {
				out = append(out, outstanding{JTI: e.ID, Cursor: e.Cursor, Acked: true})
				continue
			}
			if len(resp.Sets) >= max {
				resp.MoreAvailable = true
				break
			}
			set, err := t.sign.sign(c)
			if err != nil {
				return nil, err
			}
			resp.Sets[e.ID] = set
			out = append(out, outstanding{JTI: e.ID, Cursor: e.Cursor})
		}
		if len(p.Events) == 0 || p.Next == "" || p.Next == after {
			break
		}
		after = p.Next
	}
	st.Out = out
	return resp, t.savePoll(ctx, s.ID, st)
}
