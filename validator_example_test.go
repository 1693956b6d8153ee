package tether_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tetherhq/tether"
)

// RequireSession takes any Validator: a Manager, as here, or a remote.Client
// that asks a Tether server.
func ExampleRequireSession() {
	m := newExampleManager()
	defer m.Close()
	token, _, err := m.Create(context.Background(), tether.CreateParams{Subject: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	var v tether.Validator = m
	app := tether.RequireSession(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := tether.FromContext(r.Context())
		fmt.Fprintln(w, "hello", s.Subject)
	}))

	for _, bearer := range []string{token, "not-a-token"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+bearer)
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body)
	}
	// Output:
	// 200 hello alice
	// 401 {"error":"unauthenticated"}
}

// A ValidationCache puts the Manager's cache in front of a slower validator,
// here another Manager standing in for a server. It caches only while its
// change channel is up, so the caller feeds it that channel's changes.
func ExampleValidationCache() {
	ctx := context.Background()
	server := newExampleManager()
	defer server.Close()
	token, sess, err := server.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err != nil {
		log.Fatal(err)
	}

	reads := 0
	read := func(ctx context.Context, token string) (*tether.Session, error) {
		reads++
		return server.Validate(ctx, token)
	}
	cache := tether.NewValidationCache(tether.CacheConfig{})
	cache.Apply(tether.Change{Kind: tether.ChannelRestored}) // the channel is up
	for range 3 {
		if _, err := cache.Validate(ctx, token, read); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("reads:", reads)

	// The server revokes, and its channel says so.
	server.Revoke(ctx, sess.ID)
	cache.Apply(tether.Change{Kind: tether.SessionChanged, SessionID: sess.ID})
	_, err = cache.Validate(ctx, token, read)
	fmt.Println("after revoke:", err != nil, "reads:", reads)
	// Output:
	// reads: 1
	// after revoke: true reads: 2
}
