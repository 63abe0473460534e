package functions_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/httpserver"
	"github.com/octostore/octostore/lockcore"
)

// hostile is one row of the hostile-input table: a request and the exact
// status and code it must get. No row may change the store.
type hostile struct {
	name   string
	method string
	path   string // as sent, already escaped
	body   string
	auth   string // "" alice's bearer token; "-" none; anything else the exact value, TOKEN standing for alice's token
	header [][2]string
	status int
	code   string // "" for a success
	allow  string // the Allow header a 405 must carry
}

// hostileSetup gives every account a held lock "held" (lease LH, metadata
// "m"), so that a row that wrongly renewed, released or replaced it shows.
const hostileLease = "LH"

func hostileRows() []hostile {
	const acquire, renew, release = "/locks/n1/acquire", "/locks/held/renew", "/locks/held/release"
	junk := make([][2]string, 500)
	for i := range junk {
		junk[i] = [2]string{fmt.Sprintf("X-Junk-%d", i), strings.Repeat("j", 50)}
	}
	deepArrays := strings.Repeat("[", 8000) + strings.Repeat("]", 8000)
	rows := []hostile{
		// Size.
		{name: "body 16 KiB + 1", method: "POST", path: acquire, body: strings.Repeat(" ", 16<<10-1) + "{}", status: 413, code: "body_too_large"},
		{name: "body exactly 16 KiB is read", method: "POST", path: renew, body: strings.Repeat(" ", 16<<10-len(`{"lease_id":"nope"}`)) + `{"lease_id":"nope"}`, status: 409, code: "lease_not_current"},
		{name: "body 1 MiB", method: "POST", path: release, body: strings.Repeat("x", 1<<20), status: 413, code: "body_too_large"},
		{name: "rotate body 16 KiB + 1", method: "POST", path: "/auth/token/rotate", body: "{}" + strings.Repeat(" ", 16<<10-1), status: 413, code: "body_too_large"},
		{name: "16 KiB + 1 with a bad token is 401", method: "POST", path: acquire, auth: "Bearer os_" + strings.Repeat("A", 43), body: strings.Repeat(" ", 16<<10+1), status: 401, code: "unauthorized"},
		{name: "chunked body over 16 KiB", method: "POST", path: acquire, body: strings.Repeat(" ", 20000), header: [][2]string{{"Transfer-Encoding", "chunked"}}, status: 413, code: "body_too_large"},
		// Without a Content-Length only the read itself can enforce the
		// limit: it must be exactly 16 KiB there too.
		{name: "chunked body 16 KiB + 1", method: "POST", path: acquire, body: strings.Repeat(" ", 16<<10-1) + "{}", header: [][2]string{{"Transfer-Encoding", "chunked"}}, status: 413, code: "body_too_large"},
		{name: "chunked body exactly 16 KiB is read", method: "POST", path: renew, body: strings.Repeat(" ", 16<<10-len(`{"lease_id":"nope"}`)) + `{"lease_id":"nope"}`, header: [][2]string{{"Transfer-Encoding", "chunked"}}, status: 409, code: "lease_not_current"},
		// Nesting.
		{name: "10k unclosed arrays", method: "POST", path: acquire, body: strings.Repeat("[", 10000), status: 400, code: "invalid_json"},
		{name: "10k nested arrays (over 16 KiB)", method: "POST", path: acquire, body: strings.Repeat("[", 10000) + strings.Repeat("]", 10000), status: 413, code: "body_too_large"},
		{name: "8k nested arrays as metadata", method: "POST", path: acquire, body: `{"metadata":` + deepArrays + `}`, status: 400, code: "invalid_metadata"},
		{name: "3k nested objects", method: "POST", path: acquire, body: strings.Repeat(`{"":`, 3000) + "1" + strings.Repeat("}", 3000), status: 400, code: "invalid_json"},
		{name: "10k unclosed arrays in a field", method: "POST", path: acquire, body: `{"metadata":` + strings.Repeat("[", 10000), status: 400, code: "invalid_json"},
		// NUL bytes.
		{name: "NUL in name", method: "POST", path: "/locks/a%00b/acquire", status: 400, code: "invalid_name"},
		{name: "NUL body", method: "POST", path: acquire, body: "\x00", status: 400, code: "invalid_json"},
		{name: "raw NUL inside a JSON string", method: "POST", path: acquire, body: "{\"metadata\":\"a\x00b\"}", status: 400, code: "invalid_json"},
		{name: "escaped NUL in metadata is text", method: "POST", path: "/locks/held/acquire", body: `{"lease_id":"other","metadata":"a\u0000b"}`, status: 409},
		{name: "escaped NUL in lease_id", method: "POST", path: release, body: `{"lease_id":"LH\u0000"}`, status: 400, code: "invalid_lease_id"},
		{name: "NUL after the object", method: "POST", path: acquire, body: "{}\x00", status: 400, code: "invalid_json"},
		{name: "NUL in Authorization", method: "GET", path: "/locks", auth: "Bearer \x00TOKEN", status: 401, code: "unauthorized"},
		// Invalid UTF-8.
		{name: "invalid UTF-8 in metadata", method: "POST", path: acquire, body: "{\"metadata\":\"\xff\xfe\"}", status: 400, code: "invalid_json"},
		{name: "overlong UTF-8 in a key", method: "POST", path: acquire, body: "{\"\xc0\xaf\":1}", status: 400, code: "invalid_json"},
		{name: "invalid UTF-8 in name", method: "GET", path: "/locks/%FF", status: 400, code: "invalid_name"},
		{name: "non-ASCII name", method: "GET", path: "/locks/%C3%A9", status: 400, code: "invalid_name"},
		{name: "RTL override in name", method: "POST", path: "/locks/a%E2%80%AEb/acquire", status: 400, code: "invalid_name"},
		// Numbers.
		{name: "ttl 1e400", method: "POST", path: acquire, body: `{"ttl_seconds":1e400}`, status: 400, code: "invalid_ttl"},
		{name: "ttl 2^64", method: "POST", path: acquire, body: `{"ttl_seconds":18446744073709551616}`, status: 400, code: "invalid_ttl"},
		{name: "ttl 2^63-1", method: "POST", path: acquire, body: `{"ttl_seconds":9223372036854775807}`, status: 400, code: "invalid_ttl"},
		{name: "ttl -2^63-1", method: "POST", path: acquire, body: `{"ttl_seconds":-9223372036854775809}`, status: 400, code: "invalid_ttl"},
		{name: "ttl -0", method: "POST", path: acquire, body: `{"ttl_seconds":-0}`, status: 400, code: "invalid_ttl"},
		{name: "ttl 1.0", method: "POST", path: acquire, body: `{"ttl_seconds":1.0}`, status: 400, code: "invalid_ttl"},
		{name: "ttl 1e2", method: "POST", path: acquire, body: `{"ttl_seconds":1e2}`, status: 400, code: "invalid_ttl"},
		{name: "ttl string", method: "POST", path: acquire, body: `{"ttl_seconds":"60"}`, status: 400, code: "invalid_ttl"},
		{name: "ttl negative", method: "POST", path: acquire, body: `{"ttl_seconds":-1}`, status: 400, code: "invalid_ttl"},
		{name: "ttl zero", method: "POST", path: acquire, body: `{"ttl_seconds":0}`, status: 400, code: "invalid_ttl"},
		{name: "ttl float", method: "POST", path: acquire, body: `{"ttl_seconds":0.5}`, status: 400, code: "invalid_ttl"},
		{name: "ttl 3601", method: "POST", path: acquire, body: `{"ttl_seconds":3601}`, status: 400, code: "invalid_ttl"},
		{name: "renew ttl zero renews nothing", method: "POST", path: renew, body: `{"lease_id":"LH","ttl_seconds":0}`, status: 400, code: "invalid_ttl"},
		{name: "renew ttl float renews nothing", method: "POST", path: renew, body: `{"lease_id":"LH","ttl_seconds":30.5}`, status: 400, code: "invalid_ttl"},
		// Wrong types and nulls.
		{name: "ttl null", method: "POST", path: acquire, body: `{"ttl_seconds":null}`, status: 400, code: "invalid_ttl"},
		{name: "ttl bool", method: "POST", path: acquire, body: `{"ttl_seconds":true}`, status: 400, code: "invalid_ttl"},
		{name: "ttl array", method: "POST", path: acquire, body: `{"ttl_seconds":[60]}`, status: 400, code: "invalid_ttl"},
		{name: "ttl object", method: "POST", path: acquire, body: `{"ttl_seconds":{}}`, status: 400, code: "invalid_ttl"},
		{name: "metadata null", method: "POST", path: acquire, body: `{"metadata":null}`, status: 400, code: "invalid_metadata"},
		{name: "metadata number", method: "POST", path: acquire, body: `{"metadata":7}`, status: 400, code: "invalid_metadata"},
		{name: "metadata object", method: "POST", path: acquire, body: `{"metadata":{"a":1}}`, status: 400, code: "invalid_metadata"},
		{name: "metadata 1025 bytes", method: "POST", path: acquire, body: `{"metadata":"` + strings.Repeat("é", 512) + `x"}`, status: 400, code: "invalid_metadata"},
		{name: "lease_id null", method: "POST", path: release, body: `{"lease_id":null}`, status: 400, code: "invalid_lease_id"},
		{name: "lease_id number", method: "POST", path: release, body: `{"lease_id":1}`, status: 400, code: "invalid_lease_id"},
		{name: "lease_id array", method: "POST", path: renew, body: `{"lease_id":["LH"]}`, status: 400, code: "invalid_lease_id"},
		{name: "lease_id bool", method: "POST", path: acquire, body: `{"lease_id":false}`, status: 400, code: "invalid_lease_id"},
		{name: "lease_id missing on release", method: "POST", path: release, body: `{}`, status: 400, code: "invalid_lease_id"},
		{name: "lease_id missing on renew", method: "POST", path: renew, body: ``, status: 400, code: "invalid_lease_id"},
		{name: "lease_id too long", method: "POST", path: release, body: `{"lease_id":"` + strings.Repeat("L", 65) + `"}`, status: 400, code: "invalid_lease_id"},
		// Shapes.
		{name: "duplicate key", method: "POST", path: release, body: `{"lease_id":"LH","lease_id":"LH"}`, status: 400, code: "invalid_json"},
		{name: "duplicate key, escaped", method: "POST", path: release, body: `{"lease_id":"LH","lease\u005fid":"LH"}`, status: 400, code: "invalid_json"},
		{name: "duplicate ttl", method: "POST", path: renew, body: `{"lease_id":"LH","ttl_seconds":5,"ttl_seconds":5}`, status: 400, code: "invalid_json"},
		{name: "unknown field ttl", method: "POST", path: acquire, body: `{"ttl":5}`, status: 400, code: "invalid_json"},
		{name: "unknown field of 10 KiB", method: "POST", path: acquire, body: `{"` + strings.Repeat("k", 10<<10) + `":1}`, status: 400, code: "invalid_json"},
		{name: "field in another case", method: "POST", path: release, body: `{"Lease_ID":"LH"}`, status: 400, code: "invalid_json"},
		{name: "metadata on renew", method: "POST", path: renew, body: `{"lease_id":"LH","metadata":"x"}`, status: 400, code: "invalid_json"},
		{name: "field on rotate", method: "POST", path: "/auth/token/rotate", body: `{"token":"x"}`, status: 400, code: "invalid_json"},
		{name: "array body", method: "POST", path: acquire, body: `[]`, status: 400, code: "invalid_json"},
		{name: "string body", method: "POST", path: release, body: `"LH"`, status: 400, code: "invalid_json"},
		{name: "null body", method: "POST", path: acquire, body: `null`, status: 400, code: "invalid_json"},
		{name: "number body", method: "POST", path: acquire, body: `60`, status: 400, code: "invalid_json"},
		{name: "trailing data", method: "POST", path: acquire, body: `{}x`, status: 400, code: "invalid_json"},
		{name: "two objects", method: "POST", path: release, body: `{"lease_id":"LH"} {"lease_id":"LH"}`, status: 400, code: "invalid_json"},
		{name: "BOM", method: "POST", path: acquire, body: "\ufeff{}", status: 400, code: "invalid_json"},
		{name: "truncated object", method: "POST", path: release, body: `{"lease_id":"LH"`, status: 400, code: "invalid_json"},
		{name: "single quotes", method: "POST", path: release, body: `{'lease_id':'LH'}`, status: 400, code: "invalid_json"},
		{name: "form encoding", method: "POST", path: release, body: `lease_id=LH`, header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}, status: 400, code: "invalid_json"},
		{name: "bad body after bad token is 401", method: "POST", path: release, auth: "Bearer nope", body: "{", status: 401, code: "unauthorized"},
		// Paths and names.
		{name: "traversal to health", method: "GET", path: "/locks/../health", status: 404, code: "not_found"},
		{name: "encoded traversal is the lock named ..", method: "GET", path: "/locks/%2e%2e", status: 200},
		{name: "encoded traversal acquire stays on the lock named ..", method: "POST", path: "/locks/%2e%2e/acquire", body: "{", status: 400, code: "invalid_json"},
		{name: "encoded dot is the lock named .", method: "GET", path: "/locks/%2E", status: 200},
		{name: "dot segment", method: "POST", path: "/locks/./held/release", body: `{"lease_id":"LH"}`, status: 404, code: "not_found"},
		{name: "traversal between locks", method: "POST", path: "/locks/x/../held/release", body: `{"lease_id":"LH"}`, status: 404, code: "not_found"},
		{name: "double slash", method: "GET", path: "//locks", status: 404, code: "not_found"},
		{name: "trailing slash", method: "GET", path: "/locks/held/", status: 404, code: "not_found"},
		{name: "empty name", method: "POST", path: "/locks//acquire", status: 404, code: "not_found"},
		{name: "encoded slash in name", method: "POST", path: "/locks/a%2Fb/acquire", status: 400, code: "invalid_name"},
		{name: "encoded slash in name, lower case", method: "GET", path: "/locks/held%2frelease", status: 400, code: "invalid_name"},
		{name: "encoded backslash", method: "GET", path: "/locks/a%5Cb", status: 400, code: "invalid_name"},
		{name: "name 129 bytes", method: "POST", path: "/locks/" + strings.Repeat("n", 129) + "/acquire", status: 400, code: "invalid_name"},
		{name: "name 10k bytes", method: "GET", path: "/locks/" + strings.Repeat("n", 10000), status: 400, code: "invalid_name"},
		{name: "name with space", method: "POST", path: "/locks/a%20b/acquire", status: 400, code: "invalid_name"},
		{name: "name with colon (a Redis key separator)", method: "POST", path: "/locks/a:lock/acquire", status: 400, code: "invalid_name"},
		{name: "name with braces (a Redis hash tag)", method: "POST", path: "/locks/%7Bx%7D/acquire", status: 400, code: "invalid_name"},
		{name: "name with star (a Redis pattern)", method: "GET", path: "/locks/*", status: 400, code: "invalid_name"},
		{name: "query string is ignored", method: "GET", path: "/locks/held?name=other", status: 200},
		{name: "ttl in the query string", method: "POST", path: "/locks/n1/acquire?ttl_seconds=3600", status: 400, code: "invalid_ttl"},
		{name: "renew ttl in the query string", method: "POST", path: renew + "?ttl_seconds=3600", body: `{"lease_id":"LH"}`, status: 400, code: "invalid_ttl"},
		{name: "release lease id in the query string", method: "POST", path: release + "?lease_id=LH", status: 400, code: "invalid_lease_id"},
		{name: "renew metadata in the query string", method: "POST", path: renew + "?METADATA=new", body: `{"lease_id":"LH"}`, status: 400, code: "invalid_json"},
		{name: "unknown route", method: "GET", path: "/admin", status: 404, code: "not_found"},
		{name: "unknown route of 10 KiB", method: "GET", path: "/" + strings.Repeat("p", 10<<10), status: 404, code: "not_found"},
		{name: "oauth start without a GitHub app", method: "GET", path: "/auth/github", auth: "-", status: 404, code: "oauth_disabled"},
		{name: "oauth callback without a GitHub app", method: "GET", path: "/auth/github/callback?code=x&state=y", auth: "-", status: 404, code: "oauth_disabled"},
		// Methods.
		{name: "PUT acquire", method: "PUT", path: acquire, status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "GET acquire", method: "GET", path: acquire, status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "GET renew", method: "GET", path: renew, status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "DELETE release", method: "DELETE", path: release, status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "HEAD release", method: "HEAD", path: release, status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "DELETE lock", method: "DELETE", path: "/locks/held", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "POST lock", method: "POST", path: "/locks/held", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "POST list", method: "POST", path: "/locks", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "GET rotate", method: "GET", path: "/auth/token/rotate", status: 405, code: "method_not_allowed", allow: "POST"},
		{name: "POST health", method: "POST", path: "/health", auth: "-", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "made-up method", method: "FOO", path: "/locks", status: 405, code: "method_not_allowed", allow: "GET, HEAD"},
		{name: "405 before auth", method: "PATCH", path: renew, auth: "-", status: 405, code: "method_not_allowed", allow: "POST"},
		// Headers.
		{name: "500 junk headers", method: "GET", path: "/locks/held", header: junk, status: 200},
		{name: "10 KiB X-Request-Id is replaced", method: "GET", path: "/locks", header: [][2]string{{"X-Request-Id", strings.Repeat("r", 10<<10)}}, status: 200},
		{name: "100 KiB Authorization", method: "GET", path: "/locks", auth: "Bearer " + strings.Repeat("A", 100<<10), status: 401, code: "unauthorized"},
		{name: "two Authorization headers", method: "GET", path: "/locks", header: [][2]string{{"Authorization", "Bearer TOKEN"}}, status: 401, code: "unauthorized"},
		{name: "two Authorization headers, second bad", method: "POST", path: release, body: `{"lease_id":"LH"}`, header: [][2]string{{"Authorization", "Basic x"}}, status: 401, code: "unauthorized"},
		{name: "no Authorization", method: "POST", path: release, auth: "-", body: `{"lease_id":"LH"}`, status: 401, code: "unauthorized"},
		{name: "Basic scheme", method: "GET", path: "/locks", auth: "Basic YWxpY2U6cHc=", status: 401, code: "unauthorized"},
		{name: "scheme only", method: "GET", path: "/locks", auth: "Bearer", status: 401, code: "unauthorized"},
		{name: "token only", method: "GET", path: "/locks", auth: "TOKEN", status: 401, code: "unauthorized"},
		{name: "tab after scheme", method: "GET", path: "/locks", auth: "Bearer\tTOKEN", status: 401, code: "unauthorized"},
		{name: "lowercase bearer", method: "GET", path: "/locks", auth: "bearer TOKEN", status: 200},
		{name: "token with trailing spaces", method: "GET", path: "/locks", auth: "Bearer TOKEN   ", status: 200},
		{name: "token with a trailing byte", method: "GET", path: "/locks", auth: "Bearer TOKENx", status: 401, code: "unauthorized"},
		{name: "token with a line break inside", method: "GET", path: "/locks", auth: "Bearer os_" + strings.Repeat("A", 42) + "\r", status: 401, code: "unauthorized"},
		{name: "unknown well-formed token", method: "POST", path: release, auth: "Bearer os_" + strings.Repeat("A", 43), body: `{"lease_id":"LH"}`, status: 401, code: "unauthorized"},
		{name: "token in the query string is not read", method: "GET", path: "/locks?access_token=TOKEN", auth: "-", status: 401, code: "unauthorized"},
		{name: "Content-Type is ignored", method: "POST", path: renew, body: `{"lease_id":"nope"}`, header: [][2]string{{"Content-Type", "text/html; charset=latin1"}}, status: 409, code: "lease_not_current"},
	}
	return rows
}

// TestHostileInput sends every row of the hostile-input table through the
// handler on each real store (SQLite, miniredis), one after another on one
// store, and checks its exact status and code and that it changed nothing:
// every account's held locks, the touched names, the account count, token
// validity and the fencing counters (observed by a probe acquire before and
// after, which must be exactly one apart).
func TestHostileInput(t *testing.T) {
	rows := hostileRows()
	if len(rows) < 60 {
		t.Fatalf("only %d rows", len(rows))
	}
	for _, b := range []backend{sqliteBackend, redisBackend} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, b)
			hostileSetup(t, e)
			for _, row := range rows {
				r := newReq(row.method, row.path, []byte(row.body), hostileAuth(e, row.auth))
				for _, h := range row.header {
					r.Header.Add(h[0], strings.ReplaceAll(h[1], "TOKEN", e.tokens["alice"]))
				}
				if len(row.header) > 0 && row.header[0][0] == "Transfer-Encoding" {
					r.ContentLength = -1
				}
				mark := e.mark(t, "held", "n1", "a", "other")
				a := contract(t, r, e.serve(t, r))
				if a.status != row.status || a.code != row.code {
					t.Errorf("%s: %s %s: %d %s, want %d %s", row.name, row.method, truncate(row.path, 60), a.status, truncate(a.raw, 200), row.status, row.code)
				}
				if row.allow != "" && a.header.Get("Allow") != row.allow {
					t.Errorf("%s: Allow %q, want %q", row.name, a.header.Get("Allow"), row.allow)
				}
				e.unchanged(t, mark, row.name)
			}
		})
	}
}

// hostileSetup makes alice and bob each hold "held" with lease LH.
func hostileSetup(t testing.TB, e *env) {
	t.Helper()
	md := "m"
	for login, id := range e.ids {
		res, err := e.store.Acquire(context.Background(), id, "held", lockcore.AcquireOptions{LeaseID: hostileLease, TTL: time.Hour, Metadata: &md, MaxHeld: 100})
		if err != nil || !res.Acquired {
			t.Fatalf("setup acquire for %s: %+v %v", login, res, err)
		}
	}
}

func hostileAuth(e *env, auth string) string {
	switch auth {
	case "":
		return e.bearer("alice")
	case "-":
		return "-"
	}
	return strings.ReplaceAll(auth, "TOKEN", e.tokens["alice"])
}

// The server's timeouts (internal/httpserver's 5 s and 15 s), shortened
// here so that the slow-client rows take a few seconds each; cmd/octostore's
// limits_test checks the binary's own settings. The header bound is
// httpserver.MaxHeaderBytes itself. Every row that sends its whole request
// at once needs the server to read it within these bounds, so they are not
// shorter than a busy two-core machine under -race can be relied on to meet.
const (
	testReadHeaderTimeout = 2 * time.Second
	testReadTimeout       = 3 * time.Second
)

// hostileServer serves e's handler on a loopback listener with the server
// limits of cmd/octostore (internal/httpserver).
func hostileServer(t *testing.T, e *env) string {
	t.Helper()
	return serveWithLimits(t, e.h)
}

// serveWithLimits serves h as hostileServer does.
func serveWithLimits(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ReadHeaderTimeout = testReadHeaderTimeout
	ts.Config.ReadTimeout = testReadTimeout
	// No row tests these two; WriteTimeout runs from the end of the
	// headers, so it must leave the body rows' answer (at ReadTimeout)
	// plenty of room.
	ts.Config.WriteTimeout = testReadTimeout + 10*time.Second
	ts.Config.IdleTimeout = testReadTimeout + 10*time.Second
	ts.Config.MaxHeaderBytes = httpserver.MaxHeaderBytes
	ts.Config.ErrorLog = nil
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.Listener.Addr().String()
}

// rawExchange writes the request parts to a new connection to addr: the
// first at once, each next one after pause, stopping early once the server
// has closed the connection. Meanwhile it reads what comes back (so an
// answer is read before any reset caused by the bytes still being sent)
// until the server closes the connection or, after the last part, well
// past every server timeout (a guard against a server that never closes,
// not a timing assertion). It returns the bytes read and whether the
// server closed the connection.
func rawExchange(t *testing.T, addr string, pause time.Duration, parts ...string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type result struct {
		got []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		got, err := io.ReadAll(c)
		read <- result{got, err}
	}()
	var res result
	done := false
	for i, p := range parts {
		if i > 0 {
			select {
			case res = <-read: // the server has closed the connection
				done = true
			case <-time.After(pause):
			}
		}
		if done {
			break
		}
		if _, err := io.WriteString(c, p); err != nil {
			break // the server has closed the connection
		}
	}
	if !done {
		c.SetReadDeadline(time.Now().Add(testReadTimeout + 10*time.Second))
		res = <-read
	}
	var ne net.Error
	closed := res.err == nil || !(errors.As(res.err, &ne) && ne.Timeout())
	return string(res.got), closed
}

// trickledBody is a release body of lease LH padded with JSON whitespace
// to 33 bytes, one part a byte: sent one part every testReadTimeout/4, it
// cannot be complete before 8 ReadTimeouts have passed, however the
// client and the server are scheduled, so a server that enforces
// ReadTimeout always cuts it (400) and one that does not releases "held".
func trickledBody() []string {
	body := `{"lease_id":"LH"` + strings.Repeat(" ", 16) + `}`
	parts := make([]string, len(body))
	for i := range body {
		parts[i] = body[i : i+1]
	}
	return parts
}

// statusOf returns the status code of a raw HTTP answer, 0 if none.
func statusOf(raw string) int {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostileConnections sends what only a real connection can carry
// through a server with cmd/octostore's limits: a header flood beyond
// MaxHeaderBytes, headers trickled slower than ReadHeaderTimeout, a body
// trickled slower than ReadTimeout, a body shorter than its Content-Length.
// Each gets its exact answer (or a closed connection) and changes nothing,
// and the server answers normally afterwards.
func TestHostileConnections(t *testing.T) {
	t.Parallel() // mostly waiting for the server's timeouts
	e := newEnv(t, sqliteBackend)
	hostileSetup(t, e)
	addr := hostileServer(t, e)
	tok := e.tokens["alice"]
	head := func(method, path string, extra ...string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: octostore.test\r\nConnection: close\r\nAuthorization: Bearer " + tok + "\r\n" + strings.Join(extra, "")
	}
	bigHeaders := make([]string, 1000)
	for i := range bigHeaders {
		bigHeaders[i] = fmt.Sprintf("X-Junk-%d: %s\r\n", i, strings.Repeat("j", 60))
	}
	rows := []struct {
		name   string
		pause  time.Duration
		parts  []string
		status int    // 0: the connection is closed with no answer
		code   string // the JSON code, "" when the answer is net/http's own
	}{
		{"header flood over MaxHeaderBytes", 0, []string{head("GET", "/locks", bigHeaders...) + "\r\n"}, 431, ""},
		{"one header value over MaxHeaderBytes", 0, []string{head("GET", "/locks", "X-Big: "+strings.Repeat("b", 40<<10)+"\r\n") + "\r\n"}, 431, ""},
		{"headers trickled past ReadHeaderTimeout", testReadHeaderTimeout / 3, []string{"POST /locks/held/release HTTP/1.1\r\n", "Host: o\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n", "X-D: 4\r\n"}, 0, ""},
		{"body trickled past ReadTimeout", testReadTimeout / 4, append([]string{head("POST", "/locks/held/release", fmt.Sprintf("Content-Length: %d\r\n\r\n", len(strings.Join(trickledBody(), ""))))}, trickledBody()...), 400, "invalid_json"},
		{"body shorter than Content-Length", 0, []string{head("POST", "/locks/held/release", "Content-Length: 100\r\n\r\n") + `{"lease_id":"LH"}`}, 400, "invalid_json"},
		{"headers never finished", 0, []string{"GET /locks HTTP/1.1\r\nHost: o\r\n"}, 0, ""},
		{"malformed request line", 0, []string{"GET /locks\r\n\r\n"}, 400, ""},
		{"header with a NUL", 0, []string{head("GET", "/locks", "X-A: a\x00b\r\n") + "\r\n"}, 400, ""},
		{"Content-Length and chunked together: chunked wins, empty body", 0, []string{head("POST", "/locks/held/release", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") + "0\r\n\r\n"}, 400, "invalid_lease_id"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			mark := e.mark(t, "held")
			raw, closed := rawExchange(t, addr, row.pause, row.parts...)
			if got := statusOf(raw); got != row.status {
				t.Fatalf("status %d, want %d; got %q", got, row.status, truncate(raw, 300))
			}
			if !closed {
				t.Errorf("the server kept the connection open")
			}
			if row.code != "" && !strings.Contains(raw, `"code":"`+row.code+`"`) {
				t.Errorf("answer %q has no code %s", truncate(raw, 300), row.code)
			}
			e.unchanged(t, mark, row.name)
		})
	}
	// The server still answers.
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health after the rows: %v %v", resp, err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
}

// TestOversizedBodyRefusedUnread: a body whose declared length is over the
// limit is refused with 413 before a byte of it is read, so a client that
// sent "Expect: 100-continue" is not invited to upload it first. (Served
// without the contract check, which reads every body to its end.)
func TestOversizedBodyRefusedUnread(t *testing.T) {
	e := newEnv(t, sqliteBackend)
	hostileSetup(t, e)
	addr := serveWithLimits(t, e.bare)
	mark := e.mark(t, "held")
	// One byte over the limit is refused unread as a megabyte is.
	for _, n := range []int{functions.MaxBodyBytes + 1, 1 << 20} {
		raw, closed := rawExchange(t, addr, 0, "POST /locks/held/release HTTP/1.1\r\nHost: octostore.test\r\nConnection: close\r\n"+
			"Authorization: Bearer "+e.tokens["alice"]+"\r\nContent-Length: "+strconv.Itoa(n)+"\r\nExpect: 100-continue\r\n\r\n")
		if got := statusOf(raw); got != http.StatusRequestEntityTooLarge || !strings.Contains(raw, `"code":"body_too_large"`) {
			t.Fatalf("Content-Length %d: status %d, want 413 body_too_large first; got %q", n, got, truncate(raw, 300))
		}
		if !closed {
			t.Errorf("Content-Length %d: the server kept the connection open", n)
		}
	}
	e.unchanged(t, mark, "oversized body")
}
