package forwardauth_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/store/memstore"
)

// A proxy asks about two requests of the same session: the rule for /admin
// wants a role the subject does not hold.
func ExampleAuthorizer() {
	m, _ := tether.NewManager(tether.Config{Store: memstore.New()})
	defer m.Close()
	policy, err := forwardauth.NewPolicy(forwardauth.Config{
		Rules: []forwardauth.Rule{{PathPrefix: "/admin", RequireRoles: []string{"admin"}}},
	})
	if err != nil {
		panic(err)
	}
	authz, err := forwardauth.New(forwardauth.Options{Validator: m}, policy)
	if err != nil {
		panic(err)
	}
	token, _, _ := m.Create(context.Background(), tether.CreateParams{Subject: "alice", Roles: []string{"staff"}})

	for _, uri := range []string{"/reports?q=1", "/admin/users"} {
		r := httptest.NewRequest("GET", "/v1/authz", nil)
		r.RemoteAddr = "127.0.0.1:50000" // a trusted proxy (loopback, by default)
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "app.example.test")
		r.Header.Set("X-Forwarded-Uri", uri)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		authz.ServeHTTP(w, r)
		fmt.Println(uri, w.Code, w.Header().Get(forwardauth.HeaderSubject))
	}
	// Output:
	// /reports?q=1 200 alice
	// /admin/users 403
}
