package functions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/syncbuf"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// backend is one real store the HTTP tests run over. open returns a fresh,
// empty store (closed by t.Cleanup) and a function that moves the store's
// clock forward. Every test that ranges over backends gives the same
// answers on each, modulo what normalize replaces.
type backend struct {
	name string
	open func(t testing.TB) (lockcore.Store, func(time.Duration))
	// frozen says that the store's clock starts at testEpoch and moves
	// only when the function open returns is called, so that every
	// fencing token is known in advance (see fenceNamer).
	frozen bool
}

// backends lists the stores under test. A new backend is one more entry.
var backends = []backend{
	{"sqlite", openSQLite, true},
	{"miniredis", openMiniredis, true},
	{"redis", openRealRedis, false},
}

// testEpoch is where the injected clocks start.
var testEpoch = time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openSQLite(t testing.TB) (lockcore.Store, func(time.Duration)) {
	t.Helper()
	clock := &fakeClock{t: testEpoch}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "octostore.db"), sqlitestore.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, clock.Advance
}

// env is one handler over one fresh store with two accounts, alice and bob.
type env struct {
	store   lockcore.Store
	advance func(time.Duration)
	h       http.Handler // bare inside the OpenAPI contract check
	bare    http.Handler // functions.New itself (the check reads every request body to its end)
	logs    *syncbuf.Buffer
	tokens  map[string]string // login (or other name a test gives) → bearer token
	ids     map[string]string // login → account id
	// clockMicros is the store's clock in microseconds on a backend whose
	// clock is frozen (nil on one with a real clock).
	clockMicros func() int64
}

// testOpTimeout is the handlers' store-operation timeout in these tests
// (production's is functions.DefaultOpTimeout, 3 s): a SQLite commit waits
// for fsync on the test's disk, and a busy machine under -race can take
// seconds for one; a test that is about a timeout sets its own.
const testOpTimeout = 30 * time.Second

// envOption changes the Deps (or the store) of an env before New.
type envOption func(*functions.Deps)

func newEnv(t testing.TB, b backend, opts ...envOption) *env {
	t.Helper()
	st, advance := b.open(t)
	e := &env{store: st, advance: advance, logs: &syncbuf.Buffer{}, tokens: map[string]string{}, ids: map[string]string{}}
	if b.frozen {
		var mu sync.Mutex
		now := testEpoch
		e.advance = func(d time.Duration) {
			mu.Lock()
			now = now.Add(d)
			mu.Unlock()
			advance(d)
		}
		e.clockMicros = func() int64 {
			mu.Lock()
			defer mu.Unlock()
			return now.UnixMicro()
		}
	}
	ctx := context.Background()
	for _, login := range []string{"alice", "bob"} {
		acct, _, err := st.EnsureAccount(ctx, login)
		if err != nil {
			t.Fatalf("EnsureAccount(%s): %v", login, err)
		}
		tok, hash := lockcore.NewToken()
		if err := st.AddToken(ctx, acct.ID, hash); err != nil {
			t.Fatalf("AddToken(%s): %v", login, err)
		}
		e.tokens[login], e.ids[login] = tok, acct.ID
	}
	d := functions.Deps{
		Store:     st,
		StoreName: storeKind(b.name),
		Logger:    slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version:   "test",
		OpTimeout: testOpTimeout,
	}
	for _, o := range opts {
		o(&d)
	}
	// Every request of these suites is held to the OpenAPI document.
	e.bare = functions.New(d)
	e.h = contracttest.Wrap(t, e.bare)
	return e
}

// storeKind is what /health says for backend name: miniredis speaks the
// Redis protocol and runs the same scripts, so it is "redis".
func storeKind(name string) string {
	if name == "miniredis" {
		return "redis"
	}
	return name
}

// req is one request of a test: auth is a key of env.tokens (a login such
// as "alice" or "bob"), "-" for no Authorization header, or "raw:" and the
// header's exact value; the default is alice.
type req struct {
	method, path string
	auth         string
	body         string
	header       map[string]string
	ctx          context.Context
	want500      bool // the one test that provokes a 500 on purpose
}

func (e *env) do(t testing.TB, q req) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	r := e.request(t, q)
	e.h.ServeHTTP(w, r.WithContext(contracttest.WithT(r.Context(), t)))
	checkCommon(t, q, w)
	return w
}

// request builds q's *http.Request. In a "raw:" auth value, TOKEN stands
// for alice's token.
func (e *env) request(t testing.TB, q req) *http.Request {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	target := "http://octostore.test" + q.path
	if q.path == "*" {
		target = q.path // "OPTIONS *": a request for the server, not a path
	}
	r := httptest.NewRequest(q.method, target, body)
	if q.ctx != nil {
		r = r.WithContext(q.ctx)
	}
	switch tok, known := e.tokens[q.auth]; {
	case q.auth == "":
		r.Header.Set("Authorization", "Bearer "+e.tokens["alice"])
	case known:
		r.Header.Set("Authorization", "Bearer "+tok)
	case q.auth == "-":
	case strings.HasPrefix(q.auth, "raw:"):
		r.Header.Set("Authorization", strings.ReplaceAll(strings.TrimPrefix(q.auth, "raw:"), "TOKEN", e.tokens["alice"]))
	default:
		t.Fatalf("bad auth %q in test", q.auth)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	return r
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// checkCommon asserts what every response must have. It does not stop the
// test, so it may run on any goroutine.
func checkCommon(t testing.TB, q req, w *httptest.ResponseRecorder) {
	t.Helper()
	where := q.method + " " + q.path
	h := w.Result().Header
	rid := h.Get("X-Request-Id")
	if !requestIDRE.MatchString(rid) {
		t.Errorf("%s: X-Request-Id %q is not well formed", where, rid)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control = %q, want no-store", where, got)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", where, got)
	}
	if got := h.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("%s: Content-Type = %q", where, got)
	}
	if w.Code >= 500 && w.Code != http.StatusServiceUnavailable && !q.want500 {
		t.Errorf("%s: status %d", where, w.Code)
	}
	switch w.Code {
	case http.StatusUnauthorized:
		if got := h.Get("WWW-Authenticate"); got != `Bearer realm="octostore"` {
			t.Errorf("%s: 401 with WWW-Authenticate %q", where, got)
		}
	case http.StatusServiceUnavailable:
		if got := h.Get("Retry-After"); got != "1" {
			t.Errorf("%s: 503 with Retry-After %q", where, got)
		}
	case http.StatusMethodNotAllowed:
		if h.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", where)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Errorf("%s: body is not a JSON object: %v: %q", where, err, w.Body.String())
		return
	}
	if w.Code >= 400 && !(w.Code == http.StatusConflict && m["status"] == "held") && !strings.HasPrefix(q.path, "/health") {
		if m["request_id"] != rid {
			t.Errorf("%s: error body request_id %v, header %q", where, m["request_id"], rid)
		}
		if s, _ := m["error"].(string); s == "" {
			t.Errorf("%s: error body without a sentence: %s", where, w.Body.String())
		}
		if s, _ := m["code"].(string); s == "" {
			t.Errorf("%s: error body without a code: %s", where, w.Body.String())
		}
		if len(m) != 3 {
			t.Errorf("%s: error body has extra fields: %s", where, w.Body.String())
		}
	}
}

// normalizer replaces what differs between runs and backends (generated
// lease ids, holder ids, tokens, account ids, times, generated request ids,
// retry_after_ms) with placeholders. Numbered placeholders keep equality
// visible: the same lease id is <LEASE1> wherever it appears.
type normalizer struct {
	seen map[string]string
	next map[string]int
}

func newNormalizer() *normalizer {
	return &normalizer{seen: map[string]string{}, next: map[string]int{}}
}

var normRules = []struct {
	re   *regexp.Regexp
	kind string // numbered placeholder kind, or "" for a fixed replacement
	repl string
}{
	{regexp.MustCompile(`os_[A-Za-z0-9_-]{43}`), "TOKEN", ""},
	{regexp.MustCompile(`acct_[0-9a-f]{20}`), "ACCOUNT", ""},
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`), "LEASE", ""},
	{regexp.MustCompile(`h_[0-9a-f]{24}`), "HOLDER", ""},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`), "", "<TIME>"},
	{regexp.MustCompile(`"request_id":"[0-9a-f]{32}"`), "", `"request_id":"<REQUEST_ID>"`},
	{regexp.MustCompile(`X-Request-Id: [0-9a-f]{32}\n`), "", "X-Request-Id: <REQUEST_ID>\n"},
	{regexp.MustCompile(`"retry_after_ms":\d+`), "", `"retry_after_ms":<MS>`},
}

// placeholder returns the numbered placeholder of value m of kind,
// numbering it if it is new.
func (n *normalizer) placeholder(kind, m string) string {
	key := kind + "\x00" + m
	if p, ok := n.seen[key]; ok {
		return p
	}
	n.next[kind]++
	p := fmt.Sprintf("<%s%d>", kind, n.next[kind])
	n.seen[key] = p
	return p
}

func (n *normalizer) normalize(s string) string {
	for _, rule := range normRules {
		if rule.kind == "" {
			s = rule.re.ReplaceAllString(s, rule.repl)
			continue
		}
		s = rule.re.ReplaceAllStringFunc(s, func(m string) string {
			return n.placeholder(rule.kind, m)
		})
	}
	return s
}

// fenceRE matches a fencing token in an answer.
var fenceRE = regexp.MustCompile(`"fencing_token":(\d+)`)

// fenceNamer replaces the fencing tokens in answers with placeholders
// numbered per account in the order the account first shows them
// (<FENCE1>, <FENCE2>, … for alice; <bob:FENCE1>, … for another account).
// Tokens follow the store's clock, so their values differ between runs and
// stores, and two accounts may get the same value; what the placeholders
// keep is which answers repeat a lease's token and the order of an
// account's tokens. A new token of an account that is not above every
// token the account showed before fails the test. With the store's clock
// (clock, on a backend whose clock is frozen) a new token must be exactly
// the one the store owes, max(the account's last token + 1, the clock in
// microseconds), so that a token spent (or lost) where none should be,
// which the placeholders cannot show, fails the test too.
type fenceNamer struct {
	t      testing.TB
	clock  func() int64      // the store's clock in µs, or nil
	seen   map[string]string // account + "\x00" + value -> placeholder
	newest map[string]int64  // account -> highest token shown
	count  map[string]int    // account -> tokens named
}

func newFenceNamer(t testing.TB, clock func() int64) *fenceNamer {
	return &fenceNamer{t: t, clock: clock, seen: map[string]string{}, newest: map[string]int64{}, count: map[string]int{}}
}

// name returns body with the fencing tokens named for the account of a
// request's auth value (see req.auth: "" and a "raw:" header, whose TOKEN
// is alice's, are alice).
func (f *fenceNamer) name(who, body string) string {
	if who == "" || strings.HasPrefix(who, "raw:") {
		who = "alice"
	}
	return fenceRE.ReplaceAllStringFunc(body, func(m string) string {
		v := fenceRE.FindStringSubmatch(m)[1]
		key := who + "\x00" + v
		if p, ok := f.seen[key]; ok {
			return `"fencing_token":` + p
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= f.newest[who] {
			f.t.Errorf("%s's new fencing token %s is not above %d, the highest it was shown before", who, v, f.newest[who])
		} else if f.clock != nil {
			if want := max(f.newest[who]+1, f.clock()); n != want {
				f.t.Errorf("%s's new fencing token %s, want %d (max of its last token %d + 1 and the clock): a token was spent or lost where none should be", who, v, want, f.newest[who])
			}
		}
		f.newest[who] = max(f.newest[who], n)
		f.count[who]++
		p := fmt.Sprintf("<FENCE%d>", f.count[who])
		if who != "alice" {
			p = fmt.Sprintf("<%s:FENCE%d>", who, f.count[who])
		}
		f.seen[key] = p
		return `"fencing_token":` + p
	})
}

// decode returns the JSON object of a response body.
func decode(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return m
}

// captureT is a testing.TB whose Errorf is recorded instead of failing the
// test, so a test can show that a check fires.
type captureT struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (c *captureT) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *captureT) Helper() {}
