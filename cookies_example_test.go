package tether_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/tetherhq/tether"
)

// With a parent domain, the session cookie a sign-in sets is shared with the
// apps under it, so that a forward-auth proxy in front of them sees it.
func ExampleCookies() {
	cookies := tether.Cookies{Domain: "example.test"}
	r := httptest.NewRequest("GET", "https://auth.example.test/v1/login/callback", nil)
	w := httptest.NewRecorder()
	cookies.Set(w, r, "tts_example", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	fmt.Println(w.Header().Get("Set-Cookie"))
	// Output:
	// __Secure-tether=tts_example; Path=/; Domain=example.test; Expires=Tue, 01 Jan 2030 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax
}
