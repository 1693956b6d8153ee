package jwtcore

import "time"

// Times are a token's time claims; a zero time is an absent claim.
type Times struct {
	IssuedAt  time.Time
	ExpiresAt time.Time
	NotBefore time.Time
}

// Check validates the window with leeway for clock skew: exp (when present)
// after iat and not passed, iat and nbf not in the future, and, when
// maxLifetime is positive, exp − iat at most maxLifetime.
func (t Times) Check(now time.Time, leeway, maxLifetime time.Duration) error {
	if !t.ExpiresAt.IsZero() {
		switch {
		case !t.ExpiresAt.After(t.IssuedAt):
			return Reject(ErrLifetime, "exp is not after iat")
		case maxLifetime > 0 && t.ExpiresAt.Sub(t.IssuedAt) > maxLifetime:
			return Reject(ErrLifetime, "exp - iat exceeds the longest lifetime allowed")
		case !now.Before(t.ExpiresAt.Add(leeway)):
			return Reject(ErrExpired, "exp passed")
		}
	}
	switch {
	case t.IssuedAt.After(now.Add(leeway)):
		return Reject(ErrNotYetValid, "iat in the future")
	case !t.NotBefore.IsZero() && t.NotBefore.After(now.Add(leeway)):
		return Reject(ErrNotYetValid, "nbf in the future")
	}
	return nil
}
