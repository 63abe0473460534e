// Package browsertest starts Debian's Chromium, headless, for tests that
// drive a page with github.com/chromedp/chromedp.
//
// Chromium is the operating system's package (apt-get install chromium);
// nothing is downloaded. A test that needs it calls NewContext (or Chromium):
// where Chromium is missing the test is skipped with a message, unless the
// environment says OCTOSTORE_REQUIRE_BROWSER=1 (CI), where it fails.
//
// The browser runs with a fresh profile in a temporary directory, without
// GPU, QUIC, sync, component updates or background networking, and with a
// proxy that does not exist for every non-loopback address: a page can reach
// only servers on this machine's loopback, so a test cannot leak traffic
// even if the page under test tries.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// RequireEnv is the environment variable that turns a missing Chromium from
// a skip into a failure.
const RequireEnv = "OCTOSTORE_REQUIRE_BROWSER"

// ArtifactsEnv names a directory where tests leave files worth keeping
// (screenshots); see ArtifactDir.
const ArtifactsEnv = "OCTOSTORE_ARTIFACTS"

// candidates are the names Debian and others give the browser.
var candidates = []string{"chromium", "chromium-browser", "/usr/lib/chromium/chromium"}

// Chromium returns the path of the Chromium executable. If there is none it
// skips t with a message, or fails t when OCTOSTORE_REQUIRE_BROWSER=1.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	const msg = "Chromium not found (install Debian's package: apt-get install -y chromium)"
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s, and %s=1", msg, RequireEnv)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, RequireEnv)
	return ""
}

// NewContext starts a headless Chromium for t and returns a chromedp
// context of a new tab in it, for chromedp.Run and chromedp.Do. The browser
// is stopped, and its profile directory removed, when t ends. The profile
// is chromedp's own temporary directory: chromedp stops Chromium's
// leftover child processes (the crash handler) and retries the removal,
// where t.TempDir's single attempt could fail on their late writes. It skips or
// fails t as Chromium does when the browser is missing. Callers bound their
// steps with context.WithTimeout on the returned context (the browser
// outlives such a timeout). extra options are appended to the defaults (a
// test that maps host names to loopback adds its own flags).
func NewContext(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 1600),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Loopback bypasses the proxy; everything else goes to a port
		// where nothing listens, and fails.
		chromedp.ProxyServer("http://127.0.0.1:9"),
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser; it must run without a timeout,
	// which would stop the browser when it expires.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v", path, err)
	}
	return ctx
}

// ArtifactDir returns the directory for files a test wants kept, such as
// screenshots: $OCTOSTORE_ARTIFACTS (created if needed) when set, else a
// temporary directory removed when t ends.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(ArtifactsEnv)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating %s=%s: %v", ArtifactsEnv, dir, err)
	}
	return dir
}
