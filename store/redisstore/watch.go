package redisstore

import (
	"context"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/changefeed"
)

// Watch implements tether.Watcher on changefeed.Follow. Each subscription
// runs on a client of its own, so that ending one Watch (which closes that
// client) can never unsubscribe another, and no subscription outlives its
// Watch.
func (s *Store) Watch(ctx context.Context, fn func(tether.Change)) error {
	return changefeed.Follow(ctx, changefeed.Config{
		Name:      "redisstore",
		Subscribe: s.subscribe,
		Closed:    s.done,
		Logger:    s.log,
	}, fn)
}

// subscribe connects, subscribes and passes messages on until the
// subscription ends. rueidis reports the confirmation on its connection's
// reader goroutine, before it reads any message, and messages on this one;
// changefeed.Conn serialises the two. Messages go straight from Receive's
// callback: no extra goroutine hop on the path that propagates revocations.
func (s *Store) subscribe(ctx context.Context, conn *changefeed.Conn) error {
	c, err := dial(ctx, s.opt)
	if err != nil {
		return err
	}
	defer c.Close()
	hook := func(sub rueidis.PubSubSubscription) {
		if sub.Kind == "subscribe" && sub.Channel == s.channel {
			conn.Up()
		}
	}
	return c.Receive(rueidis.WithOnSubscriptionHook(ctx, hook),
		c.B().Subscribe().Channel(s.channel).Build(),
		func(m rueidis.PubSubMessage) { conn.Send(m.Message) })
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
