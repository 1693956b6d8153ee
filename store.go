package tether

import (
	"context"
	"time"
)

// Store keeps session records, subjects' roles and the handshake replay guard.
// Every backend passes the same conformance suite, store/storetest.
//
// The contract:
//   - Every method may fail with an error wrapping ErrUnavailable when the
//     backend cannot be reached; callers fail closed.
//   - Get and List return only records that are live by the store's clock
//     (ExpiresAt and IdleExpiresAt both in the future); a missing or expired
//     record is ErrNotFound, never a zero record. Stores drop expired records on
//     their own (native TTLs or a background sweep) without blocking reads.
//   - Writes are atomic and durable per the backend's documented guarantee once
//     they return nil. Delete, DeleteSubject and Rotate are visible to every
//     later Get on any node sharing the store.
//   - Returned records are the caller's to keep; the store holds no reference.
//   - Events (DESIGN §10): each write takes the events that describe it and
//     writes them in the same atomic step as the change, so that no change
//     that returned nil lacks its events and no event is kept for a change
//     that failed or did not happen (Create of a taken ID, Rotate, Delete of a
//     record that was not live). Delete fills in an event's empty Subject
//     from the record it deleted. Events are read back oldest first, in the
//     order their changes committed, with an opaque cursor.
type Store interface {
	// Create stores a new record; ErrExists if its ID is taken.
	Create(ctx context.Context, r *Record, evs ...Event) error
	// Get returns the live record with this ID, or ErrNotFound.
	Get(ctx context.Context, id string) (*Record, error)
	// Touch sets LastSeenAt and IdleExpiresAt of a live record; ErrNotFound if
	// there is none. It never revives a deleted record.
	Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error
	// Rotate replaces the secret hash of a live record if it still equals old;
	// otherwise ErrNotFound. The old token dies the moment Rotate returns.
	Rotate(ctx context.Context, id string, old, new [32]byte, evs ...Event) error
	// Delete removes one record; ErrNotFound if there was no live one.
	Delete(ctx context.Context, id string, evs ...Event) error
	// DeleteSubject removes every record of subject except keepID (may be
	// empty) in one atomic step, and returns how many live ones it removed.
	DeleteSubject(ctx context.Context, subject, keepID string, evs ...Event) (int, error)
	// List returns the subject's live records, oldest first.
	List(ctx context.Context, subject string) ([]*Record, error)
	// Roles returns the subject's roles; none (and no error) for an unknown subject.
	Roles(ctx context.Context, subject string) ([]string, error)
	// SetRoles replaces the subject's roles.
	SetRoles(ctx context.Context, subject string, roles []string, evs ...Event) error
	// Consume records key as used until the given time. It returns ErrReplayed
	// if key was consumed before and has not expired; among concurrent calls for
	// one key on any number of nodes, exactly one returns nil.
	Consume(ctx context.Context, key string, until time.Time) error
	// AppendEvents writes events that accompany no change of state.
	AppendEvents(ctx context.Context, evs ...Event) error
	// Events returns up to q.Limit events matching q after the cursor q.After,
	// oldest first, and the cursor after the last event it examined. A reader
	// that follows the cursors sees every event exactly once, even with writes
	// committing concurrently.
	Events(ctx context.Context, q EventQuery) (EventPage, error)
	// TrimEvents deletes events older than before.
	TrimEvents(ctx context.Context, before time.Time) error
	// GetState returns the value kept under key, or nil if there is none. It
	// holds small durable state of the service itself, such as how far a
	// webhook endpoint has been delivered.
	GetState(ctx context.Context, key string) ([]byte, error)
	// PutState replaces the value kept under key.
	PutState(ctx context.Context, key string, value []byte) error
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// ChangeKind says what a Change is about.
type ChangeKind int

const (
	// SessionChanged: one session was revoked, rotated or altered; drop it.
	SessionChanged ChangeKind = iota + 1
	// SubjectChanged: a subject's roles changed or its sessions were revoked;
	// drop its roles and every session of it.
	SubjectChanged
	// ChannelLost: changes may have been missed; drop everything cached and do
	// not cache again until ChannelRestored.
	ChannelLost
	// ChannelRestored: the change channel is up; every change committed from
	// now until the next ChannelLost will be delivered.
	ChannelRestored
)

// Change tells caches what to drop.
type Change struct {
	Kind      ChangeKind
	SessionID string // for SessionChanged
	Subject   string // for SubjectChanged
}

// Watcher is implemented by stores that announce changes to every node that
// shares them, so that caches everywhere drop what was revoked or changed.
// Networked stores build Watch on store/changefeed, which keeps these rules.
//
// What Watch delivers, in order, to fn:
//   - Nothing until the channel is up; then ChannelRestored. Before it, and
//     after a ChannelLost until the next ChannelRestored, a cache must serve
//     nothing it did not just read from the store.
//   - While the channel is up, a SessionChanged or SubjectChanged for every
//     Rotate, Delete, DeleteSubject and SetRoles that commits on any node,
//     this one included, after the write has committed. A change may come
//     twice, or name something this node never cached; dropping is idempotent.
//     Changes are not ordered among themselves: a cache must act on each alone.
//   - ChannelLost as soon as the channel breaks (a closed connection, a failed
//     heartbeat), before any reconnect, since changes may be missed from that
//     instant. ChannelLost and ChannelRestored strictly alternate, starting
//     with ChannelRestored; a store may send the pair at any time to make
//     every cache flush (an announcement it cannot read, for instance).
//
// fn is never called concurrently, nor after Watch returns. It must be
// quick: it runs on the watch goroutine.
//
// Watch blocks. It retries a broken channel for ever (with backoff), never
// returning for a transient failure. It returns nil once ctx has ended; if
// the store is closed first, a store whose Watch holds connections ends it
// with an error wrapping ErrUnavailable (so does Watch on a closed store).
// In-process stores (Hub) hold nothing and return only when ctx ends.
type Watcher interface {
	Watch(ctx context.Context, fn func(Change)) error
}
