// Package extauthz serves Envoy's gRPC external authorization API
// (envoy.service.auth.v3.Authorization, ext_authz) with a
// forwardauth.Authorizer's decisions, so that Envoy gets the same answers as
// the HTTP proxies: the same rules, path normalisation, trusted proxies
// (here: the gRPC peer), login redirect and fail-closed 503.
package extauthz

import (
	"context"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/peer"

	"github.com/tetherhq/tether/forwardauth"
)

// Server implements authv3.AuthorizationServer. Register it on a
// grpc.Server of its own listener.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	a *forwardauth.Authorizer
}

// New returns a Server that asks a.
func New(a *forwardauth.Authorizer) *Server { return &Server{a: a} }

var _ authv3.AuthorizationServer = (*Server)(nil)

// describing are the headers through which the Authorizer reads the
// original request; a client's own copies are dropped, and the values come
// from Envoy's attributes instead.
var describing = []string{
	"X-Forwarded-Method", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Uri",
	"X-Forwarded-For", "X-Original-Method", "X-Original-Uri",
}

// Check answers one ext_authz request. Errors are never returned: every
// outcome, including a store failure, is a CheckResponse that denies with
// the status an HTTP proxy would get.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/authz", nil)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		r.RemoteAddr = p.Addr.String() // the trusted-proxy check applies to Envoy itself
	}
	r.Host = h.GetHost()
	for k, v := range h.GetHeaders() {
		if !strings.HasPrefix(k, ":") {
			r.Header.Set(k, v)
		}
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if v := hv.GetValue(); !strings.HasPrefix(hv.GetKey(), ":") {
			if v == "" {
				v = string(hv.GetRawValue())
			}
			r.Header.Add(hv.GetKey(), v)
		}
	}
	for _, name := range describing {
		r.Header.Del(name)
	}
	r.Header.Set("X-Forwarded-Method", h.GetMethod())
	r.Header.Set("X-Forwarded-Proto", h.GetScheme())
	r.Header.Set("X-Forwarded-Host", h.GetHost())
	r.Header.Set("X-Forwarded-Uri", h.GetPath())
	if sa := attrs.GetSource().GetAddress().GetSocketAddress(); sa != nil {
		r.Header.Set("X-Forwarded-For", sa.GetAddress())
	}

	w := &answer{header: http.Header{}}
	s.a.ServeHTTP(w, r)
	return w.response(), nil
}

// answer records the Authorizer's HTTP answer.
type answer struct {
	header http.Header
	status int
	body   strings.Builder
}

func (w *answer) Header() http.Header { return w.header }
func (w *answer) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *answer) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *answer) headers(names ...string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, name := range names {
		if vs, ok := w.header[name]; ok && len(vs) > 0 {
			out = append(out, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: name, Value: vs[0]},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
	}
	return out
}

func (w *answer) response() *authv3.CheckResponse {
	if w.status == http.StatusOK {
		// All four, overwriting whatever the client sent under those names.
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: w.headers(forwardauth.HeaderSubject, forwardauth.HeaderRoles, forwardauth.HeaderSessionID, forwardauth.HeaderAuthTime),
			}},
		}
	}
	rpc := code.Code_PERMISSION_DENIED
	switch w.status {
	case http.StatusUnauthorized, http.StatusFound:
		rpc = code.Code_UNAUTHENTICATED
	case http.StatusServiceUnavailable:
		rpc = code.Code_UNAVAILABLE
	case http.StatusBadRequest:
		rpc = code.Code_INVALID_ARGUMENT
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(rpc), Message: http.StatusText(w.status)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(w.status)},
			Headers: w.headers("Www-Authenticate", "Location", "Content-Type", "Cache-Control"),
			Body:    w.body.String(),
		}},
	}
}
