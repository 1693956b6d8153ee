package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/tetherhq/tether"
)

// Events live in their own bucket, keyed by the bucket's sequence (8 bytes,
// big-endian), so that keys sort in commit order and the cursor is that
// sequence. They are written in the transaction of the change they describe.

// putEvents appends evs, filling in an empty subject with subject.
func (b buckets) putEvents(evs []tether.Event, subject string) error {
	bk := b.events()
	for _, e := range evs {
		e.Subject = cmp.Or(e.Subject, subject)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		if err := bk.Put(binary.BigEndian.AppendUint64(nil, seq), tether.MarshalEvent(&e)); err != nil {
			return err
		}
	}
	return nil
}

// AppendEvents implements tether.Store.
func (s *Store) AppendEvents(ctx context.Context, evs ...tether.Event) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.update("append events", func(b buckets) error { return b.putEvents(evs, "") })
}

// Events implements tether.Store.
func (s *Store) Events(ctx context.Context, q tether.EventQuery) (tether.EventPage, error) {
	if err := s.check(ctx); err != nil {
		return tether.EventPage{}, err
	}
	var after uint64
	if q.After != "" {
		n, err := strconv.ParseUint(q.After, 10, 64)
		if err != nil {
			return tether.EventPage{}, tether.BadInput("malformed cursor")
		}
		after = n
	}
	p := tether.EventPage{Next: q.After}
	err := s.view("events", func(b buckets) error {
		c := b.events().Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(p.Events) < q.Limit; k, v = c.Next() {
			e, err := tether.UnmarshalEvent(v)
			if err != nil {
				return errCorrupt
			}
			p.Next = strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
			if q.Match(&e) {
				e.Cursor = p.Next
				p.Events = append(p.Events, e)
			}
		}
		return nil
	})
	if err != nil {
		return tether.EventPage{}, err
	}
	return p, nil
}

// TrimEvents implements tether.Store: events are in time order, so it deletes
// from the front, sweepChunk at a time to keep the write lock short.
func (s *Store) TrimEvents(ctx context.Context, before time.Time) error {
	for {
		if err := s.check(ctx); err != nil {
			return err
		}
		var n int
		err := s.update("trim events", func(b buckets) error {
			n = 0
			c := b.events().Cursor()
			var old [][]byte
			for k, v := c.First(); k != nil && len(old) < sweepChunk; k, v = c.Next() {
				e, err := tether.UnmarshalEvent(v)
				if err != nil {
					return errCorrupt
				}
				if !e.Time.Before(before) {
					break
				}
				old = append(old, k)
			}
			for _, k := range old { // deleting under a cursor makes it skip keys
				if err := b.events().Delete(k); err != nil {
					return err
				}
			}
			n = len(old)
			return nil
		})
		if err != nil || n < sweepChunk {
			return err
		}
	}
}

// GetState implements tether.Store.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var v []byte
	err := s.view("get state", func(b buckets) error {
		v = bytes.Clone(b.state().Get([]byte(key))) // bbolt's slice dies with the transaction
		return nil
	})
	return v, err
}

// PutState implements tether.Store.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.update("put state", func(b buckets) error { return b.state().Put([]byte(key), value) })
}
