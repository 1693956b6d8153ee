package redisstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
)

// Events are kept in one stream per deployment, p + "{e}:events", written by
// the same script as the change they describe (scripts.go), so that no change
// lacks its event and no event outlives a failed change. Stream IDs grow with
// commit order: they are the cursor.
//
// A Redis Cluster runs a script on one slot only, and a session's keys and the
// stream are on different slots, so there events cannot be written atomically
// with their change; the store keeps none and Events fails, rather than keep
// a log that could miss changes.

// errNoEvents is returned by the event reads on a Cluster.
var errNoEvents = fmt.Errorf("%w: redisstore: the event log is not kept on Redis Cluster", tether.ErrUnavailable)

func streamKey(cfg urlConfig) string {
	if cfg.mode == modeCluster {
		return ""
	}
	return cfg.prefix + "{e}:events"
}

// keys returns a script's keys followed by the event stream, where there is one.
func (s *Store) keys(k ...string) []string {
	if s.stream != "" {
		k = append(k, s.stream)
	}
	return k
}

// eventArgs returns a script's arguments followed by the encoded events.
func (s *Store) eventArgs(evs []tether.Event, args ...string) []string {
	for i := range evs {
		args = append(args, string(tether.MarshalEvent(&evs[i])))
	}
	return args
}

// AppendEvents implements tether.Store.
func (s *Store) AppendEvents(ctx context.Context, evs ...tether.Event) error {
	if s.stream == "" || len(evs) == 0 {
		return nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := appendScript.Exec(ctx, s.c, s.keys(), s.eventArgs(evs)).Error(); err != nil {
		return unavailable("append events", err)
	}
	return nil
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// eventScanBatches bounds one Events call's reads when filters skip most
// events; the cursor still advances past what it read.
const eventScanBatches = 10

// Events implements tether.Store.
func (s *Store) Events(ctx context.Context, q tether.EventQuery) (tether.EventPage, error) {
	if s.stream == "" {
		return tether.EventPage{}, errNoEvents
	}
	start := "-"
	if q.After != "" {
		if !streamID.MatchString(q.After) {
			return tether.EventPage{}, tether.BadInput("malformed cursor")
		}
		start = "(" + q.After
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	p := tether.EventPage{Next: q.After}
	for range eventScanBatches {
		entries, err := s.c.Do(ctx, s.c.B().Xrange().Key(s.stream).Start(start).End("+").Count(int64(q.Limit)).Build()).AsXRange()
		if err != nil {
			return tether.EventPage{}, unavailable("events", err)
		}
		for _, en := range entries {
			e, err := tether.UnmarshalEvent([]byte(en.FieldValues["e"]))
			if err != nil {
				return tether.EventPage{}, unavailable("events", errors.New("corrupt event"))
			}
			if e.Subject == "" {
				e.Subject = en.FieldValues["s"]
			}
			p.Next = en.ID
			if q.Match(&e) {
				e.Cursor = en.ID
				p.Events = append(p.Events, e)
			}
			if len(p.Events) == q.Limit {
				return p, nil
			}
		}
		if len(entries) < q.Limit {
			break
		}
		start = "(" + p.Next
	}
	return p, nil
}

// TrimEvents implements tether.Store: stream IDs begin with the time of the
// write in milliseconds, so MINID drops what is older.
func (s *Store) TrimEvents(ctx context.Context, before time.Time) error {
	if s.stream == "" {
		return nil
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.c.Do(ctx, s.c.B().Xtrim().Key(s.stream).Minid().Threshold(strconv.FormatInt(before.UnixMilli(), 10)).Build()).Error()
	if err != nil && !rueidis.IsRedisNil(err) {
		return unavailable("trim events", err)
	}
	return nil
}

func (s *Store) serviceKey(key string) string { return s.prefix + "{st:" + key + "}" }

// GetState implements tether.Store.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := s.c.Do(ctx, s.c.B().Get().Key(s.serviceKey(key)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("get state", err)
	}
	return v, nil
}

// PutState implements tether.Store.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.c.Do(ctx, s.c.B().Set().Key(s.serviceKey(key)).Value(rueidis.BinaryString(value)).Build()).Error(); err != nil {
		return unavailable("put state", err)
	}
	return nil
}
