package oauth_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/internal/syncbuf"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// backing is one store's data, reachable through any number of handles.
type backing struct {
	// open returns a new handle on the same data, closed at cleanup.
	open func(t *testing.T) lockcore.Store
	// contains reports whether any stored key or value contains needle.
	contains func(t *testing.T, needle []byte) bool
}

// backends are the real stores the flow is tested on.
var backends = []struct {
	name string
	make func(t *testing.T) *backing
}{
	{"sqlite", sqliteBacking},
	{"redis", redisBacking},
}

func sqliteBacking(t *testing.T) *backing {
	path := filepath.Join(t.TempDir(), "octostore.db")
	return &backing{
		open: func(t *testing.T) lockcore.Store {
			t.Helper()
			s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
			if err != nil {
				t.Fatalf("sqlitestore.Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		contains: func(t *testing.T, needle []byte) bool {
			t.Helper()
			return sqliteContains(t, path, needle)
		},
	}
}

// sqliteContains scans every column of every row of every table of the
// database file, and the raw bytes of the file and its WAL, for needle.
func sqliteContains(t *testing.T, path string, needle []byte) bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatalf("no tables in %s", path)
	}
	found := false
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + strings.ReplaceAll(table, `"`, `""`) + `"`)
		if err != nil {
			t.Fatalf("scan table %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("scan table %s: %v", table, err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case string:
					found = found || bytes.Contains([]byte(v), needle)
				case []byte:
					found = found || bytes.Contains(v, needle)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("scan table %s: %v", table, err)
		}
		rows.Close()
	}
	for _, suffix := range []string{"", "-wal"} {
		raw, err := os.ReadFile(path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		found = found || bytes.Contains(raw, needle)
	}
	return found
}

func redisBacking(t *testing.T) *backing {
	srv := redistest.Start(t)
	return &backing{
		open: func(t *testing.T) lockcore.Store {
			t.Helper()
			s, err := redisstore.Open(context.Background(), redisstore.Config{URL: srv.URL()})
			if err != nil {
				t.Fatalf("redisstore.Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		contains: func(t *testing.T, needle []byte) bool {
			t.Helper()
			return redisContains(t, srv.URL(), needle)
		},
	}
}

// redisContains scans every key and every value of every key for needle.
func redisContains(t *testing.T, u string, needle []byte) bool {
	t.Helper()
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	if len(keys) == 0 {
		t.Fatal("redis holds no keys")
	}
	has := func(s string) bool { return bytes.Contains([]byte(s), needle) }
	found := false
	for _, k := range keys {
		found = found || has(k)
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "string":
			v, err := c.Get(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			vals = []string{v}
		case "hash":
			m, err := c.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "set":
			vals, err = c.SMembers(ctx, k).Result()
		case "zset":
			vals, err = c.ZRange(ctx, k, 0, -1).Result()
		case "list":
			vals, err = c.LRange(ctx, k, 0, -1).Result()
		default:
			t.Fatalf("key %q has unexpected type %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			found = found || has(v)
		}
	}
	return found
}

// clock is an adjustable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is the service under test: a flow (or two) behind an httptest
// server with a request-id middleware, a fake GitHub, a store, a clock and
// a log capture.
type env struct {
	gh       *fakeGitHub
	accounts lockcore.Accounts
	clock    *clock
	logs     *syncbuf.Buffer
	srv      *httptest.Server
	public   string
}

type envOptions struct {
	accounts lockcore.Accounts // the store the flow uses
	// callbackAccounts, when set, serves the callback with a second Flow
	// over these accounts (another instance).
	callbackAccounts lockcore.Accounts
	callbackSecret   []byte // the second instance's StateSecret; default the same
	httpClient       *http.Client
	// deriveSecret leaves Config.StateSecret empty on every instance, so
	// the key is derived from the client secret.
	deriveSecret bool
}

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{
		gh:       newFakeGitHub(t),
		accounts: o.accounts,
		clock:    &clock{t: time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)},
		logs:     &syncbuf.Buffer{},
	}
	e.srv = httptest.NewUnstartedServer(nil)
	e.public = "http://" + e.srv.Listener.Addr().String()
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mk := func(accounts lockcore.Accounts, secret []byte) *oauth.Flow {
		f, err := oauth.New(oauth.Config{
			ClientID:     e.gh.clientID,
			ClientSecret: e.gh.clientSecret,
			PublicURL:    e.public,
			StateSecret:  secret,
			BaseURL:      e.gh.srv.URL,
			APIURL:       e.gh.srv.URL,
			HTTPClient:   o.httpClient,
			Now:          e.clock.Now,
		}, accounts, logger)
		if err != nil {
			t.Fatalf("oauth.New: %v", err)
		}
		return f
	}
	firstSecret := testSecret
	if o.deriveSecret {
		firstSecret = nil
	}
	start := mk(o.accounts, firstSecret)
	callback := start
	if o.callbackAccounts != nil {
		secret := o.callbackSecret
		if secret == nil && !o.deriveSecret {
			secret = testSecret
		}
		callback = mk(o.callbackAccounts, secret)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+oauth.StartPath, start.Start)
	mux.HandleFunc("GET "+oauth.CallbackPath, callback.Callback)
	e.srv.Config.Handler = withRequestID(mux)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// withRequestID stands in for functions' middleware: it sets X-Request-Id.
func withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-"+randHex(8))
		h.ServeHTTP(w, r)
	})
}

// browser is an HTTP client with a cookie jar that follows no redirect by
// itself, so each hop can be checked, and remembers every URL it visited
// and every Location it was sent to.
type browser struct {
	c       *http.Client
	visited []string
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// get fetches u with the given Accept header ("" for none).
func (b *browser) get(t *testing.T, u, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	b.visited = append(b.visited, u)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		b.visited = append(b.visited, loc)
	}
	return resp, body
}

// toCallback runs Start and the fake authorize page and returns the
// callback URL GitHub sent the browser to (not yet visited).
func (e *env) toCallback(t *testing.T, b *browser) string {
	t.Helper()
	resp, _ := b.get(t, e.public+oauth.StartPath, "")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("start: status %d, want 302", resp.StatusCode)
	}
	resp, body := b.get(t, resp.Header.Get("Location"), "")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("fake authorize: status %d (%s), want 302", resp.StatusCode, body)
	}
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, e.public+oauth.CallbackPath+"?") {
		t.Fatalf("authorize redirected to %q, want the callback", cb)
	}
	return cb
}

// signInJSON runs the whole flow in a new browser asking for JSON and
// returns the answer.
func (e *env) signInJSON(t *testing.T) tokenAnswer {
	t.Helper()
	b := newBrowser(t)
	resp, body := b.get(t, e.toCallback(t, b), "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("callback: status %d, body %s", resp.StatusCode, body)
	}
	return decodeToken(t, resp, body)
}

type tokenAnswer struct {
	Token     string `json:"token"`
	AccountID string `json:"account_id"`
	Login     string `json:"login"`
}

type errorAnswer struct {
	Error     string `json:"error"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
}

func decodeToken(t *testing.T, resp *http.Response, body []byte) tokenAnswer {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	var a tokenAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if _, err := lockcore.ParseToken(a.Token); err != nil {
		t.Fatalf("token %q: %v", a.Token, err)
	}
	return a
}

// checkError checks a JSON error answer: status, code, the exact body
// shape and the request id echoed from the header.
func checkError(t *testing.T, resp *http.Response, body []byte, status int, code string) errorAnswer {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type %q, want JSON (body %s)", ct, body)
	}
	var a errorAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if a.Code != code {
		t.Fatalf("code %q, want %q (%s)", a.Code, code, a.Error)
	}
	if a.Error == "" {
		t.Fatal("empty error sentence")
	}
	if want := resp.Header.Get("X-Request-Id"); want == "" || a.RequestID != want {
		t.Fatalf("request_id %q, header X-Request-Id %q", a.RequestID, want)
	}
	var keys []string
	var raw map[string]json.RawMessage
	json.Unmarshal(body, &raw)
	for k := range raw {
		keys = append(keys, k)
	}
	if len(keys) != 3 {
		t.Fatalf("error body has keys %v, want error, code, request_id", keys)
	}
	return a
}

// mustAccount checks that token authenticates and returns its account.
func mustAccount(t *testing.T, accounts lockcore.Accounts, token string) lockcore.Account {
	t.Helper()
	acct, err := accounts.AccountByToken(context.Background(), lockcore.HashToken(token))
	if err != nil {
		t.Fatalf("AccountByToken: %v", err)
	}
	return acct
}

func countAccounts(t *testing.T, accounts lockcore.Accounts) int64 {
	t.Helper()
	n, err := accounts.CountAccounts(context.Background())
	if err != nil {
		t.Fatalf("CountAccounts: %v", err)
	}
	return n
}

// checkSecretsStay checks that no log line, visited URL or redirect holds a
// bearer token, a GitHub code or a GitHub access token.
func checkSecretsStay(t *testing.T, e *env, b *browser, tokens ...string) {
	t.Helper()
	secrets := append(append([]string(nil), tokens...), e.gh.secrets()...)
	logs := e.logs.String()
	for _, s := range secrets {
		if s == "" {
			t.Fatal("empty secret")
		}
		if strings.Contains(logs, s) {
			t.Errorf("log holds secret %q:\n%s", s, logs)
		}
	}
	if b != nil {
		for _, u := range b.visited {
			for _, tok := range tokens {
				if strings.Contains(u, tok) || strings.Contains(u, url.QueryEscape(tok)) {
					t.Errorf("URL %q holds the bearer token", u)
				}
			}
		}
	}
}

// hexHash is a token's SHA-256 in hex, one way a store may keep it.
func hexHash(token string) string {
	h := lockcore.HashToken(token)
	return hex.EncodeToString(h[:])
}
