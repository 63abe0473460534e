package functions_test

import (
	"strings"
	"testing"
)

// malformedBodies are bodies that must never cause a 500.
var malformedBodies = []string{
	"", " ", "\x00", "\xff\xfe", "{", "}", "[", "]", "{}", "[]", "null", "true", "0", "-", "\"", `"\u"`,
	`{"ttl_seconds":1e400}`, `{"ttl_seconds":-9223372036854775809}`, `{"ttl_seconds":9223372036854775807}`,
	`{"ttl_seconds":0.5}`, `{"ttl_seconds":1.}`, `{"ttl_seconds":01}`, `{"ttl_seconds":+1}`, `{"ttl_seconds":NaN}`,
	`{"metadata":"\ud800"}`, `{"metadata":"a\u0000b"}`, `{"metadata":"\\"}`, "{\"metadata\":\"\x00\"}",
	`{"lease_id":"\u0000"}`, `{"lease_id":"` + strings.Repeat("a", 64) + `"}`, `{"lease_id":["a"]}`,
	`{"":1}`, `{"a":1,"a":1}`, `{"ttl_seconds":1,"ttl_seconds":1}`, `{"__proto__":{}}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat(`{"a":`, 3000) + "1" + strings.Repeat("}", 3000),
	`{"metadata":"` + strings.Repeat(`\u00e9`, 1000) + `"}`, "\ufeff{}", "{}\x00", "{} \n", "{}\n{}",
	strings.Repeat(" ", 16<<10) + "{}", string(make([]byte, 20000)),
}

// malformedNames are escaped path segments that must never cause a 500.
var malformedNames = []string{
	"%00", "%FF", "%C0%AF", "%2E", "%2E%2E", "%25", "a%2Fb", "%5C", "%20", "%0A", "%E2%80%AE",
	strings.Repeat("x", 129), strings.Repeat("x", 10000), "a;b", "a,b", "~", "%7B%7D",
}

// malformedAuth are Authorization values that must never cause a 500.
var malformedAuth = []string{
	"", " ", "Bearer", "Bearer ", "Bearer  ", "bearer\tos_x", "Bearer os_", "Bearer os_" + strings.Repeat("=", 43),
	"Bearer os_" + strings.Repeat("A", 42) + "=", "Bearer os_" + strings.Repeat("\xff", 43), "Bearer \x00",
	"Token x", "BEARER " + validToken, strings.Repeat("B", 100000), "Bearer " + strings.Repeat("A", 100000),
}

// TestNever500 sends malformed bodies, names, headers and methods to every
// endpoint and checks that none gets a 5xx answer.
func TestNever500(t *testing.T) {
	paths := []struct{ method, path string }{
		{"POST", "/locks/N/acquire"}, {"POST", "/locks/N/renew"}, {"POST", "/locks/N/release"},
		{"GET", "/locks/N"}, {"GET", "/locks"}, {"POST", "/auth/token/rotate"}, {"GET", "/health"},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			var n int
			send := func(q req) {
				t.Helper()
				n++
				w := e.do(t, q) // checkCommon fails the test on any 5xx
				if w.Code >= 500 {
					t.Errorf("%s %q body %.40q: %d", q.method, q.path, q.body, w.Code)
				}
			}
			for _, p := range paths {
				for _, body := range malformedBodies {
					send(req{method: p.method, path: strings.Replace(p.path, "N", "n1", 1), body: body})
				}
				for _, name := range malformedNames {
					send(req{method: p.method, path: strings.Replace(p.path, "N", name, 1), body: `{"lease_id":"L"}`})
				}
				for _, a := range malformedAuth {
					send(req{method: p.method, path: strings.Replace(p.path, "N", "n1", 1), auth: "raw:" + a, body: "{"})
				}
				for _, m := range []string{"PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO"} {
					send(req{method: m, path: strings.Replace(p.path, "N", "n1", 1)})
				}
			}
			for _, hdr := range []map[string]string{
				{"Content-Type": "text/plain"}, {"Content-Type": "application/json; charset=latin1"},
				{"Content-Length": "-1"}, {"X-Request-Id": strings.Repeat("\xff", 200)},
				{"Transfer-Encoding": "chunked"}, {"Accept": "text/html"},
			} {
				send(req{method: "POST", path: "/locks/n1/acquire", body: `{"lease_id":"L"}`, header: hdr})
			}
			t.Logf("%d requests", n)
		})
	}
}

// FuzzAcquireBody checks that no acquire body causes a 5xx or a panic; the
// seeds run in every go test.
func FuzzAcquireBody(f *testing.F) {
	for _, s := range malformedBodies {
		if len(s) < 2048 {
			f.Add(s)
		}
	}
	f.Add(`{"ttl_seconds":5,"metadata":"m","lease_id":"L"}`)
	e := newEnv(f, backends[0])
	f.Fuzz(func(t *testing.T, body string) {
		w := e.do(t, post("/locks/fz/acquire", body))
		if w.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body.String())
		}
		if w.Code == 200 {
			e.do(t, post("/locks/fz/release", `{"lease_id":"`+decode(t, w)["lease_id"].(string)+`"}`))
		}
	})
}
