package oauth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/internal/browsertest"
	"github.com/octostore/octostore/lockcore"
)

// TestBrowserSignIn drives a headless Chromium through the real redirects:
// Start (loopback) → the fake GitHub's authorize page (loopback) → the
// callback, reads the token off the rendered page and locks with it. It
// then reloads the callback, which must fail: the state cookie is gone.
func TestBrowserSignIn(t *testing.T) {
	bctx := browsertest.NewContext(t)
	store := sqliteBacking(t).open(t)
	e := newEnv(t, envOptions{accounts: store})

	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.public+oauth.StartPath),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	); err != nil {
		t.Fatalf("browser sign-in: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	token, curl, account := text("#token"), text("#curl"), text("#account")
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(browsertest.ArtifactDir(t), "oauth-token-page.png"), shot, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
	}
	token = strings.TrimSpace(token)
	if _, err := lockcore.ParseToken(token); err != nil {
		t.Fatalf("page token %q: %v", token, err)
	}
	if !strings.HasPrefix(location, e.public+oauth.CallbackPath+"?") || strings.Contains(location, token) {
		t.Errorf("browser ended at %q, want the callback without the token", location)
	}
	if !strings.Contains(curl, `-H "Authorization: Bearer `+token+`"`) || !strings.Contains(curl, e.public+"/locks/my-lock/acquire") {
		t.Errorf("curl line %q", curl)
	}

	acct := mustAccount(t, store, token)
	if acct.ID != strings.TrimSpace(account) || acct.Login != "octocat" {
		t.Errorf("token's account %+v, page says %q", acct, account)
	}
	res, err := store.Acquire(ctx, acct.ID, "my-lock", lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100})
	if err != nil || !res.Acquired {
		t.Fatalf("acquire with the new account: %+v, %v", res, err)
	}

	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatalf("reload: %v", err)
	}
	again := text("body")
	if !strings.Contains(again, "invalid_oauth_state") || tokenRE.MatchString(again) {
		t.Errorf("reloading the callback did not fail on the cleared cookie:\n%s", again)
	}
	if n := countAccounts(t, store); n != 1 {
		t.Errorf("%d accounts, want 1", n)
	}
	checkSecretsStay(t, e, nil, token)
}
