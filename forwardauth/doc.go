// Package forwardauth answers a reverse proxy's "may this request through?"
// question (nginx auth_request, Caddy forward_auth, Traefik ForwardAuth,
// Envoy HTTP ext_authz) from Tether sessions, so that an app in any language
// gets Tether's promise without a line of code: a revocation or a role change
// applies to the app's very next request (DESIGN §9).
//
// A proxy sends a sub-request that describes the original one in headers
// (X-Forwarded-Method/-Proto/-Host/-Uri, or nginx's X-Original-Method and
// X-Original-URI) or, for Envoy, in the path after the handler's prefix.
// Those headers are believed only from a peer in Config.TrustedProxies: from
// anyone else they could say anything.
//
// The original path is normalised before the rules see it, the way a proxy
// and the app behind it will read it, erring towards the rule that asks for
// more: percent-decoding once, "\" read as "/", ";parameters" cut from each
// segment, empty and "." segments dropped, ".." applied. A path that climbs
// above the root, holds a control character or is still percent-encoded after
// one decode (double encoding) is refused with 400, never matched.
//
// Authorizer is an http.Handler; a Go service can mount it as is, and
// `tether serve` serves it at /v1/authz.
package forwardauth
