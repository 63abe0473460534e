package functions_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/octostore/octostore/lockcore"
)

// tcase is one row of an HTTP table: setup requests (each must answer below
// 400), then the request under test and what it must answer. wantBody is
// the exact body after normalisation, without the trailing newline, with
// %STORE% standing for the backend's name; "" leaves the body to wantCode.
type tcase struct {
	name  string
	setup []req
	req
	wantStatus int
	wantCode   string
	wantBody   string
	wantHeader map[string]string
}

// runCases runs each case on a fresh env of every backend, in parallel.
func runCases(t *testing.T, cases []tcase, opts ...envOption) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel() // each case has its own store; fsync waits overlap
					e := newEnv(t, b, opts...)
					runCase(t, e, b, tc)
				})
			}
		})
	}
}

func runCase(t *testing.T, e *env, b backend, tc tcase) {
	t.Helper()
	n, fences := newNormalizer(), newFenceNamer(t, e.clockMicros)
	for i, s := range tc.setup {
		w := e.do(t, s)
		if w.Code >= 400 {
			t.Fatalf("setup %d %s %s: %d %s", i, s.method, s.path, w.Code, w.Body.String())
		}
		fences.name(s.auth, w.Body.String())
	}
	w := e.do(t, tc.req)
	body := w.Body.String()
	if w.Code != tc.wantStatus {
		t.Fatalf("%s %s: status %d, want %d; body %s", tc.method, tc.path, w.Code, tc.wantStatus, body)
	}
	if !strings.HasSuffix(body, "}\n") {
		t.Errorf("body does not end with a newline: %q", body)
	}
	if tc.wantCode != "" {
		if got, _ := decode(t, w)["code"].(string); got != tc.wantCode {
			t.Errorf("code %q, want %q; body %s", got, tc.wantCode, body)
		}
	} else if w.Code >= 400 && w.Code != http.StatusConflict {
		t.Errorf("error status %d in a case that wants no code: %s", w.Code, body)
	}
	if tc.wantBody != "" {
		want := strings.ReplaceAll(tc.wantBody, "%STORE%", storeKind(b.name))
		if got := n.normalize(fences.name(tc.req.auth, strings.TrimSuffix(body, "\n"))); got != want {
			t.Errorf("body\n got %s\nwant %s", got, want)
		}
	}
	for k, v := range tc.wantHeader {
		if got := w.Result().Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func post(path, body string) req { return req{method: "POST", path: path, body: body} }
func get(path string) req        { return req{method: "GET", path: path} }

func withAuth(q req, auth string) req { q.auth = auth; return q }

const (
	acq       = "/locks/job/acquire"
	errBody   = `{"error":"%s","code":"%s","request_id":"<REQUEST_ID>"}`
	wwwAuth   = `Bearer realm="octostore"`
	okAcquire = `{"status":"acquired","lease_id":"<LEASE1>","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60}`
)

func eb(msg, code string) string {
	return strings.Replace(strings.Replace(errBody, "%s", msg, 1), "%s", code, 1)
}

// validToken is a well-formed token no store knows.
var validToken = "os_" + strings.Repeat("A", 43)

func TestAcquire(t *testing.T) {
	name128 := strings.Repeat("n", 128)
	cases := []tcase{
		{name: "empty body means defaults", req: post(acq, ""), wantStatus: 200, wantBody: okAcquire},
		{name: "whitespace body means defaults", req: post(acq, " \n\t\r "), wantStatus: 200, wantBody: okAcquire},
		{name: "empty object means defaults", req: post(acq, "{}"), wantStatus: 200, wantBody: okAcquire},
		{name: "all fields", req: post(acq, `{"ttl_seconds":30,"metadata":"host-7","lease_id":"my-lease"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"my-lease","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":30,"metadata":"host-7"}`},
		{name: "metadata is not HTML-escaped", req: post(acq, `{"metadata":"<a&b>","lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60,"metadata":"<a&b>"}`},
		{name: "empty metadata is omitted", req: post(acq, `{"metadata":"","lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60}`},
		{name: "metadata of exactly 1024 bytes", req: post(acq, `{"metadata":"`+strings.Repeat("é", 512)+`"}`), wantStatus: 200},
		{name: "max ttl", req: post(acq, `{"ttl_seconds":3600,"lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":3600}`},
		{name: "escaped key is the same key", req: post(acq, `{"ttl\u005fseconds":5,"lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":5}`},
		{name: "body of exactly 16 KiB", req: post(acq, "{}"+strings.Repeat(" ", 16<<10-2)), wantStatus: 200, wantBody: okAcquire},
		{name: "name of 128 characters", req: post("/locks/"+name128+"/acquire", ""), wantStatus: 200, wantBody: okAcquire},
		{name: "name with dots and dashes", req: post("/locks/a.b-c/acquire", ""), wantStatus: 200, wantBody: okAcquire},
		{name: "name made of dots only", req: post("/locks/%2E%2E/acquire", ""), wantStatus: 200, wantBody: okAcquire},
		{name: "lower-case scheme", req: withAuth(post(acq, ""), "raw:bearer TOKEN"), wantStatus: 200, wantBody: okAcquire},
		{name: "extra spaces around the token", req: withAuth(post(acq, ""), "raw:  Bearer    TOKEN  "), wantStatus: 200, wantBody: okAcquire},
		{name: "idempotent retry keeps lease and token",
			setup: []req{post(acq, `{"lease_id":"L","metadata":"m"}`)},
			req:   post(acq, `{"lease_id":"L","ttl_seconds":10}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":10,"metadata":"m"}`},
		{name: "idempotent retry replaces metadata",
			setup: []req{post(acq, `{"lease_id":"L","metadata":"m"}`)},
			req:   post(acq, `{"lease_id":"L","metadata":"n"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60,"metadata":"n"}`},
		{name: "held by another lease",
			setup: []req{post(acq, `{"lease_id":"L","metadata":"m"}`)},
			req:   post(acq, `{}`), wantStatus: 409,
			wantBody: `{"status":"held","holder_id":"<HOLDER1>","expires_at":"<TIME>","retry_after_ms":<MS>,"metadata":"m"}`},
		{name: "held without metadata",
			setup: []req{post(acq, `{"lease_id":"L"}`)},
			req:   post(acq, `{"lease_id":"other"}`), wantStatus: 409,
			wantBody: `{"status":"held","holder_id":"<HOLDER1>","expires_at":"<TIME>","retry_after_ms":<MS>}`},
		{name: "after release the fencing token grows",
			setup: []req{post(acq, `{"lease_id":"L"}`), post("/locks/job/release", `{"lease_id":"L"}`)},
			req:   post(acq, `{"lease_id":"M"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"M","fencing_token":<FENCE2>,"expires_at":"<TIME>","ttl_seconds":60}`},
		{name: "accounts do not see each other's locks",
			setup: []req{post(acq, `{"lease_id":"L"}`)},
			req:   withAuth(post(acq, `{"lease_id":"L2"}`), "bob"), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L2","fencing_token":<bob:FENCE1>,"expires_at":"<TIME>","ttl_seconds":60}`},

		{name: "name with underscore", req: post("/locks/a_b/acquire", ""), wantStatus: 400, wantCode: "invalid_name"},
		{name: "name of 129 characters", req: post("/locks/"+name128+"n/acquire", ""), wantStatus: 400, wantCode: "invalid_name"},
		{name: "escaped slash in name", req: post("/locks/a%2Fb/acquire", ""), wantStatus: 400, wantCode: "invalid_name",
			wantBody: eb("lock name must be 1 to 128 characters of A-Z, a-z, 0-9, '.' and '-' (character 2, '/', is not allowed)", "invalid_name")},
		{name: "non-ASCII name", req: post("/locks/%C3%A9/acquire", ""), wantStatus: 400, wantCode: "invalid_name"},
		{name: "NUL in name", req: post("/locks/a%00/acquire", ""), wantStatus: 400, wantCode: "invalid_name"},
		{name: "space in name", req: post("/locks/a%20b/acquire", ""), wantStatus: 400, wantCode: "invalid_name"},

		{name: "unknown field", req: post(acq, `{"ttl":5}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb(`unknown field \"ttl\" in request body (allowed: ttl_seconds, metadata, lease_id)`, "invalid_json")},
		{name: "field names are case-sensitive", req: post(acq, `{"TTL_SECONDS":5}`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "duplicate field", req: post(acq, `{"ttl_seconds":5,"ttl_seconds":6}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb(`duplicate field \"ttl_seconds\" in request body`, "invalid_json")},
		{name: "duplicate field via escape", req: post(acq, `{"lease_id":"a","lease\u005fid":"b"}`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "two objects", req: post(acq, `{} {}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("request body has data after the JSON object", "invalid_json")},
		{name: "trailing garbage", req: post(acq, `{}x`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "array", req: post(acq, `[]`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("request body must be a JSON object", "invalid_json")},
		{name: "string", req: post(acq, `"x"`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "null", req: post(acq, `null`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "number", req: post(acq, `5`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "true", req: post(acq, `true`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "unterminated object", req: post(acq, `{`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("request body is not valid JSON: unexpected end of input", "invalid_json")},
		{name: "missing value", req: post(acq, `{"ttl_seconds":}`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "trailing comma", req: post(acq, `{"ttl_seconds":5,}`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "single quotes", req: post(acq, `{'ttl_seconds':5}`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "invalid UTF-8 in a string", req: post(acq, "{\"metadata\":\"\xff\"}"), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("request body must be valid UTF-8 (byte 14 is not)", "invalid_json")},
		{name: "invalid UTF-8 outside strings", req: post(acq, "\xff{}"), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("request body must be valid UTF-8 (byte 1 is not)", "invalid_json")},
		{name: "invalid UTF-8 after a character of two bytes", req: post(acq, "{\"metadata\":\"é\xe9\"}"), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("request body must be valid UTF-8 (byte 16 is not)", "invalid_json")},
		{name: "an unknown field's long name is cut between characters", req: post(acq, `{"`+strings.Repeat("a", 63)+`é":1}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb(`unknown field \"`+strings.Repeat("a", 63)+`...\" in request body (allowed: ttl_seconds, metadata, lease_id)`, "invalid_json")},
		{name: "syntax error beats a field error", req: post(acq, `{"ttl_seconds":"5",`), wantStatus: 400, wantCode: "invalid_json"},

		{name: "ttl as string", req: post(acq, `{"ttl_seconds":"5"}`), wantStatus: 400, wantCode: "invalid_ttl",
			wantBody: eb("ttl_seconds must be an integer from 1 to 3600 (got a string)", "invalid_ttl")},
		{name: "ttl with fraction", req: post(acq, `{"ttl_seconds":5.0}`), wantStatus: 400, wantCode: "invalid_ttl",
			wantBody: eb("ttl_seconds must be an integer from 1 to 3600 (got 5.0)", "invalid_ttl")},
		{name: "ttl with exponent", req: post(acq, `{"ttl_seconds":5e1}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl null", req: post(acq, `{"ttl_seconds":null}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl zero", req: post(acq, `{"ttl_seconds":0}`), wantStatus: 400, wantCode: "invalid_ttl",
			wantBody: eb("ttl_seconds must be an integer from 1 to 3600 (got 0)", "invalid_ttl")},
		{name: "ttl negative", req: post(acq, `{"ttl_seconds":-1}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl minus zero", req: post(acq, `{"ttl_seconds":-0}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl over max", req: post(acq, `{"ttl_seconds":3601}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl beyond int64", req: post(acq, `{"ttl_seconds":99999999999999999999}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl beyond float64", req: post(acq, `{"ttl_seconds":1e999999}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl boolean", req: post(acq, `{"ttl_seconds":true}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl array", req: post(acq, `{"ttl_seconds":[5]}`), wantStatus: 400, wantCode: "invalid_ttl",
			wantBody: eb("ttl_seconds must be an integer from 1 to 3600 (got an array)", "invalid_ttl")},
		{name: "ttl object", req: post(acq, `{"ttl_seconds":{}}`), wantStatus: 400, wantCode: "invalid_ttl"},

		{name: "metadata number", req: post(acq, `{"metadata":5}`), wantStatus: 400, wantCode: "invalid_metadata",
			wantBody: eb("metadata must be a string (got a number)", "invalid_metadata")},
		{name: "metadata null", req: post(acq, `{"metadata":null}`), wantStatus: 400, wantCode: "invalid_metadata"},
		{name: "metadata object", req: post(acq, `{"metadata":{"a":1}}`), wantStatus: 400, wantCode: "invalid_metadata"},
		{name: "metadata too long", req: post(acq, `{"metadata":"`+strings.Repeat("x", 1025)+`"}`), wantStatus: 400, wantCode: "invalid_metadata",
			wantBody: eb("metadata must be at most 1024 bytes of UTF-8 (got 1025)", "invalid_metadata")},
		{name: "metadata with a lone surrogate escape", req: post(acq, `{"metadata":"host-7 \ud800"}`), wantStatus: 400, wantCode: "invalid_metadata",
			wantBody: eb(`metadata must be text: a \\u escape of a lone UTF-16 surrogate (D800 to DFFF, not in a high-low pair) is not a character; send the text as UTF-8`, "invalid_metadata")},
		{name: "metadata with a lone low surrogate escape", req: post(acq, `{"metadata":"\udc00\ud83d"}`), wantStatus: 400, wantCode: "invalid_metadata"},
		{name: "metadata with a surrogate pair escape", req: post(acq, `{"metadata":"\ud83d\ude00 \ufffd"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"<LEASE1>","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60,"metadata":"😀 �"}`},
		{name: "metadata with an escaped backslash before u", req: post(acq, `{"metadata":"\\ud800"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"<LEASE1>","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60,"metadata":"\\ud800"}`},

		{name: "lease id empty", req: post(acq, `{"lease_id":""}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "lease id with space", req: post(acq, `{"lease_id":"a b"}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "lease id of 65 characters", req: post(acq, `{"lease_id":"`+strings.Repeat("a", 65)+`"}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "lease id number", req: post(acq, `{"lease_id":5}`), wantStatus: 400, wantCode: "invalid_lease_id",
			wantBody: eb("lease_id must be a string (got a number)", "invalid_lease_id")},
		{name: "lease id null", req: post(acq, `{"lease_id":null}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "lease id non-ASCII", req: post(acq, `{"lease_id":"é"}`), wantStatus: 400, wantCode: "invalid_lease_id"},

		{name: "ttl in the query string", req: post(acq+"?ttl_seconds=3600", ""), wantStatus: 400, wantCode: "invalid_ttl",
			wantBody: eb(`ttl_seconds must be sent in the JSON request body, not in the query string (-d '{\"ttl_seconds\":…}')`, "invalid_ttl")},
		{name: "ttl in the query string beside a body", req: post(acq+"?x=1&ttl_seconds=5", `{"ttl_seconds":5}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "escaped ttl in the query string", req: post(acq+"?ttl%5Fseconds=5", ""), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "metadata in the query string, without a value", req: post(acq+"?metadata", ""), wantStatus: 400, wantCode: "invalid_metadata",
			wantBody: eb(`metadata must be sent in the JSON request body, not in the query string (-d '{\"metadata\":…}')`, "invalid_metadata")},
		{name: "lease id in the query string", req: post(acq+"?lease_id=L", `{"lease_id":"L"}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "ttl in the query string, in upper case", req: post(acq+"?TTL_SECONDS=5", ""), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl in the query string after a semicolon", req: post(acq+"?x=1;ttl_seconds=5", ""), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "other query parameters are ignored", req: post(acq+"?ttl=5&ttlSeconds=5&ttl_seconds[]=5&%zz=1&=&&;", `{"lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"acquired","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60}`},

		{name: "body one byte over 16 KiB", req: post(acq, "{}"+strings.Repeat(" ", 16<<10-1)), wantStatus: 413, wantCode: "body_too_large",
			wantBody: eb("request body is larger than 16384 bytes", "body_too_large")},
		{name: "body of 1 MiB", req: post(acq, strings.Repeat("x", 1<<20)), wantStatus: 413, wantCode: "body_too_large"},

		{name: "no Authorization", req: withAuth(post(acq, ""), "-"), wantStatus: 401, wantCode: "unauthorized",
			wantHeader: map[string]string{"WWW-Authenticate": wwwAuth}},
		{name: "Basic scheme", req: withAuth(post(acq, ""), "raw:Basic YWxpY2U6cHc="), wantStatus: 401, wantCode: "unauthorized"},
		{name: "Bearer without token", req: withAuth(post(acq, ""), "raw:Bearer"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "Bearer with empty token", req: withAuth(post(acq, ""), "raw:Bearer "), wantStatus: 401, wantCode: "unauthorized"},
		{name: "token without prefix", req: withAuth(post(acq, ""), "raw:Bearer "+strings.Repeat("A", 46)), wantStatus: 401, wantCode: "unauthorized"},
		{name: "token with bad base64", req: withAuth(post(acq, ""), "raw:Bearer os_"+strings.Repeat("!", 43)), wantStatus: 401, wantCode: "unauthorized"},
		{name: "token too long", req: withAuth(post(acq, ""), "raw:Bearer "+validToken+"A"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "unknown token", req: withAuth(post(acq, ""), "raw:Bearer "+validToken), wantStatus: 401, wantCode: "unauthorized",
			wantBody: eb("unknown or revoked bearer token", "unauthorized")},
		{name: "token in two parts", req: withAuth(post(acq, ""), "raw:Bearer TOKEN TOKEN"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "auth before body: bad token and bad body", req: withAuth(post(acq, `{`), "raw:Bearer "+validToken), wantStatus: 401, wantCode: "unauthorized"},
		{name: "auth before body: no token and huge body", req: withAuth(post(acq, strings.Repeat("x", 1<<20)), "-"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "auth before name", req: withAuth(post("/locks/a_b/acquire", `{`), "-"), wantStatus: 401, wantCode: "unauthorized"},
	}
	runCases(t, cases)
}

func TestRenew(t *testing.T) {
	const rn = "/locks/job/renew"
	hold := post(acq, `{"lease_id":"L","ttl_seconds":10,"metadata":"m"}`)
	cases := []tcase{
		{name: "renew", setup: []req{hold}, req: post(rn, `{"lease_id":"L","ttl_seconds":20}`), wantStatus: 200,
			wantBody: `{"status":"renewed","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":20}`},
		{name: "default ttl", setup: []req{hold}, req: post(rn, `{"lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"renewed","lease_id":"L","fencing_token":<FENCE1>,"expires_at":"<TIME>","ttl_seconds":60}`},
		{name: "empty body", setup: []req{hold}, req: post(rn, ""), wantStatus: 400, wantCode: "invalid_lease_id",
			wantBody: eb("lease_id is required", "invalid_lease_id")},
		{name: "no lease id", setup: []req{hold}, req: post(rn, `{"ttl_seconds":5}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "other lease", setup: []req{hold}, req: post(rn, `{"lease_id":"M"}`), wantStatus: 409, wantCode: "lease_not_current",
			wantBody: eb("the lease is not the current holder of the lock: it expired, was released, was replaced, or never existed", "lease_not_current")},
		{name: "free lock", req: post(rn, `{"lease_id":"L"}`), wantStatus: 409, wantCode: "lease_not_current"},
		{name: "released lease", setup: []req{hold, post("/locks/job/release", `{"lease_id":"L"}`)}, req: post(rn, `{"lease_id":"L"}`),
			wantStatus: 409, wantCode: "lease_not_current"},
		{name: "other account's lease", setup: []req{hold}, req: withAuth(post(rn, `{"lease_id":"L"}`), "bob"), wantStatus: 409, wantCode: "lease_not_current"},
		{name: "metadata is not a renew field", setup: []req{hold}, req: post(rn, `{"lease_id":"L","metadata":"x"}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb(`unknown field \"metadata\" in request body (allowed: ttl_seconds, lease_id)`, "invalid_json")},
		{name: "bad ttl", setup: []req{hold}, req: post(rn, `{"lease_id":"L","ttl_seconds":0}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "ttl in the query string", setup: []req{hold}, req: post(rn+"?ttl_seconds=20", `{"lease_id":"L"}`), wantStatus: 400, wantCode: "invalid_ttl"},
		{name: "lease id in the query string", setup: []req{hold}, req: post(rn+"?lease_id=L", ""), wantStatus: 400, wantCode: "invalid_lease_id",
			wantBody: eb(`lease_id must be sent in the JSON request body, not in the query string (-d '{\"lease_id\":…}')`, "invalid_lease_id")},
		{name: "metadata in the query string is not a renew field", setup: []req{hold}, req: post(rn+"?metadata=x", `{"lease_id":"L","ttl_seconds":20}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("metadata in the query string is not a field of this request, whose JSON body takes ttl_seconds, lease_id (and nothing is read from the query string)", "invalid_json")},
		{name: "bad lease id", req: post(rn, `{"lease_id":"a/b"}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "bad name", req: post("/locks/a_b/renew", `{"lease_id":"L"}`), wantStatus: 400, wantCode: "invalid_name"},
		{name: "no token", req: withAuth(post(rn, `{"lease_id":"L"}`), "-"), wantStatus: 401, wantCode: "unauthorized"},
	}
	runCases(t, cases)
}

func TestRelease(t *testing.T) {
	const rl = "/locks/job/release"
	hold := post(acq, `{"lease_id":"L"}`)
	cases := []tcase{
		{name: "release", setup: []req{hold}, req: post(rl, `{"lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"released","name":"job"}`},
		{name: "release twice", setup: []req{hold, post(rl, `{"lease_id":"L"}`)}, req: post(rl, `{"lease_id":"L"}`),
			wantStatus: 409, wantCode: "lease_not_current"},
		{name: "other lease", setup: []req{hold}, req: post(rl, `{"lease_id":"M"}`), wantStatus: 409, wantCode: "lease_not_current"},
		{name: "other account", setup: []req{hold}, req: withAuth(post(rl, `{"lease_id":"L"}`), "bob"), wantStatus: 409, wantCode: "lease_not_current"},
		{name: "empty body", setup: []req{hold}, req: post(rl, ""), wantStatus: 400, wantCode: "invalid_lease_id",
			wantBody: eb("lease_id is required", "invalid_lease_id")},
		{name: "empty object", setup: []req{hold}, req: post(rl, "{}"), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "ttl is not a release field", setup: []req{hold}, req: post(rl, `{"lease_id":"L","ttl_seconds":5}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb(`unknown field \"ttl_seconds\" in request body (allowed: lease_id)`, "invalid_json")},
		{name: "lease id in the query string", setup: []req{hold}, req: post(rl+"?lease_id=L", ""), wantStatus: 400, wantCode: "invalid_lease_id",
			wantBody: eb(`lease_id must be sent in the JSON request body, not in the query string (-d '{\"lease_id\":…}')`, "invalid_lease_id")},
		{name: "ttl in the query string is not a release field", setup: []req{hold}, req: post(rl+"?ttl_seconds=5", `{"lease_id":"L"}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb("ttl_seconds in the query string is not a field of this request, whose JSON body takes lease_id (and nothing is read from the query string)", "invalid_json")},
		{name: "other query parameters are ignored", setup: []req{hold}, req: post(rl+"?force=1", `{"lease_id":"L"}`), wantStatus: 200,
			wantBody: `{"status":"released","name":"job"}`},
		{name: "bad lease id", req: post(rl, `{"lease_id":"a.b"}`), wantStatus: 400, wantCode: "invalid_lease_id"},
		{name: "bad name", req: post("/locks/a%2F/release", `{"lease_id":"L"}`), wantStatus: 400, wantCode: "invalid_name"},
		{name: "no token", req: withAuth(post(rl, `{"lease_id":"L"}`), "-"), wantStatus: 401, wantCode: "unauthorized"},
	}
	runCases(t, cases)
}

func TestGetAndList(t *testing.T) {
	cases := []tcase{
		{name: "free", req: get("/locks/job"), wantStatus: 200, wantBody: `{"name":"job","status":"free"}`},
		{name: "held", setup: []req{post(acq, `{"lease_id":"L","metadata":"m"}`)}, req: get("/locks/job"), wantStatus: 200,
			wantBody: `{"name":"job","status":"held","lease_id":"L","holder_id":"<HOLDER1>","fencing_token":<FENCE1>,"expires_at":"<TIME>","metadata":"m"}`},
		{name: "held without metadata", setup: []req{post(acq, `{"lease_id":"L"}`)}, req: get("/locks/job"), wantStatus: 200,
			wantBody: `{"name":"job","status":"held","lease_id":"L","holder_id":"<HOLDER1>","fencing_token":<FENCE1>,"expires_at":"<TIME>"}`},
		{name: "released", setup: []req{post(acq, `{"lease_id":"L"}`), post("/locks/job/release", `{"lease_id":"L"}`)}, req: get("/locks/job"),
			wantStatus: 200, wantBody: `{"name":"job","status":"free"}`},
		{name: "another account's lock looks free", setup: []req{post(acq, `{"lease_id":"L"}`)}, req: withAuth(get("/locks/job"), "bob"),
			wantStatus: 200, wantBody: `{"name":"job","status":"free"}`},
		{name: "bad name", req: get("/locks/a_b"), wantStatus: 400, wantCode: "invalid_name"},
		{name: "get without token", req: withAuth(get("/locks/job"), "-"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "get ignores a body", req: req{method: "GET", path: "/locks/job", body: "{"}, wantStatus: 200, wantBody: `{"name":"job","status":"free"}`},

		{name: "list empty", req: get("/locks"), wantStatus: 200, wantBody: `{"locks":[],"count":0}`},
		{name: "list sorted by name",
			setup: []req{post("/locks/b/acquire", `{"lease_id":"L2"}`), post("/locks/a/acquire", `{"lease_id":"L1","metadata":"x"}`),
				withAuth(post("/locks/c/acquire", `{"lease_id":"L3"}`), "bob")},
			req: get("/locks"), wantStatus: 200,
			wantBody: `{"locks":[` +
				`{"name":"a","status":"held","lease_id":"L1","holder_id":"<HOLDER1>","fencing_token":<FENCE2>,"expires_at":"<TIME>","metadata":"x"},` +
				`{"name":"b","status":"held","lease_id":"L2","holder_id":"<HOLDER2>","fencing_token":<FENCE1>,"expires_at":"<TIME>"}],"count":2}`},
		{name: "list leaves out released locks",
			setup: []req{post("/locks/a/acquire", `{"lease_id":"L1"}`), post("/locks/a/release", `{"lease_id":"L1"}`)},
			req:   get("/locks"), wantStatus: 200, wantBody: `{"locks":[],"count":0}`},
		{name: "list ignores the query string", req: get("/locks?cursor=x"), wantStatus: 200, wantBody: `{"locks":[],"count":0}`},
		{name: "list without token", req: withAuth(get("/locks"), "-"), wantStatus: 401, wantCode: "unauthorized"},
	}
	runCases(t, cases)
}

func TestRoutes(t *testing.T) {
	cases := []tcase{
		{name: "health", req: withAuth(get("/health"), "-"), wantStatus: 200, wantBody: `{"status":"ok","store":"%STORE%","version":"test"}`},
		{name: "health ignores a bad token", req: withAuth(get("/health"), "raw:Bearer junk"), wantStatus: 200},
		{name: "unknown route", req: withAuth(get("/nope"), "-"), wantStatus: 404, wantCode: "not_found",
			wantBody: eb("no such route: GET /nope", "not_found")},
		{name: "root", req: get("/"), wantStatus: 404, wantCode: "not_found"},
		{name: "too deep", req: get("/locks/a/b/c"), wantStatus: 404, wantCode: "not_found"},
		{name: "trailing slash", req: post("/locks/a/acquire/", ""), wantStatus: 404, wantCode: "not_found"},
		{name: "list with trailing slash", req: get("/locks/"), wantStatus: 404, wantCode: "not_found"},
		{name: "dot-dot is not redirected", req: get("/locks/a/../b"), wantStatus: 404, wantCode: "not_found"},
		// ServeMux reads a segment that unescapes to exactly "/" as a
		// trailing slash, so a name that is only %2F matches no route.
		{name: "name that is only an escaped slash", req: get("/locks/%2F"), wantStatus: 400, wantCode: "invalid_name"},
		{name: "acquire a name that is only an escaped slash", req: post("/locks/%2f/acquire", ""), wantStatus: 400, wantCode: "invalid_name"},
		{name: "an escaped slash without a token", req: withAuth(post("/locks/%2F/release", `{"lease_id":"L"}`), "-"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "wrong method on a name that is only an escaped slash", req: withAuth(post("/locks/%2F", ""), "-"), wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "wrong method on acquire of an escaped slash", req: req{method: "DELETE", path: "/locks/%2F/acquire"}, wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "POST"}},
		{name: "escaped slash in an unknown route", req: get("/nope/%2F"), wantStatus: 404, wantCode: "not_found"},
		{name: "double slash is not redirected", req: get("//locks"), wantStatus: 404, wantCode: "not_found"},
		{name: "a token in an unknown route is hidden", req: get("/nope/" + validToken), wantStatus: 404, wantCode: "not_found",
			wantBody: eb("no such route: GET /nope/os_[hidden]", "not_found")},
		{name: "a token in an unclean path is hidden", req: get("/locks/../" + validToken), wantStatus: 404, wantCode: "not_found",
			wantBody: eb("no such route: GET /locks/../os_[hidden]", "not_found")},
		{name: "a token in the path of a wrong method is hidden", req: req{method: "DELETE", path: "/locks/" + validToken + "/acquire"}, wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "POST"},
			wantBody:   eb("method DELETE is not allowed on /locks/os_[hidden]/acquire; allowed: POST", "method_not_allowed")},
		{name: "a token as the method is hidden", req: req{method: validToken, path: "/locks"}, wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "GET, HEAD"},
			wantBody:   eb("method os_[hidden] is not allowed on /locks; allowed: GET, HEAD", "method_not_allowed")},
		{name: "a long method is cut", req: req{method: strings.Repeat("M", 40), path: "/nope"}, wantStatus: 404, wantCode: "not_found",
			wantBody: eb("no such route: "+strings.Repeat("M", 32)+"... /nope", "not_found")},
		{name: "OPTIONS *", req: req{method: "OPTIONS", path: "*"}, wantStatus: 404, wantCode: "not_found",
			wantBody: eb("no such route: OPTIONS *", "not_found")},
		{name: "GET on acquire", req: withAuth(get("/locks/a/acquire"), "-"), wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "POST"},
			wantBody:   eb("method GET is not allowed on /locks/a/acquire; allowed: POST", "method_not_allowed")},
		{name: "DELETE on a lock", req: req{method: "DELETE", path: "/locks/a"}, wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "PUT on the list", req: req{method: "PUT", path: "/locks"}, wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "POST on health", req: post("/health", "{}"), wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "GET on rotate", req: get("/auth/token/rotate"), wantStatus: 405, wantCode: "method_not_allowed",
			wantHeader: map[string]string{"Allow": "POST"}},
	}
	runCases(t, cases)
}

func TestRotate(t *testing.T) {
	const rot = "/auth/token/rotate"
	cases := []tcase{
		{name: "rotate", req: post(rot, ""), wantStatus: 200, wantBody: `{"token":"<TOKEN1>","account_id":"<ACCOUNT1>","login":"alice"}`},
		{name: "empty object", req: post(rot, "{}"), wantStatus: 200, wantBody: `{"token":"<TOKEN1>","account_id":"<ACCOUNT1>","login":"alice"}`},
		{name: "any field is unknown", req: post(rot, `{"token":"x"}`), wantStatus: 400, wantCode: "invalid_json",
			wantBody: eb(`unknown field \"token\" in request body: this endpoint takes no fields`, "invalid_json")},
		{name: "array", req: post(rot, `[]`), wantStatus: 400, wantCode: "invalid_json"},
		{name: "the query string is ignored", req: post(rot+"?ttl_seconds=5&lease_id=L", ""), wantStatus: 200, wantBody: `{"token":"<TOKEN1>","account_id":"<ACCOUNT1>","login":"alice"}`},
		{name: "no token", req: withAuth(post(rot, ""), "-"), wantStatus: 401, wantCode: "unauthorized"},
		{name: "unknown token", req: withAuth(post(rot, ""), "raw:Bearer "+validToken), wantStatus: 401, wantCode: "unauthorized"},
	}
	runCases(t, cases)
}

// TestRotateRevokesOldToken checks that after a rotation the old token is
// refused and the new one works, for the same account.
func TestRotateRevokesOldToken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			old := e.tokens["alice"]
			w := e.do(t, post("/auth/token/rotate", ""))
			if w.Code != 200 {
				t.Fatalf("rotate: %d %s", w.Code, w.Body.String())
			}
			m := decode(t, w)
			tok, _ := m["token"].(string)
			if _, err := lockcore.ParseToken(tok); err != nil || tok == old {
				t.Fatalf("rotate gave token %q (%v)", tok, err)
			}
			if m["account_id"] != e.ids["alice"] {
				t.Errorf("account_id %v, want %s", m["account_id"], e.ids["alice"])
			}
			for _, q := range []req{post("/locks/a/acquire", ""), get("/locks"), post("/auth/token/rotate", "")} {
				w := e.do(t, withAuth(q, "raw:Bearer "+old))
				if w.Code != 401 || decode(t, w)["code"] != "unauthorized" {
					t.Errorf("old token on %s %s: %d %s", q.method, q.path, w.Code, w.Body.String())
				}
				if got := w.Result().Header.Get("WWW-Authenticate"); got != wwwAuth {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
			w = e.do(t, withAuth(get("/locks"), "raw:Bearer "+tok))
			if w.Code != 200 {
				t.Errorf("new token: %d %s", w.Code, w.Body.String())
			}
		})
	}
}

// TestTwoAuthorizationHeaders checks that a request with two Authorization
// headers is refused rather than guessed at.
func TestTwoAuthorizationHeaders(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			q := post("/locks/a/acquire", "")
			q.auth = "-"
			r := e.request(t, q)
			r.Header.Add("Authorization", "Bearer "+e.tokens["alice"])
			r.Header.Add("Authorization", "Bearer "+e.tokens["bob"])
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			checkCommon(t, q, w)
			if w.Code != 401 || decode(t, w)["code"] != "unauthorized" {
				t.Errorf("two Authorization headers: %d %s", w.Code, w.Body.String())
			}
		})
	}
}
