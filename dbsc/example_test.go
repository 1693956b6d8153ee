package dbsc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dbsc"
	"github.com/tetherhq/tether/store/memstore"
)

// browserProof is what a DBSC browser sends: a dbsc+jwt signed by its key,
// over the server's challenge, naming the endpoint and, at refresh, the session.
func browserProof(key *ecdsa.PrivateKey, aud, challenge, sub string, now time.Time) string {
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey})
	claims := map[string]any{"aud": aud, "jti": challenge, "iat": now.Unix(), "key": json.RawMessage(pub)}
	if sub != "" {
		claims["sub"] = sub
	}
	payload, _ := json.Marshal(claims)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": dbsc.Type}})
	jws, _ := s.Sign(payload)
	out, _ := jws.CompactSerialize()
	return `"` + out + `"` // Secure-Session-Response is a structured-field string
}

// The server side of DBSC with a Manager: offer, register (bind), and
// refresh, after which the old cookie is dead.
func Example() {
	ctx := context.Background()
	m, _ := tether.NewManager(tether.Config{Store: memstore.New()})
	defer m.Close()
	const register, refresh = "https://a.example/dbsc/register", "https://a.example/dbsc/refresh"

	// Sign-in: a plain session, and a registration offer with a challenge
	// only this token's holder can have been given.
	token, _, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	now := time.Now()
	offer := dbsc.NewChallenge([]byte(token), "", now)
	fmt.Println(dbsc.HeaderRegistration + ": " + dbsc.Registration("/dbsc/register", "CHALLENGE"))

	// Registration: verify the proof, check the challenge, bind.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p, err := dbsc.Verify(ctx, browserProof(key, register, offer, "", now), dbsc.Expect{Audience: register, Now: now})
	if err == nil {
		err = dbsc.CheckChallenge([]byte(token), "", p.Challenge, now)
	}
	if err != nil {
		fmt.Println("registration refused:", err)
		return
	}
	bound, sess, err := m.BindDevice(ctx, token, p.JKT)
	fmt.Println("bound:", err == nil, sess.DBSC == p.JKT)

	// Refresh: a challenge, a proof by the same key, a new token.
	challenge, _ := m.DeviceChallenge(ctx, sess.ID)
	p, _ = dbsc.Verify(ctx, browserProof(key, refresh, challenge, sess.ID, now), dbsc.Expect{Audience: refresh, SessionID: sess.ID, Now: now})
	renewed, _, err := m.RefreshDevice(ctx, sess.ID, p.JKT, p.Challenge)
	fmt.Println("refreshed:", err == nil)

	_, err = m.Validate(ctx, bound)
	fmt.Println("old cookie:", errors.Is(err, tether.ErrInvalidToken))
	_, err = m.Validate(ctx, renewed)
	fmt.Println("new cookie:", err == nil)
	// Output:
	// Secure-Session-Registration: (ES256 RS256);path="/dbsc/register";challenge="CHALLENGE"
	// bound: true true
	// refreshed: true
	// old cookie: true
	// new cookie: true
}
