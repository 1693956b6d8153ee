package ssf

import (
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/jwtcore"
)

// TrustedTransmitter is a transmitter whose SETs this node accepts
// (ssf.transmitters).
type TrustedTransmitter struct {
	Issuer        string // the iss of its SETs
	JWKSURL       string // its keys: https, or plain http to a loopback address
	Alg           string // pinned: handshake.AlgEdDSA (default) or handshake.AlgES256
	Authorization string // the secret it sends as "Authorization: Bearer <it>"
}

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	Audience     string          // required: this node's identity, the only aud accepted
	Manager      *tether.Manager // required: the replay guard and the sessions to end
	Transmitters []TrustedTransmitter
	// LocalSubjects names a transmitter's subject as this node does (its
	// subjects under each handshake trust entry of that issuer): the
	// sessions to end are among theirs. Required; *handshake.Verifier's
	// method fits.
	LocalSubjects func(issuer, sub string) []string
	HTTPClient    *http.Client // fetches the JWKS; nil: a 5 s timeout
	Logger        *slog.Logger
	Now           func() time.Time
}

// Receiver accepts pushed SETs (RFC 8935) from trusted transmitters.
type Receiver struct {
	cfg  ReceiverConfig
	from []*trusted
}

type trusted struct {
	TrustedTransmitter
	policy *jwtcore.Policy[crypto.PublicKey]
}

// Acceptance window of a SET's iat, and the clock leeway.
const (
	maxSETAge = 10 * time.Minute
	leeway    = 30 * time.Second
)

// NewReceiver checks cfg.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Audience == "" || cfg.Manager == nil || cfg.LocalSubjects == nil {
		return nil, errors.New("ssf: ReceiverConfig needs Audience, Manager and LocalSubjects")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Receiver{cfg: cfg}
	for _, t := range cfg.Transmitters {
		if t.Issuer == "" || len(t.Authorization) < 16 {
			return nil, errors.New("ssf: a transmitter needs an issuer and an authorization secret of at least 16 characters")
		}
		if t.Alg == "" {
			t.Alg = handshake.AlgEdDSA
		}
		if t.Alg != handshake.AlgEdDSA && t.Alg != handshake.AlgES256 {
			return nil, fmt.Errorf("ssf: transmitter %s: alg must be EdDSA or ES256", t.Issuer)
		}
		if err := checkEndpoint(t.JWKSURL); err != nil {
			return nil, fmt.Errorf("ssf: transmitter %s: jwks_url: %w", t.Issuer, err)
		}
		r.from = append(r.from, &trusted{TrustedTransmitter: t, policy: &jwtcore.Policy[crypto.PublicKey]{
			Algs: []jose.SignatureAlgorithm{jose.SignatureAlgorithm(t.Alg)},
			Type: SETType,
			Keys: jwtcore.JWKSKeys[crypto.PublicKey]{Set: jwtcore.NewJWKS(t.JWKSURL, cfg.HTTPClient, cfg.Now), Alg: t.Alg},
		}})
	}
	for _, t := range r.from {
		// A handshake the transmitter minted before a revocation may reach
		// this node after the SET: Exchange checks its tombstones.
		cfg.Manager.GuardOrigin(t.Issuer)
	}
	return r, nil
}

// Error codes of RFC 8935 §2.4.
const (
	ErrCodeInvalidRequest  = "invalid_request"
	ErrCodeInvalidKey      = "invalid_key"
	ErrCodeInvalidIssuer   = "invalid_issuer"
	ErrCodeInvalidAudience = "invalid_audience"
	ErrCodeAuthentication  = "authentication_failed"
)

// RefusedError is a SET refused with an RFC 8935 error code: 400
// {"err","description"}. The description never quotes the SET.
type RefusedError struct {
	Code        string
	Description string
}

func (e *RefusedError) Error() string { return "ssf: SET refused: " + e.Code + ": " + e.Description }

func refuse(code, format string, args ...any) error {
	return &RefusedError{Code: code, Description: fmt.Sprintf(format, args...)}
}

// ErrForbidden: the Authorization header names no trusted transmitter
// (401 when absent, 403 when wrong).
var ErrForbidden = errors.New("ssf: not a trusted transmitter")

// Authorize returns the transmitter whose secret authorization carries.
func (r *Receiver) authorize(authorization string) (*trusted, error) {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || tok == "" {
		return nil, ErrUnauthorized
	}
	var found *trusted
	for _, t := range r.from { // every entry compared, so timing says nothing
		if subtle.ConstantTimeCompare([]byte(tok), []byte(t.Authorization)) == 1 {
			found = t
		}
	}
	if found == nil {
		return nil, ErrForbidden
	}
	return found, nil
}

// Outcome is what a received SET did.
type Outcome struct {
	Issuer  string
	Event   string // its event type
	Revoked int    // sessions ended

	originSID string // the origin session it named, if any, for the record
}

// Receive handles one pushed SET: authorization and contentType are the
// request's headers, raw its body. A refusal of the SET is a
// *RefusedError; ErrUnauthorized and ErrForbidden refuse the caller; any
// other error means the store could not decide (503, and the transmitter
// retries).
//
// The SET must be a JWS with typ secevent+jwt and only alg, typ and kid in
// its header, signed with the transmitter's pinned algorithm by a key of
// its JWKS, its iss the transmitter's, its aud this node, a recent iat, a
// jti and one event. Then session-revoked ends the sessions this node made
// from the transmitter's handshakes: of the origin session when sub_id
// names one, else all of the origin subject, after leaving a tombstone that
// refuses the transmitter's handshakes minted before the revocation and
// exchanged later (tether.Manager.TombstoneOrigin). The jti is consumed
// once, in the store, after that: a SET whose revocation failed is retried
// whole.
// Every accepted SET is recorded as an ssf.received event; what it ends, as
// revocations by the cascade actor.
func (r *Receiver) Receive(ctx context.Context, authorization, contentType string, raw []byte) (*Outcome, error) {
	t, err := r.authorize(authorization)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt != ContentType {
		return nil, refuse(ErrCodeInvalidRequest, "Content-Type must be %s", ContentType)
	}
	now := r.cfg.Now()
	c, err := jwtcore.Verify(ctx, string(raw), t.policy, func(_ jwtcore.Header, tainted []byte) (*received, error) {
		return r.parseSET(tainted, t.Issuer, now)
	})
	var re *RefusedError
	switch {
	case errors.As(err, &re):
		return nil, err
	case errors.Is(err, jwtcore.ErrUnknownKey):
		return nil, refuse(ErrCodeInvalidKey, "kid is not a %s key of the transmitter's JWKS", t.Alg)
	case errors.Is(err, jwtcore.ErrSignature):
		return nil, refuse(ErrCodeAuthentication, "the signature does not verify")
	case errors.Is(err, jwtcore.ErrInvalid):
		return nil, refuse(ErrCodeInvalidRequest, "not a SET of this transmitter (%s)", jwtcore.Reason(err))
	case err != nil:
		return nil, err
	}
	ctx = tether.WithActor(ctx, tether.Actor{Kind: tether.ActorCascade, ID: t.Issuer})
	out, subject, err := r.act(ctx, t, c)
	if err != nil {
		return nil, err
	}
	// The jti is consumed only once the SET's revocations have committed: a
	// store failure before then leaves it unconsumed, so the transmitter's
	// retry revokes again (revocation is idempotent) rather than being
	// refused as a replay. A replay re-runs the revocation, which ends only
	// what the SET named, and is then refused and not recorded.
	iat := time.Unix(c.IssuedAt, 0)
	sum := sha256.Sum256([]byte(t.Issuer + "\x00" + c.ID))
	err = r.cfg.Manager.Consume(ctx, "ssf:"+hex.EncodeToString(sum[:]), iat.Add(maxSETAge+leeway))
	switch {
	case errors.Is(err, tether.ErrReplayed):
		return nil, refuse(ErrCodeInvalidRequest, "jti seen before")
	case err != nil:
		return nil, err
	}
	detail := map[string]any{"issuer": t.Issuer, "event": c.Event, "jti": c.ID}
	if c.Event == EventSessionRevoked {
		detail["revoked"] = out.Revoked
		if out.originSID != "" {
			detail["origin_sid"] = out.originSID
		}
	}
	if err := r.cfg.Manager.Record(ctx, tether.EventSSFReceived, subject, detail); err != nil {
		r.cfg.Logger.Warn("ssf: could not record a received SET", "issuer", t.Issuer, "err", err)
	}
	return out, nil
}

// received is a SET's claims, read strictly, with its one event.
type received struct {
	Issuer, Audience, ID string
	IssuedAt             int64
	SubID                *SubjectID
	Event                string
	Body                 json.RawMessage
}

// parseSET reads and checks the claims of a SET from issuer (still
// unverified: jwtcore.Verify returns them only once the signature holds).
func (r *Receiver) parseSET(tainted []byte, issuer string, now time.Time) (*received, error) {
	o, err := jwtcore.DecodeObject(tainted)
	if err != nil {
		return nil, refuse(ErrCodeInvalidRequest, "claims are not a strict JSON object")
	}
	var c received
	var ok bool
	if c.Issuer, ok = o.String("iss"); !ok || c.Issuer != issuer {
		return nil, refuse(ErrCodeInvalidIssuer, "iss is not the authenticated transmitter")
	}
	if c.Audience, ok = o.Audience(); !ok || c.Audience != r.cfg.Audience {
		return nil, refuse(ErrCodeInvalidAudience, "aud does not name this receiver")
	}
	if c.ID, ok = o.String("jti"); !ok || len(c.ID) > 256 {
		return nil, refuse(ErrCodeInvalidRequest, "jti missing or too long")
	}
	iat, ok := o.NumericDate("iat")
	if !ok || iat.After(now.Add(leeway)) || iat.Before(now.Add(-maxSETAge)) {
		return nil, refuse(ErrCodeInvalidRequest, "iat missing or not within the last %v", maxSETAge)
	}
	c.IssuedAt = iat.Unix()
	var events map[string]json.RawMessage
	if json.Unmarshal(o["events"], &events) != nil || len(events) != 1 {
		return nil, refuse(ErrCodeInvalidRequest, "a SET carries exactly one event")
	}
	for typ, body := range events {
		c.Event, c.Body = typ, body
	}
	if v, present := o["sub_id"]; present && json.Unmarshal(v, &c.SubID) != nil {
		return nil, refuse(ErrCodeInvalidRequest, "sub_id is not a subject identifier")
	}
	return &c, nil
}

// act does what a verified SET says, and returns it with the local subject
// whose sessions it ended (the last, should the transmitter's subject be
// several here), for the record.
func (r *Receiver) act(ctx context.Context, t *trusted, c *received) (*Outcome, string, error) {
	out := &Outcome{Issuer: t.Issuer, Event: c.Event}
	if c.Event != EventSessionRevoked {
		return out, "", nil
	}
	origin, err := originOf(t.Issuer, c.SubID)
	if err != nil {
		return nil, "", err
	}
	ev, err := readRevocation(c.Body, origin)
	if err != nil {
		return nil, "", err
	}
	// When the transmitter revoked, by its clock, and never later than it
	// signed the SET: a handshake it minted from the revoked sessions before
	// then and exchanged after the sweep below is refused by this tombstone.
	at := time.Unix(min(cmp.Or(ev.at, c.IssuedAt), c.IssuedAt), 0)
	if err := r.cfg.Manager.TombstoneOrigin(ctx, origin, ev.kept, at); err != nil {
		return nil, "", err
	}
	out.originSID = origin.SessionID
	subject := ""
	for _, local := range r.cfg.LocalSubjects(t.Issuer, origin.Subject) {
		if tether.CheckSubject(local) != nil {
			continue // a name this node cannot hold has no sessions
		}
		subject = local
		n, err := r.cfg.Manager.RevokeOriginExcept(ctx, local, origin, ev.kept)
		out.Revoked += n
		if err != nil {
			return nil, "", err
		}
	}
	return out, subject, nil
}

// revocation is what a session-revoked event's body says beyond its
// subject.
type revocation struct {
	kept string // the origin session a subject-wide revocation spared (ClaimKeptSession)
	at   int64  // event_timestamp, Unix seconds; 0 when absent
}

// readRevocation reads a session-revoked event's body for origin.
func readRevocation(body json.RawMessage, origin tether.Origin) (revocation, error) {
	var ev map[string]json.RawMessage
	if json.Unmarshal(body, &ev) != nil {
		return revocation{}, refuse(ErrCodeInvalidRequest, "the event is not a JSON object")
	}
	var out revocation
	// Optional, and read only to date the tombstone: one that is not a
	// positive number falls back to the SET's iat rather than losing the
	// revocation. Whole seconds, as a handshake's iat.
	var at float64
	if json.Unmarshal(ev["event_timestamp"], &at) == nil && at > 0 && at < math.MaxInt64 {
		out.at = int64(at)
	}
	raw, present := ev[ClaimKeptSession]
	if !present {
		return out, nil
	}
	var id SubjectID
	switch {
	case origin.SessionID != "":
		return revocation{}, refuse(ErrCodeInvalidRequest, "%s belongs to a revocation of every session of a subject", ClaimKeptSession)
	case json.Unmarshal(raw, &id) != nil || id.Format != "opaque" || id.ID == "" || len(id.ID) > 256:
		return revocation{}, refuse(ErrCodeInvalidRequest, "%s must be an opaque subject identifier", ClaimKeptSession)
	}
	out.kept = id.ID
	return out, nil
}

// originOf reads the origin a session-revoked event names: the complex
// subject of a session and its user, or a user alone (every session). A
// transmitter speaks only for its own subjects.
func originOf(issuer string, id *SubjectID) (tether.Origin, error) {
	user, sid := id, ""
	if id != nil && id.Format == "complex" {
		user = id.User
		if id.Session != nil {
			if id.Session.Format != "opaque" || id.Session.ID == "" {
				return tether.Origin{}, refuse(ErrCodeInvalidRequest, "sub_id.session must be opaque")
			}
			sid = id.Session.ID
		}
	}
	switch {
	case user == nil || user.Format != "iss_sub" || user.Subject == "":
		return tether.Origin{}, refuse(ErrCodeInvalidRequest, "sub_id must name an iss_sub user")
	case user.Issuer != issuer:
		return tether.Origin{}, refuse(ErrCodeInvalidIssuer, "sub_id names another issuer's subject")
	case len(user.Subject) > tether.MaxSubjectLen || len(sid) > 256:
		return tether.Origin{}, refuse(ErrCodeInvalidRequest, "sub_id too long")
	}
	return tether.Origin{Issuer: issuer, Subject: user.Subject, SessionID: sid}, nil
}
