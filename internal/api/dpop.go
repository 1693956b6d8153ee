package api

import (
	"errors"
	"net/http"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/ratelimit"
)

// bindingKey checks the DPoP proof that a request for a new session carries
// (RFC 9449 §5: an exchange, the token endpoint, an admin create) and returns
// its key's thumbprint, to bind the session to; "" when there is none. A
// refused proof is a 400 with the RFC's error code, so a client that must
// first learn a nonce can retry without having spent its handshake token.
func (s *Server) bindingKey(w http.ResponseWriter, r *http.Request) (string, error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) == 0 {
		return "", nil
	}
	v := s.m.DPoP()
	if v.RequiresNonce() {
		w.Header().Set("DPoP-Nonce", v.Nonce())
	}
	err := errors.New("more than one DPoP header")
	if len(proofs) == 1 {
		var p *dpop.Proof
		if p, err = v.Verify(r.Context(), proofs[0], dpop.Request{Method: r.Method, URL: tether.RequestURL(r)}); err == nil {
			return p.JKT, nil
		}
		if !errors.Is(err, dpop.ErrInvalidProof) && !errors.Is(err, dpop.ErrUseNonce) {
			return "", err // the replay guard could not answer: 503
		}
	}
	code := dpop.ErrorCode(err)
	if code != "use_dpop_nonce" { // learning the nonce is the protocol, not a failure
		s.exchangeFailures.Take(ratelimit.ClientKey(r))
		s.log.Info("DPoP proof refused", "reason", err.Error(), "remote", tether.ClientIP(r))
	}
	return "", httperr.New(http.StatusBadRequest, code, "the DPoP proof was refused")
}

// dpopOAuthError turns a refusal by bindingKey into the token endpoint's
// RFC 6749 §5.2 shape.
func dpopOAuthError(err error) error {
	var e *httperr.Error
	if errors.As(err, &e) && e.Status == http.StatusBadRequest {
		return oauthError(e.Code, e.Message)
	}
	return err
}

// tokenTypeOf is the token_type introspection answers.
func tokenTypeOf(sess *tether.Session) string {
	if sess.JKT != "" {
		return "DPoP"
	}
	return "tether_session"
}

// cnf is the confirmation introspection answers for a bound session (RFC
// 9449 §6.2: the resource server checks proofs against cnf.jkt).
func cnf(sess *tether.Session) *apitype.Confirmation {
	if sess.JKT == "" {
		return nil
	}
	return &apitype.Confirmation{JKT: sess.JKT}
}
