package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/internal/web"
)

// uaMac is what device 1 says it is, so the two devices look different.
const uaMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// device is one browser context: its own cookies, as a separate device has.
type device struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// newDevices opens a browser context for each user agent ("" keeps the
// browser's own), in parallel: each takes a while to start.
func newDevices(t *testing.T, browser context.Context, userAgents ...string) []*device {
	t.Helper()
	devices := make([]*device, len(userAgents))
	errs := make([]error, len(userAgents))
	var wg sync.WaitGroup
	for i, ua := range userAgents {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		devices[i] = &device{t: t, name: fmt.Sprintf("device %d", i+1), ctx: ctx}
		wg.Go(func() {
			if errs[i] = chromedp.Do(ctx); errs[i] != nil || ua == "" { // opens the tab
				return
			}
			_, errs[i] = chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", devices[i].name, err)
		}
	}
	return devices
}

// timed bounds one step, leaving the browser running.
func (d *device) timed() (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.ctx, 20*time.Second) // generous: CI machines are slow and -race more so
}

func (d *device) do(steps ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := d.timed()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		d.t.Fatalf("%s: %v", d.name, err)
	}
}

// open navigates to url and returns the status of the document.
func (d *device) open(url string) int64 {
	d.t.Helper()
	ctx, cancel := d.timed()
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		d.t.Fatalf("%s: open %s: %v", d.name, url, err)
	}
	return resp.Status
}

// submit clicks a button that posts a form and returns the status of the
// page the browser lands on, after any redirect.
func (d *device) submit(button string) int64 {
	d.t.Helper()
	ctx, cancel := d.timed()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
	if err != nil {
		d.t.Fatalf("%s: click %s: %v", d.name, button, err)
	}
	return resp.Status
}

func eval[T any](d *device, js string) T {
	d.t.Helper()
	ctx, cancel := d.timed()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		d.t.Fatalf("%s: %s: %v", d.name, js, err)
	}
	return v
}

// poll waits until the JavaScript expression is true.
func (d *device) poll(js string) {
	d.t.Helper()
	ctx, cancel := d.timed()
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(8*time.Second))); err != nil {
		d.t.Fatalf("%s: waiting for %s: %v", d.name, js, err)
	}
}

func (d *device) text(css string) string {
	return eval[string](d, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent.trim()`, css))
}

// screenshot saves the page as docs/<name> when TETHER_SCREENSHOTS=1, so an
// ordinary run never rewrites the committed images.
func (d *device) screenshot(name string) {
	d.t.Helper()
	if os.Getenv("TETHER_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := d.timed()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.t.Fatalf("%s: screenshot: %v", d.name, err)
	}
	path := filepath.Join("..", "..", "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("wrote %s", path)
}

// TestBrowser drives a real browser through both pages: two devices of alice,
// one signing the other out; the admin console; and a cross-origin post.
func TestBrowser(t *testing.T) {
	// The window's size is the committed screenshots' size.
	browser := servicetest.StartChromium(t, chromedp.WindowSize(1200, 860))
	e := newEnv(t)

	// The public origin: the node's public handler, plus the demo's one-click
	// sign-in so that each browser gets its cookie the way a login would.
	demo, err := web.DemoSignIn(web.DemoConfig{
		Subjects: []string{"alice"},
		Create: func(ctx context.Context, subject string, md map[string]string) (string, time.Time, error) {
			token, sess, err := e.m.Create(ctx, tether.CreateParams{Subject: subject, Roles: []string{"viewer"}, Metadata: md})
			if err != nil {
				return "", time.Time{}, err
			}
			return token, sess.ExpiresAt, nil
		},
		End: demoEnd(e),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo/", demo)
	mux.Handle("/", e.pub)
	pub := httptest.NewServer(mux)
	defer pub.Close()
	adm := httptest.NewServer(e.adm)
	defer adm.Close()
	// The attacker: another origin on the same host, which makes it the same
	// site, so the browser does send the SameSite=Lax cookie with its post
	// and only the origin check stands in the way.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body>
<form method="post" action="%s/account/sessions/sign-out-everywhere"><input type="hidden" name="csrf" value="guess"></form>
<script>document.forms[0].submit()</script></body></html>`, html.EscapeString(pub.URL))
	}))
	defer evil.Close()

	devices := newDevices(t, browser, uaMac, uaFirefoxWin, "")
	laptop, phone, admin := devices[0], devices[1], devices[2]
	admin.name = "admin"

	// Both devices sign in as alice.
	for _, d := range []*device{laptop, phone} {
		d.open(pub.URL + "/demo/sign-in")
		if status := d.submit(`button[type="submit"]`); status != 200 {
			t.Fatalf("%s: sign-in landed on %d", d.name, status)
		}
		if got := d.text("h1"); got != "Your sessions" {
			t.Fatalf("%s: after sign-in, h1 %q", d.name, got)
		}
	}

	// Device 1 sees both sessions and which one it is.
	if status := laptop.open(pub.URL + "/account/sessions"); status != 200 {
		t.Fatalf("sessions page: %d", status)
	}
	if n := eval[int](laptop, `document.querySelectorAll("table.sessions tbody tr").length`); n != 2 {
		t.Fatalf("device 1 sees %d sessions, want 2", n)
	}
	if got := laptop.text("tr.current .badge"); got != "This device" {
		t.Errorf("this-device marker: %q", got)
	}
	if got := laptop.text("tr.current .device"); got != "Chrome on macOS" {
		t.Errorf("device 1 is %q, want Chrome on macOS", got)
	}
	if got := laptop.text("tr:not(.current) .device"); got != "Firefox on Windows" {
		t.Errorf("device 2 is %q, want Firefox on Windows", got)
	}
	// The stylesheet loaded under the CSP (the header is dark only through it).
	if bg := eval[string](laptop, `getComputedStyle(document.querySelector("header")).backgroundColor`); bg != "rgb(17, 24, 39)" {
		t.Errorf("header background %q: the stylesheet did not load", bg)
	}
	laptop.screenshot("account-sessions.png")

	// On a phone (390 px wide) the header row is hidden, so each stacked
	// cell says what it is.
	{
		ctx, cancel := phone.timed()
		_, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride,
			emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 844, DeviceScaleFactor: 3, Mobile: true})
		cancel()
		if err != nil {
			t.Fatalf("phone viewport: %v", err)
		}
	}
	if status := phone.open(pub.URL + "/account/sessions"); status != 200 {
		t.Fatalf("sessions page on the phone: %d", status)
	}
	if w := eval[int](phone, `document.documentElement.clientWidth`); w != 390 {
		t.Fatalf("phone viewport is %d px wide, want 390", w)
	}
	if d := eval[string](phone, `getComputedStyle(document.querySelector("table.sessions thead")).display`); d != "none" {
		t.Errorf("at 390 px the header row is %q, want hidden", d)
	}
	labels := eval[[]string](phone, `[...document.querySelectorAll("table.sessions tbody tr:first-child [data-label]")].map(c => getComputedStyle(c, "::before").content)`)
	if want := []string{`"Device: "`, `"IP address: "`, `"Signed in: "`, `"Last seen: "`}; !slices.Equal(labels, want) {
		t.Errorf("at 390 px the cells are labelled %q, want %q", labels, want)
	}
	if wide := eval[string](laptop, `getComputedStyle(document.querySelector("table.sessions td[data-label]"), "::before").content`); wide != "none" {
		t.Errorf("on a wide screen a cell shows the label %s, want none (the header row says it)", wide)
	}

	// Device 1 signs device 2 out; device 2's next request is refused.
	if status := laptop.submit(`tr:not(.current) button[type="submit"]`); status != 200 {
		t.Fatalf("sign out device 2: landed on %d", status)
	}
	if got := laptop.text(".flash"); got != "That session is signed out." {
		t.Errorf("flash after signing out device 2: %q", got)
	}
	if status := phone.open(pub.URL + "/account/sessions"); status != http.StatusUnauthorized {
		t.Errorf("device 2 after being signed out: %d, want 401", status)
	}
	if got := phone.text("h1"); got != "You are not signed in" {
		t.Errorf("device 2 sees %q", got)
	}

	// A page on another origin auto-submits a form to device 1's
	// sign-out-everywhere: refused with 403, and nothing changes.
	var attack int64
	{
		ctx, cancel := laptop.timed()
		responses := chromedp.Events(ctx, network.ResponseReceived)
		laptop.open(evil.URL)
		for ev, err := range responses {
			if err != nil {
				t.Fatalf("waiting for the cross-origin post: %v", err)
			}
			if ev.Response.URL == pub.URL+"/account/sessions/sign-out-everywhere" {
				attack = ev.Response.Status
				break
			}
		}
		cancel()
	}
	if attack != http.StatusForbidden {
		t.Errorf("cross-origin post: got %d, want 403", attack)
	}
	if n := e.count(t, "alice"); n != 1 {
		t.Errorf("after the cross-origin post alice has %d sessions, want 1", n)
	}
	if status := laptop.open(pub.URL + "/account/sessions"); status != 200 {
		t.Errorf("device 1 after the cross-origin post: %d, want 200", status)
	}

	// The admin signs in with the key, finds alice and edits her roles.
	admin.open(adm.URL + "/admin/")
	admin.do(chromedp.SendKeys(chromedp.ID("key"), testAdminKey))
	if status := admin.submit(`form[action="/admin/sign-in"] button`); status != 200 {
		t.Fatalf("admin sign-in landed on %d", status)
	}
	if got := admin.text("h1"); got != "Admin console" {
		t.Fatalf("after admin sign-in, h1 %q", got)
	}
	admin.do(chromedp.SendKeys(chromedp.ID("subject"), "alice"))
	admin.submit(`form[role="search"] button`)
	if got := admin.text("table.sessions caption"); got != "1 live session" {
		t.Errorf("alice in the console: %q, want 1 live session", got)
	}
	admin.do(chromedp.SetValue(chromedp.ID("roles"), "editor\nbilling"))
	admin.submit(`form[action="/admin/subjects/roles"] button`)
	if got := admin.text(".flash"); !strings.HasPrefix(got, "Roles saved") {
		t.Errorf("flash after saving roles: %q", got)
	}
	// Her activity, newest first, names the change just made and who made it.
	if got := admin.text("table.activity tbody tr th"); got != "roles.changed" {
		t.Errorf("alice's latest event in the console: %q, want roles.changed", got)
	}
	if got := admin.text(`table.activity tbody tr td[data-label="By"]`); got != "admin" {
		t.Errorf("alice's roles changed by %q, want admin", got)
	}
	// The counters' script runs under the CSP and reads the JSON endpoint.
	admin.poll(`document.getElementById("counters").dataset.live === "true"`)
	if os.Getenv("TETHER_SCREENSHOTS") == "1" {
		admin.poll(`document.querySelector('[data-counter="rate"]').textContent !== "\u2013"`) // two readings
	}
	admin.screenshot("admin-console.png")

	// Alice's own view of her session carries the new roles at once.
	laptop.open(pub.URL + "/v1/session")
	var sess struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal([]byte(laptop.text("body")), &sess); err != nil {
		t.Fatalf("/v1/session: %v", err)
	}
	if slices.Sort(sess.Roles); strings.Join(sess.Roles, ",") != "billing,editor" {
		t.Errorf("alice's roles after the edit: %v, want billing, editor", sess.Roles)
	}

	// The admin revokes all; device 1's next request is refused.
	admin.submit(`form[action="/admin/subjects/revoke-all"] button`)
	if got := admin.text(".flash"); got != "Every session of the subject is revoked." {
		t.Errorf("flash after revoke all: %q", got)
	}
	if status := laptop.open(pub.URL + "/account/sessions"); status != http.StatusUnauthorized {
		t.Errorf("device 1 after revoke all: %d, want 401", status)
	}
}
