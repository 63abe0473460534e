package contracttest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/octostore/octostore/functions/apidocs"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
)

const token = "os_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// tiny is a small handler that answers a few routes as the contract says,
// to exercise the Validator without the real handlers.
func tiny() http.Handler {
	mux := http.NewServeMux()
	common := func(w http.ResponseWriter) {
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	js := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, code string) {
		js(w, status, map[string]string{"error": "it failed", "code": code, "request_id": "req-1"})
	}
	authed := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", "Bearer")
				fail(w, http.StatusUnauthorized, "unauthorized")
				return
			}
			next(w, r)
		}
	}
	mux.HandleFunc("POST /locks/{name}/acquire", authed(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "bad name" {
			fail(w, http.StatusBadRequest, "invalid_name")
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && err != io.EOF {
			fail(w, http.StatusBadRequest, "invalid_json")
			return
		}
		if _, ok := body["ttl"]; ok {
			fail(w, http.StatusBadRequest, "invalid_json")
			return
		}
		js(w, http.StatusOK, map[string]any{"status": "acquired", "lease_id": "l1", "fencing_token": 1,
			"expires_at": "2026-11-27T22:43:02.123Z", "ttl_seconds": 60})
	}))
	mux.HandleFunc("GET /locks/{name}", authed(func(w http.ResponseWriter, r *http.Request) {
		js(w, http.StatusOK, map[string]any{"name": r.PathValue("name"), "status": "free"})
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		common(w)
		if _, pattern := mux.Handler(r); pattern == "" {
			switch {
			case r.URL.Path == "/locks/x" || r.URL.Path == "/locks/x/acquire":
				allow := "GET, HEAD"
				if strings.HasSuffix(r.URL.Path, "acquire") {
					allow = "POST"
				}
				w.Header().Set("Allow", allow)
				fail(w, http.StatusMethodNotAllowed, "method_not_allowed")
			default:
				fail(w, http.StatusNotFound, "not_found")
			}
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// TestWrapPassesAConformingHandler runs a session through a conforming
// handler: the Validator must stay silent and record what it saw.
func TestWrapPassesAConformingHandler(t *testing.T) {
	v := contracttest.Load(t, apidocs.Document("dev"))
	srv := httptest.NewServer(v.Wrap(tiny()))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		method, path, body, auth string
		want                     int
	}{
		{"POST", "/locks/x/acquire", `{"ttl_seconds":5}`, token, 200},
		{"POST", "/locks/x/acquire", ``, token, 200},
		{"POST", "/locks/x/acquire", `{"ttl":5}`, token, 400},
		{"POST", "/locks/bad%20name/acquire", ``, token, 400},
		{"POST", "/locks/x/acquire", ``, "", 401},
		{"GET", "/locks/x", ``, token, 200},
		{"HEAD", "/locks/x", ``, token, 200},
		{"DELETE", "/locks/x", ``, token, 405},
		{"GET", "/locks/x/acquire", ``, token, 405},
		{"GET", "/nope", ``, "", 404},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if c.auth != "" {
			req.Header.Set("Authorization", "Bearer "+c.auth)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, res.StatusCode, c.want)
		}
	}
	covered := v.Covered()
	for _, want := range []string{"POST /locks/{name}/acquire 200", "POST /locks/{name}/acquire 400", "GET /locks/{name} 405", "POST /locks/{name}/acquire 405", "(unknown route) 404"} {
		if !slices.Contains(covered, want) {
			t.Errorf("Covered() = %q lacks %q", covered, want)
		}
	}
	if uncovered := v.Uncovered(); slices.Contains(uncovered, "POST /locks/{name}/acquire 200") || !slices.Contains(uncovered, "GET /health 200") {
		t.Errorf("Uncovered() = %q", uncovered)
	}
}

// exchange is one crafted request and answer for Validator.Check.
type exchange struct {
	method, path, reqBody string
	auth                  bool
	status                int
	header                http.Header
	resBody               string
}

func goodHeader(extra ...string) http.Header {
	h := http.Header{
		"X-Request-Id":           {"req-1"},
		"Cache-Control":          {"no-store"},
		"X-Content-Type-Options": {"nosniff"},
		"Content-Type":           {"application/json; charset=utf-8"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func (e exchange) check(v *contracttest.Validator) error {
	req := httptest.NewRequest(e.method, e.path, strings.NewReader(e.reqBody))
	if e.auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return v.Check(context.Background(), req, []byte(e.reqBody), e.status, e.header, []byte(e.resBody))
}

const acquired = `{"status":"acquired","lease_id":"l1","fencing_token":1,"expires_at":"2026-11-27T22:43:02.123Z","ttl_seconds":60}`

// TestCheckCatches shows that each kind of breach of the document is
// reported, next to the same exchange done right.
func TestCheckCatches(t *testing.T) {
	v := contracttest.Load(t, apidocs.Document("dev"))
	good := exchange{"POST", "/locks/x/acquire", `{"ttl_seconds":5}`, true, 200, goodHeader(), acquired}
	if err := good.check(v); err != nil {
		t.Fatalf("the good exchange fails: %v", err)
	}
	bad := map[string]func(e *exchange){
		"an undocumented field": func(e *exchange) {
			e.resBody = strings.Replace(acquired, `{`, `{"extra":1,`, 1)
		},
		"a missing field": func(e *exchange) { e.resBody = strings.Replace(acquired, `"lease_id":"l1",`, ``, 1) },
		"a wrong type": func(e *exchange) {
			e.resBody = strings.Replace(acquired, `"fencing_token":1`, `"fencing_token":"1"`, 1)
		},
		"a wrong status value":   func(e *exchange) { e.resBody = strings.Replace(acquired, `"acquired"`, `"held"`, 1) },
		"an undocumented status": func(e *exchange) { e.status = http.StatusTeapot },
		"a missing X-Request-Id": func(e *exchange) { e.header.Del("X-Request-Id") },
		"an undocumented header": func(e *exchange) { e.header.Set("X-Powered-By", "go") },
		"a non-JSON body":        func(e *exchange) { e.header.Set("Content-Type", "text/plain") },
		"success for a bad name": func(e *exchange) { e.path = "/locks/a%2Fb/acquire" },
		"success for a bad body": func(e *exchange) { e.reqBody = `{"ttl":5}` },
		"success for a TTL out of range": func(e *exchange) {
			e.reqBody = `{"ttl_seconds":0}`
		},
		"success without a token":  func(e *exchange) { e.auth = false },
		"a 401 without its header": func(e *exchange) { e.status, e.resBody = 401, `{"error":"e","code":"unauthorized","request_id":"r"}` },
		"a 401 with a wrong code": func(e *exchange) {
			e.status, e.resBody = 401, `{"error":"e","code":"nope","request_id":"r"}`
			e.header.Set("WWW-Authenticate", "Bearer")
		},
		"a 503 without Retry-After": func(e *exchange) {
			e.status, e.resBody = 503, `{"error":"e","code":"store_unavailable","request_id":"r"}`
		},
		"an error without request_id": func(e *exchange) {
			e.status, e.resBody = 400, `{"error":"e","code":"invalid_ttl"}`
		},
		"a 400 with another status's code": func(e *exchange) {
			e.status, e.resBody = 400, `{"error":"e","code":"lease_not_current","request_id":"r"}`
		},
		"a 200 for an unknown route": func(e *exchange) { e.path = "/locks/x/steal" },
		"a 200 for an undocumented method": func(e *exchange) {
			e.method = "PUT"
		},
		"a plain-text 405": func(e *exchange) {
			e.method, e.status, e.resBody = "PUT", 405, "Method Not Allowed"
			e.header.Set("Allow", "POST")
			e.header.Set("Content-Type", "text/plain; charset=utf-8")
		},
		"a 405 with a wrong Allow": func(e *exchange) {
			e.method, e.status, e.resBody = "PUT", 405, `{"error":"e","code":"method_not_allowed","request_id":"r"}`
			e.header.Set("Allow", "POST, PUT")
		},
		"a 200 for a trailing slash": func(e *exchange) { e.path = "/locks/x/acquire/" },
		"a 400 for a trailing slash": func(e *exchange) {
			e.path, e.status, e.resBody = "/locks/x/acquire/", 400, `{"error":"e","code":"invalid_name","request_id":"r"}`
		},
		"a 200 for a dot segment":                func(e *exchange) { e.path = "/locks/./acquire" },
		"a 200 for an empty name":                func(e *exchange) { e.path = "/locks//acquire" },
		"success for a name decoding to a slash": func(e *exchange) { e.path = "/locks/%2F/acquire" },
		"a 404 not_found for an unknown route without X-Request-Id": func(e *exchange) {
			e.path, e.status, e.resBody = "/nope", 404, `{"error":"e","code":"not_found","request_id":"r"}`
			e.header.Del("X-Request-Id")
		},
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			e := good
			e.header = good.header.Clone()
			mutate(&e)
			if err := e.check(v); err == nil {
				t.Errorf("not reported: %+v", e)
			} else {
				t.Logf("reported: %v", firstLine(err.Error()))
			}
		})
	}
	// The right answers to the same mistakes pass.
	for name, e := range map[string]exchange{
		"400 for a bad name": {"POST", "/locks/a%2Fb/acquire", ``, true, 400, goodHeader(), `{"error":"e","code":"invalid_name","request_id":"r"}`},
		"401 without a token": {"POST", "/locks/x/acquire", ``, false, 401, goodHeader("WWW-Authenticate", `Bearer realm="octostore"`),
			`{"error":"e","code":"unauthorized","request_id":"r"}`},
		"405 with Allow": {"PUT", "/locks/x/acquire", ``, true, 405, goodHeader("Allow", "POST"), `{"error":"e","code":"method_not_allowed","request_id":"r"}`},
		"405 with HEAD":  {"DELETE", "/locks", ``, true, 405, goodHeader("Allow", "GET, HEAD"), `{"error":"e","code":"method_not_allowed","request_id":"r"}`},
		"404":            {"GET", "/nope", ``, false, 404, goodHeader(), `{"error":"e","code":"not_found","request_id":"r"}`},
		"503": {"POST", "/locks/x/acquire", ``, true, 503, goodHeader("Retry-After", "1"),
			`{"error":"e","code":"store_unavailable","request_id":"r"}`},
		"409 held": {"POST", "/locks/x/acquire", ``, true, 409, goodHeader(),
			`{"status":"held","holder_id":"h","expires_at":"2026-11-27T22:43:02.123Z","retry_after_ms":5,"metadata":"m"}`},
		"free lock":                    {"GET", "/locks/x", ``, true, 200, goodHeader(), `{"name":"x","status":"free"}`},
		"HEAD":                         {"HEAD", "/locks/x", ``, true, 200, goodHeader(), ``},
		"an escaped dot is a name":     {"POST", "/locks/%2E/acquire", ``, true, 200, goodHeader(), acquired},
		"an escaped dot-dot is a name": {"GET", "/locks/%2E%2E", ``, true, 200, goodHeader(), `{"name":"..","status":"free"}`},
		"a whitespace body is no body": {"POST", "/locks/x/acquire", " \n\t", true, 200, goodHeader(), acquired},
		"a trailing slash is no route": {"POST", "/locks/x/acquire/", ``, true, 404, goodHeader(), `{"error":"e","code":"not_found","request_id":"r"}`},
		"a dot segment is no route":    {"GET", "/locks/x/..", ``, true, 404, goodHeader(), `{"error":"e","code":"not_found","request_id":"r"}`},
		"an empty name is no route":    {"POST", "/locks//acquire", ``, true, 404, goodHeader(), `{"error":"e","code":"not_found","request_id":"r"}`},
	} {
		if err := e.check(v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestCheckBearerShape holds the Authorization header of a request answered
// 200 to the shape the document's bearer scheme asks for.
func TestCheckBearerShape(t *testing.T) {
	v := contracttest.Load(t, apidocs.Document("dev"))
	for _, c := range []struct {
		values []string
		ok     bool
	}{
		{[]string{"Bearer " + token}, true},
		{[]string{"bearer " + token}, true},
		{[]string{"  BEARER   " + token + "  "}, true},
		{nil, false},
		{[]string{"Bearer"}, false},
		{[]string{"Bearer a b"}, false},
		{[]string{"Basic " + token}, false},
		{[]string{"Bearer " + token, "Bearer " + token}, false},
	} {
		req := httptest.NewRequest("POST", "/locks/x/acquire", nil)
		for _, val := range c.values {
			req.Header.Add("Authorization", val)
		}
		err := v.Check(context.Background(), req, nil, 200, goodHeader(), []byte(acquired))
		if (err == nil) != c.ok {
			t.Errorf("Authorization %q answered 200: error %v, want ok=%v", c.values, err, c.ok)
		}
	}
}

// TestWrapSkipsWhatNoClientSees shows the two exchanges Wrap records but
// does not check, and that WithT sends a failure to the request's t.
func TestWrapSkipsWhatNoClientSees(t *testing.T) {
	v := contracttest.Load(t, apidocs.Document("dev"))
	teapot := v.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusTeapot)
	}))

	cut := httptest.NewRequest("POST", "/locks/x/acquire", io.MultiReader(strings.NewReader(`{"ttl`), errorReader{}))
	teapot.ServeHTTP(httptest.NewRecorder(), cut)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := httptest.NewRequest("POST", "/locks/x/acquire", nil).WithContext(ctx)
	teapot.ServeHTTP(httptest.NewRecorder(), gone)

	if got := v.Covered(); !slices.Equal(got, []string{"(client gone) 418", "(incomplete request) 418"}) {
		t.Errorf("Covered() = %q", got)
	}

	c := &captureT{TB: t}
	seen := httptest.NewRequest("POST", "/locks/x/acquire", nil)
	teapot.ServeHTTP(httptest.NewRecorder(), seen.WithContext(contracttest.WithT(seen.Context(), c)))
	if len(c.errs) != 1 || !strings.Contains(c.errs[0], "418") {
		t.Errorf("a 418 was reported as %q, want one failure", c.errs)
	}
}

// errorReader fails every read, as a connection cut mid-body does.
type errorReader struct{}

func (errorReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// captureT records Errorf instead of failing the test.
type captureT struct {
	testing.TB
	errs []string
}

func (c *captureT) Errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}
func (c *captureT) Helper() {}

// TestTransportChecksFromTheClientSide drives a handler over real HTTP
// through Transport: a conforming answer passes, a breach is reported to
// the request's t, and the caller still gets the answer unchanged.
func TestTransportChecksFromTheClientSide(t *testing.T) {
	srv := httptest.NewServer(tiny())
	t.Cleanup(srv.Close)
	v := contracttest.New(t)
	client := &http.Client{Transport: v.Transport(nil)}
	send := func(c *captureT, method, path, body string) (int, string) {
		req, _ := http.NewRequestWithContext(contracttest.WithT(context.Background(), c), method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	ok := &captureT{TB: t}
	if st, body := send(ok, "POST", "/locks/x/acquire", `{"ttl_seconds":5}`); st != 200 || !strings.Contains(body, `"fencing_token":1`) || len(ok.errs) != 0 {
		t.Errorf("conforming exchange: %d %s, reported %q", st, body, ok.errs)
	}
	// tiny answers a GET of a name with a space 200, which the document
	// forbids (the name is invalid).
	bad := &captureT{TB: t}
	if st, _ := send(bad, "GET", "/locks/a%20b", ""); st != 200 || len(bad.errs) != 1 || !strings.Contains(bad.errs[0], "invalid") {
		t.Errorf("breach: %d, reported %q", st, bad.errs)
	}
	if got := v.Covered(); !slices.Contains(got, "GET /locks/{name} 200") || !slices.Contains(got, "POST /locks/{name}/acquire 200") {
		t.Errorf("Covered() = %q", got)
	}
}
