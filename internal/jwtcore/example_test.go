package jwtcore_test

import (
	"context"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// A token kind states its policy once (pinned alg, typ, typed keys) and its
// own claims rule; Verify does the rest.
func ExampleVerify() {
	key := []byte("an example key of 32 bytes or more!")
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key},
		(&jose.SignerOptions{}).WithType("application/secevent+jwt"))
	jws, _ := signer.Sign([]byte(`{"iss":"https://a.example","jti":"e1"}`))
	raw, _ := jws.CompactSerialize()

	policy := &jwtcore.Policy[[]byte]{
		Algs: []jose.SignatureAlgorithm{jose.HS256},
		Type: "secevent+jwt",
		Keys: jwtcore.StaticKeys[[]byte]{key},
	}
	jti, err := jwtcore.Verify(context.Background(), raw, policy, func(_ jwtcore.Header, tainted []byte) (string, error) {
		claims, err := jwtcore.DecodeObject(tainted)
		if err != nil {
			return "", jwtcore.Reject(jwtcore.ErrMalformed, "claims are not a strict JSON object")
		}
		jti, ok := claims.String("jti")
		if !ok {
			return "", jwtcore.Reject(jwtcore.ErrClaims, "jti missing")
		}
		return jti, nil
	})
	fmt.Println(jti, err)

	_, err = jwtcore.Verify(context.Background(), raw+"x", policy, func(jwtcore.Header, []byte) (string, error) { return "", nil })
	fmt.Println(jwtcore.Reason(err))
	// Output:
	// e1 <nil>
	// signature
}
