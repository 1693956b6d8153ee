package api

import (
	"net/http"
	"strings"

	"github.com/tetherhq/tether/forwardauth"
)

// authzPrefix is where forward auth is served (DESIGN §9); what follows it
// is the original path, as Envoy's HTTP ext_authz sends it.
const authzPrefix = "/v1/authz"

// authzFirst serves /v1/authz and everything under it before the mux sees
// the request: the mux would answer a path with ".." or "//" with a redirect
// to its cleaned form, and those are exactly the paths forward auth must judge
// as the app will see them.
func (s *Server) authzFirst(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == authzPrefix || strings.HasPrefix(p, authzPrefix+"/") {
			r.Pattern = authzPrefix + "/{path...}" // for the request metrics
			s.authz.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// defaultAuthorizer is forward auth with no rules: any live session passes,
// and proxies on loopback are trusted.
func defaultAuthorizer(v forwardauth.Validator) (*forwardauth.Authorizer, error) {
	p, err := forwardauth.NewPolicy(forwardauth.Config{})
	if err != nil {
		return nil, err
	}
	return forwardauth.New(forwardauth.Options{Validator: v, Prefix: authzPrefix}, p)
}
