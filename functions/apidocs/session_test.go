package apidocs_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/octostore/octostore/functions/apidocs"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
)

// step is one request of the scripted session and the status it must get.
type step struct {
	name         string
	method, path string
	body         string
	auth         bool
	header       map[string]string
	want         int
	wantCode     string // the error code, when the answer is an error
	mode         int32  // the faultyStore mode during the step
}

// TestContractSession runs a scripted session through the real handler
// over SQLite, wrapped in the contract Validator: every exchange must match
// the document, and each step must get the status the contract says. The
// coverage of the document is logged at the end.
func TestContractSession(t *testing.T) {
	app := newApp(t)
	v := contracttest.Load(t, apidocs.Document(testVersion))
	h := v.Wrap(app.handler)

	do := func(s step) *httptest.ResponseRecorder {
		t.Helper()
		app.store.mode.Store(s.mode)
		defer app.store.mode.Store(storeOK)
		r := app.request(s.method, s.path, s.body, s.auth)
		for k, val := range s.header {
			r.Header.Set(k, val)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != s.want {
			t.Errorf("%s: %s %s → %d, want %d: %s", s.name, s.method, s.path, rec.Code, s.want, rec.Body)
		}
		if s.wantCode != "" {
			var e struct{ Code string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != s.wantCode {
				t.Errorf("%s: code %q (%v), want %q", s.name, e.Code, err, s.wantCode)
			}
		}
		return rec
	}
	field := func(rec *httptest.ResponseRecorder, name string) string {
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return fmt.Sprint(m[name])
	}

	big := `{"metadata":"` + strings.Repeat("x", 17<<10) + `"}`
	first := do(step{name: "acquire", method: "POST", path: "/locks/leader/acquire", body: `{"ttl_seconds":30,"metadata":"host-7","lease_id":"lease-1"}`, auth: true, want: 200})
	if field(first, "lease_id") != "lease-1" || field(first, "fencing_token") == "<nil>" {
		t.Fatalf("acquire answered %s", first.Body)
	}
	steps := []step{
		{name: "idempotent re-acquire", method: "POST", path: "/locks/leader/acquire", body: `{"lease_id":"lease-1"}`, auth: true, want: 200},
		{name: "acquire with defaults, no body", method: "POST", path: "/locks/other/acquire", auth: true, want: 200},
		{name: "acquire without Content-Type", method: "POST", path: "/locks/third/acquire", body: `{"ttl_seconds":3600}`, auth: true, want: 200},
		{name: "held", method: "POST", path: "/locks/leader/acquire", body: `{}`, auth: true, want: 409},
		// The document's name pattern makes these requests invalid; the
		// Validator still passes them to the handler (it never refuses a
		// request itself) and requires an answer of 400 or more, so the
		// handler's own 400 invalid_name is what is checked.
		{name: "bad name", method: "POST", path: "/locks/bad_name/acquire", auth: true, want: 400, wantCode: "invalid_name"},
		{name: "escaped slash in name", method: "GET", path: "/locks/a%2Fb", auth: true, want: 400, wantCode: "invalid_name"},
		{name: "name too long", method: "GET", path: "/locks/" + strings.Repeat("n", 129), auth: true, want: 400, wantCode: "invalid_name"},
		{name: "ttl 0", method: "POST", path: "/locks/x/acquire", body: `{"ttl_seconds":0}`, auth: true, want: 400, wantCode: "invalid_ttl"},
		{name: "ttl too long", method: "POST", path: "/locks/x/acquire", body: `{"ttl_seconds":3601}`, auth: true, want: 400, wantCode: "invalid_ttl"},
		{name: "metadata too long", method: "POST", path: "/locks/x/acquire", body: `{"metadata":"` + strings.Repeat("m", 1025) + `"}`, auth: true, want: 400, wantCode: "invalid_metadata"},
		{name: "bad lease id", method: "POST", path: "/locks/x/acquire", body: `{"lease_id":"no spaces"}`, auth: true, want: 400, wantCode: "invalid_lease_id"},
		{name: "unknown field", method: "POST", path: "/locks/x/acquire", body: `{"ttl":5}`, auth: true, want: 400, wantCode: "invalid_json"},
		{name: "broken JSON", method: "POST", path: "/locks/x/acquire", body: `{`, auth: true, want: 400, wantCode: "invalid_json"},
		{name: "trailing data", method: "POST", path: "/locks/x/acquire", body: `{}{}`, auth: true, want: 400, wantCode: "invalid_json"},
		{name: "body too large", method: "POST", path: "/locks/x/acquire", body: big, auth: true, want: 413, wantCode: "body_too_large"},
		{name: "no token", method: "POST", path: "/locks/x/acquire", want: 401, wantCode: "unauthorized"},
		{name: "malformed token", method: "GET", path: "/locks", header: map[string]string{"Authorization": "Bearer nope"}, want: 401, wantCode: "unauthorized"},
		{name: "unknown token", method: "GET", path: "/locks", header: map[string]string{"Authorization": "Bearer os_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, want: 401, wantCode: "unauthorized"},
		{name: "bad token beats bad body", method: "POST", path: "/locks/x/acquire", body: `{`, header: map[string]string{"Authorization": "Basic eDp5"}, want: 401, wantCode: "unauthorized"},
		{name: "acquire, store down", method: "POST", path: "/locks/x/acquire", auth: true, mode: storeUnavailable, want: 503, wantCode: "store_unavailable"},
		{name: "acquire, store broken", method: "POST", path: "/locks/x/acquire", auth: true, mode: storeBroken, want: 500, wantCode: "internal"},
		{name: "acquire, wrong method", method: "GET", path: "/locks/x/acquire", auth: true, want: 405, wantCode: "method_not_allowed"},

		{name: "renew", method: "POST", path: "/locks/leader/renew", body: `{"lease_id":"lease-1","ttl_seconds":60}`, auth: true, want: 200},
		{name: "renew another lease", method: "POST", path: "/locks/leader/renew", body: `{"lease_id":"lease-2"}`, auth: true, want: 409, wantCode: "lease_not_current"},
		{name: "renew without lease", method: "POST", path: "/locks/leader/renew", body: `{}`, auth: true, want: 400, wantCode: "invalid_lease_id"},
		{name: "renew bad ttl", method: "POST", path: "/locks/leader/renew", body: `{"lease_id":"lease-1","ttl_seconds":-1}`, auth: true, want: 400, wantCode: "invalid_ttl"},
		{name: "renew bad name", method: "POST", path: "/locks/b@d/renew", body: `{"lease_id":"lease-1"}`, auth: true, want: 400, wantCode: "invalid_name"},
		{name: "renew bad JSON", method: "POST", path: "/locks/leader/renew", body: `[]`, auth: true, want: 400, wantCode: "invalid_json"},
		{name: "renew too large", method: "POST", path: "/locks/leader/renew", body: big, auth: true, want: 413},
		{name: "renew no token", method: "POST", path: "/locks/leader/renew", body: `{"lease_id":"lease-1"}`, want: 401},
		{name: "renew, store down", method: "POST", path: "/locks/leader/renew", body: `{"lease_id":"lease-1"}`, auth: true, mode: storeUnavailable, want: 503},
		{name: "renew, store broken", method: "POST", path: "/locks/leader/renew", body: `{"lease_id":"lease-1"}`, auth: true, mode: storeBroken, want: 500},
		{name: "renew, wrong method", method: "PUT", path: "/locks/leader/renew", auth: true, want: 405},

		{name: "status held", method: "GET", path: "/locks/leader", auth: true, want: 200},
		{name: "status free", method: "GET", path: "/locks/nobody", auth: true, want: 200},
		{name: "status HEAD", method: "HEAD", path: "/locks/leader", auth: true, want: 200},
		{name: "status no token", method: "GET", path: "/locks/leader", want: 401},
		{name: "status, store down", method: "GET", path: "/locks/leader", auth: true, mode: storeUnavailable, want: 503},
		{name: "status, store broken", method: "GET", path: "/locks/leader", auth: true, mode: storeBroken, want: 500},
		{name: "status, wrong method", method: "DELETE", path: "/locks/leader", auth: true, want: 405},

		{name: "list", method: "GET", path: "/locks", auth: true, want: 200},
		{name: "list no token", method: "GET", path: "/locks", want: 401},
		{name: "list, store down", method: "GET", path: "/locks", auth: true, mode: storeUnavailable, want: 503},
		{name: "list, store broken", method: "GET", path: "/locks", auth: true, mode: storeBroken, want: 500},
		{name: "list, wrong method", method: "POST", path: "/locks", auth: true, want: 405},

		{name: "release another lease", method: "POST", path: "/locks/leader/release", body: `{"lease_id":"lease-2"}`, auth: true, want: 409, wantCode: "lease_not_current"},
		{name: "release without body", method: "POST", path: "/locks/leader/release", auth: true, want: 400, wantCode: "invalid_lease_id"},
		{name: "release bad name", method: "POST", path: "/locks/-%20-/release", body: `{"lease_id":"lease-1"}`, auth: true, want: 400, wantCode: "invalid_name"},
		{name: "release bad JSON", method: "POST", path: "/locks/leader/release", body: `{"lease_id":1}`, auth: true, want: 400},
		{name: "release too large", method: "POST", path: "/locks/leader/release", body: big, auth: true, want: 413},
		{name: "release no token", method: "POST", path: "/locks/leader/release", body: `{"lease_id":"lease-1"}`, want: 401},
		{name: "release, store down", method: "POST", path: "/locks/leader/release", body: `{"lease_id":"lease-1"}`, auth: true, mode: storeUnavailable, want: 503},
		{name: "release, store broken", method: "POST", path: "/locks/leader/release", body: `{"lease_id":"lease-1"}`, auth: true, mode: storeBroken, want: 500},
		{name: "release", method: "POST", path: "/locks/leader/release", body: `{"lease_id":"lease-1"}`, auth: true, want: 200},
		{name: "release, wrong method", method: "GET", path: "/locks/leader/release", auth: true, want: 405},

		{name: "health", method: "GET", path: "/health", want: 200},
		{name: "health, store down", method: "GET", path: "/health", mode: storeUnavailable, want: 503},
		{name: "health, wrong method", method: "POST", path: "/health", want: 405},

		{name: "rotate bad body", method: "POST", path: "/auth/token/rotate", body: `{"x":1}`, auth: true, want: 400, wantCode: "invalid_json"},
		{name: "rotate too large", method: "POST", path: "/auth/token/rotate", body: big, auth: true, want: 413},
		{name: "rotate no token", method: "POST", path: "/auth/token/rotate", want: 401},
		{name: "rotate, store down", method: "POST", path: "/auth/token/rotate", auth: true, mode: storeUnavailable, want: 503},
		{name: "rotate, store broken", method: "POST", path: "/auth/token/rotate", auth: true, mode: storeBroken, want: 500},
		{name: "rotate, wrong method", method: "GET", path: "/auth/token/rotate", auth: true, want: 405},

		{name: "unknown route", method: "GET", path: "/nope", want: 404, wantCode: "not_found"},
		{name: "unknown lock sub-route", method: "POST", path: "/locks/x/steal", auth: true, want: 404, wantCode: "not_found"},
	}
	if app.wired {
		steps = append(steps,
			step{name: "document, wrong method", method: "POST", path: "/openapi.json", want: 405},
			step{name: "docs, wrong method", method: "DELETE", path: "/docs", want: 405},
			step{name: "asset, wrong method", method: "POST", path: "/docs/swagger-ui.css", want: 405},
			step{name: "unknown asset", method: "GET", path: "/docs/nope.js", want: 404, wantCode: "not_found"},
		)
	}
	if rec := httptest.NewRecorder(); true {
		app.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/auth/github", nil))
		oauthWired := !strings.Contains(rec.Body.String(), `"not_found"`)
		if oauthWired {
			steps = append(steps,
				step{name: "GitHub sign-in not configured", method: "GET", path: "/auth/github", want: 404, wantCode: "oauth_disabled"},
				step{name: "GitHub callback not configured", method: "GET", path: "/auth/github/callback?code=c&state=s", want: 404, wantCode: "oauth_disabled"},
				step{name: "GitHub sign-in, wrong method", method: "POST", path: "/auth/github", want: 405},
			)
		} else {
			t.Logf("NOTE: functions does not register /auth/github yet; not exercised")
		}
	}
	for _, s := range steps {
		do(s)
	}

	// The lock limit: fill the account up to 100 held locks (topped up if
	// a short lease of the steps above expired meanwhile on a slow run).
	for round, n := 0, 0; round < 3; round++ {
		list := do(step{name: "list before the limit", method: "GET", path: "/locks", auth: true, want: 200})
		var held struct{ Count int }
		if err := json.Unmarshal(list.Body.Bytes(), &held); err != nil {
			t.Fatal(err)
		}
		if held.Count >= 100 {
			break
		}
		for range 100 - held.Count {
			n++
			do(step{name: "fill", method: "POST", path: fmt.Sprintf("/locks/fill-%03d/acquire", n), body: `{"ttl_seconds":3600}`, auth: true, want: 200})
		}
	}
	do(step{name: "lock limit", method: "POST", path: "/locks/one-too-many/acquire", auth: true, want: 403, wantCode: "lock_limit_exceeded"})

	// The document and the docs page, and an asset's revalidation.
	do(step{name: "document", method: "GET", path: "/openapi.json", want: 200})
	do(step{name: "docs", method: "GET", path: "/docs", want: 200})
	asset := do(step{name: "asset", method: "GET", path: "/docs/swagger-ui.css", header: map[string]string{"Accept-Encoding": "gzip"}, want: 200})
	do(step{name: "asset revalidated", method: "GET", path: "/docs/swagger-ui.css", header: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": asset.Header().Get("ETag")}, want: 304})

	// Rotation last: the old token stops working.
	rot := do(step{name: "rotate", method: "POST", path: "/auth/token/rotate", auth: true, want: 200})
	do(step{name: "old token after rotate", method: "GET", path: "/locks", auth: true, want: 401})
	app.token = field(rot, "token")
	do(step{name: "new token after rotate", method: "GET", path: "/locks", auth: true, want: 200})

	if u := v.Uncovered(); len(u) > 0 {
		t.Logf("documented answers this session cannot trigger (%d):\n  %s", len(u), strings.Join(u, "\n  "))
	}
	t.Logf("exchanges seen (%d kinds):\n  %s", len(v.Covered()), strings.Join(v.Covered(), "\n  "))
	if !app.wired {
		t.Logf("NOTE: functions does not register the docs routes yet; their 405 and 404 answers were not exercised")
	}
}
