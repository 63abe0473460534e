package apidocs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/octostore/octostore/functions/apidocs"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/browsertest"
)

// cspWatch records Content-Security-Policy violations of the page; it runs
// before any script of the page.
const cspWatch = `window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" + e.lineNumber);
});`

// TestDocsInBrowser opens the docs in headless Chromium, authorizes with a
// real token, and acquires a lock with "Try it out", at the origin's root
// and behind an API Gateway-like stage prefix (/prod). Every request the
// page makes must stay on the test server, every exchange must match the
// document (the server is wrapped in the contract Validator), and the page
// must run without a CSP violation or an uncaught exception.
func TestDocsInBrowser(t *testing.T) {
	browsertest.Chromium(t)
	for _, c := range []struct{ name, prefix string }{{"root", ""}, {"stage prefix", "/prod"}} {
		t.Run(c.name, func(t *testing.T) {
			app := newApp(t)
			v := contracttest.Load(t, apidocs.Document(testVersion))
			var h http.Handler = v.Wrap(app.handler)
			if c.prefix != "" {
				mux := http.NewServeMux()
				mux.Handle(c.prefix+"/", http.StripPrefix(c.prefix, h))
				h = mux
			}
			srv := httptest.NewServer(h) // listens on 127.0.0.1 only
			t.Cleanup(srv.Close)
			base := srv.URL + c.prefix
			lock := "browser-lock" + strings.ReplaceAll(c.prefix, "/", "-")
			runDocs(t, base, app.token, lock)

			// The lock really is held now, by the account of the token.
			rec := httptest.NewRecorder()
			app.handler.ServeHTTP(rec, app.request("GET", "/locks/"+lock, "", true))
			var st struct{ Status string }
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Status != "held" {
				t.Errorf("after Execute, GET /locks/%s = %d %s", lock, rec.Code, rec.Body)
			}
			covered := strings.Join(v.Covered(), "\n")
			for _, want := range []string{"GET /docs 200", "GET /openapi.json 200", "POST /locks/{name}/acquire 200"} {
				if !strings.Contains(covered, want) {
					t.Errorf("the browser did not cause %q; seen:\n%s", want, covered)
				}
			}
		})
	}
}

// runDocs drives the docs page at base+"/docs".
func runDocs(t *testing.T, base, token, lock string) {
	bctx := browsertest.NewContext(t)

	var mu sync.Mutex
	var urls, exceptions []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls = append(urls, e.Request.Method+" "+e.Request.URL)
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			exceptions = append(exceptions, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Generous: Swagger UI is 1.4 MB of JavaScript, slow on a busy 2-core
	// machine.
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

	op := "#operations-locks-acquireLock"
	nameInput := op + ` tr[data-param-name="name"] input`
	steps := []struct {
		what string
		do   chromedp.Action[chromedp.Void]
	}{
		{"watch CSP", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
			return err
		})},
		{"open /docs", chromedp.Navigate(base + "/docs")},
		{"wait for the operations", chromedp.WaitVisible(chromedp.CSS(op))},
		{"open Authorize", chromedp.Click(chromedp.CSS(".scheme-container button.authorize"))},
		{"enter the token", chromedp.SendKeys(chromedp.CSS(".modal-ux .auth-container input"), token)},
		{"authorize", chromedp.Click(chromedp.CSS(".modal-ux .auth-btn-wrapper button.authorize"))},
		{"close the dialog", chromedp.Click(chromedp.CSS(".modal-ux button.btn-done"))},
		{"open acquire", chromedp.Click(chromedp.CSS(op + " .opblock-summary-control"))},
		{"try it out", chromedp.Click(chromedp.CSS(op + " .try-out__btn"))},
		// "Try it out" renders the field in its own update; the click can
		// return before it is there.
		{"wait for the name field", chromedp.WaitVisible(chromedp.CSS(nameInput))},
		// The field shows the parameter's example; select it so typing
		// replaces it.
		{"select the name", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(function () { var i = document.querySelector('`+nameInput+`'); i.focus(); i.select(); return true; })()`)(ctx, tg)
			return err
		})},
		{"set the name", chromedp.SendKeys(chromedp.CSS(nameInput), lock)},
		{"check the name", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			got, err := chromedp.Evaluate[string](`document.querySelector('`+nameInput+`').value`)(ctx, tg)
			if err == nil && got != lock {
				err = fmt.Errorf("the name field holds %q, want %q", got, lock)
			}
			return err
		})},
		{"execute", chromedp.Click(chromedp.CSS(op + " button.execute"))},
		{"wait for the answer", chromedp.WaitVisible(chromedp.CSS(op + " .live-responses-table .response-col_status"))},
	}
	for _, s := range steps {
		start := time.Now()
		err := chromedp.Do(ctx, s.do)
		t.Logf("%s: %v", s.what, time.Since(start).Round(time.Millisecond))
		if err != nil {
			shot(t, bctx, lock+"-failed", chromedp.FullScreenshot(100))
			t.Fatalf("%s: %v", s.what, err)
		}
	}
	// The live response is the table's row after its header row.
	var live struct{ Status, Body []string }
	live, err = chromedp.Run(ctx, chromedp.Evaluate[struct{ Status, Body []string }](`(function () {
  var q = function (c) {
    return Array.from(document.querySelectorAll('`+op+` .live-responses-table ' + c)).map(function (e) { return e.textContent.trim(); });
  };
  return {Status: q('.response-col_status'), Body: q('.response-col_description')};
})()`))
	if err != nil {
		t.Fatal(err)
	}
	status, body := strings.Join(live.Status, "|"), strings.Join(live.Body, "|")
	shot(t, bctx, lock, chromedp.Screenshot(chromedp.CSS(op)))
	if !slices.Contains(live.Status, "200") || !strings.Contains(body, `"fencing_token"`) || !strings.Contains(body, `"acquired"`) {
		t.Errorf("the page shows status %q and body %q, want 200 with a fencing_token", status, body)
	}
	persisted, err := chromedp.Run(ctx, chromedp.Evaluate[string](`localStorage.getItem("authorized") || ""`))
	if err != nil || !strings.Contains(persisted, "bearerAuth") {
		t.Errorf("the authorization is not persisted in localStorage (%q, %v)", persisted, err)
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp`))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("CSP violation: %s", v)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, e := range exceptions {
		t.Errorf("uncaught exception in the page: %s", e)
	}
	var sawDoc, sawAcquire bool
	for _, u := range urls {
		method, url, _ := strings.Cut(u, " ")
		if !strings.HasPrefix(url, base+"/") && !strings.HasPrefix(url, "data:") {
			t.Errorf("the page requested %s, outside the test server's %s/", u, base)
		}
		sawDoc = sawDoc || url == base+"/openapi.json"
		sawAcquire = sawAcquire || method == "POST" && url == base+"/locks/"+lock+"/acquire"
	}
	if !sawDoc || !sawAcquire {
		t.Errorf("requests seen (want %s/openapi.json and POST …/locks/%s/acquire):\n%s", base, lock, strings.Join(urls, "\n"))
	}
	t.Logf("%d requests, all to %s/ (or data: URLs)", len(urls), base)
}

// shot saves a screenshot (of the page or of an element) to the artifact
// directory.
func shot(t *testing.T, ctx context.Context, name string, take chromedp.Action[[]byte]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, take)
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(browsertest.ArtifactDir(t), "docs-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("saving the screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}
