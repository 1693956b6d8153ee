// Package selfcontained mints and verifies the self-contained session tokens
// (JWT with HS256, EdDSA and ES256; PASETO v4.public and v4.local) that Tether's
// opaque sessions are compared against, in the demo and the benchmarks. It does
// what a JWT-session service does on every request, with the well-kept
// libraries: parse, check the signature with a pinned algorithm, check the claims.
package selfcontained

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"aidanwoods.dev/go-paseto"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Claims are a session's claims as a self-contained token carries them.
type Claims struct {
	Issuer    string
	Subject   string
	SessionID string
	Roles     []string
	IssuedAt  time.Time
	Expiry    time.Time
}

// Format is one kind of self-contained token with a fresh key.
type Format struct {
	Name   string
	Mint   func(Claims) (string, error)
	Verify func(raw string, now time.Time) (Claims, error)
}

// Formats returns every format for tokens that issuer mints for itself (so
// iss and aud are both issuer), each with its own freshly generated key.
func Formats(issuer string) []Format {
	hmacKey := make([]byte, 32)
	rand.Read(hmacKey)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pasetoSecret := paseto.NewV4AsymmetricSecretKey()
	pasetoLocal := paseto.NewV4SymmetricKey()
	return []Format{
		jwtFormat(issuer, "JWT HS256", jose.HS256, hmacKey, hmacKey),
		jwtFormat(issuer, "JWT EdDSA", jose.EdDSA, edKey, edKey.Public()),
		jwtFormat(issuer, "JWT ES256", jose.ES256, ecKey, &ecKey.PublicKey),
		{
			Name: "PASETO v4.public",
			Mint: func(c Claims) (string, error) { return pasetoToken(c).V4Sign(pasetoSecret, nil), nil },
			Verify: func(raw string, now time.Time) (Claims, error) {
				return pasetoVerify(issuer, now, func(p *paseto.Parser) (*paseto.Token, error) {
					return p.ParseV4Public(pasetoSecret.Public(), raw, nil)
				})
			},
		},
		{
			Name: "PASETO v4.local",
			Mint: func(c Claims) (string, error) { return pasetoToken(c).V4Encrypt(pasetoLocal, nil), nil },
			Verify: func(raw string, now time.Time) (Claims, error) {
				return pasetoVerify(issuer, now, func(p *paseto.Parser) (*paseto.Token, error) {
					return p.ParseV4Local(pasetoLocal, raw, nil)
				})
			},
		},
	}
}

// Find returns the format with this name; it panics on an unknown name, which
// is a programming error.
func Find(issuer, name string) Format {
	for _, f := range Formats(issuer) {
		if f.Name == name {
			return f
		}
	}
	panic("selfcontained: no format " + name)
}

type jwtClaims struct {
	jwt.Claims
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
}

func jwtFormat(issuer, name string, alg jose.SignatureAlgorithm, signKey, verifyKey any) Format {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signKey}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(fmt.Sprintf("selfcontained: %s signer: %v", name, err)) // fixed, valid inputs
	}
	return Format{
		Name: name,
		Mint: func(c Claims) (string, error) {
			return jwt.Signed(signer).Claims(jwtClaims{
				Claims: jwt.Claims{
					Issuer: c.Issuer, Subject: c.Subject, Audience: jwt.Audience{c.Issuer},
					IssuedAt: jwt.NewNumericDate(c.IssuedAt), Expiry: jwt.NewNumericDate(c.Expiry),
				},
				SessionID: c.SessionID, Roles: c.Roles,
			}).Serialize()
		},
		Verify: func(raw string, now time.Time) (Claims, error) {
			tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{alg})
			if err != nil {
				return Claims{}, err
			}
			var c jwtClaims
			if err := tok.Claims(verifyKey, &c); err != nil {
				return Claims{}, err
			}
			if err := c.Validate(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{issuer}, Time: now}); err != nil {
				return Claims{}, err
			}
			return Claims{Issuer: c.Issuer, Subject: c.Subject, SessionID: c.SessionID, Roles: c.Roles,
				IssuedAt: c.IssuedAt.Time(), Expiry: c.Expiry.Time()}, nil
		},
	}
}

func pasetoToken(c Claims) *paseto.Token {
	t := paseto.NewToken()
	t.SetIssuer(c.Issuer)
	t.SetSubject(c.Subject)
	t.SetAudience(c.Issuer)
	t.SetIssuedAt(c.IssuedAt)
	t.SetNotBefore(c.IssuedAt)
	t.SetExpiration(c.Expiry)
	t.SetString("sid", c.SessionID)
	t.Set("roles", c.Roles)
	return &t
}

func pasetoVerify(issuer string, now time.Time, parse func(*paseto.Parser) (*paseto.Token, error)) (Claims, error) {
	p := paseto.NewParserWithoutExpiryCheck()
	p.AddRule(paseto.ValidAt(now), paseto.IssuedBy(issuer), paseto.ForAudience(issuer))
	t, err := parse(&p)
	if err != nil {
		return Claims{}, err
	}
	var c Claims
	var errs []error
	get := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	c.Issuer, err = t.GetIssuer()
	get(err)
	c.Subject, err = t.GetSubject()
	get(err)
	c.SessionID, err = t.GetString("sid")
	get(err)
	get(t.Get("roles", &c.Roles))
	c.IssuedAt, err = t.GetIssuedAt()
	get(err)
	c.Expiry, err = t.GetExpiration()
	get(err)
	if len(errs) > 0 {
		return Claims{}, errs[0]
	}
	return c, nil
}
