package handshake

import (
	"net/http"
	"time"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// Options are the dependencies of NewMinter, NewVerifier and LoadKeyRing:
// one struct and one clock for all three. The zero value means every
// default.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HTTPClient fetches trusted issuers' jwks_url key sets (Verifier;
	// default: a client with a 5 s timeout). It is copied, never changed,
	// and redirects are refused whatever its CheckRedirect says.
	HTTPClient *http.Client
	// KeyOverlap is how long a rotated-out ring key keeps verifying
	// (KeyRing; default DefaultOverlap).
	KeyOverlap time.Duration
}

func (o Options) now() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}

func (o Options) httpClient() *http.Client {
	if o.HTTPClient == nil {
		return &http.Client{Timeout: jwtcore.JWKSTimeout}
	}
	return o.HTTPClient
}
