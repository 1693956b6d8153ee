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
	// JKT is the RFC 7638 thumbprint of the DPoP key the session is bound
	// to (RFC 9449): its token is accepted only with a proof by that key.
	JKT string `json:"dpop_jkt,omitempty"`
	// DBSC is the RFC 7638 thumbprint of the browser key the session is
	// bound to (W3C Device Bound Session Credentials): its cookie lives only
	// DBSCCookieLifetime past the last refresh signed by that key.
	DBSC string `json:"dbsc_jkt,omitempty"`
	// Origin is where the session came from: the service whose handshake
	// started it, or the identity provider it was signed in through, with
	// the subject and session there. Nil otherwise.
	Origin *Origin `json:"origin,omitempty"`
}

// DeviceBound reports whether the session is bound to a key of its client,
// by DPoP or by DBSC.
func (s *Session) DeviceBound() bool { return s.JKT != "" || s.DBSC != "" }

// MarshalJSON writes a session with no roles or metadata as [] and {}, never
// null, so clients need not tell the two apart. It writes what json.Marshal
// would, byte for byte, without reflection: GET /v1/session answers with it
// on every request.
func (s Session) MarshalJSON() ([]byte, error) {
	if b, ok := s.appendJSON(make([]byte, 0, 384)); ok {
		return b, nil
	}
	type plain Session // without this method
	p := plain(s)
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return json.Marshal(p) // and its error, for a time JSON cannot hold
}

// appendJSON appends the session as json.Marshal writes it; false when a time
// is one that JSON cannot hold (a year past 9999), which json.Marshal refuses.
func (s *Session) appendJSON(b []byte) ([]byte, bool) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, s.ID)
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, s.Subject)
	b = append(b, `,"roles":[`...)
	for i, r := range s.Roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r)
	}
	b = append(b, ']')
	var ok bool
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{`,"created_at":`, s.CreatedAt}, {`,"last_seen_at":`, s.LastSeenAt}, {`,"expires_at":`, s.ExpiresAt}, {`,"idle_expires_at":`, s.IdleExpiresAt}} {
		if b, ok = appendJSONTime(append(b, f.name...), f.t); !ok {
			return b, false
		}
	}
	b = append(b, `,"metadata":{`...)
	if len(s.Metadata) > 0 { // sorting even an empty map's keys allocates
		for i, k := range slices.Sorted(maps.Keys(s.Metadata)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendJSONString(b, k), ':')
			b = appendJSONString(b, s.Metadata[k])
		}
	}
	b = append(b, '}')
	if !s.AuthTime.IsZero() {
		if b, ok = appendJSONTime(append(b, `,"auth_time":`...), s.AuthTime); !ok {
			return b, false
		}
	}
	if s.AuthMethod != "" {
		b = appendJSONString(append(b, `,"auth_method":`...), s.AuthMethod)
	}
	if s.JKT != "" {
		b = appendJSONString(append(b, `,"dpop_jkt":`...), s.JKT)
	}
	if s.DBSC != "" {
		b = appendJSONString(append(b, `,"dbsc_jkt":`...), s.DBSC)
	}
	if o := s.Origin; o != nil {
		b = appendJSONString(append(b, `,"origin":{"iss":`...), o.Issuer)
		b = appendJSONString(append(b, `,"sub":`...), o.Subject)
		if o.SessionID != "" {
			b = appendJSONString(append(b, `,"sid":`...), o.SessionID)
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	b, err := t.AppendText(append(b, '"')) // what time.Time.MarshalJSON quotes
	return append(b, '"'), err == nil
}

// appendJSONString quotes s as json.Marshal does. IDs, subjects and roles are
// plain ASCII, which needs no escaping; anything else goes to encoding/json,
// whose escaping (HTML, U+2028, invalid UTF-8) is then the one used.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
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
	// DBSC is the browser key's thumbprint for a DBSC-bound session; "" for
	// any other. Such a session is never slid by use: LastSeenAt is its last
	// refresh, and its token is accepted only DBSCCookieLifetime past it.
	DBSC   string
	Origin Origin // zero unless a handshake started the session
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
