package redisstore

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
)

// Resubscription backoff: doubling from minBackoff up to maxBackoff, jittered
// so that a fleet of nodes does not reconnect in lockstep after an outage.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Watch implements tether.Watcher. Each call subscribes on a client of its own,
// so that ending one Watch (which closes that client) can never unsubscribe
// another, and no subscription outlives its Watch. It returns nil when ctx
// ends or the store is closed.
func (s *Store) Watch(ctx context.Context, fn func(tether.Change)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with Watch: cancel runs on return
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	delay := minBackoff
	for {
		wasUp, err := s.watchOnce(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		if wasUp {
			// Changes may be missed from now on: say so at once, before any
			// backoff, so that caches stop serving.
			fn(tether.Change{Kind: tether.ChannelLost})
			s.log.Warn("redisstore: change channel lost; resubscribing", "err", err)
			delay = minBackoff
		} else {
			s.log.Debug("redisstore: change channel: subscribe failed", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// watchOnce connects, subscribes and delivers changes until the subscription
// ends. It reports whether the subscription was ever confirmed, in which case
// ChannelRestored was delivered.
//
// rueidis reports the confirmation on its connection's reader goroutine and
// messages on the one calling Receive (this one); a mutex serialises the two,
// and the reader reports the confirmation before it reads any message, so fn
// sees ChannelRestored first and is never called concurrently. Messages are
// delivered straight from Receive's callback: no extra goroutine hop on the
// path that propagates revocations.
func (s *Store) watchOnce(ctx context.Context, fn func(tether.Change)) (up bool, err error) {
	c, err := dial(ctx, s.opt)
	if err != nil {
		return false, err
	}
	defer c.Close()
	var mu sync.Mutex
	over := false // set when Receive returns: a late confirmation is ignored
	deliver := func(ch tether.Change) {
		mu.Lock()
		defer mu.Unlock()
		if over {
			return
		}
		if ch.Kind == tether.ChannelRestored {
			if up {
				return
			}
			up = true
		}
		fn(ch)
	}
	hook := func(sub rueidis.PubSubSubscription) {
		if sub.Kind == "subscribe" && sub.Channel == s.channel {
			deliver(tether.Change{Kind: tether.ChannelRestored})
		}
	}
	err = c.Receive(rueidis.WithOnSubscriptionHook(ctx, hook),
		c.B().Subscribe().Channel(s.channel).Build(),
		func(m rueidis.PubSubMessage) {
			if ch, ok := parseChange(m.Message); ok {
				deliver(ch)
			}
		})
	mu.Lock()
	defer mu.Unlock()
	over = true
	return up, err
}

func parseChange(msg string) (tether.Change, bool) {
	if id, ok := strings.CutPrefix(msg, "s:"); ok {
		return tether.Change{Kind: tether.SessionChanged, SessionID: id}, true
	}
	if sub, ok := strings.CutPrefix(msg, "u:"); ok {
		return tether.Change{Kind: tether.SubjectChanged, Subject: sub}, true
	}
	return tether.Change{}, false
}

// dial makes a rueidis client, which connects at once, within ctx.
func dial(ctx context.Context, opt rueidis.ClientOption) (rueidis.Client, error) {
	type result struct {
		c   rueidis.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := rueidis.NewClient(opt)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() { // the dial ends within the dial timeout; close what it made
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
