// Package apitype holds the JSON bodies of Tether's HTTP APIs (DESIGN §6):
// the server (internal/api) writes and reads them and the clients
// (internal/adminclient, the remote client) read and write the same types,
// so the two sides cannot drift apart. It holds data only, no behaviour
// beyond JSON encoding.
package apitype

import (
	"encoding/json"
	"time"

	"github.com/tetherhq/tether"
)

// Error is every error answer of the API: {"error": code, "message": text}.
type Error struct {
	Error   string `json:"error"`
	Message string `json:"message,omitempty"`
}

// CreateSessionRequest is the body of the admin POST /v1/sessions.
type CreateSessionRequest struct {
	Subject string `json:"subject"`
	// Roles, when not nil, replaces the subject's roles; an empty non-nil
	// slice clears them (sent as []), nil leaves them (not sent).
	Roles    []string          `json:"roles,omitzero"`
	TTL      Duration          `json:"ttl,omitzero"`
	IdleTTL  Duration          `json:"idle_ttl,omitzero"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// DPoPJKT binds the session to the DPoP key with this RFC 7638
	// thumbprint (a DPoP proof header on the request does the same).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// TokenResponse answers a create, rotate or exchange: the token, shown only
// this once, and its session.
type TokenResponse struct {
	Token   string          `json:"token"`
	Session *tether.Session `json:"session"`
}

// SessionsResponse lists sessions.
type SessionsResponse struct {
	Sessions []*tether.Session `json:"sessions"`
}

// RevokedResponse says how many sessions a revocation ended. A pointer, so
// that a client can tell a missing count from zero.
type RevokedResponse struct {
	Revoked *int `json:"revoked"`
}

// SetRolesRequest is the body of PUT /v1/subjects/{subject}/roles. Roles is
// required: an empty list clears them, a missing one is an error.
type SetRolesRequest struct {
	Roles *[]string `json:"roles"`
}

// RolesResponse is a subject's roles after a change.
type RolesResponse struct {
	Subject string   `json:"subject"`
	Roles   []string `json:"roles"`
}

// Introspection is the RFC 7662 answer of POST /v1/introspect: just
// {"active": false} for anything that is not a live session.
type Introspection struct {
	Active    bool     `json:"active"`
	TokenType string   `json:"token_type,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	Roles     []string `json:"roles,omitzero"` // [] when active with no roles
	Scope     string   `json:"scope,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	ExpiresAt int64    `json:"exp,omitempty"`
	IdleExp   int64    `json:"idle_exp,omitempty"`
	// Session is Tether's extension member (RFC 7662 §2.2): the whole
	// session, so that package remote answers as Manager.Validate does.
	Session *tether.Session `json:"session,omitempty"`
	// Cnf names the key a DPoP-bound session's proofs must be made with
	// (RFC 9449 §6.2); TokenType is then "DPoP".
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is RFC 7800's cnf claim, with RFC 9449's jkt member.
type Confirmation struct {
	JKT string `json:"jkt"`
}

// Key is one of the node's signing keys, as GET /v1/keys lists it.
type Key struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"created_at"`
	State     string    `json:"state"` // such as "active", "next" or "retired"
	RetiresAt time.Time `json:"retires_at,omitzero"`
}

// KeysResponse lists the node's signing keys.
type KeysResponse struct {
	Keys []Key `json:"keys"`
}

// MintRequest is the body of POST /v1/handshakes.
type MintRequest struct {
	Audience string `json:"audience"`
}

// MintResponse is a minted handshake token.
type MintResponse struct {
	Token     string    `json:"token"`
	Format    string    `json:"format"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ExchangeRequest is the body of POST /v1/handshakes/exchange.
type ExchangeRequest struct {
	Token string `json:"token"`
}

// OAuthToken is the RFC 8693 answer of POST /oauth2/token.
type OAuthToken struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int    `json:"expires_in"`
}

// OAuthError is an RFC 6749 §5.2 error answer.
type OAuthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// Status answers /healthz and /readyz.
type Status struct {
	Status string `json:"status"`
}

// Duration is a JSON duration string such as "90m"; zero is not sent, and
// null or absent means the server's default.
type Duration time.Duration

// MarshalJSON writes d as Go writes a duration, such as "1h30m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a positive duration string. Its errors are
// tether.PublicErrors of kind ErrBadInput, fit to show the sender.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json treats null for other types: absent, so the default
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return tether.BadInput(`durations are strings such as "90m" or "24h"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return tether.BadInput(`invalid duration %q: want a positive duration such as "90m" or "24h"`, s)
	}
	*d = Duration(v)
	return nil
}
