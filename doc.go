// Package tether keeps opaque, server-authoritative sessions.
//
// A session token is a random string whose data lives in a Store. Every request
// looks the token up, so revoking a session or changing a subject's roles takes
// effect on the very next request: unlike a session JWT, a stolen token dies the
// moment it is revoked, and roles are never baked into it.
//
// Threat model, briefly:
//   - Token theft: tokens are revocable one by one or per subject, rotate on
//     privilege change (session fixation), and expire on idle and absolute timeouts.
//   - Store compromise: the store keeps only the SHA-256 of each token's secret,
//     compared in constant time, so a leaked database yields no usable token.
//   - Garbage and guessing: a token carries a prefix and a checksum, so malformed
//     input is refused before any store read; the secret has 160 bits of entropy.
//   - Store failure: validation fails closed (ErrUnavailable), never open.
//
// Validation is served at in-memory speed by a local cache that is never trusted
// past Config.MaxStaleness; what this node revokes or changes is dropped from its
// cache before the call returns, and stores that implement Watcher tell every other
// node at once.
//
// Quick start:
//
//	m, err := tether.NewManager(tether.Config{Store: memstore.New()})
//	token, sess, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
//	sess, err = m.Validate(ctx, token) // on every request
//	err = m.Revoke(ctx, sess.ID)       // the next Validate fails
//
// Receiving a handshake from another service needs no Tether server either:
// Manager.Exchange verifies the token with a HandshakeVerifier (a
// handshake.Verifier), consumes it once in the Manager's store and starts a
// local session, ending the one the browser brought (ExchangeParams.Replaces).
//
// Subjects beginning with ReservedSubjectPrefix ("tether:") belong to
// Tether's own sessions, such as the admin console's: no caller can create,
// list or use them through the ordinary methods.
package tether
