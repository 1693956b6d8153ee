package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tetherhq/tether/internal/servicetest"
)

// TestE2EBrowserSignIn: the journey of issue 11 in headless Chromium,
// through real Caddy, with the real binary and a real OpenID provider:
// visit the app → redirected to the provider → sign in → back at the app
// with the identity headers → "sign out everywhere" on /account/sessions →
// the app's next request is refused.
func TestE2EBrowserSignIn(t *testing.T) {
	st := startSignInStack(t)
	browser := servicetest.StartChromium(t)
	step := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, a); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, st.proxy.Output())
		}
	}
	get := func(a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// waitFor waits until the page makes the JavaScript expression true,
	// across the navigations in between (each ends a poll early).
	waitFor := func(what, js string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		for {
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](js))
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: waiting for %s: %v", what, js, err)
			}
		}
	}

	step("visit the app", chromedp.Navigate(st.site+"/hello?x=1"))
	if loc := get(chromedp.Location()); !strings.HasPrefix(loc, st.idp.Issuer+"/interaction/") {
		t.Fatalf("not signed in, the app sent the browser to %s, want the provider's sign-in page", loc)
	}
	step("type the login", chromedp.SetValue(`input[name="login"]`, "alice"))
	step("type the password", chromedp.SetValue(`input[name="password"]`, "any password"))
	step("sign in", chromedp.Click(`button[type="submit"]`))
	waitFor("the consent page", `document.querySelector('input[name="prompt"][value="consent"]') !== null`)
	step("consent", chromedp.Click(`button[type="submit"]`))
	waitFor("back at the app", `location.href === `+"`"+`${location.origin}/hello?x=1`+"`"+` && document.querySelector("pre") !== null`)
	if loc := get(chromedp.Location()); loc != st.site+"/hello?x=1" {
		t.Fatalf("after sign-in the browser is at %s, want back at the app", loc)
	}
	if body := get(chromedp.Text(`pre`)); !strings.Contains(body, `"Subject":"idp:alice"`) || !strings.Contains(body, `"Roles":"staff"`) {
		t.Fatalf("the app saw %s, want idp:alice with roles staff", body)
	}

	if before := get(chromedp.Evaluate[string](`fetch("/hello").then(r => String(r.status))`, chromedp.EvalAwaitPromise)); before != "200" {
		t.Fatalf("a script's request to the app while signed in: %s, want 200", before)
	}

	step("open the account page", chromedp.Steps(chromedp.Navigate(st.site+"/account/sessions"), chromedp.WaitVisible(`table.sessions`)))
	step("sign out everywhere", chromedp.Click(`form[action="/account/sessions/sign-out-everywhere"] button`))
	waitFor("signed out", `location.pathname === "/account/signed-out"`)

	// The app's next request, from the same browser (on a page of the app's
	// origin outside the account pages, whose CSP allows no fetch).
	step("back on the app's origin", chromedp.Navigate(st.site+"/v1/session"))

	// Caddy passes on Tether's redirect to the login page for a navigation,
	// and its 401 for a script, instead of the app's answer.
	next := get(chromedp.Evaluate[string](`fetch("/hello", {redirect: "manual", headers: {Accept: "text/html"}}).then(r => r.type + " " + r.status)`, chromedp.EvalAwaitPromise))
	if next != "opaqueredirect 0" {
		t.Errorf("the app's next request after signing out everywhere: %s, want the login redirect", next)
	}
	apiNext := get(chromedp.Evaluate[string](`fetch("/hello").then(r => String(r.status))`, chromedp.EvalAwaitPromise))
	if apiNext != "401" {
		t.Errorf("the app's next request (fetch, not a navigation): %s, want 401", apiNext)
	}
}
