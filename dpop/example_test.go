package dpop_test

import (
	"context"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/dpop/dpoptest"
)

// A resource server checks the proof that came with a DPoP-bound token
// against the request and the key the token is bound to.
func ExampleVerifier_Verify() {
	v, err := dpop.New(dpop.Config{})
	if err != nil {
		panic(err)
	}
	client, _ := dpoptest.NewKey(jose.EdDSA) // the client's key; the server knows only its thumbprint
	token := "tth_the-access-token"
	proof := client.Proof("GET", "https://api.example.test/v1/orders", token, "")

	req := dpop.Request{Method: "GET", URL: "https://api.example.test/v1/orders?page=2", AccessToken: token, JKT: client.JKT}
	p, err := v.Verify(context.Background(), proof, req)
	fmt.Println(err == nil, p.JKT == client.JKT)

	_, err = v.Verify(context.Background(), proof, req) // the same proof again
	fmt.Println(errors.Is(err, dpop.ErrReplayed), dpop.Challenge(dpop.ErrorCode(err)))
	// Output:
	// true true
	// true DPoP error="invalid_dpop_proof", algs="ES256 EdDSA"
}
