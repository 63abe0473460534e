package apidocs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/octostore/octostore/functions/apidocs"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/lockcore"
)

// contractRoutes are the endpoints of the contract's table (API.md).
var contractRoutes = []string{
	"GET /auth/github",
	"GET /auth/github/callback",
	"POST /auth/token/rotate",
	"POST /locks/{name}/acquire",
	"POST /locks/{name}/release",
	"POST /locks/{name}/renew",
	"GET /locks/{name}",
	"GET /locks",
	"GET /docs",
	"GET /openapi.json",
	"GET /health",
}

// authedRoutes need a bearer token.
var authedRoutes = []string{
	"POST /auth/token/rotate",
	"POST /locks/{name}/acquire",
	"POST /locks/{name}/release",
	"POST /locks/{name}/renew",
	"GET /locks/{name}",
	"GET /locks",
}

// contractCodes is the contract's error table: status → codes.
var contractCodes = map[string][]string{
	"400": {"invalid_json", "invalid_lease_id", "invalid_metadata", "invalid_name", "invalid_oauth_state", "invalid_ttl"},
	"401": {"unauthorized"},
	"403": {"lock_limit_exceeded"},
	"404": {"not_found", "oauth_disabled"},
	"405": {"method_not_allowed"},
	"409": {"lease_not_current"},
	"413": {"body_too_large"},
	"500": {"internal"},
	"502": {"oauth_failed"},
	"503": {"store_unavailable"},
}

var loadDoc = sync.OnceValues(func() (*openapi3.T, error) {
	return contracttest.LoadDocument(apidocs.Document("v1.2.3-test"))
})

func mustDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// operations returns "METHOD /path" → operation.
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := mustDoc(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info.Version != "v1.2.3-test" {
		t.Errorf("info.version = %q, want the version given to Document", doc.Info.Version)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "." {
		t.Errorf("servers = %v, want one relative server \".\" (see the package comment)", doc.Servers)
	}
	s := doc.Components.SecuritySchemes["bearerAuth"]
	if s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Errorf("security scheme bearerAuth = %+v, want http bearer", s)
	}
}

// TestDocumentForOtherLimitsIsValid: the document of a server with other
// limits (serve --max-ttl 30, --max-metadata 3, ...) is still valid
// OpenAPI, its examples included (Swagger UI's "Try it out" sends them:
// a renew with the example's ttl_seconds 60 to a server whose maximum is
// 30 would be answered 400), and its text states that server's limits.
func TestDocumentForOtherLimitsIsValid(t *testing.T) {
	for _, l := range []lockcore.Limits{
		{MaxTTL: 30 * time.Second, DefaultTTL: 20 * time.Second, MaxMetadataBytes: 1024, MaxHeldLocks: 100},
		{MaxTTL: 30 * time.Second, DefaultTTL: 30 * time.Second, MaxMetadataBytes: 1024, MaxHeldLocks: 100},
		{MaxTTL: 7200 * time.Second, DefaultTTL: 120 * time.Second, MaxMetadataBytes: 3, MaxHeldLocks: 5},
		{MaxTTL: 1 * time.Second, DefaultTTL: 1 * time.Second, MaxMetadataBytes: 0, MaxHeldLocks: 1},
	} {
		doc := apidocs.DocumentFor("v1.2.3-test", l)
		if _, err := contracttest.LoadDocument(doc); err != nil {
			t.Errorf("limits %+v: %v", l, err)
			continue
		}
		s := string(doc)
		for _, want := range []string{
			fmt.Sprintf("from 1 to %d (default %d)", l.MaxTTL/time.Second, l.DefaultTTL/time.Second),
			fmt.Sprintf("from 1 to %d (got 0)", l.MaxTTL/time.Second),
			fmt.Sprintf("at most %d bytes", l.MaxMetadataBytes),
			fmt.Sprintf("holds %d unexpired locks", l.MaxHeldLocks),
		} {
			if !strings.Contains(s, want) {
				t.Errorf("limits %+v: the document does not say %q", l, want)
			}
		}
		if d := lockcore.DefaultLimits.MaxTTL / time.Second; l.MaxTTL/time.Second != d && strings.Contains(s, strconv.Itoa(int(d))) {
			t.Errorf("limits %+v: the document still names the default maximum TTL %d", l, d)
		}
	}
}

func TestDocumentIsCachedPerVersionAndCopied(t *testing.T) {
	a, b := apidocs.Document("x"), apidocs.Document("y")
	if bytes.Equal(a, b) {
		t.Fatal("documents of two versions are equal")
	}
	var d struct {
		Info struct{ Version string } `json:"info"`
	}
	if err := json.Unmarshal(a, &d); err != nil || d.Info.Version != "x" {
		t.Fatalf("info.version = %q (%v), want x", d.Info.Version, err)
	}
	a[0] = 'X'
	if again := apidocs.Document("x"); again[0] != '{' {
		t.Fatal("modifying a returned document changed the cached one")
	}
}

func TestDocumentKeepsPathOrder(t *testing.T) {
	// Swagger UI lists operations in document order; the first must be
	// acquire, the main operation.
	b := apidocs.Document("dev")
	i := bytes.Index(b, []byte(`"paths":{`))
	if i < 0 || !bytes.HasPrefix(b[i+len(`"paths":{`):], []byte(`"/locks/{name}/acquire"`)) {
		t.Fatalf("paths do not start with /locks/{name}/acquire: %.80s", b[max(i, 0):])
	}
}

func TestDocumentHasEveryContractRoute(t *testing.T) {
	ops := operations(mustDoc(t))
	for _, r := range contractRoutes {
		if ops[r] == nil {
			t.Errorf("the document lacks %s", r)
		}
	}
	for r := range ops {
		if !slices.Contains(contractRoutes, r) && r != "GET /docs/{asset}" {
			t.Errorf("the document has %s, which the contract does not", r)
		}
	}
}

func TestDocumentSecurity(t *testing.T) {
	doc := mustDoc(t)
	for r, op := range operations(doc) {
		sec := doc.Security
		if op.Security != nil {
			sec = *op.Security
		}
		authed := len(sec) > 0
		if want := slices.Contains(authedRoutes, r); authed != want {
			t.Errorf("%s: needs a token = %v, want %v", r, authed, want)
		}
		if authed {
			for _, st := range []string{"401", "500", "503"} {
				if op.Responses.Value(st) == nil {
					t.Errorf("%s needs a token but does not list %s", r, st)
				}
			}
		}
	}
}

// TestDocumentResponses checks what every operation must list: 405 (every
// path has other methods), 500 wherever a handler runs, 400 invalid_json and
// 413 where a body is taken, and the common headers on every response.
func TestDocumentResponses(t *testing.T) {
	doc := mustDoc(t)
	for r, op := range operations(doc) {
		if op.Responses.Value("405") == nil {
			t.Errorf("%s does not list 405", r)
		}
		static := r == "GET /docs" || r == "GET /docs/{asset}" || r == "GET /openapi.json"
		if op.Responses.Value("500") == nil && !static {
			t.Errorf("%s does not list 500", r)
		}
		if op.RequestBody != nil {
			if op.Responses.Value("413") == nil {
				t.Errorf("%s takes a body but does not list 413", r)
			}
			if !slices.Contains(errorCodes(op.Responses.Value("400").Value), "invalid_json") {
				t.Errorf("%s takes a body but its 400 lacks invalid_json", r)
			}
		}
		for st, resp := range op.Responses.Map() {
			for _, h := range []string{"X-Request-Id", "Cache-Control", "X-Content-Type-Options"} {
				if hr := resp.Value.Headers[h]; hr == nil || !hr.Value.Required {
					t.Errorf("%s %s: header %s is not listed as required", r, st, h)
				}
			}
		}
		for st, want := range map[string]string{"401": "WWW-Authenticate", "405": "Allow", "503": "Retry-After", "302": "Location"} {
			if resp := op.Responses.Value(st); resp != nil {
				if hr := resp.Value.Headers[want]; hr == nil || !hr.Value.Required {
					t.Errorf("%s %s: header %s is not listed as required", r, st, want)
				}
			}
		}
	}
}

// errorCodes returns the code enum of an error response's JSON schema.
func errorCodes(resp *openapi3.Response) []string {
	mt := resp.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || len(mt.Schema.Value.AllOf) != 2 || mt.Schema.Value.AllOf[0].Ref != "#/components/schemas/Error" {
		return nil
	}
	var codes []string
	for _, c := range mt.Schema.Value.AllOf[1].Value.Properties["code"].Value.Enum {
		codes = append(codes, c.(string))
	}
	return codes
}

func TestDocumentErrorCodesAreTheContractTable(t *testing.T) {
	doc := mustDoc(t)
	got := map[string]map[string]bool{}
	add := func(where, st string, resp *openapi3.Response) {
		switch {
		case resp.Content.Get("application/json") == nil, strings.HasPrefix(st, "2"):
			return
		case st == "409" && where == "POST /locks/{name}/acquire", st == "503" && where == "GET /health":
			return // held and health's 503 have bodies of their own
		}
		codes := errorCodes(resp)
		if len(codes) == 0 {
			t.Errorf("%s %s: not an error schema (allOf Error + code enum)", where, st)
		}
		for _, c := range codes {
			if got[st] == nil {
				got[st] = map[string]bool{}
			}
			got[st][c] = true
		}
	}
	for r, op := range operations(doc) {
		for st, resp := range op.Responses.Map() {
			add(r, st, resp.Value)
		}
	}
	for name, resp := range doc.Components.Responses {
		st := ""
		for _, op := range operations(doc) {
			for s, ref := range op.Responses.Map() {
				if ref.Ref == "#/components/responses/"+name {
					st = s
				}
			}
		}
		if name == "NotFound" {
			st = "404"
		}
		if st == "" {
			t.Errorf("components.responses.%s is used nowhere", name)
			continue
		}
		add("components.responses."+name, st, resp.Value)
	}
	gotCodes := map[string][]string{}
	for st, set := range got {
		gotCodes[st] = slices.Sorted(maps.Keys(set))
	}
	if fmt.Sprint(gotCodes) != fmt.Sprint(contractCodes) {
		t.Errorf("error codes by status:\n got %v\nwant %v", gotCodes, contractCodes)
	}
}

// TestDocumentObjectsAreClosed checks that every object schema says
// additionalProperties: false, so that an undocumented field in a request or
// a response fails validation.
func TestDocumentObjectsAreClosed(t *testing.T) {
	doc := mustDoc(t)
	n := 0
	for name, ref := range doc.Components.Schemas {
		err := ref.WalkSubtree(func(path string, s *openapi3.SchemaRef) error {
			v := s.Value
			if v == nil || len(v.Properties) == 0 || len(v.AllOf) > 0 {
				return nil
			}
			if v.Type.Is("object") {
				n++
				if v.AdditionalProperties.Has == nil || *v.AdditionalProperties.Has {
					return fmt.Errorf("object at %s does not say additionalProperties: false", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("components.schemas.%s: %v", name, err)
		}
	}
	if n < 10 {
		t.Errorf("checked only %d object schemas; the walk is broken", n)
	}
}

func TestHandlerServesTheDocument(t *testing.T) {
	h := apidocs.Handler("v7")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET /openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), apidocs.Document("v7")) {
		t.Error("GET /openapi.json is not Document(version)")
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q, want a short max-age", cc)
	}
}

var (
	scriptBlock = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	styleBlock  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	srcAttr     = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
)

func TestDocsPage(t *testing.T) {
	h := apidocs.Handler("dev")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /docs: %d", rec.Code)
	}
	page := rec.Body.String()
	hd := rec.Header()
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	} {
		if got := hd.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := hd.Get("Content-Security-Policy")
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %s", csp, bad)
		}
	}
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	// Every inline block of the page is allowed by its hash, and nothing else.
	check := func(directive string, re *regexp.Regexp) {
		var want []string
		for _, m := range re.FindAllStringSubmatch(page, -1) {
			sum := sha256.Sum256([]byte(m[1]))
			want = append(want, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		if len(want) == 0 {
			t.Errorf("no inline %s block found: the page changed shape", directive)
		}
		var got []string
		for d := range strings.SplitSeq(csp, ";") {
			f := strings.Fields(d)
			if len(f) > 0 && f[0] == directive {
				got = f[1:]
			}
		}
		want = append([]string{"'self'"}, want...)
		if !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", directive, got, want)
		}
	}
	check("script-src", scriptBlock)
	check("style-src", styleBlock)

	// Every URL the page loads is relative to …/docs, so a path prefix in
	// front of it is kept; and each is served.
	var assets []string
	for _, m := range srcAttr.FindAllStringSubmatch(page, -1) {
		u := m[1]
		if !strings.HasPrefix(u, "docs/") {
			t.Errorf("the page loads %q, which is not under the relative docs/", u)
			continue
		}
		assets = append(assets, strings.TrimPrefix(u, "docs/"))
	}
	if !strings.Contains(page, `"swaggerJsonUrl":"../openapi.json"`) {
		t.Error(`the page does not fetch the document from "../openapi.json"`)
	}
	if !strings.Contains(page, "persistAuthorization: true") {
		t.Error("persistAuthorization is not on")
	}
	doc := mustDoc(t)
	var enum []string
	for _, v := range doc.Paths.Value("/docs/{asset}").Get.Parameters.GetByInAndName("path", "asset").Schema.Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(assets)
	sort.Strings(enum)
	if !slices.Equal(assets, enum) {
		t.Errorf("the page loads %q but the document's asset enum is %q", assets, enum)
	}
	for _, a := range assets {
		for _, gz := range []bool{false, true} {
			req := httptest.NewRequest(http.MethodGet, "/docs/"+a, nil)
			if gz {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Body.Len() < 100 {
				t.Errorf("GET /docs/%s (gzip %v): %d, %d bytes", a, gz, rec.Code, rec.Body.Len())
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=3600" {
				t.Errorf("GET /docs/%s: Cache-Control %q", a, cc)
			}
			if enc := rec.Header().Get("Content-Encoding"); (enc == "gzip") != (gz && !strings.HasSuffix(a, ".png")) {
				t.Errorf("GET /docs/%s (gzip accepted %v): Content-Encoding %q", a, gz, enc)
			}
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/docs/oauth2-redirect.html", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /docs/oauth2-redirect.html: %d, want 404 (only the page's assets are routes)", rec.Code)
	}
}

func TestRoutesMatchTheDocument(t *testing.T) {
	doc := mustDoc(t)
	var got []string
	for _, rt := range apidocs.Routes("dev") {
		got = append(got, rt.Pattern)
	}
	var want []string
	for _, p := range []string{"/openapi.json", "/docs", "/docs/{asset}"} {
		item := doc.Paths.Value(p)
		if item == nil || item.Get == nil || len(item.Operations()) != 1 {
			t.Fatalf("%s: want exactly GET in the document", p)
		}
		if p != "/docs/{asset}" {
			want = append(want, "GET "+p)
			continue
		}
		for _, v := range item.Get.Parameters.GetByInAndName("path", "asset").Schema.Value.Enum {
			want = append(want, "GET /docs/"+v.(string))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("Routes: %q\ndocument: %q", got, want)
	}
}
