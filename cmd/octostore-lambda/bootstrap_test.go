package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// Event formats the bootstrap serves.
const (
	fmtHTTPAPI      = "http-api"       // HTTP API, payload 2.0, $default stage (the template)
	fmtHTTPAPIStage = "http-api-stage" // HTTP API, payload 2.0, named stage "prod"
	fmtFunctionURL  = "function-url"   // Lambda Function URL (payload 2.0 shape)
	fmtRESTAPI      = "rest-api"       // REST API, payload 1.0
)

// testRequest is one HTTP request of a scenario, independent of how it is
// delivered.
type testRequest struct {
	name      string
	method    string
	path      string // escaped path, without query
	query     string // raw query, without '?'
	auth      string // "own" (current token), "old" (before rotation), "unknown", "malformed", "" (none)
	requestID string // X-Request-Id to send, "" for none
	body      string
	b64       bool   // deliver the body base64-encoded (as API Gateway does for binary media)
	ctype     string // Content-Type to send, "" for none
	want      int    // expected status (checked on the in-test handler), 0 for "whatever it is"
}

// testResponse is an answer, whatever carried it.
type testResponse struct {
	status  int
	headers map[string]string // canonical name -> values joined by ","
	cookies []string
	body    []byte
}

// creds is the bearer token state of one side of a comparison.
type creds struct{ token, old string }

func (c *creds) header(kind string) string {
	switch kind {
	case "own":
		return "Bearer " + c.token
	case "old":
		return "Bearer " + c.old
	case "unknown":
		return "Bearer os_" + strings.Repeat("A", 43)
	case "malformed":
		return "Bearer nope"
	}
	return ""
}

// after updates the token after a successful rotation.
func (c *creds) after(r testRequest, resp testResponse) {
	if r.path == "/auth/token/rotate" && resp.status == http.StatusOK {
		var v struct{ Token string }
		if json.Unmarshal(resp.body, &v) == nil && v.Token != "" {
			c.old, c.token = c.token, v.Token
		}
	}
}

// refSide is the handler itself, called through httptest.
type refSide struct {
	h http.Handler
	creds
}

func (s *refSide) do(t *testing.T, r testRequest) testResponse {
	t.Helper()
	target := "https://api.example.com" + r.path
	if r.query != "" {
		target += "?" + r.query
	}
	req := httptest.NewRequest(r.method, target, strings.NewReader(r.body))
	for k, v := range requestHeaders(r, &s.creds) {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	res := rec.Result()
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := testResponse{status: res.StatusCode, headers: map[string]string{}, body: body}
	for k, v := range res.Header {
		if k == "Set-Cookie" {
			out.cookies = append(out.cookies, v...)
			continue
		}
		out.headers[k] = strings.Join(v, ",")
	}
	s.creds.after(r, out)
	return out
}

// requestHeaders are the headers a client sends for r (canonical names).
func requestHeaders(r testRequest, c *creds) map[string]string {
	h := map[string]string{"User-Agent": "curl/8.5.0", "Accept": "*/*"}
	if a := c.header(r.auth); a != "" {
		h["Authorization"] = a
	}
	if r.requestID != "" {
		h["X-Request-Id"] = r.requestID
	}
	if r.ctype != "" {
		h["Content-Type"] = r.ctype
	}
	return h
}

// lambdaSide is a bootstrap process fed events of one format.
type lambdaSide struct {
	b      *bootstrap
	format string
	creds
}

func (s *lambdaSide) do(t *testing.T, r testRequest) testResponse {
	t.Helper()
	payload, err := json.Marshal(event(s.format, r, requestHeaders(r, &s.creds)))
	if err != nil {
		t.Fatal(err)
	}
	res := s.b.api.enqueue(payload).wait(t, s.b)
	if res.failed {
		t.Fatalf("%s: function error %s: %s", r.name, res.errorType, res.body)
	}
	out := decodeResponse(t, s.format, res.body)
	s.creds.after(r, out)
	return out
}

// event builds the Lambda event API Gateway (or a Function URL) would send
// for r.
func event(format string, r testRequest, headers map[string]string) any {
	body := r.body
	if r.b64 {
		body = base64.StdEncoding.EncodeToString([]byte(r.body))
	}
	now := time.Now()
	if format == fmtRESTAPI {
		single := map[string]string{}
		multi := map[string][]string{}
		for k, v := range headers {
			single[k] = v
			multi[k] = []string{v}
		}
		var qs map[string]string
		var mqs map[string][]string
		if r.query != "" {
			vals, _ := url.ParseQuery(r.query)
			qs, mqs = map[string]string{}, map[string][]string(vals)
			for k, v := range vals {
				qs[k] = v[len(v)-1]
			}
		}
		return events.APIGatewayProxyRequest{
			Resource: "/{proxy+}", Path: r.path, HTTPMethod: r.method,
			Headers: single, MultiValueHeaders: multi,
			QueryStringParameters: qs, MultiValueQueryStringParameters: mqs,
			PathParameters: map[string]string{"proxy": strings.TrimPrefix(r.path, "/")},
			RequestContext: events.APIGatewayProxyRequestContext{
				AccountID: "123456789012", ResourceID: "abc123", Stage: "prod",
				RequestID: "rest-" + r.name, ResourcePath: "/{proxy+}", HTTPMethod: r.method,
				APIID: "restapi01", DomainName: "restapi01.execute-api.eu-west-1.amazonaws.com",
				Path:             "/prod" + r.path,
				RequestTimeEpoch: now.UnixMilli(),
				Identity:         events.APIGatewayRequestIdentity{SourceIP: "203.0.113.9", UserAgent: headers["User-Agent"]},
			},
			Body: body, IsBase64Encoded: r.b64,
		}
	}
	lower := map[string]string{}
	for k, v := range headers {
		lower[strings.ToLower(k)] = v
	}
	// An HTTP API's rawPath is the path percent-decoded (it is not raw);
	// a Function URL's keeps the client's escapes.
	decoded := r.path
	if p, err := url.PathUnescape(r.path); err == nil {
		decoded = p
	}
	rawPath, stage, routeKey, domain := decoded, "$default", "ANY /{proxy+}", "abcdef1234.execute-api.eu-west-1.amazonaws.com"
	params := map[string]string{"proxy": strings.TrimPrefix(decoded, "/")}
	switch format {
	case fmtHTTPAPIStage:
		rawPath, stage = "/prod"+decoded, "prod"
	case fmtFunctionURL:
		rawPath, routeKey, domain, params = r.path, "$default", "abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws", nil
	}
	if r.path == "/" && format != fmtFunctionURL {
		routeKey, params = "ANY /", nil
	}
	var qs map[string]string
	if r.query != "" {
		vals, _ := url.ParseQuery(r.query)
		qs = map[string]string{}
		for k, v := range vals {
			qs[k] = strings.Join(v, ",")
		}
	}
	return events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: routeKey, RawPath: rawPath, RawQueryString: r.query,
		Headers: lower, QueryStringParameters: qs, PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: routeKey, AccountID: "123456789012", Stage: stage, RequestID: "v2-" + r.name,
			APIID: strings.SplitN(domain, ".", 2)[0], DomainName: domain, DomainPrefix: strings.SplitN(domain, ".", 2)[0],
			Time: now.UTC().Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.method, Path: rawPath, Protocol: "HTTP/1.1", SourceIP: "203.0.113.9", UserAgent: headers["User-Agent"],
			},
		},
		Body: body, IsBase64Encoded: r.b64,
	}
}

// decodeResponse reads the bootstrap's answer for the given event format.
func decodeResponse(t *testing.T, format string, raw []byte) testResponse {
	t.Helper()
	out := testResponse{headers: map[string]string{}}
	var body string
	var b64 bool
	if format == fmtRESTAPI {
		var r events.APIGatewayProxyResponse
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("response %s: %v", raw, err)
		}
		out.status, body, b64 = r.StatusCode, r.Body, r.IsBase64Encoded
		for k, v := range r.Headers {
			out.headers[http.CanonicalHeaderKey(k)] = v
		}
		for k, v := range r.MultiValueHeaders {
			if http.CanonicalHeaderKey(k) == "Set-Cookie" {
				out.cookies = append(out.cookies, v...)
				continue
			}
			out.headers[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
		}
	} else {
		var r events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("response %s: %v", raw, err)
		}
		out.status, body, b64, out.cookies = r.StatusCode, r.Body, r.IsBase64Encoded, r.Cookies
		for k, v := range r.Headers {
			out.headers[http.CanonicalHeaderKey(k)] = v
		}
		for k, v := range r.MultiValueHeaders {
			out.headers[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
		}
	}
	out.body = []byte(body)
	if b64 {
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			t.Fatalf("response body flagged base64 does not decode: %v", err)
		}
		out.body = b
	}
	return out
}

var (
	timeRE    = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	accountRE = regexp.MustCompile(`^acct_[0-9a-f]{20}$`)
)

// fenceNames numbers the fencing tokens one side of a comparison has
// shown, in the order it first showed them, so that two sides whose tokens
// differ in value (they follow the store's clock) still compare equal when
// they hand out and repeat tokens alike. Each side is one account, so a
// token shown for the first time must be above every one shown before.
type fenceNames map[string]int

// above reports whether token i is above every token in f.
func (f fenceNames) above(i int64) bool {
	for v := range f {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n >= i {
			return false
		}
	}
	return true
}

// normalize renders resp as text with the values that legitimately differ
// between two deployments (generated request ids, times, generated lease
// ids, holder ids, account ids, tokens, fencing tokens as numbered by
// fences) replaced by placeholders. A value that does not have the shape
// of what it stands for is kept, and reported, so a broken value can never
// be hidden by a placeholder.
func normalize(r testRequest, resp testResponse, fences fenceNames) (string, []string) {
	var problems []string
	var b strings.Builder
	fmt.Fprintf(&b, "status %d\n", resp.status)
	reqID := resp.headers["X-Request-Id"]
	for _, k := range slices.Sorted(maps.Keys(resp.headers)) {
		v := resp.headers[k]
		if k == "X-Request-Id" {
			switch {
			case r.requestID != "" && v != r.requestID:
				problems = append(problems, fmt.Sprintf("X-Request-Id %q, sent %q", v, r.requestID))
			case r.requestID == "" && validRequestID(v):
				v = "<generated>"
			case r.requestID == "":
				problems = append(problems, fmt.Sprintf("generated X-Request-Id %q is malformed", v))
			}
		}
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	for _, c := range resp.cookies {
		fmt.Fprintf(&b, "cookie: %s\n", c)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(resp.body))
	dec.UseNumber()
	// The OpenAPI document is served as it is (its examples are not
	// answers), so it is compared byte for byte.
	if r.path == "/openapi.json" || !strings.HasPrefix(resp.headers["Content-Type"], "application/json") || dec.Decode(&doc) != nil {
		b.WriteString("raw body:\n")
		b.Write(resp.body)
		return b.String(), problems
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				s, isString := x.(string)
				ok := true
				switch k {
				case "request_id":
					if ok = s == reqID; ok {
						x = "<request_id>"
					}
				case "expires_at":
					if ok = timeRE.MatchString(s); ok {
						x = "<time>"
					}
				case "fencing_token":
					n, isNum := x.(json.Number)
					i, err := n.Int64()
					if ok = isNum && err == nil && i > 0; ok {
						if _, seen := fences[n.String()]; !seen {
							if !fences.above(i) {
								problems = append(problems, fmt.Sprintf("new fencing_token %d is not above every token this side showed before", i))
							}
							fences[n.String()] = len(fences) + 1
						}
						x = fmt.Sprintf("<fence %d>", fences[n.String()])
					}
				case "retry_after_ms":
					n, isNum := x.(json.Number)
					i, err := n.Int64()
					if ok = isNum && err == nil && i >= 0; ok {
						x = "<ms>"
					}
				case "holder_id":
					if ok = isString && s != ""; ok {
						x = "<holder_id>"
					}
				case "account_id":
					if ok = accountRE.MatchString(s); ok {
						x = "<account_id>"
					}
				case "token":
					_, err := lockcore.ParseToken(s)
					if ok = err == nil; ok {
						x = "<token>"
					}
				case "lease_id":
					if uuidRE.MatchString(s) {
						x = "<generated lease>"
					}
				default:
					x = walk(x)
				}
				if !ok {
					problems = append(problems, fmt.Sprintf("%s %v has the wrong shape", k, x))
				}
				v[k] = x
			}
			return v
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
			return v
		}
		return v
	}
	doc = walk(doc)
	b.WriteString("json body:\n")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(doc)
	return b.String(), problems
}

// scenario is the request sequence every side runs, in order; each step
// depends on the state the previous ones left.
func scenario() []testRequest {
	big := `{"metadata":"` + strings.Repeat("x", 17*1024) + `"}`
	return []testRequest{
		{name: "health", method: "GET", path: "/health", requestID: "req-health", want: 200},
		{name: "acquire", method: "POST", path: "/locks/build/acquire", auth: "own", requestID: "req-1", ctype: "application/json",
			body: `{"ttl_seconds":30,"lease_id":"lease-a","metadata":"host-1"}`, want: 200},
		{name: "acquire retry", method: "POST", path: "/locks/build/acquire", auth: "own",
			body: `{"ttl_seconds":30,"lease_id":"lease-a"}`, want: 200},
		{name: "held", method: "POST", path: "/locks/build/acquire", auth: "own", requestID: "req-held",
			body: `{"lease_id":"lease-b"}`, want: 409},
		{name: "renew", method: "POST", path: "/locks/build/renew", auth: "own", body: `{"lease_id":"lease-a","ttl_seconds":45}`, want: 200},
		{name: "renew not current", method: "POST", path: "/locks/build/renew", auth: "own", body: `{"lease_id":"lease-zz"}`, want: 409},
		{name: "status held", method: "GET", path: "/locks/build", auth: "own", want: 200},
		{name: "acquire generated lease", method: "POST", path: "/locks/deploy.prod/acquire", auth: "own", want: 200},
		{name: "acquire base64 body", method: "POST", path: "/locks/b64/acquire", auth: "own", b64: true, ctype: "application/octet-stream",
			body: `{"lease_id":"lease-c","metadata":"sent base64"}`, want: 200},
		{name: "list", method: "GET", path: "/locks", auth: "own", want: 200},
		{name: "list with query", method: "GET", path: "/locks", query: "verbose=1&x=a%20b", auth: "own", want: 200},
		{name: "invalid name", method: "POST", path: "/locks/bad*name/acquire", auth: "own", requestID: "req-badname", want: 400},
		{name: "invalid ttl", method: "POST", path: "/locks/build2/acquire", auth: "own", body: `{"ttl_seconds":0}`, want: 400},
		{name: "unknown field", method: "POST", path: "/locks/build2/acquire", auth: "own", body: `{"ttl":5}`, want: 400},
		// Every event format must carry the query string to the handler,
		// which refuses a body field sent there.
		{name: "ttl in the query string", method: "POST", path: "/locks/build2/acquire", query: "x=1&ttl%5Fseconds=3600", auth: "own", want: 400},
		{name: "metadata too long", method: "POST", path: "/locks/build2/acquire", auth: "own", body: `{"metadata":"` + strings.Repeat("m", 1025) + `"}`, want: 400},
		{name: "body too large", method: "POST", path: "/locks/build2/acquire", auth: "own", body: big, want: 413},
		{name: "no token", method: "GET", path: "/locks", want: 401},
		{name: "unknown token", method: "POST", path: "/locks/build/release", auth: "unknown", body: `{"lease_id":"lease-a"}`, want: 401},
		{name: "malformed token and bad body", method: "POST", path: "/locks/build/acquire", auth: "malformed", body: `{`, want: 401},
		{name: "release", method: "POST", path: "/locks/build/release", auth: "own", body: `{"lease_id":"lease-a"}`, want: 200},
		{name: "release again", method: "POST", path: "/locks/build/release", auth: "own", body: `{"lease_id":"lease-a"}`, want: 409},
		{name: "status free", method: "GET", path: "/locks/build", auth: "own", want: 200},
		{name: "unknown route", method: "GET", path: "/nope", want: 404},
		{name: "wrong method", method: "DELETE", path: "/locks/build", auth: "own", want: 405},
		{name: "escaped name", method: "GET", path: "/locks/%41bc", auth: "own"},
		// "%41" is not a lock name: the escaped '%' must not be decoded
		// a second time into the lock "A".
		{name: "double-escaped name", method: "POST", path: "/locks/%2541/acquire", auth: "own", want: 400},
		{name: "double-escaped name status", method: "GET", path: "/locks/%2541", auth: "own", want: 400},
		{name: "root", method: "GET", path: "/"},
		{name: "openapi", method: "GET", path: "/openapi.json"},
		{name: "docs", method: "GET", path: "/docs"},
		{name: "github sign-in", method: "GET", path: "/auth/github"},
		{name: "rotate", method: "POST", path: "/auth/token/rotate", auth: "own", want: 200},
		{name: "old token", method: "GET", path: "/locks", auth: "old", want: 401},
		{name: "new token", method: "GET", path: "/locks", auth: "own", want: 200},
	}
}

// newAccount makes an operator account with login in the store at url
// under prefix and returns a token for it.
func newAccount(t *testing.T, redisURL, prefix, login string) string {
	t.Helper()
	ctx := context.Background()
	st, err := redisstore.Open(ctx, redisstore.Config{URL: redisURL, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, _, err := st.EnsureAccount(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	token, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		t.Fatal(err)
	}
	return token
}

// newRefSide builds the handler the bootstrap builds, from the same
// configuration, over Redis at redisURL with prefix, in-process.
func newRefSide(t *testing.T, redisURL, prefix string) *refSide {
	t.Helper()
	cfg, err := loadConfig(envOf(map[string]string{envRedisURL: redisURL, envRedisPrefix: prefix}))
	if err != nil {
		t.Fatal(err)
	}
	st, err := redisstore.Open(context.Background(), cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := contracttest.Wrap(t, functions.New(cfg.deps(st, nil, slog.New(slog.DiscardHandler), testVersion)))
	return &refSide{h: h, creds: creds{token: newAccount(t, redisURL, prefix, "alice")}}
}

// newLambdaSide starts a bootstrap over Redis at redisURL with prefix, fed
// events of format.
func newLambdaSide(t *testing.T, redisURL, prefix, format string) *lambdaSide {
	t.Helper()
	b := startBootstrap(t, newRuntimeAPI(t), map[string]string{envRedisURL: redisURL, envRedisPrefix: prefix})
	return &lambdaSide{b: b, format: format, creds: creds{token: newAccount(t, redisURL, prefix, "alice")}}
}

// TestBootstrapMatchesHandler runs one scenario through the in-process
// handler and through the built bootstrap fed each event format, each on
// its own key prefix of one Redis, and requires the same answers.
func TestBootstrapMatchesHandler(t *testing.T) {
	srv := redistest.Start(t)
	steps := scenario()

	ref := newRefSide(t, srv.URL(), "ref:")
	want := make([]testResponse, len(steps))
	for i, r := range steps {
		want[i] = ref.do(t, r)
		if r.want != 0 && want[i].status != r.want {
			t.Errorf("handler: %s: status %d, want %d; body %s", r.name, want[i].status, r.want, want[i].body)
		}
	}

	for _, format := range []string{fmtHTTPAPI, fmtHTTPAPIStage, fmtFunctionURL, fmtRESTAPI} {
		t.Run(format, func(t *testing.T) {
			lam := newLambdaSide(t, srv.URL(), "lam-"+format+":", format)
			gotFences, wantFences := fenceNames{}, fenceNames{}
			for i, r := range steps {
				got := lam.do(t, r)
				g, gp := normalize(r, got, gotFences)
				w, wp := normalize(r, want[i], wantFences)
				for _, p := range gp {
					t.Errorf("%s: bootstrap: %s", r.name, p)
				}
				for _, p := range wp {
					t.Errorf("%s: handler: %s", r.name, p)
				}
				if g != w {
					t.Errorf("%s %s %s: bootstrap and handler differ\n--- bootstrap:\n%s\n--- handler:\n%s", r.name, r.method, r.path, g, w)
				}
			}
		})
	}
}

// TestBootstrapOddEvents covers what only the Lambda path can receive: a
// path that is not a valid escaped URL path and a body flagged base64 that
// is not. Neither may become a function error (a 5xx at API Gateway).
func TestBootstrapOddEvents(t *testing.T) {
	srv := redistest.Start(t)
	lam := newLambdaSide(t, srv.URL(), "odd:", fmtHTTPAPI)

	got := lam.do(t, testRequest{name: "bad escape", method: "POST", path: "/locks/%zz/acquire", auth: "own"})
	if got.status != http.StatusBadRequest || !strings.Contains(string(got.body), `"code":"invalid_name"`) {
		t.Errorf("bad escape: %d %s, want 400 invalid_name", got.status, got.body)
	}

	ev := event(fmtHTTPAPI, testRequest{name: "bad base64", method: "POST", path: "/locks/x/acquire", requestID: "req-b64"},
		requestHeaders(testRequest{auth: "own", requestID: "req-b64"}, &lam.creds)).(events.APIGatewayV2HTTPRequest)
	ev.Body, ev.IsBase64Encoded = "***not base64***", true
	payload, _ := json.Marshal(ev)
	res := lam.b.api.enqueue(payload).wait(t, lam.b)
	if res.failed {
		t.Fatalf("bad base64: function error %s", res.body)
	}
	got = decodeResponse(t, fmtHTTPAPI, res.body)
	if got.status != http.StatusBadRequest || got.headers["X-Request-Id"] != "req-b64" ||
		!strings.HasPrefix(got.headers["Content-Type"], "application/json") ||
		!strings.Contains(string(got.body), `"request_id":"req-b64"`) {
		t.Errorf("bad base64: %d %v %s, want 400 JSON error echoing the request id", got.status, got.headers, got.body)
	}

	// A request id holding a token is not echoed there either: the
	// handler's rule (a fresh id instead).
	tokenID := "os_" + strings.Repeat("A", 43)
	ev = event(fmtHTTPAPI, testRequest{name: "bad base64, token id", method: "POST", path: "/locks/x/acquire", requestID: tokenID},
		requestHeaders(testRequest{auth: "own", requestID: tokenID}, &lam.creds)).(events.APIGatewayV2HTTPRequest)
	ev.Body, ev.IsBase64Encoded = "***not base64***", true
	payload, _ = json.Marshal(ev)
	res = lam.b.api.enqueue(payload).wait(t, lam.b)
	if res.failed {
		t.Fatalf("bad base64, token id: function error %s", res.body)
	}
	got = decodeResponse(t, fmtHTTPAPI, res.body)
	if rid := got.headers["X-Request-Id"]; got.status != http.StatusBadRequest || rid == "" || rid == tokenID ||
		strings.Contains(string(got.body), tokenID) || !strings.Contains(string(got.body), `"request_id":"`+rid+`"`) {
		t.Errorf("bad base64 with a token as the request id: %d %v %s, want 400 with a fresh request id", got.status, got.headers, got.body)
	}

	// The bootstrap still serves after all three.
	got = lam.do(t, testRequest{name: "after", method: "GET", path: "/locks", auth: "own"})
	if got.status != http.StatusOK {
		t.Errorf("after odd events: %d %s", got.status, got.body)
	}
}

// TestTwoBootstraps runs two bootstrap processes over one Redis and one key
// prefix, as two Lambda instances of one function are.
func TestTwoBootstraps(t *testing.T) {
	srv := redistest.Start(t)
	env := map[string]string{envRedisURL: srv.URL(), envRedisPrefix: "shared:"}
	token := newAccount(t, srv.URL(), "shared:", "team")
	one := &lambdaSide{b: startBootstrap(t, newRuntimeAPI(t), env), format: fmtHTTPAPI, creds: creds{token: token}}
	two := &lambdaSide{b: startBootstrap(t, newRuntimeAPI(t), env), format: fmtHTTPAPI, creds: creds{token: token}}

	got := one.do(t, testRequest{name: "acquire", method: "POST", path: "/locks/leader/acquire", auth: "own", body: `{"lease_id":"replica-1","ttl_seconds":60}`})
	if got.status != http.StatusOK {
		t.Fatalf("acquire through one: %d %s", got.status, got.body)
	}
	got = two.do(t, testRequest{name: "acquire", method: "POST", path: "/locks/leader/acquire", auth: "own", body: `{"lease_id":"replica-2"}`})
	if got.status != http.StatusConflict || !strings.Contains(string(got.body), `"status":"held"`) {
		t.Fatalf("acquire through two while one holds: %d %s, want 409 held", got.status, got.body)
	}
	got = two.do(t, testRequest{name: "status", method: "GET", path: "/locks/leader", auth: "own"})
	if got.status != http.StatusOK || !strings.Contains(string(got.body), `"lease_id":"replica-1"`) {
		t.Fatalf("status through two: %d %s, want held by replica-1", got.status, got.body)
	}

	got = one.do(t, testRequest{name: "rotate", method: "POST", path: "/auth/token/rotate", auth: "own"})
	if got.status != http.StatusOK || one.token == token {
		t.Fatalf("rotate through one: %d %s", got.status, got.body)
	}
	got = two.do(t, testRequest{name: "old token", method: "GET", path: "/locks", auth: "own"})
	if got.status != http.StatusUnauthorized {
		t.Fatalf("old token through two right after rotation: %d %s, want 401", got.status, got.body)
	}
	two.token = one.token
	got = two.do(t, testRequest{name: "new token", method: "GET", path: "/locks", auth: "own"})
	if got.status != http.StatusOK || !strings.Contains(string(got.body), `"count":1`) {
		t.Fatalf("new token through two: %d %s, want 200 with the one lock", got.status, got.body)
	}
}

// TestBootstrapRedisDownAtStart starts the bootstrap while Redis is down:
// it must start, answer 503, and serve once Redis is back, without a
// restart.
func TestBootstrapRedisDownAtStart(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	token, _ := lockcore.NewToken() // well-formed; Redis cannot be asked about it

	lam := &lambdaSide{b: startBootstrap(t, newRuntimeAPI(t), map[string]string{envRedisURL: srv.URL(), envRedisPrefix: "down:"}), format: fmtHTTPAPI, creds: creds{token: token}}
	got := lam.do(t, testRequest{name: "health down", method: "GET", path: "/health"})
	if got.status != http.StatusServiceUnavailable || !strings.Contains(string(got.body), `"status":"unavailable"`) {
		t.Errorf("health with Redis down: %d %s, want 503 unavailable", got.status, got.body)
	}
	got = lam.do(t, testRequest{name: "list down", method: "GET", path: "/locks", auth: "own"})
	if got.status != http.StatusServiceUnavailable || got.headers["Retry-After"] == "" || !strings.Contains(string(got.body), `"code":"store_unavailable"`) {
		t.Errorf("list with Redis down: %d %v %s, want 503 store_unavailable with Retry-After", got.status, got.headers, got.body)
	}
	if out := lam.b.waitOutput("redis does not answer at start-up"); !strings.Contains(out, "redis does not answer at start-up") {
		t.Errorf("no start-up warning about Redis in the log:\n%s", out)
	}
	// go-redis' own lines about the failed dials are JSON like the rest.
	out := lam.b.waitOutput(`"msg":"redis client"`)
	if !strings.Contains(out, `"msg":"redis client"`) {
		t.Errorf("no go-redis line in the log:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line that is not JSON: %q", line)
		}
	}

	srv.Restart() // empty again: no persistence in this test server
	token = newAccount(t, srv.URL(), "down:", "ops")
	lam.token = token
	got = lam.do(t, testRequest{name: "health up", method: "GET", path: "/health"})
	if got.status != http.StatusOK {
		t.Errorf("health once Redis is back: %d %s, want 200", got.status, got.body)
	}
	got = lam.do(t, testRequest{name: "acquire up", method: "POST", path: "/locks/x/acquire", auth: "own"})
	if got.status != http.StatusOK {
		t.Errorf("acquire once Redis is back: %d %s, want 200", got.status, got.body)
	}
}

// TestBootstrapInitFailure starts the bootstrap with bad configuration: it
// must report to /runtime/init/error, exit non-zero, write one JSON log
// line naming the problem, never panic, never ask for an invocation and
// never print a secret.
func TestBootstrapInitFailure(t *testing.T) {
	const password = "Sup3rSecretRedisPassw0rd"
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no REDIS_URL", map[string]string{}, []string{"REDIS_URL is required"}},
		{"bad limits and cluster flag", map[string]string{envRedisURL: "redis://default:" + password + "@127.0.0.1:1", envMaxTTL: "forever", envRedisCluster: "perhaps"},
			[]string{"OCTOSTORE_MAX_TTL_SECONDS", "REDIS_CLUSTER"}},
		{"URL go-redis refuses", map[string]string{envRedisURL: "redis://default:" + password + "@127.0.0.1:1/notadb"}, []string{"REDIS_URL"}},
		// A password whose '?', '/' or '#' is not percent-encoded: before,
		// go-redis quoted the rest of it ("unexpected option: <rest>",
		// "invalid database number: <rest>"), or, for '#', the function
		// started and logged it with the URL on every cold start.
		{"password with an unescaped '?'", map[string]string{envRedisURL: "redis://default:2024?" + password + "@127.0.0.1:1"}, []string{"REDIS_URL"}},
		{"password with an unescaped '/'", map[string]string{envRedisURL: "redis://default:/" + password + "@127.0.0.1:1"}, []string{"REDIS_URL"}},
		{"password with an unescaped '#'", map[string]string{envRedisURL: "redis://default:2024#" + password + "@127.0.0.1:1"}, []string{"REDIS_URL"}},
		{"half a GitHub app", map[string]string{envRedisURL: "redis://127.0.0.1:1", envGitHubSecret: password}, []string{"GITHUB_CLIENT_ID"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newRuntimeAPI(t)
			b := startBootstrap(t, api, tt.env)
			err := b.waitExit(t)
			if err == nil {
				t.Fatalf("bootstrap exited with status 0, want non-zero")
			}
			out := b.stderr.String()
			var ie initError
			select {
			case ie = <-api.initErr:
			default:
				t.Fatalf("no POST /runtime/init/error; output:\n%s", out)
			}
			var report struct{ ErrorMessage, ErrorType string }
			if err := json.Unmarshal(ie.body, &report); err != nil || report.ErrorType == "" || ie.errorType == "" {
				t.Errorf("init error report %q (type header %q) is not {errorMessage, errorType}", ie.body, ie.errorType)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 {
				t.Errorf("want exactly one log line, got %d:\n%s", len(lines), out)
			}
			var line struct{ Level, Msg, Error string }
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil || line.Level != "ERROR" {
				t.Errorf("log line %q is not a JSON slog ERROR line", lines[0])
			}
			for _, w := range tt.want {
				if !strings.Contains(line.Error, w) || !strings.Contains(report.ErrorMessage, w) {
					t.Errorf("log error %q / report %q do not mention %q", line.Error, report.ErrorMessage, w)
				}
			}
			if panicRE.MatchString(out) {
				t.Errorf("the bootstrap panicked:\n%s", out)
			}
			if strings.Contains(out, password) || strings.Contains(string(ie.body), password) {
				t.Errorf("a secret leaked into the output or the init error report:\n%s\n%s", out, ie.body)
			}
			api.mu.Lock()
			n := len(api.nexts)
			api.mu.Unlock()
			if n != 0 {
				t.Errorf("a bootstrap that failed init asked for %d invocations", n)
			}
		})
	}
}

// coldStart starts one bootstrap over Redis at redisURL with a GET /health
// invocation already queued and returns how long the process took from
// start to asking for its first invocation (init) and to answering it.
func coldStart(t testing.TB, redisURL string) (initDone, answered time.Duration) {
	api := newRuntimeAPI(t)
	payload, _ := json.Marshal(event(fmtHTTPAPI, testRequest{name: "cold", method: "GET", path: "/health"}, map[string]string{}))
	inv := api.enqueue(payload)
	b := startBootstrap(t, api, map[string]string{envRedisURL: redisURL, envRedisPrefix: "cold:"})
	res := inv.wait(t, b)
	if res.failed || !strings.Contains(string(res.body), `"statusCode":200`) {
		t.Fatalf("first invocation: %s", res.body)
	}
	api.mu.Lock()
	first := api.nexts[0]
	api.mu.Unlock()
	b.cmd.Process.Kill()
	<-b.exited
	return first.Sub(b.started), res.at.Sub(b.started)
}

// TestColdStart measures, without asserting on it, the bootstrap's cold
// start over the stand-in Runtime API (process start to first answer,
// average of 10) and the size of the host binary built with the release
// flags. BenchmarkBootstrapSize measures the linux/arm64 binary that ships.
func TestColdStart(t *testing.T) {
	srv := redistest.Start(t)
	const starts = 10
	var initSum, answerSum, worst time.Duration
	for i := 0; i < starts; i++ {
		in, ans := coldStart(t, srv.URL())
		initSum += in
		answerSum += ans
		worst = max(worst, ans)
	}
	t.Logf("cold start over %d starts: init (start to first GET /next) %v average; start to first answer %v average, %v worst",
		starts, (initSum / starts).Round(10*time.Microsecond), (answerSum / starts).Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
	fi, err := os.Stat(bootstrapBin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() == 0 {
		t.Fatalf("bootstrap binary is empty")
	}
	t.Logf("bootstrap size (%s/%s, release flags): %.1f MB (%d bytes)", runtime.GOOS, runtime.GOARCH, float64(fi.Size())/1e6, fi.Size())
}

// BenchmarkColdStart reports the time from process start to the first
// answer, per start.
func BenchmarkColdStart(b *testing.B) {
	srv := redistest.Start(b)
	var init time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in, _ := coldStart(b, srv.URL())
		init += in
	}
	b.ReportMetric(float64(init.Microseconds())/float64(b.N)/1000, "init-ms/op")
}

// BenchmarkBootstrapSize builds the bootstrap with the release flags for
// linux/arm64 (what template.yaml deploys) and reports its size. It is a
// benchmark, not a test, because cross-compiling the standard library on a
// cold build cache takes minutes.
func BenchmarkBootstrapSize(b *testing.B) {
	out := b.TempDir() + "/bootstrap"
	for i := 0; i < b.N; i++ {
		if msg, err := goBuild(out, []string{"GOOS=linux", "GOARCH=arm64"}); err != nil {
			b.Fatalf("%v\n%s", err, msg)
		}
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/1e6, "MB")
	b.Logf("bootstrap size (linux/arm64, release flags): %.1f MB (%d bytes)", float64(fi.Size())/1e6, fi.Size())
}

// TestSetupWithGitHubApp: with a GitHub app configured, the handler that
// setup builds has the sign-in routes: /auth/github redirects to the
// configured GitHub with the callback on OCTOSTORE_PUBLIC_URL. (Redis is
// not there: starting the sign-in needs no store, and setup then holds no
// client that would outlive the test.)
func TestSetupWithGitHubApp(t *testing.T) {
	env := map[string]string{
		envRedisURL: "redis://127.0.0.1:1", envRedisPrefix: "gh:",
		envGitHubClientID: "Iv1.test", envGitHubSecret: strings.Repeat("s", 40), envStateSecret: strings.Repeat("k", 32),
		envPublicURL: "https://locks.example.com", envGitHubBaseURL: "https://ghe.example.com",
	}
	_, h, err := setup(context.Background(), envOf(env), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/github", nil))
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusFound || !strings.HasPrefix(loc, "https://ghe.example.com/login/oauth/authorize?") ||
		!strings.Contains(loc, "redirect_uri="+url.QueryEscape("https://locks.example.com/auth/github/callback")) {
		t.Fatalf("GET /auth/github: %d Location %q, want a redirect to the configured GitHub", rec.Code, loc)
	}
}
