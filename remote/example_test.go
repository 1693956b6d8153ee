package remote_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/remote"
	"github.com/tetherhq/tether/store/memstore"
)

// A service that is not the Tether server validates the tokens its clients
// bring, with the same middleware it would use in-process.
func Example() {
	adminURL, adminKey, token, stop := startTetherServer()
	defer stop()

	c, err := remote.New(remote.Config{AdminURL: adminURL, AdminKey: adminKey})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	app := tether.RequireSession(c)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := tether.FromContext(r.Context())
		fmt.Fprintln(w, "hello", s.Subject, s.Roles)
	}))
	for _, bearer := range []string{token, "tts_forged"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+bearer)
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Body)
	}
	// Output:
	// 200 hello alice [editor]
	// 401 {"error":"unauthenticated"}
}

// startTetherServer stands in for `tether serve`: an admin API on loopback
// and a session for alice.
func startTetherServer() (adminURL, adminKey, token string, stop func()) {
	st := memstore.New()
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		log.Fatal(err)
	}
	adminKey = "example-admin-key-0123456789"
	auth, err := adminauth.New(adminKey)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := api.New(api.Config{Manager: m, Admin: auth, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	admin := httptest.NewServer(srv.Admin())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	token, _, err = m.Create(ctx, tether.CreateParams{Subject: "alice", Roles: []string{"editor"}})
	if err != nil {
		log.Fatal(err)
	}
	return admin.URL, adminKey, token, func() {
		admin.CloseClientConnections()
		admin.Close()
		m.Close()
		st.Close()
	}
}
