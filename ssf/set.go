// Package ssf carries revocations across services with the OpenID Shared
// Signals Framework 1.0 and CAEP 1.0 (DESIGN §11).
//
// A Transmitter turns the node's event log (DESIGN §10) into Security Event
// Tokens (RFC 8417) signed with the node's own key from its JWKS, and
// delivers them to receivers by push (RFC 8935) through the same delivery
// loop as webhooks, or lets them poll (RFC 8936). A Receiver accepts the
// SETs of trusted transmitters at POST /ssf/events, verifies them against
// each transmitter's JWKS, consumes each jti once and ends the sessions this
// node made from that transmitter's handshakes: by the origin session
// (session-revoked with a session) or all of the origin subject.
package ssf

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
)

// Event types and media types of the specifications.
const (
	EventSessionRevoked    = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventTokenClaimsChange = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change"
	EventVerification      = "https://schemas.openid.net/secevent/ssf/event-type/verification"
	EventStreamUpdated     = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"

	// SETType is the typ header of every SET (RFC 8417 §2.3).
	SETType = "secevent+jwt"
	// ContentType is the media type of a pushed SET (RFC 8935 §2).
	ContentType = "application/secevent+jwt"

	DeliveryPush = "urn:ietf:rfc:8935"
	DeliveryPoll = "urn:ietf:rfc:8936"

	// ClaimKeptSession is Tether's member of a subject-wide session-revoked
	// event that names the one session of the subject that was not revoked
	// (revoke everywhere but here), as an opaque subject identifier. CAEP
	// defines no such claim: a receiver that does not know this one revokes
	// every session of the subject, which errs on the safe side; Tether's
	// receiver spares the sessions derived from the kept one.
	ClaimKeptSession = "urn:tether:caep:kept_session"
)

// SubjectID is a subject identifier of RFC 9493, in the formats Tether
// sends and reads: "opaque" (ID), "iss_sub" (Issuer, Subject) and
// "complex" (Session and User, each one of the others).
type SubjectID struct {
	Format  string     `json:"format"`
	ID      string     `json:"id,omitempty"`
	Issuer  string     `json:"iss,omitempty"`
	Subject string     `json:"sub,omitempty"`
	Session *SubjectID `json:"session,omitempty"`
	User    *SubjectID `json:"user,omitempty"`
}

// Claims are a SET's claims as Tether writes them: one event per SET, as
// SSF 1.0 requires.
type Claims struct {
	Issuer   string                    `json:"iss"`
	Audience string                    `json:"aud"`
	IssuedAt int64                     `json:"iat"`
	ID       string                    `json:"jti"`
	SubID    *SubjectID                `json:"sub_id"`
	Events   map[string]map[string]any `json:"events"`
}

// fromEvent translates one event of the log into the claims of its SET for
// audience, or reports that the event is not one receivers hear of. The
// jti is the event's ID, stable across retries, so that a receiver consumes
// a repeated delivery once.
func fromEvent(issuer, audience string, e *tether.Event, now time.Time) (*Claims, bool) {
	if e.Subject == "" || tether.IsReservedSubject(e.Subject) {
		return nil, false
	}
	user := &SubjectID{Format: "iss_sub", Issuer: issuer, Subject: e.Subject}
	body := map[string]any{"event_timestamp": e.Time.Unix()}
	c := &Claims{Issuer: issuer, Audience: audience, IssuedAt: now.Unix(), ID: e.ID, SubID: user}
	switch e.Type {
	case tether.EventSessionRevoked:
		if e.SessionID == "" {
			return nil, false
		}
		c.SubID = &SubjectID{Format: "complex", Session: &SubjectID{Format: "opaque", ID: e.SessionID}, User: user}
		body["initiating_entity"] = initiatingEntity(e.Actor.Kind)
		c.Events = map[string]map[string]any{EventSessionRevoked: body}
	case tether.EventSubjectRevoked:
		body["initiating_entity"] = initiatingEntity(e.Actor.Kind)
		// One SET for the subject, not one per session: the store revokes
		// them in one atomic step that names none of them, and a list read
		// beforehand would miss a session created meanwhile, whose derived
		// sessions would then outlive it.
		if kept, _ := e.Detail["kept_session_id"].(string); kept != "" {
			body[ClaimKeptSession] = &SubjectID{Format: "opaque", ID: kept}
		}
		c.Events = map[string]map[string]any{EventSessionRevoked: body}
	case tether.EventRolesChanged:
		roles, _ := e.Detail["roles"]
		if roles == nil {
			roles = []string{}
		}
		body["claims"] = map[string]any{"roles": roles}
		c.Events = map[string]map[string]any{EventTokenClaimsChange: body}
	default:
		return nil, false
	}
	return c, true
}

// initiatingEntity words an actor kind as CAEP does (CAEP 1.0 §2).
func initiatingEntity(kind string) string {
	switch kind {
	case tether.ActorAdmin:
		return "admin"
	case tether.ActorSelf, tether.ActorOIDC:
		return "user"
	case tether.ActorCascade:
		return "policy"
	default:
		return "system"
	}
}

// signer signs SETs with the node's newest active key of one algorithm.
type signer struct {
	ring *handshake.KeyRing
	alg  string
}

func (s signer) sign(c *Claims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	kid, key, err := s.ring.Signer(s.alg)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType(SETType).WithHeader("kid", kid)
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(s.alg), Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("ssf: signer: %w", err)
	}
	jws, err := js.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("ssf: sign: %w", err)
	}
	return jws.CompactSerialize()
}
