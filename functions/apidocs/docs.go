package apidocs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5emb"
)

// Where the page finds the document and its assets, relative to the page's
// own URL (…/docs, without a trailing slash): see the package comment.
const (
	documentURL = "../openapi.json"
	assetBase   = "docs/"
)

// assetNames are the files under /docs/ that the page loads, in the order
// the page names them. The document's /docs/{asset} enum lists the same.
var assetNames = []string{
	"swagger-ui.css",
	"favicon-32x32.png",
	"favicon-16x16.png",
	"swagger-ui-bundle.js",
	"swagger-ui-standalone-preset.js",
}

// page is the rendered Swagger UI page with its headers, and the handler of
// its assets.
type page struct {
	html   []byte
	csp    string
	assets http.Handler
}

// docsPage renders the page once per process: it does not depend on the
// request or the version (the version is in the document it fetches).
var docsPage = sync.OnceValue(func() *page {
	ui := v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "OctoStore API",
		SwaggerJSON: documentURL,
		// BasePath is where the browser fetches the assets from; it is
		// relative so that a path prefix in front of /docs is kept.
		BasePath: assetBase,
		// InternalBasePath is the path the handler sees (after any prefix
		// was stripped), from which it serves the embedded files.
		InternalBasePath: "/docs/",
		SettingsUI: map[string]string{
			// Keep the bearer token entered in Authorize across reloads
			// (in the browser's local storage).
			"persistAuthorization": "true",
			// swgui joins the page's path and documentURL; resolve the
			// ".." so the page shows the document's plain URL.
			"url":                    "new URL(url).href",
			"displayRequestDuration": "true",
			"tryItOutEnabled":        "false",
		},
	})
	var rec recorder
	req, _ := http.NewRequest(http.MethodGet, "/docs", nil)
	ui.ServeHTTP(&rec, req)
	if rec.status != http.StatusOK {
		panic(fmt.Sprintf("apidocs: rendering the Swagger UI page: status %d", rec.status))
	}
	html := rec.body.Bytes()
	return &page{
		html:   html,
		csp:    contentSecurityPolicy(html),
		assets: assetHandler(ui),
	}
})

var (
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// contentSecurityPolicy allows the page's own origin and, of inline code,
// exactly the inline <script> and <style> blocks of html (by their SHA-256),
// so that nothing injected can run. Swagger UI needs no eval; it shows
// images from data: URLs (its icons) and calls the API on the same origin.
func contentSecurityPolicy(html []byte) string {
	hashes := func(re *regexp.Regexp) string {
		var b strings.Builder
		for _, m := range re.FindAllSubmatch(html, -1) {
			sum := sha256.Sum256(m[1])
			b.WriteString(" 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'")
		}
		return b.String()
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'" + hashes(inlineScript),
		"style-src 'self'" + hashes(inlineStyle),
		"img-src 'self' data:",
		"connect-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

// ServeHTTP serves the page.
func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", pageCacheControl)
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(p.html)
	}
}

// assetHandler serves the embedded files through ui (gzip-encoded when the
// client accepts it, with an ETag), cacheable for an hour.
func assetHandler(ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", assetCacheControl)
		h.Set("X-Content-Type-Options", "nosniff")
		ui.ServeHTTP(w, r)
	})
}

// recorder is the ResponseWriter the page is rendered into.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header {
	if r.header == nil {
		r.header = http.Header{}
	}
	return r.header
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
