package ssf

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tetherhq/tether"
)

// StreamConfig is a stream as the management API reads and writes it (SSF
// 1.0 §8.1.1). On create and update the receiver may set delivery,
// events_requested, description and, as Tether's addition, default_subjects
// ("ALL": every subject; "NONE", the default: only those added); the other
// members are the transmitter's and ignored when sent.
type StreamConfig struct {
	ID                string    `json:"stream_id,omitempty"`
	Issuer            string    `json:"iss,omitempty"`
	Audience          string    `json:"aud,omitempty"`
	EventsSupported   []string  `json:"events_supported,omitempty"`
	EventsRequested   []string  `json:"events_requested,omitempty"`
	EventsDelivered   []string  `json:"events_delivered,omitempty"`
	Delivery          *Delivery `json:"delivery,omitempty"`
	Description       string    `json:"description,omitempty"`
	MinVerifyInterval int       `json:"min_verification_interval,omitempty"`
	DefaultSubjects   string    `json:"default_subjects,omitempty"`
}

// StreamStatus is a stream's status (SSF 1.0 §8.1.2).
type StreamStatus struct {
	ID     string `json:"stream_id"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// stateKey names a client's stream in the store.
func stateKey(aud string) string { return "ssf-stream/" + hashHex(aud) }

func (t *Transmitter) load(ctx context.Context, aud string) (*Stream, error) {
	raw, err := t.cfg.Manager.State(ctx, stateKey(aud))
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var s Stream
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("ssf: corrupt stream state: %w", err)
	}
	return &s, nil
}

// save writes s (nil deletes the client's stream) and applies it on this
// node at once; other nodes pick it up within Sync.
func (t *Transmitter) save(ctx context.Context, aud string, s *Stream) error {
	var raw []byte
	if s != nil {
		raw, _ = json.Marshal(s)
	}
	if err := t.cfg.Manager.SetState(ctx, stateKey(aud), append([]byte{}, raw...)); err != nil {
		return err
	}
	t.apply(aud, s)
	return nil
}

// own returns the client's stream if its ID is id ("" matches it too).
func (t *Transmitter) own(ctx context.Context, c *Client, id string) (*Stream, error) {
	s, err := t.load(ctx, c.Audience)
	if err != nil {
		return nil, err
	}
	if s == nil || (id != "" && id != s.ID) {
		return nil, ErrNoStream
	}
	return s, nil
}

// wire is s as the management API shows it.
func (t *Transmitter) wire(s *Stream) *StreamConfig {
	delivered := supported
	if len(s.EventsRequested) > 0 {
		delivered = nil
		for _, e := range s.EventsRequested {
			if slices.Contains(supported, e) {
				delivered = append(delivered, e)
			}
		}
	}
	d := s.Delivery
	d.AuthorizationHeader = "" // the receiver's own secret is never echoed
	subjects := "NONE"
	if s.AllSubjects {
		subjects = "ALL"
	}
	return &StreamConfig{
		ID: s.ID, Issuer: t.cfg.Issuer, Audience: s.Audience, EventsSupported: supported,
		EventsRequested: s.EventsRequested, EventsDelivered: delivered, Delivery: &d,
		Description: s.Description, MinVerifyInterval: minVerifyInterval, DefaultSubjects: subjects,
	}
}

// merge applies the receiver-supplied members of req to s; replace says
// whether the ones req leaves out are reset (PUT) or kept (PATCH).
func (t *Transmitter) merge(s *Stream, req *StreamConfig, replace bool) error {
	if req.Delivery != nil || replace {
		d := Delivery{Method: DeliveryPoll}
		if req.Delivery != nil {
			d = *req.Delivery
		}
		switch d.Method {
		case DeliveryPush:
			if t.cfg.AllowPrivateEndpoints {
				if err := checkEndpoint(d.EndpointURL); err != nil {
					return tether.BadInput("delivery.endpoint_url must be https (plain http only to a loopback address)")
				}
			} else if err := checkClientEndpoint(d.EndpointURL); err != nil {
				return tether.BadInput("delivery.endpoint_url must be https to a public address")
			}
			if len(d.AuthorizationHeader) > 4096 {
				return tether.BadInput("delivery.authorization_header too long")
			}
		case DeliveryPoll:
			d = Delivery{Method: DeliveryPoll, EndpointURL: strings.TrimSuffix(t.cfg.Issuer, "/") + PathPoll}
		default:
			return tether.BadInput("delivery.method must be %s or %s", DeliveryPush, DeliveryPoll)
		}
		s.Delivery = d
	}
	if req.EventsRequested != nil || replace {
		if len(req.EventsRequested) > 32 {
			return tether.BadInput("too many events_requested")
		}
		s.EventsRequested = slices.Clone(req.EventsRequested)
	}
	if req.Description != "" || replace {
		if len(req.Description) > 1024 {
			return tether.BadInput("description longer than 1024 bytes")
		}
		s.Description = req.Description
	}
	switch req.DefaultSubjects {
	case "ALL":
		s.AllSubjects = true
	case "NONE":
		s.AllSubjects = false
	case "":
		if replace {
			s.AllSubjects = false
		}
	default:
		return tether.BadInput(`default_subjects must be "ALL" or "NONE"`)
	}
	return nil
}

// CreateStream makes the client's stream (SSF 1.0 §8.1.1.1).
func (t *Transmitter) CreateStream(ctx context.Context, c *Client, req *StreamConfig) (*StreamConfig, error) {
	old, err := t.load(ctx, c.Audience)
	if err != nil {
		return nil, err
	}
	if old != nil {
		return nil, ErrStreamExists
	}
	s := &Stream{ID: "st_" + rand.Text(), Audience: c.Audience, Status: StatusEnabled}
	if err := t.merge(s, req, true); err != nil {
		return nil, err
	}
	// A poll stream hears of what happens from its creation on, whenever
	// it first polls; a push stream's delivery starts the same way.
	if err := t.savePoll(ctx, s.ID, pollState{Since: t.cfg.Now()}); err != nil {
		return nil, err
	}
	if err := t.save(ctx, c.Audience, s); err != nil {
		return nil, err
	}
	return t.wire(s), nil
}

// ReadStream returns the client's stream; id may be empty.
func (t *Transmitter) ReadStream(ctx context.Context, c *Client, id string) (*StreamConfig, error) {
	s, err := t.own(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return t.wire(s), nil
}

// UpdateStream changes the client's stream: replace (PUT) resets what req
// leaves out, else (PATCH) keeps it.
func (t *Transmitter) UpdateStream(ctx context.Context, c *Client, req *StreamConfig, replace bool) (*StreamConfig, error) {
	if req.ID == "" {
		return nil, tether.BadInput("stream_id is required")
	}
	s, err := t.own(ctx, c, req.ID)
	if err != nil {
		return nil, err
	}
	if err := t.merge(s, req, replace); err != nil {
		return nil, err
	}
	if err := t.save(ctx, c.Audience, s); err != nil {
		return nil, err
	}
	return t.wire(s), nil
}

// DeleteStream ends the client's stream and forgets its progress.
func (t *Transmitter) DeleteStream(ctx context.Context, c *Client, id string) error {
	s, err := t.own(ctx, c, id)
	if err != nil {
		return err
	}
	if err := t.save(ctx, c.Audience, nil); err != nil {
		return err
	}
	if err := t.cfg.Manager.SetState(ctx, pollKey(s.ID), []byte{}); err != nil {
		return err
	}
	return t.loop.Forget(ctx, "ssf/"+s.ID)
}

// Status returns the stream's status.
func (t *Transmitter) Status(ctx context.Context, c *Client, id string) (*StreamStatus, error) {
	s, err := t.own(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return &StreamStatus{ID: s.ID, Status: s.Status, Reason: s.Reason}, nil
}

// SetStatus enables, pauses (events are held) or disables (events are
// dropped) the stream.
func (t *Transmitter) SetStatus(ctx context.Context, c *Client, req *StreamStatus) (*StreamStatus, error) {
	switch req.Status {
	case StatusEnabled, StatusPaused, StatusDisabled:
	default:
		return nil, tether.BadInput("status must be enabled, paused or disabled")
	}
	if len(req.Reason) > 1024 {
		return nil, tether.BadInput("reason longer than 1024 bytes")
	}
	s, err := t.own(ctx, c, req.ID)
	if err != nil {
		return nil, err
	}
	was := s.Status
	s.Status, s.Reason = req.Status, req.Reason
	if err := t.save(ctx, c.Audience, s); err != nil {
		return nil, err
	}
	if req.Status == StatusDisabled && was != StatusDisabled {
		// What happens while disabled is never sent.
		if err := t.loop.Forget(ctx, "ssf/"+s.ID); err != nil {
			return nil, err
		}
		if err := t.cfg.Manager.SetState(ctx, pollKey(s.ID), []byte{}); err != nil {
			return nil, err
		}
	}
	return &StreamStatus{ID: s.ID, Status: s.Status, Reason: s.Reason}, nil
}

// SubjectRequest adds a subject to a stream or removes it (SSF 1.0 §8.1.3).
type SubjectRequest struct {
	ID       string     `json:"stream_id"`
	Subject  *SubjectID `json:"subject"`
	Verified *bool      `json:"verified,omitempty"`
}

// localSubject reads a subject identifier naming one of this node's
// subjects: iss_sub with this node as iss, or opaque.
func (t *Transmitter) localSubject(id *SubjectID) (string, error) {
	var sub string
	switch {
	case id == nil:
		return "", tether.BadInput("subject is required")
	case id.Format == "iss_sub" && id.Issuer == t.cfg.Issuer:
		sub = id.Subject
	case id.Format == "opaque":
		sub = id.ID
	default:
		return "", tether.BadInput("subject must be iss_sub of this issuer or opaque")
	}
	if err := tether.CheckSubject(sub); err != nil {
		return "", err
	}
	return sub, nil
}

// subjectOf returns the client's stream and the local subject req names.
func (t *Transmitter) subjectOf(ctx context.Context, c *Client, req *SubjectRequest) (*Stream, string, error) {
	sub, err := t.localSubject(req.Subject)
	if err != nil {
		return nil, "", err
	}
	s, err := t.own(ctx, c, req.ID)
	return s, sub, err
}

// AddSubject makes the stream cover a subject.
func (t *Transmitter) AddSubject(ctx context.Context, c *Client, req *SubjectRequest) error {
	s, sub, err := t.subjectOf(ctx, c, req)
	if err != nil {
		return err
	}
	if slices.Contains(s.Subjects, sub) {
		return nil
	}
	if len(s.Subjects) >= MaxStreamSubjects {
		return tether.BadInput("a stream covers at most %d subjects; ask for default_subjects ALL", MaxStreamSubjects)
	}
	s.Subjects = append(s.Subjects, sub)
	return t.save(ctx, c.Audience, s)
}

// RemoveSubject makes the stream stop covering a subject.
func (t *Transmitter) RemoveSubject(ctx context.Context, c *Client, req *SubjectRequest) error {
	s, sub, err := t.subjectOf(ctx, c, req)
	if err != nil {
		return err
	}
	s.Subjects = slices.DeleteFunc(s.Subjects, func(x string) bool { return x == sub })
	return t.save(ctx, c.Audience, s)
}

// VerifyRequest asks for a verification event (SSF 1.0 §8.1.4).
type VerifyRequest struct {
	ID    string `json:"stream_id"`
	State string `json:"state,omitempty"`
}

// Verify sends the stream a verification event: pushed at once, or held
// for the next poll.
func (t *Transmitter) Verify(ctx context.Context, c *Client, req *VerifyRequest) error {
	if len(req.State) > 1024 {
		return tether.BadInput("state longer than 1024 bytes")
	}
	s, err := t.own(ctx, c, req.ID)
	if err != nil {
		return err
	}
	now := t.cfg.Now()
	if now.Sub(s.LastVerify) < minVerifyInterval*time.Second {
		return ErrTooSoon
	}
	s.LastVerify = now
	if err := t.save(ctx, c.Audience, s); err != nil {
		return err
	}
	body := map[string]any{}
	if req.State != "" {
		body["state"] = req.State
	}
	claims := &Claims{
		Issuer: t.cfg.Issuer, Audience: s.Audience, IssuedAt: now.Unix(), ID: "ver_" + rand.Text(),
		SubID: &SubjectID{Format: "opaque", ID: s.ID}, Events: map[string]map[string]any{EventVerification: body},
	}
	if s.Delivery.Method == DeliveryPoll {
		return t.holdForPoll(ctx, s, claims)
	}
	// Pushed in the background: the receiver may well be the caller, waiting
	// for this answer before it can take the push.
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := t.push(ctx, s, claims); err != nil {
			t.log.Warn("ssf: verification push failed", "receiver", s.Audience, "err", err)
		}
	}()
	return nil
}

// covers reports whether stream s, as last read, gets events about e's
// subject.
func (s *Stream) covers(e *tether.Event) bool {
	return s.Status == StatusEnabled && (s.AllSubjects || slices.Contains(s.Subjects, e.Subject))
}

// apply brings this node's delivery of the client's stream in line with s
// (nil: none). The loop's targets read the stream through t.running, so a
// change of subjects or filters needs no restart of its delivery.
func (t *Transmitter) apply(aud string, s *Stream) {
	t.applyMu.Lock() // one change at a time, so a Remove never meets a later Add
	defer t.applyMu.Unlock()
	t.mu.Lock()
	var remove []string
	keep := false
	for id, cur := range t.running {
		if cur.Audience != aud {
			continue
		}
		if s != nil && s.ID == id && s.Delivery == cur.Delivery && s.Status == StatusEnabled {
			t.running[id] = s.clone()
			keep = true
			continue
		}
		delete(t.running, id)
		remove = append(remove, id)
	}
	add := !keep && s != nil && s.Delivery.Method == DeliveryPush && s.Status == StatusEnabled
	if add {
		t.running[s.ID] = s.clone()
	}
	t.mu.Unlock()
	// Outside t.mu: Remove waits for the target's goroutine, which reads
	// the stream under it.
	for _, id := range remove {
		t.loop.Remove("ssf/" + id)
	}
	if add {
		id := s.ID
		current := func() *Stream {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.running[id]
		}
		if err := t.loop.Add(t.target(id, aud, current)); err != nil {
			t.log.Warn("ssf: cannot deliver a stream", "receiver", aud, "err", err)
		}
	}
}

func (s *Stream) clone() *Stream {
	c := *s
	c.Subjects = slices.Clone(s.Subjects)
	c.EventsRequested = slices.Clone(s.EventsRequested)
	return &c
}

// syncStreams rereads the clients' streams, which any node may change.
func (t *Transmitter) syncStreams(ctx context.Context) {
	defer t.wg.Done()
	tick := time.NewTicker(t.cfg.Sync)
	defer tick.Stop()
	for {
		for _, c := range t.cfg.Clients {
			s, err := t.load(ctx, c.Audience)
			if err != nil {
				if ctx.Err() == nil {
					t.log.Warn("ssf: cannot read a stream; will retry", "receiver", c.Audience, "err", err)
				}
				continue
			}
			t.apply(c.Audience, s)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
