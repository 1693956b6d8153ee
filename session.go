package tether

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Session is a live session as a caller sees it: the stored record joined with
// the subject's current roles. It never holds the token or its hash.
type Session struct {
	ID            string            `json:"id"`
	Subject       string            `json:"subject"`
	Roles         []string          `json:"roles"`
	CreatedAt     time.Time         `json:"created_at"`
	LastSeenAt    time.Time         `json:"last_seen_at"`
	ExpiresAt     time.Time         `json:"expires_at"`
	IdleExpiresAt time.Time         `json:"idle_expires_at"`
	Metadata      map[string]string `json:"metadata"` // nil when the session has none; JSON shows {}
	AuthTime      time.Time         `json:"auth_time,omitzero"`
	AuthMethod    string            `json:"auth_method,omitempty"`
	// Origin is where the session came from when a handshake started it:
	// the minting service, its subject and its session. Nil otherwise.
	Origin *Origin `json:"origin,omitempty"`
	// JKT is the RFC 7638 thumbprint of the DPoP key the session is bound
	// to (RFC 9449): its token is accepted only with a proof by that key.
	JKT string `json:"dpop_jkt,omitempty"`
}

// MarshalJSON writes a session with no roles or metadata as [] and {}, never
// null, so clients need not tell the two apart.
func (s Session) MarshalJSON() ([]byte, error) {
	type plain Session // without this method
	p := plain(s)
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return json.Marshal(p)
}

// Origin names the session at another service that a session was derived
// from through a handshake (DESIGN §11), so that the other service's
// revocation can reach it: revoking that session (SessionID) or every
// session of that subject (Subject) at Issuer.
type Origin struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`           // the subject as the issuer names it
	SessionID string `json:"sid,omitempty"` // empty when the issuer did not say
}

// IsZero reports whether o names no origin.
func (o Origin) IsZero() bool { return o == Origin{} }

// AuthenticatedAt is when the subject last logged in, as far as this session
// knows: AuthTime when given, else when the session began. A handshake
// minted from the session carries it, so the receiver keeps the login time
// rather than starting a fresh clock (ASVS 7.6.1).
func (s *Session) AuthenticatedAt() time.Time {
	if s.AuthTime.IsZero() {
		return s.CreatedAt
	}
	return s.AuthTime
}

// HasRole reports whether the session's subject holds role.
func (s *Session) HasRole(role string) bool { return slices.Contains(s.Roles, role) }

// Record is what a Store keeps for one session.
type Record struct {
	ID            string
	SecretHash    [32]byte // SHA-256 of the token's secret; the secret itself is never stored
	Subject       string
	CreatedAt     time.Time
	LastSeenAt    time.Time
	ExpiresAt     time.Time     // absolute: sliding never moves it
	IdleExpiresAt time.Time     // LastSeenAt + IdleTimeout, never past ExpiresAt
	IdleTimeout   time.Duration // so any node can slide the idle expiry
	Metadata      map[string]string
	AuthTime      time.Time
	AuthMethod    string
	JKT           string // DPoP key thumbprint; "" for a bearer session
	Origin        Origin // zero unless a handshake started the session
}

// Live reports whether r is usable at now.
func (r *Record) Live(now time.Time) bool {
	return now.Before(r.ExpiresAt) && now.Before(r.IdleExpiresAt)
}

// Clone returns a deep copy, so stores and caches never share mutable maps.
func (r *Record) Clone() *Record {
	c := *r
	c.Metadata = maps.Clone(r.Metadata)
	return &c
}

func (r *Record) session(roles []string) *Session {
	return newEntry(r, time.Time{}).session(roles) // one conversion for cached and stored records
}
