package tether_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop/dpoptest"
)

// A session bound to the client's DPoP key works only with a fresh proof by
// that key; the same token copied elsewhere, or sent as Bearer, is refused
// with a DPoP challenge.
func ExampleManager_Middleware_dPoP() {
	m := newExampleManager()
	defer m.Close()
	client, _ := dpoptest.NewKey(jose.ES256) // in a real client, a key that never leaves it
	token, _, err := m.Create(context.Background(), tether.CreateParams{Subject: "alice", JKT: client.JKT})
	if err != nil {
		log.Fatal(err)
	}
	api := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := tether.FromContext(r.Context())
		fmt.Fprint(w, s.Subject)
	}))
	call := func(scheme, proof string) {
		r := httptest.NewRequest("GET", "https://api.example.test/v1/orders", nil)
		r.Header.Set("Authorization", scheme+" "+token)
		if proof != "" {
			r.Header.Set("DPoP", proof)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		if challenge := w.Header().Get("WWW-Authenticate"); challenge != "" {
			fmt.Println(w.Code, challenge)
		} else {
			fmt.Println(w.Code, w.Body)
		}
	}
	call("DPoP", client.Proof("GET", "https://api.example.test/v1/orders", token, ""))
	call("Bearer", "")
	thief, _ := dpoptest.NewKey(jose.ES256)
	call("DPoP", thief.Proof("GET", "https://api.example.test/v1/orders", token, ""))
	// Output:
	// 200 alice
	// 401 DPoP error="invalid_token", algs="ES256 EdDSA"
	// 401 DPoP error="invalid_token", algs="ES256 EdDSA"
}
