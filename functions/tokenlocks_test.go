package functions_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/syncbuf"
	"github.com/octostore/octostore/lockcore"
)

// stepStore wraps a store that has lockcore.TokenLocks and counts how the
// handlers use it: token lookups, lock writes that check their token
// (steps) and plain lock writes.
type stepStore struct {
	lockcore.Store
	tl                   lockcore.TokenLocks
	lookups, steps, bare atomic.Int64
	// stepsDown makes every token-checked step fail as an unreachable
	// store would, without reaching the store.
	stepsDown atomic.Bool
}

var errStepDown = fmt.Errorf("stepStore: %w", lockcore.ErrUnavailable)

func newStepStore(t testing.TB, st lockcore.Store) *stepStore {
	t.Helper()
	tl, ok := st.(lockcore.TokenLocks)
	if !ok {
		t.Fatalf("%T has no lockcore.TokenLocks", st)
	}
	return &stepStore{Store: st, tl: tl}
}

func (s *stepStore) AccountByToken(ctx context.Context, h lockcore.TokenHash) (lockcore.Account, error) {
	s.lookups.Add(1)
	return s.Store.AccountByToken(ctx, h)
}

func (s *stepStore) Acquire(ctx context.Context, acct, name string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	s.bare.Add(1)
	return s.Store.Acquire(ctx, acct, name, o)
}

func (s *stepStore) Renew(ctx context.Context, acct, name, lease string, ttl time.Duration) (lockcore.Lease, error) {
	s.bare.Add(1)
	return s.Store.Renew(ctx, acct, name, lease, ttl)
}

func (s *stepStore) Release(ctx context.Context, acct, name, lease string) error {
	s.bare.Add(1)
	return s.Store.Release(ctx, acct, name, lease)
}

func (s *stepStore) AcquireAs(ctx context.Context, h lockcore.TokenHash, acct, name string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	s.steps.Add(1)
	if s.stepsDown.Load() {
		return lockcore.AcquireResult{}, errStepDown
	}
	return s.tl.AcquireAs(ctx, h, acct, name, o)
}

func (s *stepStore) RenewAs(ctx context.Context, h lockcore.TokenHash, acct, name, lease string, ttl time.Duration) (lockcore.Lease, error) {
	s.steps.Add(1)
	if s.stepsDown.Load() {
		return lockcore.Lease{}, errStepDown
	}
	return s.tl.RenewAs(ctx, h, acct, name, lease, ttl)
}

func (s *stepStore) ReleaseAs(ctx context.Context, h lockcore.TokenHash, acct, name, lease string) error {
	s.steps.Add(1)
	if s.stepsDown.Load() {
		return errStepDown
	}
	return s.tl.ReleaseAs(ctx, h, acct, name, lease)
}

// counts returns lookups, steps and plain writes so far.
func (s *stepStore) counts() [3]int64 {
	return [3]int64{s.lookups.Load(), s.steps.Load(), s.bare.Load()}
}

// TestLockWritesCheckTokenInStep: every acquire, renew and release checks
// its token in its store step (there is no plain write); once an instance
// has seen a token, that step is the only store call (no token lookup),
// on every backend; get, list and rotate still look the token up first.
func TestLockWritesCheckTokenInStep(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var st *stepStore
			e := newEnv(t, b, func(d *functions.Deps) { st = newStepStore(t, d.Store); d.Store = st })
			want := func(what string, lookups, steps, bare int64) {
				t.Helper()
				if got := st.counts(); got != [3]int64{lookups, steps, bare} {
					t.Fatalf("after %s: want %d lookups, %d token-checked steps, %d plain writes; got %v", what, lookups, steps, bare, got)
				}
			}
			w := e.do(t, req{method: "POST", path: "/locks/a/acquire", body: `{"lease_id":"l1"}`})
			if w.Code != http.StatusOK {
				t.Fatalf("first acquire: %d %s", w.Code, w.Body)
			}
			want("the first acquire (token not yet seen)", 1, 1, 0)
			for _, q := range []req{
				{method: "POST", path: "/locks/a/renew", body: `{"lease_id":"l1"}`},
				{method: "POST", path: "/locks/a/release", body: `{"lease_id":"l1"}`},
				{method: "POST", path: "/locks/b/acquire", body: `{"lease_id":"l2"}`},
			} {
				if w := e.do(t, q); w.Code != http.StatusOK {
					t.Fatalf("%s: %d %s", q.path, w.Code, w.Body)
				}
			}
			want("renew, release and acquire with a known token", 1, 4, 0)
			if w := e.do(t, req{method: "POST", path: "/locks/a/release", body: `{"lease_id":"l1"}`}); w.Code != http.StatusConflict {
				t.Fatalf("release of a released lease: want 409, got %d %s", w.Code, w.Body)
			}
			want("a refused release (the lease is not current)", 1, 5, 0)
			if w := e.do(t, req{method: "GET", path: "/locks/b"}); w.Code != http.StatusOK {
				t.Fatalf("get: %d %s", w.Code, w.Body)
			}
			want("a get (which looks the token up)", 2, 5, 0)
			if st2, err := e.store.Get(t.Context(), e.ids["alice"], "b"); err != nil || !st2.Held || st2.Lease.LeaseID != "l2" {
				t.Fatalf("lock b in alice's namespace: want held by l2, got %+v, %v", st2, err)
			}
		})
	}
}

// TestFailedStepIsNotFollowedByALookup: when the store does not answer a
// lock write made with a token the instance has seen, the answer is 503 at
// once. The token is not looked up after it (that would wait for the store
// a second time, doubling the time to a 503 while the store hangs).
func TestFailedStepIsNotFollowedByALookup(t *testing.T) {
	var st *stepStore
	e := newEnv(t, backends[0], func(d *functions.Deps) { st = newStepStore(t, d.Store); d.Store = st })
	if w := e.do(t, req{method: "POST", path: "/locks/a/acquire", body: `{"lease_id":"l1"}`}); w.Code != http.StatusOK {
		t.Fatalf("first acquire: %d %s", w.Code, w.Body)
	}
	st.stepsDown.Store(true)
	for _, q := range []req{
		{method: "POST", path: "/locks/a/acquire", body: `{"lease_id":"l1"}`},
		{method: "POST", path: "/locks/a/renew", body: `{"lease_id":"l1"}`},
		{method: "POST", path: "/locks/a/release", body: `{"lease_id":"l1"}`},
	} {
		w := e.do(t, q)
		if w.Code != http.StatusServiceUnavailable || decode(t, w)["code"] != "store_unavailable" {
			t.Fatalf("%s with the store down: %d %s, want 503 store_unavailable", q.path, w.Code, w.Body)
		}
	}
	if got := st.counts(); got != [3]int64{1, 4, 0} {
		t.Fatalf("want 1 lookup and 1 step (the first acquire's), then 3 failed steps; got %v", got)
	}
	// With the store back, the token still works and is still checked in
	// the step.
	st.stepsDown.Store(false)
	if w := e.do(t, req{method: "POST", path: "/locks/a/release", body: `{"lease_id":"l1"}`}); w.Code != http.StatusOK {
		t.Fatalf("release with the store back: %d %s", w.Code, w.Body)
	}
	if got := st.counts(); got != [3]int64{1, 5, 0} {
		t.Fatalf("after the store came back: got %v, want [1 5 0]", got)
	}
}

// TestTokenRetiredAtOnceOnEveryInstance is the proof that the handlers'
// token map does not weaken "the old token is rejected (401) from that
// moment, on every instance": instance A has seen a token (so it no longer
// looks it up), instance B rotates it, or the operator revokes it in the
// store; A's next read or lock write with it is 401 and changes nothing. A bad
// token with a bad body or name is still 401, not 400.
func TestTokenRetiredAtOnceOnEveryInstance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			a := newEnv(t, b)
			bInst := *a
			bInst.h = contracttest.Wrap(t, functions.New(functions.Deps{Store: a.store, StoreName: storeKind(b.name), Version: "test", OpTimeout: testOpTimeout}))
			ctx := t.Context()
			alice := a.ids["alice"]

			// A sees alice's token.
			if w := a.do(t, req{method: "POST", path: "/locks/x/acquire", body: `{"lease_id":"l1","ttl_seconds":60}`}); w.Code != http.StatusOK {
				t.Fatalf("acquire on A: %d %s", w.Code, w.Body)
			}
			old := a.tokens["alice"]

			// B rotates it.
			w := bInst.do(t, req{method: "POST", path: "/auth/token/rotate"})
			if w.Code != http.StatusOK {
				t.Fatalf("rotate on B: %d %s", w.Code, w.Body)
			}
			a.tokens["alice"] = decode(t, w)["token"].(string)
			a.tokens["old"] = old

			before, err := a.store.Get(ctx, alice, "x")
			if err != nil || !before.Held {
				t.Fatalf("Get(x): want held, got %+v, %v", before, err)
			}
			for _, q := range []req{
				// Reads first, while A's token map still knows the
				// token (a refused write makes A forget it): a read
				// must not take the account from the map either.
				{method: "GET", path: "/locks", auth: "old"},
				{method: "GET", path: "/locks/x", auth: "old"},
				{method: "POST", path: "/locks/x/renew", auth: "old", body: `{"lease_id":"l1","ttl_seconds":300}`},
				{method: "POST", path: "/locks/x/release", auth: "old", body: `{"lease_id":"l1"}`},
				{method: "POST", path: "/locks/y/acquire", auth: "old", body: `{"lease_id":"l2"}`},
				{method: "POST", path: "/locks/y/acquire", auth: "old", body: `{"ttl_seconds":"soon"}`},
				{method: "POST", path: "/locks/bad%2Fname/acquire", auth: "old", body: `{}`},
				{method: "POST", path: "/locks/x/renew", auth: "old", body: `{}`},
			} {
				w := a.do(t, q)
				if w.Code != http.StatusUnauthorized || decode(t, w)["code"] != "unauthorized" {
					t.Errorf("%s %s with the rotated-away token on A: want 401 unauthorized, got %d %s", q.path, q.body, w.Code, w.Body)
				}
			}
			after, err := a.store.Get(ctx, alice, "x")
			if err != nil || !after.Held || after.Lease.LeaseID != "l1" || !after.Lease.ExpiresAt.Equal(before.Lease.ExpiresAt) {
				t.Errorf("lock x after refused writes: want unchanged %+v, got %+v, %v", before.Lease, after.Lease, err)
			}
			if st, err := a.store.Get(ctx, alice, "y"); err != nil || st.Held {
				t.Errorf("lock y after a refused acquire: want free, got %+v, %v", st, err)
			}

			// The new token works on A; then the operator revokes it in
			// the store, and A refuses it at once.
			if w := a.do(t, req{method: "POST", path: "/locks/x/renew", body: `{"lease_id":"l1","ttl_seconds":120}`}); w.Code != http.StatusOK {
				t.Fatalf("renew with the new token on A: %d %s", w.Code, w.Body)
			}
			h, err := lockcore.ParseToken(a.tokens["alice"])
			if err != nil {
				t.Fatal(err)
			}
			if err := a.store.RevokeToken(ctx, h); err != nil {
				t.Fatal(err)
			}
			for _, q := range []req{
				{method: "GET", path: "/locks"},
				{method: "POST", path: "/locks/x/release", body: `{"lease_id":"l1"}`},
				{method: "POST", path: "/locks/z/acquire", body: `{}`},
			} {
				if w := a.do(t, q); w.Code != http.StatusUnauthorized {
					t.Errorf("%s with the revoked token on A: want 401, got %d %s", q.path, w.Code, w.Body)
				}
			}
			if st, err := a.store.Get(ctx, alice, "x"); err != nil || !st.Held {
				t.Errorf("lock x after a release with a revoked token: want still held, got %+v, %v", st, err)
			}
			if st, err := a.store.Get(ctx, alice, "z"); err != nil || st.Held {
				t.Errorf("lock z after an acquire with a revoked token: want free, got %+v, %v", st, err)
			}
			// Bob, untouched, still works on both instances.
			for i, inst := range []*env{a, &bInst} {
				path := []string{"/locks/x/acquire", "/locks/w/acquire"}[i]
				if w := inst.do(t, req{method: "POST", path: path, auth: "bob", body: `{}`}); w.Code != http.StatusOK {
					t.Errorf("bob's acquire %s: %d %s", path, w.Code, w.Body)
				}
			}
		})
	}
}

// TestBadWriteWithAKnownRetiredTokenIs401: an instance whose token map
// knows a token runs the handler before the store has checked the token;
// when the handler then fails on the request itself (bad body, name, size)
// the token must still be checked, and a revoked one answered 401, not the
// request's 400 or 413 ("a request with a bad token gets 401 even if its
// body is also bad"). Each row uses a fresh token and instance, since one
// refused request makes the instance forget the token.
func TestBadWriteWithAKnownRetiredTokenIs401(t *testing.T) {
	bad := []req{
		post("/locks/y/acquire", `{"ttl_seconds":"soon"}`),
		post("/locks/y/acquire", `{`),
		post("/locks/y/acquire", `{"ttl":5}`),
		post("/locks/y/acquire", "{}"+strings.Repeat(" ", 16<<10)),
		post("/locks/bad%2Fname/acquire", `{}`),
		post("/locks/x/renew", `{}`),
		post("/locks/x/release", `{"lease_id":"a b"}`),
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			for i, q := range bad {
				tok, hash := lockcore.NewToken()
				if err := e.store.AddToken(ctx, e.ids["alice"], hash); err != nil {
					t.Fatal(err)
				}
				logs := &syncbuf.Buffer{}
				inst := *e
				inst.h = contracttest.Wrap(t, functions.New(functions.Deps{Store: e.store, StoreName: storeKind(b.name), Version: "test", OpTimeout: testOpTimeout,
					Logger: slog.New(slog.NewJSONHandler(logs, nil))}))
				auth := "raw:Bearer " + tok
				// The instance sees the token (and remembers its account).
				seen := withAuth(post(fmt.Sprintf("/locks/seen-%d/acquire", i), `{}`), auth)
				if w := inst.do(t, seen); w.Code != http.StatusOK {
					t.Fatalf("acquire with the new token: %d %s", w.Code, w.Body)
				}
				if err := e.store.RevokeToken(ctx, hash); err != nil {
					t.Fatal(err)
				}
				w := inst.do(t, withAuth(q, auth))
				if w.Code != http.StatusUnauthorized || decode(t, w)["code"] != "unauthorized" {
					t.Errorf("%s %q with a revoked token the instance knew: want 401 unauthorized, got %d %s", q.path, truncate(q.body, 40), w.Code, w.Body)
				}
				// Its access line is not put down to the token's account:
				// the request was not authenticated.
				lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
				var last map[string]any
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
					t.Fatalf("last log line %q: %v", lines[len(lines)-1], err)
				}
				if last["msg"] != "request" || last["status"] != float64(http.StatusUnauthorized) {
					t.Fatalf("last log line is not the 401's access line: %v", last)
				}
				if id, ok := last["account_id"]; ok {
					t.Errorf("%s %q: the 401's access line names account %v", q.path, truncate(q.body, 40), id)
				}
			}
		})
	}
}

// readFlagBody is a request body that records whether it was read.
type readFlagBody struct {
	read atomic.Bool
	r    io.Reader
}

func (b *readFlagBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.r.Read(p)
}

// TestExpectContinueWithAKnownRetiredToken: "authentication is checked
// before the body is read". A client that sends "Expect: 100-continue"
// waits for net/http's 100 Continue, which the first read of the body
// sends. An instance whose token map knows a token that has since been
// revoked (on any instance, or by `octostore token revoke`) must answer
// 401 without reading the body, as it does for a token it never saw,
// rather than invite the upload and refuse it afterwards.
func TestExpectContinueWithAKnownRetiredToken(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			for i, q := range []req{
				post("/locks/y/acquire", `{"lease_id":"l2"}`),
				post("/locks/x/renew", `{"lease_id":"l1"}`),
				post("/locks/x/release", `{"lease_id":"l1"}`),
			} {
				tok, hash := lockcore.NewToken()
				if err := e.store.AddToken(ctx, e.ids["alice"], hash); err != nil {
					t.Fatal(err)
				}
				inst := functions.New(functions.Deps{Store: e.store, StoreName: storeKind(b.name), Version: "test", OpTimeout: testOpTimeout})
				seen := httptest.NewRequest("POST", fmt.Sprintf("http://octostore.test/locks/seen-%d/acquire", i), strings.NewReader("{}"))
				seen.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				inst.ServeHTTP(w, seen)
				if w.Code != http.StatusOK {
					t.Fatalf("acquire with the new token: %d %s", w.Code, w.Body)
				}
				if err := e.store.RevokeToken(ctx, hash); err != nil {
					t.Fatal(err)
				}
				body := &readFlagBody{r: strings.NewReader(q.body)}
				r := httptest.NewRequest(q.method, "http://octostore.test"+q.path, body)
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("Expect", "100-continue")
				w = httptest.NewRecorder()
				inst.ServeHTTP(w, r)
				if w.Code != http.StatusUnauthorized {
					t.Errorf("%s with Expect: 100-continue and a revoked token the instance knew: want 401, got %d %s", q.path, w.Code, w.Body)
				}
				if body.read.Load() {
					t.Errorf("%s with Expect: 100-continue and a revoked token: the body was read (a 100 Continue was sent) before the 401", q.path)
				}
			}
		})
	}
}

// TestExpectContinueListWithAKnownRetiredToken: net/http sends its
// 100 Continue for an Expect header whose list names 100-continue among
// other expectations too ("100-continue, x"); such a request with a token
// the instance remembers but the store has retired is also answered 401
// before the 100, over a real connection.
func TestExpectContinueListWithAKnownRetiredToken(t *testing.T) {
	e := newEnv(t, backends[0])
	ctx := t.Context()
	inst := functions.New(functions.Deps{Store: e.store, StoreName: storeKind(backends[0].name), Version: "test", OpTimeout: testOpTimeout})
	srv := httptest.NewServer(inst)
	defer srv.Close()
	for i, expect := range []string{"100-continue", "100-continue, x-other"} {
		// A fresh token each time: the 401 makes the instance forget it.
		tok, hash := lockcore.NewToken()
		if err := e.store.AddToken(ctx, e.ids["alice"], hash); err != nil {
			t.Fatal(err)
		}
		seen, _ := http.NewRequest("POST", fmt.Sprintf("%s/locks/seen-%d/acquire", srv.URL, i), strings.NewReader("{}"))
		seen.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(seen)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("acquire with the new token: %d", resp.StatusCode)
		}
		if err := e.store.RevokeToken(ctx, hash); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		body := `{"lease_id":"l2"}`
		fmt.Fprintf(c, "POST /locks/y/acquire HTTP/1.1\r\nHost: octostore.test\r\nAuthorization: Bearer %s\r\nExpect: %s\r\nContent-Length: %d\r\n\r\n", tok, expect, len(body))
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 401 ") {
			t.Errorf("Expect: %s with a revoked token the instance knew: first answer %q (%v), want 401 before any 100 Continue", expect, line, err)
		}
	}
}

// gatedBody is a request body that tells the test when the handler first
// reads it, then holds its bytes back until the test lets them through:
// a client whose body is still on its way.
type gatedBody struct {
	reading chan struct{} // closed at the first Read
	open    chan struct{} // closed by the test to let the bytes through
	once    sync.Once
	r       io.Reader
}

func (g *gatedBody) Read(p []byte) (int, error) {
	g.once.Do(func() { close(g.reading) })
	<-g.open
	return g.r.Read(p)
}

// TestTokenRevokedWhileTheBodyArrives: an instance that has not seen a
// token looks it up when the headers arrive, before it reads the body. If
// the token is revoked after that and before the body has arrived, the
// acquire, renew or release is still 401 and changes nothing, because the
// write checks the token itself. (It did not once: a client that sent its
// headers just before a revocation could still take a lock with the token
// for as long as it could hold its body back, up to the read timeout.)
func TestTokenRevokedWhileTheBodyArrives(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			ctx := t.Context()
			alice := e.ids["alice"]
			if w := e.do(t, req{method: "POST", path: "/locks/x/acquire", body: `{"lease_id":"l1","ttl_seconds":60}`}); w.Code != http.StatusOK {
				t.Fatalf("acquire x: %d %s", w.Code, w.Body)
			}
			before, err := e.store.Get(ctx, alice, "x")
			if err != nil || !before.Held {
				t.Fatalf("Get(x): want held, got %+v, %v", before, err)
			}
			for _, q := range []req{
				{method: "POST", path: "/locks/y/acquire", body: `{"lease_id":"l2"}`},
				{method: "POST", path: "/locks/x/renew", body: `{"lease_id":"l1","ttl_seconds":300}`},
				{method: "POST", path: "/locks/x/release", body: `{"lease_id":"l1"}`},
			} {
				// A new token of alice's, and an instance that has not
				// seen it.
				tok, hash := lockcore.NewToken()
				if err := e.store.AddToken(ctx, alice, hash); err != nil {
					t.Fatal(err)
				}
				inst := contracttest.Wrap(t, functions.New(functions.Deps{Store: e.store, StoreName: storeKind(b.name), Version: "test", OpTimeout: testOpTimeout}))
				body := &gatedBody{reading: make(chan struct{}), open: make(chan struct{}), r: strings.NewReader(q.body)}
				r := httptest.NewRequest(q.method, "http://octostore.test"+q.path, body)
				r.Header.Set("Authorization", "Bearer "+tok)
				r = r.WithContext(contracttest.WithT(r.Context(), t))
				w := httptest.NewRecorder()
				done := make(chan struct{})
				go func() {
					defer close(done)
					inst.ServeHTTP(w, r)
				}()
				select {
				case <-body.reading:
				case <-done:
					t.Fatalf("%s: answered %d %s before reading the body", q.path, w.Code, w.Body)
				}
				if err := e.store.RevokeToken(ctx, hash); err != nil {
					t.Fatal(err)
				}
				close(body.open)
				<-done
				if w.Code != http.StatusUnauthorized || decode(t, w)["code"] != "unauthorized" {
					t.Errorf("%s with a token revoked while its body arrived: want 401 unauthorized, got %d %s", q.path, w.Code, w.Body)
				}
			}
			after, err := e.store.Get(ctx, alice, "x")
			if err != nil || !after.Held || after.Lease.LeaseID != "l1" || !after.Lease.ExpiresAt.Equal(before.Lease.ExpiresAt) {
				t.Errorf("lock x: want unchanged %+v, got %+v, %v", before.Lease, after.Lease, err)
			}
			if st, err := e.store.Get(ctx, alice, "y"); err != nil || st.Held {
				t.Errorf("lock y: want free, got %+v, %v", st, err)
			}
		})
	}
}
