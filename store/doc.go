// Package store opens a tether.Store from a URL (DESIGN §4):
//
//	bolt:///path/tether.db   embedded and durable (the default, in the data dir)
//	memory:                  in-process, not durable
//	redis://host:port/db     Redis (also rediss://, redis+cluster://h1:p1,h2:p2,
//	                         redis+sentinel://h1:p1/db?master=NAME), shared by many nodes
//	postgres://…             PostgreSQL, shared by many nodes
//
// Each backend's package documents its URL's parameters, such as Redis'
// min_replicas, which makes revocations survive a failover.
//
// # Writing a fifth store
//
// A store is a package under store/ (store/memstore is the smallest to read,
// store/pgstore the model for a networked backend). The checklist:
//
//  1. Implement tether.Store (store.go in the root package) and assert it:
//     var _ tether.Store = (*Store)(nil). Follow the contract written on the
//     interface: every failure to reach the backend wraps
//     tether.ErrUnavailable (callers fail closed), a miss is
//     tether.ErrNotFound and nothing else is, expired records are never
//     returned, DeleteSubject and Consume are atomic, and errors never carry
//     a password or a token. Give Open an Options struct whose zero value is
//     the documented defaults.
//  2. If several nodes share the backend, implement tether.Watcher, or their
//     caches serve revoked sessions until MaxStaleness. Announce every
//     Rotate, Delete, DeleteSubject and SetRoles in the same atomic step as
//     the write (changefeed.Payload gives the message), and build Watch on
//     changefeed.Follow: supply only Subscribe (connect, subscribe, call
//     Conn.Up once confirmed, Conn.Send per message, return when the
//     connection breaks) and a channel closed by Close. Follow keeps the
//     rules written on tether.Watcher: ChannelRestored and ChannelLost,
//     backoff, the order of calls, what Watch returns. A store that lives in
//     one process embeds tether.Hub instead.
//  3. Test it with the shared suites, never copies of them: storetest.Run in
//     TestConformance; for a shared backend, storetest.RunNodes (changes
//     reach another node's cache) and storetest.RunFaults, which cuts the
//     backend off under traffic through internal/servicetest's Proxy and
//     checks that the store fails closed, reports the lost channel, and
//     loses and tears no acknowledged write. internal/servicetest starts
//     throw-away servers; a test whose server is missing is skipped, except
//     on CI (CI=true), where it fails. Add a backend-specific test only for
//     what the suites cannot know (URL parsing, the codec, schema migration).
//  4. Register the URL scheme in Open (store/open.go): one case that parses
//     the URL and calls the package's Open with its own field of Options
//     (add the field). Errors name the scheme, never the URL (Redact it if
//     it must appear). For the options to be settable from tether serve's
//     file, environment and flags, add the backend's section to
//     internal/config/store.go (its struct, its rows, its line in
//     Config.StoreOptions), as the config package documentation describes.
//  5. Document, in the package comment: the URL form, the data layout, what
//     the backend guarantees (durability, failover) and what to configure,
//     the staleness bound of its change channel, and its limitations.
package store
