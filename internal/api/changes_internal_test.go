package api

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/tetherhq/tether"
)

// TestChangeFeedBounds: a client that does not read is dropped once its queue
// is full, never buffered for; Last-Event-ID resumes only within the ring.
func TestChangeFeedBounds(t *testing.T) {
	hub := &tether.Hub{}
	f := newChangeFeed(hub, func(tether.Change) {}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	slow, _, _, _, err := f.subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, first, err := f.subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range changesRing + 10 {
		hub.Publish(tether.Change{Kind: tether.SessionChanged, SessionID: fmt.Sprint(i)})
	}
	select {
	case <-slow.gone:
		if slow.reason != "too_slow" {
			t.Errorf("reason: got %q, want too_slow", slow.reason)
		}
	default:
		t.Fatalf("a client that read nothing of %d events is still subscribed (queue %d)", changesRing+10, changesQueue)
	}
	if got := len(slow.ch); got != changesQueue {
		t.Errorf("the slow client's queue holds %d events, want at most %d", got, changesQueue)
	}

	epoch := f.epoch
	tests := []struct {
		name       string
		lastID     string
		wantReplay int
		wantReset  bool
	}{
		{"latest", fmt.Sprintf("%s.%d", epoch, changesRing+10), 0, false},
		{"five back", fmt.Sprintf("%s.%d", epoch, changesRing+5), 5, false},
		{"the oldest kept", fmt.Sprintf("%s.%d", epoch, 10), changesRing, false},
		{"gone from the ring", fmt.Sprintf("%s.%d", epoch, 9), 0, true},
		{"before the first", first, 0, true},
		{"other epoch", "zzzzzzzz.5", 0, true},
		{"from the future", fmt.Sprintf("%s.%d", epoch, changesRing+11), 0, true},
		{"garbage", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, replay, reset, cursor, err := f.subscribe(ctx, tt.lastID)
			if err != nil {
				t.Fatal(err)
			}
			defer f.unsubscribe(sub)
			if len(replay) != tt.wantReplay || reset != tt.wantReset {
				t.Errorf("got %d events, reset %v; want %d, %v", len(replay), reset, tt.wantReplay, tt.wantReset)
			}
			if want := fmt.Sprintf("%s.%d", epoch, changesRing+10); cursor != want {
				t.Errorf("cursor: got %q, want %q", cursor, want)
			}
			for i, ev := range replay {
				if want := uint64(changesRing + 10 - len(replay) + i + 1); ev.seq != want {
					t.Fatalf("replay[%d]: seq %d, want %d", i, ev.seq, want)
				}
			}
		})
	}
}

// FuzzLastEventID: whatever a client sends as Last-Event-ID, the feed
// replays only events it holds, in order, after the one named.
func FuzzLastEventID(f *testing.F) {
	hub := &tether.Hub{}
	feed := newChangeFeed(hub, func(tether.Change) {}, slog.New(slog.DiscardHandler))
	keep, _, _, _, err := feed.subscribe(context.Background(), "")
	if err != nil {
		f.Fatal(err)
	}
	for i := range 40 {
		hub.Publish(tether.Change{Kind: tether.SubjectChanged, Subject: fmt.Sprint(i)})
	}
	for range 40 {
		<-keep.ch
	}
	f.Add(feed.epoch + ".3")
	f.Add(feed.epoch + ".18446744073709551615")
	f.Add(feed.epoch + ".-1")
	f.Add("." + feed.epoch)
	f.Add("")
	f.Fuzz(func(t *testing.T, lastID string) {
		sub, replay, reset, _, err := feed.subscribe(context.Background(), lastID)
		if err != nil {
			t.Fatal(err)
		}
		defer feed.unsubscribe(sub)
		if reset && len(replay) > 0 {
			t.Fatalf("%q: both a reset and %d events", lastID, len(replay))
		}
		for i, ev := range replay {
			if ev.seq == 0 || ev.seq > 40 || (i > 0 && ev.seq != replay[i-1].seq+1) || (i == len(replay)-1 && ev.seq != 40) {
				t.Fatalf("%q: replay %v", lastID, replay)
			}
		}
	})
}

// TestChangeFeedRestoredTwice: a channel that reports itself restored while
// up may have missed changes: its streams end, and a new epoch begins.
func TestChangeFeedRestoredTwice(t *testing.T) {
	hub := &tether.Hub{}
	f := newChangeFeed(hub, func(tether.Change) {}, slog.New(slog.DiscardHandler))
	sub, _, _, first, err := f.subscribe(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	hub.Publish(tether.Change{Kind: tether.ChannelRestored})
	select {
	case <-sub.gone:
		if sub.reason != "channel_lost" {
			t.Errorf("reason: got %q, want channel_lost", sub.reason)
		}
	default:
		t.Fatal("the stream goes on after a second ChannelRestored")
	}
	_, _, reset, _, err := f.subscribe(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if !reset {
		t.Error("an ID from before the second ChannelRestored resumed instead of resetting")
	}
}

// TestChangeFeedInvalidatesFirst: the node's own cache drops a change before
// any client is told of it, and hears only session and subject changes.
func TestChangeFeedInvalidatesFirst(t *testing.T) {
	hub := &tether.Hub{}
	var sub *changeSub
	var got []tether.Change
	var queued []int // events queued for the client when the hook ran
	f := newChangeFeed(hub, func(c tether.Change) {
		got = append(got, c)
		queued = append(queued, len(sub.ch))
	}, slog.New(slog.DiscardHandler))
	var err error
	if sub, _, _, _, err = f.subscribe(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	changes := []tether.Change{
		{Kind: tether.SessionChanged, SessionID: "s1"},
		{Kind: tether.SubjectChanged, Subject: "alice"},
	}
	for _, c := range changes {
		hub.Publish(c)
	}
	if len(got) != len(changes) || got[0] != changes[0] || got[1] != changes[1] {
		t.Fatalf("the hook heard %v, want %v", got, changes)
	}
	for i, n := range queued {
		if n != i {
			t.Errorf("change %d: %d events already queued for the client when the node's cache dropped it, want %d", i, n, i)
		}
	}
	if len(sub.ch) != len(changes) {
		t.Errorf("the client got %d events, want %d", len(sub.ch), len(changes))
	}
}
