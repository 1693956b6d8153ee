package api

import (
	"errors"
	"mime"
	"net/http"
	"net/url"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/ratelimit"
)

// revokeToken is RFC 7009 token revocation. Whoever holds a token may end its
// session; the answer is 200 whether or not the token was live, so the route
// tells nobody which tokens exist. token_type_hint is ignored, as RFC 7009
// §2.1 allows: Tether has one kind of token. Refusals are RFC 6749 §5.2 error
// responses; a store failure is 503, since a 200 would claim a revocation that
// may not have happened.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	return s.oauthErrors(w, s.revokeGrant(w, r))
}

func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request) error {
	// A browser must not be made to end someone's session from another site.
	if err := tether.CheckCrossOrigin(r); err != nil {
		return err
	}
	client := ratelimit.ClientKey(r)
	if wait := s.revokeMisses.Blocked(client); wait > 0 {
		return httperr.RateLimited("too many revocations of unknown tokens", wait)
	}
	form, err := readForm(w, r)
	var he *httperr.Error
	if errors.As(err, &he) && he.Status == http.StatusBadRequest {
		return oauthError("invalid_request", he.Message)
	}
	if err != nil {
		return err
	}
	token := form.Get("token")
	if token == "" {
		return oauthError("invalid_request", "token is required")
	}
	sess, err := s.m.Validate(r.Context(), token)
	switch {
	case errors.Is(err, tether.ErrInvalidToken):
		// Charged like a refused exchange: guessing at tokens costs the guesser.
		s.revokeMisses.Take(client)
	case err != nil:
		return err
	default:
		if err := s.m.Revoke(r.Context(), sess.ID); err != nil && !errors.Is(err, tether.ErrNotFound) {
			return err
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// oauthErrors answers an oauthErr as RFC 6749 §5.2 does, {"error",
// "error_description"} with 400; other errors go on to writeError.
func (s *Server) oauthErrors(w http.ResponseWriter, err error) error {
	var oe *oauthErr
	if !errors.As(err, &oe) {
		return err
	}
	w.Header().Set("Pragma", "no-cache")
	return writeJSON(w, http.StatusBadRequest, apitype.OAuthError{Error: oe.code, ErrorDescription: oe.description})
}

// readForm reads a bounded application/x-www-form-urlencoded body, as the
// OAuth endpoints take. Its errors are 400s that say what is wrong.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	// Media types are case-insensitive (RFC 9110 §8.3.1).
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return nil, badRequest("request body larger than %d bytes", MaxBodyBytes)
		}
		return nil, badRequest("malformed form body")
	}
	return r.PostForm, nil
}
