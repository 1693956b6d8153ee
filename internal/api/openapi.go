package api

import (
	"embed"
	"net/http"
)

// The OpenAPI 3.1 documents of the two listeners, served at /openapi.json on
// each. Tests keep them true: every route a listener registers is in its
// document and every path in the document is routed, and the responses of the
// handler tests validate against them.
//
//go:embed openapi/public.json openapi/admin.json
var openAPIDocs embed.FS

// OpenAPI returns the OpenAPI document of a listener, "public" or "admin".
func OpenAPI(listener string) ([]byte, error) {
	return openAPIDocs.ReadFile("openapi/" + listener + ".json")
}

func (s *Server) openAPI(listener string) http.Handler {
	doc, err := OpenAPI(listener)
	if err != nil {
		panic(err) // both are embedded: only a build without them gets here
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(doc)
	})
}

// routeMux is a ServeMux that records the patterns registered on it, so that
// tests compare a listener's real routes with its OpenAPI document.
type routeMux struct {
	*http.ServeMux
	patterns *[]string
}

// newMux returns a mux whose patterns are recorded under listener. Each call
// of Public or Admin records its listener's routes afresh.
func (s *Server) newMux(listener string, fresh bool) routeMux {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	if s.routes == nil {
		s.routes = make(map[string]*[]string)
	}
	if fresh || s.routes[listener] == nil {
		s.routes[listener] = new([]string)
	}
	return routeMux{ServeMux: http.NewServeMux(), patterns: s.routes[listener]}
}

func (m routeMux) Handle(pattern string, h http.Handler) {
	*m.patterns = append(*m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// served records patterns that a handler in front of the mux serves (such as
// forward auth), so that the route check sees them too.
func (m routeMux) served(patterns ...string) {
	*m.patterns = append(*m.patterns, patterns...)
}

// router is what registers routes: a ServeMux, or a routeMux that records them.
type router interface {
	Handle(pattern string, h http.Handler)
}
