package servicetest

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium.
const ChromiumPath = "/usr/bin/chromium"

// StartChromium starts a headless Chromium with a fresh profile and returns
// a context on its first tab. Derive more tabs from it with
// chromedp.NewContext, or a separate cookie jar (another "device") with
// chromedp.NewContext(ctx, chromedp.WithNewBrowserContext()). opts come
// after the defaults, so a caller can add or override one, such as
// chromedp.WindowSize. Without the browser the test skips, or fails on CI.
// t.Cleanup stops the browser, and waits for its process to exit, before
// its profile is removed.
func StartChromium(t testing.TB, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		SkipOrFail(t, "no browser: %v (apt-get install chromium)", err)
	}
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		// Less for the browser to do at start; none of it matters to a test.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints,AutofillServerCommunication"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("mute-audio", true),
		// A page's width does not depend on a scrollbar, so a test can
		// assert an emulated viewport's exact width.
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile),
	}, opts...)...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	// Registered after TempDir, so it runs first. cancelAlloc returns once
	// the process has exited.
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", ChromiumPath, err)
	}
	return ctx
}
