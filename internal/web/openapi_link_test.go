package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestConsoleLinksOpenAPI: the console links the admin API's OpenAPI
// document, and the link works with the console's cookie alone.
func TestConsoleLinksOpenAPI(t *testing.T) {
	e := newEnv(t)
	cookie, _ := e.consoleSignIn(t)
	page := call(e.adm, "GET", "/admin/", nil, cookie...)
	if !strings.Contains(page.Body.String(), `href="/openapi.json"`) {
		t.Fatalf("the console page has no link to /openapi.json:\n%s", page.Body)
	}
	w := call(e.adm, "GET", "/openapi.json", nil, cookie...)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"openapi": "3.1.0"`) {
		t.Errorf("GET /openapi.json from the console: got %d %.200s", w.Code, w.Body)
	}
}
