package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/lockcore"
)

// faultyStore wraps a real store and, on demand, makes its methods fail
// like an unreachable backend, panic, or hang until their context ends.
type faultyStore struct {
	lockcore.Store
	failAuth  atomic.Bool // AccountByToken fails with ErrUnavailable
	oddAuth   atomic.Bool // AccountByToken fails with an error of no known kind
	failLocks atomic.Bool // lock and token methods fail with ErrUnavailable
	failPing  atomic.Bool // Ping fails with ErrUnavailable
	panics    atomic.Bool // lock methods panic
	hang      atomic.Bool // lock methods wait for their context to end

	// pingBudget, when set, receives how long each Ping had left before
	// its context's deadline as it was called (the largest Duration when
	// the context had no deadline).
	pingBudget chan time.Duration
}

// wrapStore returns an env option that puts f around the env's store.
func wrapStore(f *faultyStore) envOption {
	return func(d *functions.Deps) {
		f.Store = d.Store
		d.Store = f
	}
}

var errInjected = fmt.Errorf("%w: injected failure (secret internal detail)", lockcore.ErrUnavailable)

func (f *faultyStore) fault(ctx context.Context) error {
	switch {
	case f.panics.Load():
		panic("injected panic (secret internal detail)")
	case f.hang.Load():
		<-ctx.Done()
		return fmt.Errorf("hung: %w", ctx.Err())
	case f.failLocks.Load():
		return errInjected
	}
	return nil
}

func (f *faultyStore) AccountByToken(ctx context.Context, h lockcore.TokenHash) (lockcore.Account, error) {
	if f.failAuth.Load() {
		return lockcore.Account{}, errInjected
	}
	if f.oddAuth.Load() {
		return lockcore.Account{}, errors.New("driver said something odd (secret internal detail)")
	}
	return f.Store.AccountByToken(ctx, h)
}

func (f *faultyStore) Acquire(ctx context.Context, a, n string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := f.fault(ctx); err != nil {
		return lockcore.AcquireResult{}, err
	}
	return f.Store.Acquire(ctx, a, n, o)
}

func (f *faultyStore) Renew(ctx context.Context, a, n, l string, ttl time.Duration) (lockcore.Lease, error) {
	if err := f.fault(ctx); err != nil {
		return lockcore.Lease{}, err
	}
	return f.Store.Renew(ctx, a, n, l, ttl)
}

func (f *faultyStore) Release(ctx context.Context, a, n, l string) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.Release(ctx, a, n, l)
}

func (f *faultyStore) Get(ctx context.Context, a, n string) (lockcore.LockState, error) {
	if err := f.fault(ctx); err != nil {
		return lockcore.LockState{}, err
	}
	return f.Store.Get(ctx, a, n)
}

func (f *faultyStore) List(ctx context.Context, a string) ([]lockcore.Lease, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, a)
}

func (f *faultyStore) RotateToken(ctx context.Context, old, new lockcore.TokenHash) (lockcore.Account, error) {
	if err := f.fault(ctx); err != nil {
		return lockcore.Account{}, err
	}
	return f.Store.RotateToken(ctx, old, new)
}

func (f *faultyStore) Ping(ctx context.Context) error {
	if f.pingBudget != nil {
		budget := time.Duration(math.MaxInt64)
		if dl, ok := ctx.Deadline(); ok {
			budget = time.Until(dl)
		}
		select {
		case f.pingBudget <- budget:
		default: // a test reads the first Ping's only
		}
	}
	if f.failPing.Load() {
		return errInjected
	}
	return f.Store.Ping(ctx)
}

// allEndpoints are one valid request to each authenticated endpoint.
var allEndpoints = []req{
	post("/locks/job/acquire", `{"lease_id":"L"}`),
	post("/locks/job/renew", `{"lease_id":"L"}`),
	post("/locks/job/release", `{"lease_id":"L"}`),
	get("/locks/job"),
	get("/locks"),
	post("/auth/token/rotate", ""),
}

func TestStoreUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f))
			want := eb("the lock store is unavailable; retry shortly", "store_unavailable")
			check := func(t *testing.T, q req) {
				w := e.do(t, q)
				if w.Code != 503 {
					t.Fatalf("%s %s: %d %s", q.method, q.path, w.Code, w.Body.String())
				}
				if got := newNormalizer().normalize(strings.TrimSuffix(w.Body.String(), "\n")); got != want {
					t.Errorf("body\n got %s\nwant %s", got, want)
				}
			}
			f.failLocks.Store(true)
			for _, q := range allEndpoints {
				t.Run("op "+q.method+" "+q.path, func(t *testing.T) { check(t, q) })
			}
			f.failLocks.Store(false)
			f.failAuth.Store(true)
			for _, q := range allEndpoints {
				t.Run("auth "+q.method+" "+q.path, func(t *testing.T) { check(t, q) })
			}
			f.failAuth.Store(false)
			f.oddAuth.Store(true)
			for _, q := range allEndpoints {
				t.Run("odd auth error "+q.method+" "+q.path, func(t *testing.T) { check(t, q) })
			}
			f.oddAuth.Store(false)
			if strings.Contains(e.logs.String(), "secret internal detail") == false {
				t.Errorf("the store's error is not in the log:\n%s", e.logs.String())
			}
		})
	}
}

func TestStoreTimeout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f), func(d *functions.Deps) { d.OpTimeout = 20 * time.Millisecond })
			f.hang.Store(true)
			w := e.do(t, post("/locks/job/acquire", ""))
			if w.Code != 503 || decode(t, w)["code"] != "store_unavailable" {
				t.Errorf("hung store: %d %s", w.Code, w.Body.String())
			}
		})
	}
}

func TestHealthUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f))
			f.failPing.Store(true)
			w := e.do(t, withAuth(get("/health"), "-"))
			want := fmt.Sprintf(`{"status":"unavailable","store":"%s","error":"the lock store did not answer or cannot take writes","code":"store_unavailable","request_id":"%s"}`+"\n",
				storeKind(b.name), w.Header().Get("X-Request-Id"))
			if w.Code != 503 || w.Body.String() != want {
				t.Errorf("health: %d %s, want 503 %s", w.Code, w.Body.String(), want)
			}
			f.failPing.Store(false)
			if w := e.do(t, withAuth(get("/health"), "-")); w.Code != 200 {
				t.Errorf("health after recovery: %d %s", w.Code, w.Body.String())
			}
		})
	}
}

// TestHealthPingIsBoundedByOneSecond: /health gives the store one second
// to answer ("503 when the store does not answer within 1 s"), however
// long the handlers' store-operation timeout is (30 s in these tests).
// The bound is read off the context Ping gets, so no test waits for it.
func TestHealthPingIsBoundedByOneSecond(t *testing.T) {
	f := &faultyStore{pingBudget: make(chan time.Duration, 1)}
	e := newEnv(t, backends[0], wrapStore(f))
	w := e.do(t, withAuth(get("/health"), "-"))
	if w.Code != 200 {
		t.Fatalf("health: %d %s", w.Code, w.Body.String())
	}
	select {
	case budget := <-f.pingBudget:
		if budget > time.Second {
			t.Errorf("Ping had %v left before its deadline, want at most 1s", budget)
		}
	default:
		t.Fatal("health did not ping the store")
	}
}

func TestPanicIsInternal(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f))
			f.panics.Store(true)
			q := post("/locks/job/acquire", "")
			q.want500 = true
			q.header = map[string]string{"X-Request-Id": "panic-req-1"}
			w := e.do(t, q)
			want := `{"error":"internal error","code":"internal","request_id":"panic-req-1"}` + "\n"
			if w.Code != 500 || w.Body.String() != want {
				t.Errorf("panic: %d %s, want 500 %s", w.Code, w.Body.String(), want)
			}
			var panicLine, accessLine map[string]any
			for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				switch m["msg"] {
				case "panic":
					panicLine = m
				case "request":
					if m["request_id"] == "panic-req-1" {
						accessLine = m
					}
				}
			}
			if panicLine == nil || panicLine["request_id"] != "panic-req-1" ||
				!strings.Contains(fmt.Sprint(panicLine["panic"]), "injected panic") ||
				!strings.Contains(fmt.Sprint(panicLine["stack"]), "faultyStore") {
				t.Errorf("panic log line %v", panicLine)
			}
			if accessLine == nil || accessLine["status"] != float64(500) {
				t.Errorf("access log line %v", accessLine)
			}
			// The server keeps serving.
			f.panics.Store(false)
			if w := e.do(t, post("/locks/job/acquire", "")); w.Code != 200 {
				t.Errorf("after panic: %d %s", w.Code, w.Body.String())
			}
		})
	}
}

// TestClientCancelIsNot500: net/http cancels a request's context as soon
// as the client half-closes the connection (sends its request, then
// shutdown(SHUT_WR), as HTTP/1.0 clients and `nc -N` do), while that client
// may still read the answer. Reads and /health are not cut short by it:
// they answer as for any client. A write is (so that one whose client is
// gone is dropped when it has not started), and answers 503
// store_unavailable with Retry-After, its outcome unknown as after a
// timeout: never 499 (not in the contract), never a 500, nothing logged
// as an error.
func TestClientCancelIsNot500(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f))
			if w := e.do(t, post("/locks/job/acquire", `{"lease_id":"L"}`)); w.Code != 200 {
				t.Fatalf("acquire: %d %s", w.Code, w.Body.String())
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			for _, q := range append(allEndpoints, get("/health")) {
				q.ctx = ctx
				w := e.do(t, q)
				want := 200
				if q.method == "POST" {
					want = 503
				}
				if w.Code != want {
					t.Errorf("%s %s with a cancelled request context: want %d, got %d %s", q.method, q.path, want, w.Code, w.Body.String())
				}
				if want == 503 && (w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"code":"store_unavailable"`)) {
					t.Errorf("%s %s cut short: want store_unavailable with Retry-After, got %v %s", q.method, q.path, w.Header(), w.Body.String())
				}
			}
			if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
				t.Errorf("log:\n%s", e.logs.String())
			}
		})
	}
}

func TestLockLimit(t *testing.T) {
	limits := lockcore.DefaultLimits
	limits.MaxHeldLocks = 2
	small := func(d *functions.Deps) { d.Limits = limits }
	hold2 := []req{post("/locks/a/acquire", `{"lease_id":"La"}`), post("/locks/b/acquire", `{"lease_id":"Lb"}`)}
	cases := []tcase{
		{name: "third lock refused", setup: hold2, req: post("/locks/c/acquire", ""), wantStatus: 403, wantCode: "lock_limit_exceeded",
			wantBody: eb("the account already holds 2 unexpired locks, its maximum; release one first", "lock_limit_exceeded")},
		{name: "retry of a held lease is not a new lock", setup: hold2, req: post("/locks/a/acquire", `{"lease_id":"La"}`), wantStatus: 200},
		{name: "held lock answers held, not quota", setup: hold2, req: post("/locks/a/acquire", `{"lease_id":"X"}`), wantStatus: 409},
		{name: "after a release there is room", setup: append(hold2, post("/locks/a/release", `{"lease_id":"La"}`)),
			req: post("/locks/c/acquire", ""), wantStatus: 200},
		{name: "quota is per account", setup: hold2, req: withAuth(post("/locks/c/acquire", ""), "bob"), wantStatus: 200},
	}
	runCases(t, cases, small)
}

func TestRequestID(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			long := strings.Repeat("r", 128)
			for _, id := range []string{"abc", "a.b_c:d-e", "0123456789", long, "ios_client-42"} {
				for _, q := range []req{get("/locks"), post("/locks/a_b/acquire", ""), withAuth(get("/locks"), "-"), get("/nope")} {
					q.header = map[string]string{"X-Request-Id": id}
					w := e.do(t, q)
					if got := w.Result().Header.Get("X-Request-Id"); got != id {
						t.Errorf("%s %s with id %q: echoed %q", q.method, q.path, id, got)
					}
				}
			}
			seen := map[string]bool{}
			tok, _ := lockcore.NewToken()
			for _, id := range []string{"", "bad id", "a/b", "é", long + "r", "x\ty", "<script>", tok, "trace:" + tok} {
				q := post("/locks/a_b/acquire", "")
				q.header = map[string]string{"X-Request-Id": id}
				w := e.do(t, q)
				got := w.Result().Header.Get("X-Request-Id")
				if got == id || len(got) != 32 || strings.Trim(got, "0123456789abcdef") != "" || seen[got] {
					t.Errorf("id %q: got %q, want a fresh 32-hex id", id, got)
				}
				seen[got] = true
				if decode(t, w)["request_id"] != got {
					t.Errorf("error body request id differs from header %q", got)
				}
			}
		})
	}
}

// TestClientCancelStoreDownIs503: a client that half-closed (its request's
// context cancelled by net/http) still reads the answer; when the store is
// down it must get the answer any other client gets, 503 store_unavailable
// with Retry-After (as /health gives it), not 499 client_closed_request,
// a status the contract does not have.
func TestClientCancelStoreDownIs503(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f))
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			f.failLocks.Store(true)
			for _, q := range allEndpoints {
				q.ctx = ctx
				if w := e.do(t, q); w.Code != 503 || w.Header().Get("Retry-After") == "" {
					t.Errorf("%s %s, store down, cancelled request context: want 503 with Retry-After, got %d %v %s", q.method, q.path, w.Code, w.Header(), w.Body.String())
				}
			}
			f.failLocks.Store(false)
			f.failAuth.Store(true)
			for _, q := range allEndpoints {
				q.ctx = ctx
				if w := e.do(t, q); w.Code != 503 {
					t.Errorf("%s %s, token lookup down, cancelled request context: want 503, got %d %s", q.method, q.path, w.Code, w.Body.String())
				}
			}
		})
	}
}
