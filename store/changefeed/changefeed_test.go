package changefeed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/changefeed"
)

var quiet = slog.New(slog.DiscardHandler)

var (
	restored = tether.Change{Kind: tether.ChannelRestored}
	lost     = tether.Change{Kind: tether.ChannelLost}
)

func session(id string) tether.Change {
	return tether.Change{Kind: tether.SessionChanged, SessionID: id}
}

func subject(s string) tether.Change { return tether.Change{Kind: tether.SubjectChanged, Subject: s} }

// recorder collects what Follow delivers and fails the test if fn is ever
// called concurrently.
type recorder struct {
	mu   sync.Mutex
	busy bool
	got  []tether.Change
	t    *testing.T
}

func (r *recorder) fn(c tether.Change) {
	r.mu.Lock()
	if r.busy {
		r.t.Error("fn called concurrently")
	}
	r.busy = true
	r.got = append(r.got, c)
	r.busy = false
	r.mu.Unlock()
}

func (r *recorder) all() []tether.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tether.Change(nil), r.got...)
}

// attempt is what one scripted Subscribe call does.
type attempt func(ctx context.Context, c *changefeed.Conn) error

func follow(t *testing.T, ctx context.Context, closed <-chan struct{}, attempts ...attempt) (*recorder, error) {
	r := &recorder{t: t}
	n := 0
	err := changefeed.Follow(ctx, changefeed.Config{
		Name: "test", Closed: closed, Logger: quiet,
		MinBackoff: time.Microsecond, MaxBackoff: time.Millisecond,
		Subscribe: func(ctx context.Context, c *changefeed.Conn) error {
			if n >= len(attempts) {
				t.Fatalf("Subscribe called %d times; script has %d", n+1, len(attempts))
			}
			n++
			return attempts[n-1](ctx, c)
		},
	}, r.fn)
	return r, err
}

func TestFollow(t *testing.T) {
	refused := func(context.Context, *changefeed.Conn) error { return errors.New("connection refused") }
	tests := []struct {
		name     string
		attempts func(cancel context.CancelFunc) []attempt
		want     []tether.Change
	}{
		{
			name: "up, changes, break, retry, up",
			attempts: func(cancel context.CancelFunc) []attempt {
				return []attempt{
					refused,
					func(ctx context.Context, c *changefeed.Conn) error {
						c.Up()
						c.Up() // only the first counts
						c.Send("s:id1")
						c.Send("u:alice")
						return io.EOF
					},
					refused,
					func(ctx context.Context, c *changefeed.Conn) error {
						c.Up()
						cancel()
						<-ctx.Done()
						return ctx.Err()
					},
				}
			},
			// No ChannelLost after ctx ends: nobody is listening any more.
			want: []tether.Change{restored, session("id1"), subject("alice"), lost, restored},
		},
		{
			name: "a message proves the subscription",
			attempts: func(cancel context.CancelFunc) []attempt {
				return []attempt{func(ctx context.Context, c *changefeed.Conn) error {
					c.Send("s:id2")
					cancel()
					return nil
				}}
			},
			want: []tether.Change{restored, session("id2")},
		},
		{
			name: "an unreadable message flushes",
			attempts: func(cancel context.CancelFunc) []attempt {
				return []attempt{func(ctx context.Context, c *changefeed.Conn) error {
					c.Up()
					c.Send("*")
					c.Send("s:id3")
					cancel()
					return nil
				}}
			},
			want: []tether.Change{restored, lost, restored, session("id3")},
		},
		{
			name: "never up, never lost",
			attempts: func(cancel context.CancelFunc) []attempt {
				return []attempt{refused, refused, func(context.Context, *changefeed.Conn) error {
					cancel()
					return errors.New("refused")
				}}
			},
			want: nil,
		},
		{
			name: "calls after Subscribe returned are ignored",
			attempts: func(cancel context.CancelFunc) []attempt {
				var late *changefeed.Conn
				return []attempt{
					func(ctx context.Context, c *changefeed.Conn) error { late = c; return io.EOF },
					func(ctx context.Context, c *changefeed.Conn) error {
						late.Up()
						late.Send("s:late")
						cancel()
						return nil
					},
				}
			},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, err := follow(t, ctx, nil, tt.attempts(cancel)...)
			if err != nil {
				t.Fatalf("Follow = %v; want nil once ctx ended", err)
			}
			if d := cmp.Diff(tt.want, r.all()); d != "" {
				t.Fatalf("delivered (-want +got):\n%s", d)
			}
		})
	}
}

func TestFollowClosed(t *testing.T) {
	closed := make(chan struct{})
	r, err := follow(t, context.Background(), closed, func(ctx context.Context, c *changefeed.Conn) error {
		c.Up()
		close(closed)
		<-ctx.Done() // Close ends the subscription
		return ctx.Err()
	})
	if !errors.Is(err, tether.ErrUnavailable) || !errors.Is(err, changefeed.ErrClosed) {
		t.Fatalf("Follow ended by Closed = %v; want ErrUnavailable and ErrClosed", err)
	}
	if d := cmp.Diff([]tether.Change{restored}, r.all()); d != "" {
		t.Fatalf("delivered (-want +got):\n%s", d)
	}
	// Already closed: no attempt at all.
	if _, err := follow(t, context.Background(), closed); !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("Follow on a closed store = %v; want ErrUnavailable", err)
	}
}

func TestPayload(t *testing.T) {
	tests := []struct {
		c       tether.Change
		payload string
	}{
		{session("abc"), "s:abc"},
		{subject("alice"), "u:alice"},
		{subject("u:s:x"), "u:u:s:x"},
		{lost, "*"},
	}
	for _, tt := range tests {
		if got := changefeed.Payload(tt.c); got != tt.payload {
			t.Errorf("Payload(%+v) = %q; want %q", tt.c, got, tt.payload)
		}
		got, ok := changefeed.Parse(tt.payload)
		if tt.c.Kind == tether.ChannelLost {
			if ok {
				t.Errorf("Parse(%q) = %+v, true; want a flush", tt.payload, got)
			}
			continue
		}
		if !ok || got != tt.c {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.payload, got, ok, tt.c)
		}
	}
	for _, bad := range []string{"", "*", "s:", "u:", "x:abc", "S:abc"} {
		if c, ok := changefeed.Parse(bad); ok {
			t.Errorf("Parse(%q) = %+v; want a flush", bad, c)
		}
	}
}

// FuzzParse: whatever arrives on the channel, Parse either flushes or yields
// a change that Payload writes back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"s:abc", "u:alice", "*", "", "u:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		c, ok := changefeed.Parse(payload)
		if ok && changefeed.Payload(c) != payload {
			t.Fatalf("Parse(%q) = %+v, which Payload writes as %q", payload, c, changefeed.Payload(c))
		}
	})
}

// A store's Watch is Follow plus the part that speaks its protocol. Here the
// "server" is a Go channel of messages.
func ExampleFollow() {
	messages := make(chan string, 2)
	messages <- changefeed.Payload(tether.Change{Kind: tether.SessionChanged, SessionID: "s1"})
	messages <- changefeed.Payload(tether.Change{Kind: tether.SubjectChanged, Subject: "alice"})
	close(messages) // the connection breaks after two messages

	ctx, cancel := context.WithCancel(context.Background())
	err := changefeed.Follow(ctx, changefeed.Config{
		Name: "examplestore",
		Subscribe: func(ctx context.Context, c *changefeed.Conn) error {
			if messages == nil { // reconnected: nothing more to say
				cancel()
				return nil
			}
			c.Up() // subscribed
			for m := range messages {
				c.Send(m)
			}
			messages = nil
			return io.EOF
		},
		Logger: slog.New(slog.DiscardHandler),
	}, func(c tether.Change) {
		switch c.Kind {
		case tether.ChannelRestored:
			fmt.Println("channel up: cache on")
		case tether.ChannelLost:
			fmt.Println("channel lost: flush, cache off")
		case tether.SessionChanged:
			fmt.Println("drop session", c.SessionID)
		case tether.SubjectChanged:
			fmt.Println("drop subject", c.Subject)
		}
	})
	fmt.Println("Follow returned", err)
	// Output:
	// channel up: cache on
	// drop session s1
	// drop subject alice
	// channel lost: flush, cache off
	// Follow returned <nil>
}
