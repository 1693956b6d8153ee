package tether

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tetherhq/tether/dpop"
)

// DPoPError refuses the use of a DPoP-bound session (RFC 9449): the token
// came as Bearer or in the cookie, or without a valid proof by its key. It
// matches ErrInvalidToken, so callers answer 401; SetChallenge writes the
// DPoP challenge it calls for.
type DPoPError struct {
	Code  string // invalid_token, invalid_dpop_proof or use_dpop_nonce
	Nonce string // a fresh nonce for the client to retry with; "" when nonces are not required
	err   error
}

func (e *DPoPError) Error() string   { return "tether: DPoP: " + e.err.Error() }
func (e *DPoPError) Unwrap() []error { return []error{ErrInvalidToken, e.err} }

// SetChallenge sets the WWW-Authenticate header of a 401 answer to err: the
// DPoP challenge (with error, algs and any DPoP-Nonce) for a DPoPError, else
// Bearer.
func SetChallenge(h http.Header, err error) {
	var de *DPoPError
	if !errors.As(err, &de) {
		h.Set("WWW-Authenticate", `Bearer realm="tether"`)
		return
	}
	h.Set("WWW-Authenticate", dpop.Challenge(de.Code))
	if de.Nonce != "" {
		h.Set("DPoP-Nonce", de.Nonce)
	}
}

// SetDPoPNonce gives a client of a bound session the current nonce with each
// answer when nonces are required, so that it never has to be refused to
// learn a new one (RFC 9449 §8.2).
func (m *Manager) SetDPoPNonce(h http.Header, s *Session) {
	if s.JKT != "" && m.dpop.RequiresNonce() {
		h.Set("DPoP-Nonce", m.dpop.Nonce())
	}
}

// DPoP returns the Manager's proof verifier, for routes that bind a new
// session to the key of the proof they were sent with.
func (m *Manager) DPoP() *dpop.Verifier { return m.dpop }

// RequestURL is the absolute URL a DPoP proof for r names as htu: https
// unless r is plain HTTP to a loopback address (see IsSecureRequest), r.Host,
// and the path.
func RequestURL(r *http.Request) string {
	scheme := "http"
	if IsSecureRequest(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// AuthenticateOriginal is Authenticate for a request that a reverse proxy
// forwarded for checking (forward auth): the token and any DPoP proof are
// r's, but a proof must name the original request's method and absolute URL.
func (m *Manager) AuthenticateOriginal(r *http.Request, method, url string) (*Session, string, error) {
	return m.authenticate(r, method, func() string { return url })
}

// credentials is Cookies.Token that also takes "Authorization: DPoP".
func credentials(r *http.Request, c Cookies) (token string, dpopScheme, fromCookie bool) {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "DPoP") {
		return strings.TrimSpace(tok), true, false
	}
	token, fromCookie = c.Token(r)
	return token, false, fromCookie
}

// checkBinding lets a bound session through only as "Authorization: DPoP"
// with one valid proof by its key for this request; and an unbound one only
// as Bearer or cookie.
func (m *Manager) checkBinding(r *http.Request, s *Session, token string, dpopScheme bool, method string, url func() string) error {
	switch {
	case s.JKT == "" && dpopScheme:
		return m.dpopError("invalid_token", errors.New("a bearer session presented as DPoP"))
	case s.JKT == "":
		return nil
	case !dpopScheme:
		return m.dpopError("invalid_token", errors.New("a DPoP-bound session presented without DPoP"))
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return m.dpopError("invalid_dpop_proof", errors.New("want exactly one DPoP header"))
	}
	_, err := m.dpop.Verify(r.Context(), proofs[0], dpop.Request{Method: method, URL: url(), AccessToken: token, JKT: s.JKT})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dpop.ErrInvalidProof), errors.Is(err, dpop.ErrUseNonce):
		return m.dpopError(dpop.ErrorCode(err), err)
	case errors.Is(err, ErrUnavailable):
		return fmt.Errorf("tether: DPoP replay guard: %w", err)
	default:
		// The replay guard could not say whether the proof is fresh: fail closed.
		return fmt.Errorf("%w: DPoP replay guard: %v", ErrUnavailable, err)
	}
}

// inScheme answers a client that sent "Authorization: DPoP" in that scheme:
// a dead or unknown token is then DPoP error="invalid_token", not Bearer.
func (m *Manager) inScheme(dpopScheme bool, err error) error {
	if dpopScheme && errors.Is(err, ErrInvalidToken) {
		return m.dpopError("invalid_token", err)
	}
	return err
}

func (m *Manager) dpopError(code string, err error) *DPoPError {
	e := &DPoPError{Code: code, err: err}
	if m.dpop.RequiresNonce() {
		e.Nonce = m.dpop.Nonce()
	}
	return e
}

// newDPoP makes the Manager's verifier. Unless proofs are bound to nodes by
// nonces, or there is no other node, each proof's jti is also consumed in the
// store, so that a proof replayed on another node is refused there too.
func newDPoP(cfg Config) (*dpop.Verifier, error) {
	d := cfg.DPoP
	if d.Now == nil {
		d.Now = cfg.Now
	}
	if d.Consume == nil && !d.RequireNonce && !d.SingleNode {
		st := cfg.Store
		d.Consume = func(ctx context.Context, key string, until time.Time) error {
			err := st.Consume(ctx, key, until)
			if errors.Is(err, ErrReplayed) {
				return dpop.ErrReplayed
			}
			return err
		}
	}
	v, err := dpop.New(d)
	if err != nil {
		return nil, fmt.Errorf("tether: Config.DPoP: %w", err)
	}
	return v, nil
}
