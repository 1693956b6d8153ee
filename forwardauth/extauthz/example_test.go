package extauthz_test

import (
	"log"
	"net"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/forwardauth/extauthz"
	"github.com/tetherhq/tether/store/memstore"
)

// Serve Envoy's gRPC ext_authz from a Go program, on a listener of its own,
// with the same rules as the HTTP forward auth.
func Example() {
	m, err := tether.NewManager(tether.Config{Store: memstore.New()})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	policy, err := forwardauth.NewPolicy(forwardauth.Config{
		Rules: []forwardauth.Rule{{PathPrefix: "/admin", RequireRoles: []string{"admin"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	authz, err := forwardauth.New(forwardauth.Options{Validator: m}, policy)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // Envoy's ext_authz cluster points here
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, extauthz.New(authz))
	go srv.Serve(ln)
	defer srv.Stop()
}
