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
// The original path is normalised before the rules see it, as nginx does for
// $uri and as Go's net/url and path.Clean read it: percent-decoding once,
// empty and "." segments dropped, ".." applied, and ";parameters" cut from
// each segment (as Tomcat and other servlet containers do). Where apps
// disagree on how to read a path, it is refused with 400 rather than guessed:
// an encoded slash or backslash (%2F, %5C), a backslash, an encoded or
// parameterised dot-segment (%2e%2e, "..;"), a path still percent-encoded
// after one decode (double encoding), a control character, or a ".." that
// climbs above the root. Matching is case-sensitive, by whole segments.
//
// Authorizer is an http.Handler; a Go service can mount it as is, and
// `tether serve` serves it at /v1/authz.
package forwardauth
