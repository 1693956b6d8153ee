package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tetherhq/tether/internal/api"
)

// Listeners are the names of the two listeners, as api.OpenAPI takes them.
var Listeners = []string{"public", "admin"}

// Spec is a listener's OpenAPI document, loaded and validated.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router
}

var (
	specsOnce sync.Once
	specs     map[string]*Spec
	specsErr  error
)

func loadSpecs() (map[string]*Spec, error) {
	specsOnce.Do(func() {
		// The change stream's body and the favicon are text, read as such.
		openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("image/svg+xml", openapi3filter.PlainBodyDecoder)
		specs = make(map[string]*Spec)
		for _, l := range Listeners {
			raw, err := api.OpenAPI(l)
			if err != nil {
				specsErr = err
				return
			}
			doc, err := openapi3.NewLoader().LoadFromData(raw)
			if err == nil {
				err = doc.Validate(context.Background())
			}
			if err == nil {
				var router routers.Router
				if router, err = gorillamux.NewRouter(doc); err == nil {
					specs[l] = &Spec{Doc: doc, router: router}
				}
			}
			if err != nil {
				specsErr = fmt.Errorf("%s OpenAPI document: %w", l, err)
				return
			}
		}
	})
	return specs, specsErr
}

// OpenAPISpec returns the listener's document, failing t if it does not load
// or is not valid OpenAPI.
func OpenAPISpec(t testing.TB, listener string) *Spec {
	t.Helper()
	s, err := loadSpecs()
	if err != nil {
		t.Fatal(err)
	}
	return s[listener]
}

// CheckResponse reports, through t.Errorf, a response to r that the
// listener's document does not allow (status, headers, body). A request that
// is no documented operation is not checked: the 404 and 405 answers.
func CheckResponse(t testing.TB, listener string, r *http.Request, status int, header http.Header, body []byte) {
	if err := ResponseError(t, listener, r, status, header, body); err != nil {
		t.Errorf("%s %s answered %d, which its OpenAPI document does not allow: %v\nbody: %s",
			r.Method, r.URL.Path, status, err, truncate(string(body)))
	}
}

// ResponseError is CheckResponse's finding, or nil.
func ResponseError(t testing.TB, listener string, r *http.Request, status int, header http.Header, body []byte) error {
	sp := OpenAPISpec(t, listener)
	u := *r.URL
	u.Scheme, u.Host = "http", "tether.test"
	probe := r.Clone(context.Background())
	probe.URL = &u
	route, params, err := sp.router.FindRoute(probe)
	if err != nil {
		return nil
	}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500] + "…"
	}
	return s
}
