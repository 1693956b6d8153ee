// Package dpop verifies DPoP proofs (RFC 9449): the proof-of-possession a
// client sends in a DPoP header with each request, so that a token bound to
// its key is useless to whoever copies the token without the key.
//
// A Verifier checks one proof against the request it came with (RFC 9449
// §4.3): typ dpop+jwt; alg ES256 or EdDSA only, fixed here and never taken
// from the proof; a public jwk in the protected header whose signature
// verifies (go-jose, not hand-rolled); htm and htu (scheme, host and path,
// normalised per RFC 3986, without query or fragment); iat within the window;
// ath, the hash of the access token, when one is presented; the server's
// nonce when it requires one; and a jti not seen before in the window. It
// returns the key's RFC 7638 thumbprint, which a session is bound to.
//
// # Replay
//
// Every Verifier keeps the jti of each proof it accepted, in memory, until the
// proof's iat leaves the window: a replay on the same node is refused without
// a store round trip. Another node does not share that memory, so on its own
// it would accept a proof replayed there within the window. Two ways close it:
//
//   - RequireNonce: each Verifier issues nonces that only it accepts (an HMAC
//     under a key of its own, rotating every NonceLifetime), and a proof must
//     carry a current one. A proof made for one node names that node's nonce,
//     so replayed at another it is refused there (use_dpop_nonce), and
//     replayed at its own node it is caught by that node's memory. No store
//     round trip; a client that moves to another node pays one extra 401 to
//     learn that node's nonce.
//   - Consume: a shared replay guard (Tether uses its store's Consume) that
//     records every accepted jti until its window ends, so that exactly one
//     node accepts it. It costs one store write per proof.
//
// With neither (or with Config.SingleNode, where there is no other node), a
// proof captured in flight (not merely a copied token: the
// proof is signed for one method and URL) can be replayed once on each other
// node until its iat is Window old.
package dpop

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Algorithms are the signature algorithms a proof may use, in the form of a
// WWW-Authenticate algs parameter.
const Algorithms = "ES256 EdDSA"

var algs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// Errors. Every refusal wraps ErrInvalidProof or ErrUseNonce; anything else
// (from Config.Consume) means the replay guard could not answer, and the
// caller fails closed.
var (
	// ErrInvalidProof: the proof is malformed, not for this request, stale,
	// replayed, or by another key. Answer invalid_dpop_proof (or invalid_token
	// when only the key binding failed: see ErrWrongKey).
	ErrInvalidProof = errors.New("dpop: invalid proof")
	// ErrWrongKey: a valid proof, but by a key other than the one the token is
	// bound to. It wraps ErrInvalidProof.
	ErrWrongKey = fmt.Errorf("%w: not by the key the token is bound to", ErrInvalidProof)
	// ErrReplayed: the proof's jti was already used. It wraps ErrInvalidProof;
	// Config.Consume returns it for a key consumed before.
	ErrReplayed = fmt.Errorf("%w: replayed", ErrInvalidProof)
	// ErrUseNonce: the proof lacks a current nonce of this Verifier. Answer
	// use_dpop_nonce with a fresh one (Verifier.Nonce) in a DPoP-Nonce header.
	ErrUseNonce = errors.New("dpop: a current server nonce is required")
)

// Limits on untrusted input.
const (
	MaxProofLen = 8 << 10 // a P-256 or Ed25519 proof is well under 1 KiB
	maxJTILen   = 256
)

// Config configures a Verifier. Zero fields take the documented defaults.
type Config struct {
	// Window is how far a proof's iat may be from now, either way. Default
	// and maximum 60s (RFC 9449 §11.1 asks for a short window).
	Window time.Duration
	// RequireNonce refuses proofs without a current nonce of this Verifier
	// (RFC 9449 §8), which binds each proof to the node that issued its nonce.
	RequireNonce bool
	// NonceLifetime is how often the nonce rotates; a nonce is accepted for
	// two lifetimes. Default 1m.
	NonceLifetime time.Duration
	// Consume, when set, is a replay guard shared by every node: it records
	// key until the given time and returns an error wrapping ErrReplayed if
	// key was recorded before. It is called for each proof that passed every
	// other check.
	Consume func(ctx context.Context, key string, until time.Time) error
	// SingleNode says that this Verifier is the only one that accepts proofs
	// for its tokens (an embedded store, which one process holds), so that
	// its memory is a complete replay guard and Consume is not needed.
	// Tether's Manager reads it; Verify does not.
	SingleNode bool
	// MaxSeen caps the jtis held in memory. When full, new proofs are refused
	// (an error that is not ErrInvalidProof: the caller answers 503) rather
	// than forgetting one that could then be replayed. Default 1,000,000.
	MaxSeen int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Verifier checks DPoP proofs. It is safe for concurrent use.
type Verifier struct {
	cfg      Config
	nonceKey [32]byte
	nonce    atomic.Pointer[issued] // the current epoch's nonce, made once per epoch

	mu   sync.Mutex
	seen map[[32]byte]int64 // replay key → Unix nanoseconds until which it is held
	// sweptAt is when expired entries were last dropped (Unix nanoseconds).
	sweptAt int64
}

type issued struct {
	epoch int64
	value string
}

// New returns a Verifier with a fresh nonce key of its own.
func New(cfg Config) (*Verifier, error) {
	if cfg.Window == 0 {
		cfg.Window = 60 * time.Second
	}
	if cfg.NonceLifetime == 0 {
		cfg.NonceLifetime = time.Minute
	}
	if cfg.MaxSeen == 0 {
		cfg.MaxSeen = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Window < 0 || cfg.Window > 60*time.Second:
		return nil, fmt.Errorf("dpop: Window %v out of range (0, 60s]", cfg.Window)
	case cfg.NonceLifetime < time.Second:
		return nil, fmt.Errorf("dpop: NonceLifetime %v is under a second", cfg.NonceLifetime)
	case cfg.MaxSeen < 0:
		return nil, errors.New("dpop: MaxSeen must not be negative")
	}
	v := &Verifier{cfg: cfg, seen: make(map[[32]byte]int64)}
	rand.Read(v.nonceKey[:])
	return v, nil
}

// RequiresNonce reports whether proofs must carry this Verifier's nonce.
func (v *Verifier) RequiresNonce() bool { return v.cfg.RequireNonce }

// Request is what a proof must match.
type Request struct {
	Method string // the HTTP method, exactly
	URL    string // the absolute request URL; query and fragment are ignored
	// AccessToken is the token presented with the proof; "" where none is
	// (a token request), and then the proof must not carry ath.
	AccessToken string
	// JKT is the thumbprint the token is bound to; "" where any key will do
	// (a token request, which binds the new token to the proof's key).
	JKT string
}

// Proof is a verified proof.
type Proof struct {
	JKT      string // RFC 7638 SHA-256 thumbprint of the key, base64url
	ID       string // jti
	IssuedAt time.Time
}

// claims are a proof's claims, tainted until verified.
type claims struct {
	JTI   string           `json:"jti"`
	HTM   string           `json:"htm"`
	HTU   string           `json:"htu"`
	IAT   *jwt.NumericDate `json:"iat"`
	ATH   string           `json:"ath"`
	Nonce string           `json:"nonce"`
}

// Verify checks rawProof, the DPoP header's value, against req. Refusals wrap
// ErrInvalidProof or ErrUseNonce and say which check failed, for logs; they
// never contain the token.
func (v *Verifier) Verify(ctx context.Context, rawProof string, req Request) (*Proof, error) {
	p, c, err := parseProof(rawProof)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	if req.JKT != "" && !hmac.Equal([]byte(p.JKT), []byte(req.JKT)) {
		return nil, ErrWrongKey
	}
	if c.HTM != req.Method {
		return nil, fmt.Errorf("%w: htm does not match the request method", ErrInvalidProof)
	}
	want, err := NormalizeURL(req.URL)
	if err != nil {
		// No proof can name such a URL; the request's Host, which the client
		// chose, may be what made it so.
		return nil, fmt.Errorf("%w: the request URL is not an absolute http(s) URL", ErrInvalidProof)
	}
	if got, err := NormalizeURL(c.HTU); err != nil || got != want {
		return nil, fmt.Errorf("%w: htu does not match the request URL", ErrInvalidProof)
	}
	now := v.cfg.Now()
	if d := now.Sub(p.IssuedAt); d > v.cfg.Window || d < -v.cfg.Window {
		return nil, fmt.Errorf("%w: iat outside the %v window", ErrInvalidProof, v.cfg.Window)
	}
	switch {
	case req.AccessToken == "" && c.ATH != "":
		return nil, fmt.Errorf("%w: ath without an access token", ErrInvalidProof)
	case req.AccessToken != "" && !hmac.Equal([]byte(c.ATH), []byte(TokenHash(req.AccessToken))):
		return nil, fmt.Errorf("%w: ath missing or not the hash of the access token", ErrInvalidProof)
	}
	if v.cfg.RequireNonce && !v.validNonce(c.Nonce, now) {
		return nil, ErrUseNonce
	}
	// The jti is recorded last, so that only a proof that passed everything
	// else can take a slot in memory or the store.
	key := replayKey(p.JKT, p.ID)
	until := p.IssuedAt.Add(v.cfg.Window)
	if err := v.remember(key, until, now); err != nil {
		return nil, err
	}
	if v.cfg.Consume != nil {
		// The shared guard keeps the key a window longer, so that a store
		// clock running ahead of another node's (by up to a window) cannot
		// forget it while that node would still take the proof.
		if err := v.cfg.Consume(ctx, "dpop:"+base64.RawURLEncoding.EncodeToString(key[:]), until.Add(v.cfg.Window)); err != nil {
			if errors.Is(err, ErrReplayed) {
				return nil, ErrReplayed
			}
			return nil, fmt.Errorf("dpop: replay guard: %w", err)
		}
	}
	return p, nil
}

// parseProof checks what a proof is on its own, before any request is
// compared: a compact JWS of typ dpop+jwt, signed with ES256 or EdDSA by the
// public key in its own header, with the claims RFC 9449 requires.
func parseProof(raw string) (*Proof, *claims, error) {
	if raw == "" || len(raw) > MaxProofLen {
		return nil, nil, errors.New("missing or oversize")
	}
	// Compact only: a proof is a JWT (RFC 9449 §4.2), and go-jose's
	// ParseSigned would also take the JSON serialisation.
	jws, err := jose.ParseSignedCompact(raw, algs)
	if err != nil {
		return nil, nil, errors.New("not a compact JWS signed with ES256 or EdDSA")
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, errors.New("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, nil, errors.New(`typ is not "dpop+jwt"`)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, nil, errors.New("no valid public jwk in the header")
	}
	payload, err := jws.Verify(jwk) // go-jose also checks the key suits the alg (P-256 for ES256)
	if err != nil {
		return nil, nil, errors.New("signature does not verify with the header's jwk")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, nil, errors.New("claims are not a JSON object of the expected types")
	}
	switch {
	case c.JTI == "" || len(c.JTI) > maxJTILen:
		return nil, nil, errors.New("jti missing or too long")
	case c.HTM == "" || c.HTU == "" || c.IAT == nil:
		return nil, nil, errors.New("htm, htu or iat missing")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, nil, errors.New("no thumbprint for the jwk")
	}
	return &Proof{JKT: base64.RawURLEncoding.EncodeToString(tp), ID: c.JTI, IssuedAt: c.IAT.Time()}, &c, nil
}

// TokenHash is the ath of a proof presented with token: base64url SHA-256.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ValidThumbprint reports whether jkt looks like an RFC 7638 SHA-256
// thumbprint: 32 bytes, base64url without padding.
func ValidThumbprint(jkt string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(jkt)
	return err == nil && len(b) == sha256.Size
}

// replayKey names a proof for the replay guard. The key's thumbprint is part
// of it, so that one client's jti can never block another's.
func replayKey(jkt, jti string) [32]byte {
	return sha256.Sum256([]byte(jkt + "\x00" + jti))
}

// remember records key until the given time, or refuses it as a replay.
func (v *Verifier) remember(key [32]byte, until, now time.Time) error {
	n := now.UnixNano()
	v.mu.Lock()
	defer v.mu.Unlock()
	if exp, ok := v.seen[key]; ok && exp > n {
		return ErrReplayed
	}
	// A sweep walks the whole map under the lock: once per window, and when
	// the map is full at most once a second, so that a flood of proofs
	// against a full map costs a refusal each, not a sweep each.
	full := len(v.seen) >= v.cfg.MaxSeen
	if since := n - v.sweptAt; since >= int64(v.cfg.Window) || (full && since >= int64(time.Second)) {
		for k, exp := range v.seen {
			if exp <= n {
				delete(v.seen, k)
			}
		}
		v.sweptAt = n
	}
	if len(v.seen) >= v.cfg.MaxSeen {
		return errors.New("dpop: replay memory full")
	}
	v.seen[key] = until.UnixNano()
	return nil
}

// Nonce returns the current nonce, for a DPoP-Nonce header.
func (v *Verifier) Nonce() string {
	epoch := v.cfg.Now().UnixNano() / int64(v.cfg.NonceLifetime)
	if cur := v.nonce.Load(); cur != nil && cur.epoch == epoch {
		return cur.value
	}
	n := &issued{epoch: epoch, value: v.makeNonce(epoch)}
	v.nonce.Store(n)
	return n.value
}

// makeNonce is the epoch number and a MAC of it under this Verifier's key:
// stateless to check, and worthless at any other Verifier.
func (v *Verifier) makeNonce(epoch int64) string {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+16), uint64(epoch))
	mac := hmac.New(sha256.New, v.nonceKey[:])
	mac.Write(b)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(b)[:8+16])
}

// validNonce accepts this epoch's nonce and the previous one, so that a
// client that fetched a nonce just before a rotation is not refused.
func (v *Verifier) validNonce(nonce string, now time.Time) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(b) != 8+16 {
		return false
	}
	epoch := int64(binary.BigEndian.Uint64(b))
	cur := now.UnixNano() / int64(v.cfg.NonceLifetime)
	if epoch != cur && epoch != cur-1 {
		return false
	}
	return hmac.Equal([]byte(nonce), []byte(v.makeNonce(epoch)))
}

// Challenge is the WWW-Authenticate value for a refusal with the given error
// code (invalid_token, invalid_dpop_proof, use_dpop_nonce; "" for none).
func Challenge(code string) string {
	if code == "" {
		return `DPoP algs="` + Algorithms + `"`
	}
	return `DPoP error="` + code + `", algs="` + Algorithms + `"`
}

// ErrorCode is the RFC 9449 error code for a refusal by Verify.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrUseNonce):
		return "use_dpop_nonce"
	case errors.Is(err, ErrWrongKey):
		return "invalid_token"
	default:
		return "invalid_dpop_proof"
	}
}

// NormalizeURL reduces an absolute http(s) URL to what htu is compared on
// (RFC 9449 §4.3 with RFC 3986 §6.2.2 and §6.2.3): lower-case scheme and
// host, no default port, no query or fragment, an empty path as "/", and
// the path's percent-encoding normalised (decoded, then encoded the one way
// net/url does).
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("not an absolute http or https URL without userinfo")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	path := (&url.URL{Path: u.Path}).EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}
