package functions_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/alicebob/miniredis/v2"
	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
	"github.com/redis/go-redis/v9"
)

// This file holds the fuzz targets of the HTTP layer and the helpers they
// share with the hostile-input table (hostile_test.go): real stores opened
// once per target, a snapshot of everything a request could change, and a
// check of the contract every answer must meet.
//
// Every target runs over the production handler (functions.New) and a real
// store. Without -fuzz, go test runs the seeds (f.Add and testdata/fuzz).

// fuzzSQLite opens a SQLite store in a fresh directory, on tmpfs when
// /dev/shm is writable so that fsync does not bound the fuzzer's speed (it
// is still the real store on a real file). The clock moves only when told.
func fuzzSQLite(t testing.TB) (lockcore.Store, func(time.Duration)) {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "octostore-fuzz-")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	clock := &fakeClock{t: testEpoch}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "octostore.db"), sqlitestore.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, clock.Advance
}

// fuzzMiniredis opens a Redis store on an in-process miniredis whose clock
// (TIME and key expiry) moves only when told.
func fuzzMiniredis(t testing.TB) (lockcore.Store, func(time.Duration)) {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatalf("start miniredis: %v", err)
	}
	now := testEpoch
	m.SetTime(now)
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{OpTimeout: 10 * time.Second})
	t.Cleanup(func() { st.Close(); m.Close() })
	return st, func(d time.Duration) { now = now.Add(d); m.SetTime(now); m.FastForward(d) }
}

var (
	sqliteBackend = backend{"sqlite", fuzzSQLite, true}
	redisBackend  = backend{"redis", fuzzMiniredis, true}
)

// quiet drops the access log: fuzzing would fill memory with it.
func quiet(d *functions.Deps) { d.Logger = nil }

// probeName is the lock the fencing probe takes; no test request uses it.
const probeName = "zz-fence-probe"

// snapshot is everything a request could change in a store: each account's
// held locks, the state of the named locks in each account, how many
// accounts exist, and which of the env's tokens authenticate. The fencing
// counters are observed separately (fence), because observing them moves
// them.
type snapshot struct {
	Lists    map[string][]lockcore.Lease
	Locks    map[string]lockcore.LockState
	Accounts int64
	Tokens   map[string]bool
}

// snap takes a snapshot of e's store, with the state of names in every
// account.
func (e *env) snap(t testing.TB, names ...string) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{Lists: map[string][]lockcore.Lease{}, Locks: map[string]lockcore.LockState{}, Tokens: map[string]bool{}}
	for login, id := range e.ids {
		l, err := e.store.List(ctx, id)
		if err != nil {
			t.Fatalf("List(%s): %v", login, err)
		}
		s.Lists[login] = l
		for _, n := range names {
			if lockcore.ValidateName(n) != nil {
				continue
			}
			st, err := e.store.Get(ctx, id, n)
			if err != nil {
				t.Fatalf("Get(%s, %q): %v", login, n, err)
			}
			s.Locks[login+"/"+n] = st
		}
	}
	n, err := e.store.CountAccounts(ctx)
	if err != nil {
		t.Fatalf("CountAccounts: %v", err)
	}
	s.Accounts = n
	for login, tok := range e.tokens {
		_, err := e.store.AccountByToken(ctx, lockcore.HashToken(tok))
		if err != nil && !errors.Is(err, lockcore.ErrNotFound) {
			t.Fatalf("AccountByToken(%s): %v", login, err)
		}
		s.Tokens[login] = err == nil
	}
	return s
}

// fence observes the fencing counter of every account of e: it acquires
// and releases probeName and returns the tokens it got. A token is
// max(last + 1, the store's clock in µs), and e's clock stands still
// unless a test advances it, so each observation moves each counter by
// exactly one, and two observations with nothing between them (the clock
// included) differ by one.
func (e *env) fence(t testing.TB) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	out := map[string]int64{}
	for login, id := range e.ids {
		lease := lockcore.NewLeaseID()
		res, err := e.store.Acquire(ctx, id, probeName, lockcore.AcquireOptions{LeaseID: lease, TTL: time.Second, MaxHeld: 1 << 30})
		if err != nil || !res.Acquired {
			t.Fatalf("fence probe acquire (%s): %+v %v", login, res, err)
		}
		if err := e.store.Release(ctx, id, probeName, lease); err != nil {
			t.Fatalf("fence probe release (%s): %v", login, err)
		}
		out[login] = res.Lease.FencingToken
	}
	return out
}

// before is the state of a store ahead of one request.
type before struct {
	snap  snapshot
	fence map[string]int64
	names []string
}

// mark records the state of e (and of names) before a request.
func (e *env) mark(t testing.TB, names ...string) before {
	t.Helper()
	return before{snap: e.snap(t, names...), fence: e.fence(t), names: names}
}

// unchanged fails t unless the store is as it was at b: same snapshot, and
// every fencing counter moved by exactly the one step of the new probe.
func (e *env) unchanged(t testing.TB, b before, what string) {
	t.Helper()
	after := e.snap(t, b.names...)
	if !reflect.DeepEqual(b.snap, after) {
		t.Errorf("%s changed the store:\nbefore %+v\nafter  %+v", what, b.snap, after)
	}
	for login, f := range e.fence(t) {
		if f != b.fence[login]+1 {
			t.Errorf("%s moved %s's fencing counter: probe got %d, want %d", what, login, f, b.fence[login]+1)
		}
	}
}

// serve runs r through e's handler; the contract validator reports to t.
func (e *env) serve(t testing.TB, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r.WithContext(contracttest.WithT(r.Context(), t)))
	return w
}

// codesByStatus is the contract's error table: the codes each error status
// may carry.
var codesByStatus = map[int][]string{
	400: {"invalid_name", "invalid_ttl", "invalid_metadata", "invalid_lease_id", "invalid_json", "invalid_oauth_state"},
	401: {"unauthorized"},
	403: {"lock_limit_exceeded"},
	404: {"not_found", "oauth_disabled"},
	405: {"method_not_allowed"},
	409: {"lease_not_current"},
	413: {"body_too_large"},
	502: {"oauth_failed"},
	503: {"store_unavailable"},
}

// answer is a decoded response.
type answer struct {
	status int
	code   string         // error code, "" for a success or held answer
	body   map[string]any // the JSON object
	header http.Header
	raw    string
}

// contract checks what every answer to r must be: no 5xx, the common
// headers, a JSON object body; an error body of exactly error, code and
// request_id with a code of its status' row and the request id of the
// header; WWW-Authenticate on 401, Allow on 405. It returns the decoded
// answer. It does not stop the test.
func contract(t testing.TB, r *http.Request, w *httptest.ResponseRecorder) answer {
	t.Helper()
	where := r.Method + " " + truncate(r.URL.EscapedPath(), 80)
	res := w.Result()
	a := answer{status: w.Code, header: res.Header, raw: w.Body.String()}
	if w.Code >= 500 {
		t.Errorf("%s: status %d: %s", where, w.Code, truncate(a.raw, 300))
	}
	h := res.Header
	rid := h.Get("X-Request-Id")
	if !requestIDRE.MatchString(rid) {
		t.Errorf("%s: X-Request-Id %q is not well formed", where, rid)
	}
	if in := r.Header.Values("X-Request-Id"); len(in) > 0 && requestIDRE.MatchString(in[0]) && lockcore.HideTokens(in[0]) == in[0] && rid != in[0] {
		t.Errorf("%s: X-Request-Id %q, want the incoming %q echoed", where, rid, in[0])
	}
	if got := h.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("%s: Content-Type %q", where, got)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q", where, got)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil || a.body == nil {
		t.Errorf("%s: body is not a JSON object: %v: %q", where, err, truncate(a.raw, 300))
		return a
	}
	if !strings.HasSuffix(a.raw, "}\n") {
		t.Errorf("%s: body does not end with a newline: %q", where, truncate(a.raw, 300))
	}
	if w.Code < 400 || w.Code == http.StatusConflict && a.body["status"] == "held" {
		return a
	}
	code, _ := a.body["code"].(string)
	msg, _ := a.body["error"].(string)
	a.code = code
	if len(a.body) != 3 || msg == "" || a.body["request_id"] != rid {
		t.Errorf("%s: %d error body not {error, code, request_id=%s}: %s", where, w.Code, rid, truncate(a.raw, 300))
	}
	if !contains(codesByStatus[w.Code], code) {
		t.Errorf("%s: status %d with code %q", where, w.Code, code)
	}
	switch w.Code {
	case http.StatusUnauthorized:
		if got := h.Get("WWW-Authenticate"); got != `Bearer realm="octostore"` {
			t.Errorf("%s: 401 with WWW-Authenticate %q", where, got)
		}
	case http.StatusMethodNotAllowed:
		if h.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", where)
		}
	}
	return a
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// newReq builds a request to path (already escaped) with body and, unless
// auth is "-", the header Authorization: auth.
func newReq(method, path string, body []byte, auth string) *http.Request {
	r := httptest.NewRequest(method, "http://octostore.test"+path, bytes.NewReader(body))
	if auth != "-" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func (e *env) bearer(login string) string { return "Bearer " + e.tokens[login] }

// nameRE is the contract's rule for lock names.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9.-]{1,128}$`)

// FuzzLockName sends GET /locks/{name} (and, with write set, acquire and
// release) for arbitrary names, path-escaped as a client library would.
// ValidateName must agree with the contract's regexp; a valid name is
// answered 200 (except "." and "..", which no client can put in a path:
// 404), an invalid one 400 invalid_name (a name with a '/' too: the
// handler routes "/locks/%2F" itself, which ServeMux would not); "" is the
// route /locks/, 404.
func FuzzLockName(f *testing.F) {
	for _, s := range []string{
		"a", "my-lock.v2", strings.Repeat("n", 128), strings.Repeat("n", 129), "", ".", "..", "...", "a/b", "a\x00b",
		"é", "\xff", "a b", "%2F", "a%2Fb", "a?b", "a#b", "a;b", "-", "a\\b", "\u202e", "A.-",
	} {
		f.Add(s, true)
	}
	e := newEnv(f, sqliteBackend, quiet)
	f.Fuzz(func(t *testing.T, name string, write bool) {
		valid := lockcore.ValidateName(name) == nil
		if valid != nameRE.MatchString(name) {
			t.Fatalf("ValidateName(%q) valid=%v, regexp says %v", name, valid, !valid)
		}
		esc := url.PathEscape(name)
		// want is the answer for a path around the name: 404 not_found for
		// "", "." and ".." (no client can send them unescaped), 200 for
		// another valid name, 400 invalid_name for an invalid one.
		want := func() (int, string) {
			switch {
			case name == "" || name == "." || name == "..":
				return 404, "not_found"
			case valid:
				return 200, ""
			}
			return 400, "invalid_name"
		}
		match := func(a answer, st int, code string) bool { return a.status == st && a.code == code }
		wantStatus, wantCode := want()
		r := newReq("GET", "/locks/"+esc, nil, e.bearer("alice"))
		a := contract(t, r, e.serve(t, r))
		if !match(a, wantStatus, wantCode) {
			t.Fatalf("GET /locks/%s: %d %s, want %d %s", esc, a.status, a.raw, wantStatus, wantCode)
		}
		if a.status == 200 && (a.body["name"] != name || a.body["status"] != "free") {
			t.Fatalf("GET /locks/%s: %s, want %q free", esc, a.raw, name)
		}
		if !write {
			return
		}
		b := e.mark(t, name)
		r = newReq("POST", "/locks/"+esc+"/acquire", []byte(`{"ttl_seconds":1}`), e.bearer("alice"))
		a = contract(t, r, e.serve(t, r))
		if !match(a, wantStatus, wantCode) {
			t.Fatalf("POST /locks/%s/acquire: %d %s, want %d %s", esc, a.status, a.raw, wantStatus, wantCode)
		}
		if a.status != 200 {
			e.unchanged(t, b, "acquire of "+strconv.Quote(name))
			return
		}
		r = newReq("POST", "/locks/"+esc+"/release", []byte(`{"lease_id":"`+a.body["lease_id"].(string)+`"}`), e.bearer("alice"))
		if a = contract(t, r, e.serve(t, r)); a.status != 200 || a.body["name"] != name {
			t.Fatalf("POST /locks/%s/release: %d %s", esc, a.status, a.raw)
		}
	})
}

// authRE is the contract's form of a good Authorization header: "Bearer",
// in any case, one or more spaces, the token; spaces around are allowed.
var authRE = regexp.MustCompile(`^ *(?i:bearer) +(os_[A-Za-z0-9_-]{43}) *$`)

// FuzzAuthHeader sends arbitrary Authorization values (TOKEN stands for
// alice's token) to three authenticated routes. A value of the contract's
// form with a known token reaches the route (200 for GET /locks, 409 for a
// release of an unknown lease, 400 invalid_json for a rotate with a bad
// body, so that nothing rotates); anything else, and any second
// Authorization header, is 401 with WWW-Authenticate. No answer changes
// the store.
func FuzzAuthHeader(f *testing.F) {
	for _, s := range []string{
		"Bearer TOKEN", "bearer TOKEN", "BEARER TOKEN", "Bearer  TOKEN", " Bearer TOKEN ", "Bearer TOKEN  ",
		"Bearer\tTOKEN", "Bearer TOKEN\t", "Basic TOKEN", "TOKEN", "Bearer", "Bearer ", "", "Bearer TOKENx",
		"Bearer os_" + strings.Repeat("A", 43), "Bearer os_" + strings.Repeat("A", 42) + "B", "Bearer TOKEN\r\n",
		"Bearer \x00TOKEN", "Bearer TOKEN TOKEN", "Bearer=TOKEN", "Bearer:TOKEN", "Bearer \u00a0TOKEN",
	} {
		f.Add(s, "", uint8(0), false)
		f.Add(s, "Bearer TOKEN", uint8(1), true)
		f.Add(s, s, uint8(2), false)
	}
	e := newEnv(f, sqliteBackend, quiet)
	routes := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/locks", "", 200, ""},
		{"POST", "/locks/fa/release", `{"lease_id":"nope"}`, 409, "lease_not_current"},
		{"POST", "/auth/token/rotate", `{`, 400, "invalid_json"},
	}
	f.Fuzz(func(t *testing.T, value, second string, route uint8, two bool) {
		tok := e.tokens["alice"]
		value = strings.ReplaceAll(value, "TOKEN", tok)
		second = strings.ReplaceAll(second, "TOKEN", tok)
		rt := routes[int(route)%len(routes)]
		r := newReq(rt.method, rt.path, []byte(rt.body), value)
		if two {
			r.Header.Add("Authorization", second)
		}
		m := authRE.FindStringSubmatch(value)
		wantStatus, wantCode := 401, "unauthorized"
		if !two && m != nil && m[1] == tok {
			wantStatus, wantCode = rt.status, rt.code
		}
		b := e.mark(t, "fa")
		a := contract(t, r, e.serve(t, r))
		if a.status != wantStatus || a.code != wantCode {
			t.Fatalf("%s %s with Authorization %q (second %v %q): %d %s, want %d %s",
				rt.method, rt.path, value, two, second, a.status, a.raw, wantStatus, wantCode)
		}
		e.unchanged(t, b, "a request with Authorization "+strconv.Quote(value))
	})
}

// endpointSpec is one body-taking endpoint as the contract states it.
type endpointSpec struct {
	path     string
	fields   []string // the body fields it accepts
	needs    bool     // lease_id is required
	codes400 []string // the 400 codes it may answer
}

var (
	acquireSpec = endpointSpec{"/locks/fz/acquire", []string{"ttl_seconds", "metadata", "lease_id"}, false, []string{"invalid_json", "invalid_ttl", "invalid_metadata", "invalid_lease_id"}}
	renewSpec   = endpointSpec{"/locks/fz/renew", []string{"ttl_seconds", "lease_id"}, true, []string{"invalid_json", "invalid_ttl", "invalid_lease_id"}}
	releaseSpec = endpointSpec{"/locks/fz/release", []string{"lease_id"}, true, []string{"invalid_json", "invalid_lease_id"}}
	rotateSpec  = endpointSpec{"/auth/token/rotate", nil, false, []string{"invalid_json"}}
)

// verdict is what the contract says of a body, worked out independently of
// the handler's decoder (encoding/json into a map, plus a key count for
// duplicates).
type verdict struct {
	tooLarge bool     // over 16 KiB: 413
	syntax   bool     // not one JSON object in valid UTF-8: 400 invalid_json
	keys     bool     // an unknown or repeated key: 400, invalid_json or a field's code
	bad      []string // codes of fields breaking their rule (and of a missing lease_id)
	ttl      int64    // ttl_seconds, default 60
	metadata *string
	leaseID  *string
}

var jsonIntRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func judge(spec endpointSpec, body []byte) verdict {
	v := verdict{ttl: 60}
	if len(body) > functions.MaxBodyBytes {
		v.tooLarge = true
		return v
	}
	if len(bytes.Trim(body, " \t\r\n")) == 0 {
		if spec.needs {
			v.bad = append(v.bad, "invalid_lease_id")
		}
		return v
	}
	var m map[string]json.RawMessage
	if !utf8.Valid(body) || bytes.Trim(body, " \t\r\n")[0] != '{' || json.Unmarshal(body, &m) != nil {
		v.syntax = true
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.Token()
	n := 0
	for dec.More() {
		dec.Token()
		var skip json.RawMessage
		dec.Decode(&skip)
		n++
	}
	if n != len(m) {
		v.keys = true
	}
	for k, raw := range m {
		if !contains(spec.fields, k) {
			v.keys = true
			continue
		}
		switch k {
		case "ttl_seconds":
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if !jsonIntRE.Match(raw) || err != nil || n < 1 || n > 3600 {
				v.bad = append(v.bad, "invalid_ttl")
			}
			v.ttl = n
		case "metadata":
			var s string
			if raw[0] != '"' || json.Unmarshal(raw, &s) != nil || len(s) > 1024 || unpairedSurrogate(raw) {
				v.bad = append(v.bad, "invalid_metadata")
			}
			v.metadata = &s
		case "lease_id":
			var s string
			if raw[0] != '"' || json.Unmarshal(raw, &s) != nil || lockcore.ValidateLeaseID(s) != nil {
				v.bad = append(v.bad, "invalid_lease_id")
			}
			v.leaseID = &s
		}
	}
	if spec.needs && v.leaseID == nil {
		v.bad = append(v.bad, "invalid_lease_id")
	}
	return v
}

// unpairedSurrogate reports whether the valid JSON string literal lit
// (quotes included) stands for UTF-16 code units with a surrogate outside a
// high-low pair. It is the fuzz model's own reading of the literal,
// independent of the handler's hasLoneSurrogate: every escape and every
// UTF-8 character is turned into code units, then the pairs are checked.
func unpairedSurrogate(lit []byte) bool {
	var units []uint16
	body := string(lit[1 : len(lit)-1])
	for len(body) > 0 {
		if body[0] != '\\' {
			r, size := utf8.DecodeRuneInString(body)
			units = utf16.AppendRune(units, r)
			body = body[size:]
			continue
		}
		if body[1] == 'u' {
			v, _ := strconv.ParseUint(body[2:6], 16, 16)
			units = append(units, uint16(v))
			body = body[6:]
			continue
		}
		units = append(units, uint16(body[1])) // any other escape is one unit
		body = body[2:]
	}
	for i := 0; i < len(units); i++ {
		switch u := rune(units[i]); {
		case u >= 0xD800 && u < 0xDC00 && i+1 < len(units) && units[i+1] >= 0xDC00 && units[i+1] < 0xE000:
			i++
		case utf16.IsSurrogate(u):
			return true
		}
	}
	return false
}

// setupLease is the lease that holds "fz" when a FuzzJSONBody input asks
// for a held lock.
const setupLease = "L1"

// runBody sends body to spec's endpoint on w (with "fz" held by setupLease
// first when held) and checks the answer against the verdict: the status
// and code, the fields of a success, and, when deep, that an error or held
// answer changed nothing. It returns status and code for comparing stores.
func runBody(t *testing.T, w *env, spec endpointSpec, held, deep bool, body []byte) (int, string) {
	t.Helper()
	defer w.advance(2 * time.Hour) // every lease expires before the next input
	var setup lockcore.Lease
	if held {
		md := "setup"
		res, err := w.store.Acquire(context.Background(), w.ids["alice"], "fz", lockcore.AcquireOptions{LeaseID: setupLease, TTL: time.Minute, Metadata: &md, MaxHeld: 100})
		if err != nil || !res.Acquired {
			t.Fatalf("setup acquire: %+v %v", res, err)
		}
		setup = res.Lease
	}
	v := judge(spec, body)
	var b before
	if deep {
		b = w.mark(t, "fz")
	}
	oldToken := w.tokens["alice"]
	r := newReq("POST", spec.path, body, w.bearer("alice"))
	a := contract(t, r, w.serve(t, r))
	where := spec.path + " body " + strconv.Quote(truncate(string(body), 200))
	fail := func(want string) {
		t.Helper()
		t.Fatalf("%s (held=%v): %d %s, want %s", where, held, a.status, truncate(a.raw, 300), want)
	}
	switch {
	case v.tooLarge:
		if a.status != 413 || a.code != "body_too_large" {
			fail("413 body_too_large")
		}
	case v.syntax:
		if a.status != 400 || a.code != "invalid_json" {
			fail("400 invalid_json")
		}
	case v.keys:
		if a.status != 400 || !contains(spec.codes400, a.code) {
			fail("400 with one of " + strings.Join(spec.codes400, ", "))
		}
	case len(v.bad) > 0:
		if a.status != 400 || !contains(v.bad, a.code) {
			fail("400 with one of " + strings.Join(v.bad, ", "))
		}
	default:
		checkSuccess(t, w, spec, held, setup, v, a, b, fail)
	}
	if a.status >= 400 && deep {
		w.unchanged(t, b, where)
	}
	if a.status == 200 && spec.path == rotateSpec.path {
		if _, err := w.store.AccountByToken(context.Background(), lockcore.HashToken(oldToken)); !errors.Is(err, lockcore.ErrNotFound) {
			t.Fatalf("%s: old token still known after rotation (err %v)", where, err)
		}
	}
	return a.status, a.code
}

// checkSuccess checks the answer to a body the contract accepts.
func checkSuccess(t *testing.T, w *env, spec endpointSpec, held bool, setup lockcore.Lease, v verdict, a answer, b before, fail func(string)) {
	t.Helper()
	mine := held && v.leaseID != nil && *v.leaseID == setupLease
	num := func(k string) int64 { f, _ := a.body[k].(float64); return int64(f) }
	switch spec.path {
	case acquireSpec.path:
		if held && !mine {
			if a.status != 409 || a.body["status"] != "held" || a.body["holder_id"] != lockcore.HolderID(setupLease) || a.body["metadata"] != "setup" {
				fail("409 held by " + lockcore.HolderID(setupLease))
			}
			return
		}
		wantMeta := ""
		switch {
		case v.metadata != nil:
			wantMeta = *v.metadata
		case mine:
			wantMeta = "setup"
		}
		gotMeta, _ := a.body["metadata"].(string)
		if a.status != 200 || a.body["status"] != "acquired" || num("ttl_seconds") != v.ttl || gotMeta != wantMeta {
			fail("200 acquired, ttl " + strconv.FormatInt(v.ttl, 10) + ", metadata " + strconv.Quote(wantMeta))
		}
		if v.leaseID != nil && a.body["lease_id"] != *v.leaseID {
			fail("200 with lease_id " + *v.leaseID)
		}
		if mine && num("fencing_token") != setup.FencingToken || !mine && num("fencing_token") <= b.fence["alice"] {
			fail("a fencing token above the last one, or the retried lease's own")
		}
		st, err := w.store.Get(context.Background(), w.ids["alice"], "fz")
		if err != nil || !st.Held || st.Lease.LeaseID != a.body["lease_id"] || st.Lease.FencingToken != num("fencing_token") || st.Lease.Metadata != wantMeta {
			t.Fatalf("after %s the store has %+v (%v)", a.raw, st, err)
		}
	case renewSpec.path:
		if !mine {
			if a.status != 409 || a.code != "lease_not_current" {
				fail("409 lease_not_current")
			}
			return
		}
		if a.status != 200 || a.body["status"] != "renewed" || num("ttl_seconds") != v.ttl || num("fencing_token") != setup.FencingToken {
			fail("200 renewed with the setup lease's token")
		}
	case releaseSpec.path:
		if !mine {
			if a.status != 409 || a.code != "lease_not_current" {
				fail("409 lease_not_current")
			}
			return
		}
		if a.status != 200 || a.body["status"] != "released" || a.body["name"] != "fz" {
			fail("200 released")
		}
		if st, err := w.store.Get(context.Background(), w.ids["alice"], "fz"); err != nil || st.Held {
			t.Fatalf("after release the store has %+v (%v)", st, err)
		}
	case rotateSpec.path:
		tok, _ := a.body["token"].(string)
		if a.status != 200 || a.body["account_id"] != w.ids["alice"] || a.body["login"] != "alice" {
			fail("200 with a new token for alice")
		}
		if _, err := lockcore.ParseToken(tok); err != nil {
			fail("a well-formed token")
		}
		w.tokens["alice"] = tok
	}
}

// bodySeeds are bodies near every rule of the strict decoder.
var bodySeeds = []string{
	"", " ", "\n\t", "{}", " {} ", "{}\n", `{"lease_id":"L1"}`, `{"lease_id":"L2"}`, `{"lease_id":"L1","ttl_seconds":5}`,
	`{"lease_id":"L1","ttl_seconds":3600}`, `{"ttl_seconds":1,"lease_id":"L1","metadata":"m"}`,
	`{"ttl_seconds":3600}`, `{"ttl_seconds":3601}`, `{"ttl_seconds":0}`, `{"ttl_seconds":-1}`, `{"ttl_seconds":1.0}`,
	`{"ttl_seconds":1e2}`, `{"ttl_seconds":-0}`, `{"ttl_seconds":"60"}`, `{"ttl_seconds":1e400}`, `{"ttl_seconds":18446744073709551616}`,
	`{"ttl_seconds":null}`, `{"metadata":"m"}`, `{"metadata":""}`, `{"metadata":null}`, `{"metadata":1}`, `{"metadata":"\u0000"}`,
	`{"metadata":"\ud800"}`, `{"metadata":"\ud83d\ude00"}`, `{"metadata":"\\ud800"}`, `{"metadata":"\udc00\ud800"}`, `{"metadata":"\ufffd"}`, `{"metadata":"` + strings.Repeat("é", 512) + `"}`, `{"metadata":"` + strings.Repeat("é", 513) + `"}`,
	`{"lease_id":""}`, `{"lease_id":"a b"}`, `{"lease_id":` + strconv.Quote(strings.Repeat("x", 65)) + `}`, `{"lease_id":["L1"]}`,
	`{"lease_id":"L1","lease_id":"L1"}`, `{"lease_id":"L1","l\u0065ase_id":"L1"}`, `{"ttl":5}`, `{"TTL_SECONDS":5}`,
	`{"ttl_seconds":"x","zzz":1}`, `{"zzz":1,"ttl_seconds":"x"}`, `[]`, `null`, `"x"`, `0`, `{`, `{}}`, `{} {}`, `{}x`,
	"\ufeff{}", "{\"metadata\":\"\xff\"}", "{}\x00", `{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	strings.Repeat(" ", functions.MaxBodyBytes-2) + "{}", strings.Repeat(" ", functions.MaxBodyBytes-1) + "{}",
}

// fuzzBody is FuzzJSONBody for one endpoint: each input runs on a SQLite
// store and a miniredis store, each checked against the contract and the
// verdict of judge, and the two must answer alike.
func fuzzBody(f *testing.F, spec endpointSpec) {
	for _, s := range bodySeeds {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	worlds := []*env{newEnv(f, sqliteBackend, quiet), newEnv(f, redisBackend, quiet)}
	// Snapshots of miniredis are slow (each Lua call builds an interpreter),
	// so only the SQLite store's state is checked after every input; the
	// Redis store's answers must equal SQLite's, and TestHostileInput checks
	// its state after each of its rows.
	f.Fuzz(func(t *testing.T, held bool, body []byte) {
		s1, c1 := runBody(t, worlds[0], spec, held, true, body)
		s2, c2 := runBody(t, worlds[1], spec, held, false, body)
		if s1 != s2 || c1 != c2 {
			t.Fatalf("%s body %q: sqlite %d %s, redis %d %s", spec.path, truncate(string(body), 200), s1, c1, s2, c2)
		}
	})
}

// FuzzJSONBodyAcquire fuzzes the body of POST /locks/{name}/acquire.
func FuzzJSONBodyAcquire(f *testing.F) { fuzzBody(f, acquireSpec) }

// FuzzJSONBodyRenew fuzzes the body of POST /locks/{name}/renew.
func FuzzJSONBodyRenew(f *testing.F) { fuzzBody(f, renewSpec) }

// FuzzJSONBodyRelease fuzzes the body of POST /locks/{name}/release.
func FuzzJSONBodyRelease(f *testing.F) { fuzzBody(f, releaseSpec) }

// FuzzJSONBodyRotate fuzzes the body of POST /auth/token/rotate.
func FuzzJSONBodyRotate(f *testing.F) { fuzzBody(f, rotateSpec) }

// FuzzRequest parses arbitrary bytes as an HTTP/1.1 request the way the
// server does (http.ReadRequest; what it refuses never reaches the handler)
// and serves it: no panic, no 5xx, every answer in the contract's shape,
// and no error answer changes the store. In the headers, TOKEN stands for
// alice's current token.
func FuzzRequest(f *testing.F) {
	auth := "Authorization: Bearer TOKEN\n"
	for _, s := range []struct{ method, target, headers, body string }{
		{"GET", "/health", "", ""},
		{"POST", "/locks/a/acquire", auth, `{"ttl_seconds":5}`},
		{"POST", "/locks/a/acquire", auth + "Content-Type: text/plain\n", `{"lease_id":"L"}`},
		{"POST", "/locks/a/renew", auth, `{"lease_id":"L"}`},
		{"POST", "/locks/a/release", auth, `{"lease_id":"L"}`},
		{"GET", "/locks/a", auth, ""},
		{"GET", "/locks", auth + "X-Request-Id: abc\n", ""},
		{"POST", "/auth/token/rotate", auth, "{}"},
		{"GET", "/auth/github", "", ""},
		{"DELETE", "/locks/a", auth, ""},
		{"HEAD", "/health", "", ""},
		{"OPTIONS", "*", "", ""},
		{"CONNECT", "octostore.test:443", "", ""},
		{"GET", "http://octostore.test/locks?x=1", auth, ""},
		{"GET", "/locks/../health", "", ""},
		{"POST", "/locks/%2e%2e/acquire", auth, ""},
		{"POST", "/locks/a%2Fb/acquire", auth, ""},
		{"GET", "//locks", auth, ""},
		{"POST", "/locks/a/acquire", auth + "Transfer-Encoding: chunked\n", "5\r\n{\"a\":\r\n0\r\n\r\n"},
		{"POST", "/locks/a/acquire", auth + "Content-Length: 100\n", "{}"},
		{"POST", "/locks/a/acquire", auth + "Authorization: Bearer TOKEN\n", "{}"},
		{"GET", "/locks", "Authorization: bearer  TOKEN \n", ""},
	} {
		f.Add(s.method, s.target, s.headers, []byte(s.body))
	}
	e := newEnv(f, sqliteBackend, quiet)
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte) {
		var raw bytes.Buffer
		raw.WriteString(method + " " + target + " HTTP/1.1\r\nHost: octostore.test\r\n")
		framed := false
		for line := range strings.SplitSeq(strings.ReplaceAll(headers, "TOKEN", e.tokens["alice"]), "\n") {
			if line == "" {
				continue
			}
			k := strings.ToLower(strings.TrimSpace(strings.SplitN(line, ":", 2)[0]))
			framed = framed || k == "content-length" || k == "transfer-encoding"
			raw.WriteString(line + "\r\n")
		}
		if !framed {
			raw.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
		}
		raw.WriteString("\r\n")
		raw.Write(body)
		r, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil {
			return // the server answers such bytes itself, before the handler
		}
		r.RemoteAddr = "192.0.2.1:1234"
		b := e.mark(t)
		old := e.tokens["alice"]
		a := contract(t, r, e.serve(t, r))
		switch {
		case a.status >= 400:
			e.unchanged(t, b, method+" "+target)
		case a.status == 200 && r.URL.Path == "/auth/token/rotate":
			tok, _ := a.body["token"].(string)
			if _, err := lockcore.ParseToken(tok); err != nil {
				t.Fatalf("rotate answered %s", a.raw)
			}
			if _, err := e.store.AccountByToken(context.Background(), lockcore.HashToken(old)); !errors.Is(err, lockcore.ErrNotFound) {
				t.Fatalf("old token still known after rotation (err %v)", err)
			}
			e.tokens["alice"] = tok
		}
		// Free every lock so the account never reaches its quota.
		e.advance(2 * time.Hour)
	})
}
