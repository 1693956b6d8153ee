package adminclient_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tetherhq/tether/internal/adminclient"
)

func Example() {
	// A stand-in for tether serve's admin API, so the example runs anywhere.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer example-admin-key-000" {
			http.Error(w, `{"error":"unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"revoked":2}`) // DELETE /v1/subjects/alice/sessions
	}))
	defer srv.Close()

	c, err := adminclient.New(srv.URL, "example-admin-key-000", nil)
	if err != nil {
		log.Fatal(err)
	}
	n, err := c.RevokeSubject(context.Background(), "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("signed alice out of %d sessions\n", n)
	// Output: signed alice out of 2 sessions
}
