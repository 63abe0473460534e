package loadgen

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// startOctoStore serves the real handler over a SQLite store in a temp dir
// and returns its URL, a token and the store.
func startOctoStore(t *testing.T) (string, string, lockcore.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "lg.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct, _, err := st.EnsureAccount(ctx, "bench")
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(contracttest.Wrap(t, functions.New(functions.Deps{Store: st, StoreName: "sqlite", OpTimeout: 30 * time.Second})))
	t.Cleanup(srv.Close)
	return srv.URL, tok, st, acct.ID
}

func TestHTTPTargetAgainstRealHandler(t *testing.T) {
	url, tok, st, acct := startOctoStore(t)
	for _, contended := range []bool{false, true} {
		t.Run(fmt.Sprintf("contended=%v", contended), func(t *testing.T) {
			target, err := NewHTTPTarget(url, tok, 30*time.Second, 4, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { target.Close() })
			res, err := Run(context.Background(), target, Config{Clients: 4, Cycles: 60, Contended: contended, NamePrefix: "c" + strconv.FormatBool(contended) + "-"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Cycles != 60 || res.Errors != 0 || res.Attempts != res.Cycles+res.Held {
				t.Fatalf("cycles %d attempts %d held %d errors %d (%s)", res.Cycles, res.Attempts, res.Held, res.Errors, res.FirstError)
			}
			if !contended && res.Held != 0 {
				t.Fatalf("distinct names: %d held answers", res.Held)
			}
			if res.Acquire.Count != uint64(res.Attempts) || res.Release.Count != 60 {
				t.Fatalf("latency counts %+v %+v", res.Acquire, res.Release)
			}
			leases, err := st.List(context.Background(), acct)
			if err != nil || len(leases) != 0 {
				t.Fatalf("after the run the account holds %v (%v)", leases, err)
			}
		})
	}
}

func TestHTTPTargetReportsErrors(t *testing.T) {
	url, _, _, _ := startOctoStore(t)
	target, err := NewHTTPTarget(url, "os_not-a-real-token", time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	// Long enough that the worker surely sends a request before the run
	// ends (a worker that starts after the duration sends none).
	res, err := Run(context.Background(), target, Config{Clients: 1, Duration: 500 * time.Millisecond, ErrorDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles != 0 || res.Errors == 0 || res.Attempts != res.Errors || !strings.Contains(res.FirstError, "HTTP 401") {
		t.Fatalf("bad token: %+v", res)
	}
	for _, bad := range []string{"", "ftp://x", "http://", "::"} {
		if _, err := NewHTTPTarget(bad, "os_x", time.Minute, 1, nil); err == nil {
			t.Errorf("URL %q accepted", bad)
		}
	}
	if _, err := NewHTTPTarget("http://127.0.0.1:1", "", time.Minute, 1, nil); err == nil {
		t.Error("empty token accepted")
	}
}

func TestRedisTargetUsesTheStoreKeyLayout(t *testing.T) {
	mr := miniredis.RunT(t)
	ctx := context.Background()
	keys := RedisKeys{Prefix: "os:", AccountID: "acct1"}
	target, err := NewRedisTarget(ctx, "redis://"+mr.Addr(), keys, time.Minute, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	store := redisstore.New(redis.NewClient(&redis.Options{Addr: mr.Addr()}), redisstore.Options{Prefix: "os:"})
	t.Cleanup(func() { store.Close() })

	c, err := target.NewClient(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	lease, ok, err := c.Acquire(ctx, "job")
	if err != nil || !ok {
		t.Fatalf("raw acquire: %v %v", ok, err)
	}
	st, err := store.Get(ctx, "acct1", "job")
	if err != nil || !st.Held || st.Lease.LeaseID != lease {
		t.Fatalf("the store does not see the raw lock: %+v %v", st, err)
	}
	// The store's acquire of the same name in the same account is refused,
	// and its fencing counter continues the raw one's.
	r, err := store.Acquire(ctx, "acct1", "job", lockcore.AcquireOptions{LeaseID: "other", TTL: time.Minute, MaxHeld: 100})
	if err != nil || r.Acquired {
		t.Fatalf("store acquire of a raw-held lock: %+v %v", r, err)
	}
	if _, ok, err := c.Acquire(ctx, "job"); err != nil || ok {
		t.Fatalf("second raw acquire of a held lock: acquired %v, %v", ok, err)
	}
	if err := c.Release(ctx, "job", lease); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, "job", lease); err == nil {
		t.Fatal("second release of the same lease succeeded")
	}
	r, err = store.Acquire(ctx, "acct1", "job", lockcore.AcquireOptions{LeaseID: "other", TTL: time.Minute, MaxHeld: 100})
	if err != nil || !r.Acquired || r.Lease.FencingToken <= st.Lease.FencingToken {
		t.Fatalf("store acquire after raw release: %+v %v (want a fencing token above the raw lease's %d)", r, err, st.Lease.FencingToken)
	}
	if v, err := mr.Get("os:{a:acct1}:fence"); err != nil || v != strconv.FormatInt(r.Lease.FencingToken, 10) {
		t.Fatalf("the account's fence counter: %q, %v; want the store's last token %d (one counter for both)", v, err, r.Lease.FencingToken)
	}
	if got := mr.Keys(); !contains(got, "os:{a:acct1}:fence") || !contains(got, "os:{a:acct1}:held") || !contains(got, "os:{a:acct1}:lock:job") {
		t.Fatalf("keys %v", got)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestRedisTargetRun(t *testing.T) {
	mr := miniredis.RunT(t)
	ctx := context.Background()
	target, err := NewRedisTarget(ctx, "redis://"+mr.Addr(), RedisKeys{Prefix: "b:", AccountID: "a"}, time.Minute, 100, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	for _, contended := range []bool{false, true} {
		res, err := Run(ctx, target, Config{Clients: 4, Cycles: 100, Contended: contended})
		if err != nil {
			t.Fatal(err)
		}
		if res.Cycles != 100 || res.Errors != 0 || res.Attempts != 100+res.Held || res.Target != "redis-lua" {
			t.Fatalf("contended=%v: %+v", contended, res)
		}
	}
	// Every lock was released: only the fencing counter is left (an empty
	// sorted set is deleted by Redis).
	if got := mr.Keys(); len(got) != 1 || got[0] != "b:{a:a}:fence" {
		t.Fatalf("keys left after the runs: %v", got)
	}
	if _, err := NewRedisTarget(ctx, "redis://"+mr.Addr(), RedisKeys{Prefix: "b:", AccountID: "{x}"}, time.Minute, 1, 1); err == nil {
		t.Fatal("account id with braces accepted")
	}
}

// fakeEtcd is a minimal etcd v3 JSON gateway: lease grant/revoke and a
// lock that waits (like etcd's) while another lease holds the name.
type fakeEtcd struct {
	mu      sync.Mutex
	cond    *sync.Cond
	leases  map[string]bool
	holders map[string]string // name -> lock key
	nextID  int64
	locks   int
}

func newFakeEtcd(t *testing.T) (*fakeEtcd, *httptest.Server) {
	f := &fakeEtcd{leases: map[string]bool{}, holders: map[string]string{}, nextID: 7587000000000000000}
	f.cond = sync.NewCond(&f.mu)
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeEtcd) serve(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Method != http.MethodPost {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/v3/lease/grant":
		if ttl, _ := req["TTL"].(float64); ttl < 5 {
			http.Error(w, `{"error":"ttl"}`, http.StatusBadRequest)
			return
		}
		f.nextID++
		id := strconv.FormatInt(f.nextID, 10)
		f.leases[id] = true
		fmt.Fprintf(w, `{"header":{},"ID":"%s","TTL":"60"}`, id)
	case "/v3/lease/revoke":
		id, _ := req["ID"].(string)
		if !f.leases[id] {
			http.Error(w, `{"error":"lease not found"}`, http.StatusNotFound)
			return
		}
		delete(f.leases, id)
		for n, k := range f.holders {
			if strings.HasSuffix(k, "/"+id) {
				delete(f.holders, n)
			}
		}
		f.cond.Broadcast()
		fmt.Fprint(w, `{"header":{}}`)
	case "/v3/lock/lock":
		b64, _ := req["name"].(string)
		lease, _ := req["lease"].(string)
		name, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(name) == 0 || !f.leases[lease] {
			http.Error(w, `{"error":"bad lock request"}`, http.StatusBadRequest)
			return
		}
		for f.holders[string(name)] != "" {
			f.cond.Wait()
		}
		key := string(name) + "/" + lease
		f.holders[string(name)] = key
		f.locks++
		fmt.Fprintf(w, `{"header":{},"key":"%s"}`, base64.StdEncoding.EncodeToString([]byte(key)))
	case "/v3/lock/unlock":
		b64, _ := req["key"].(string)
		key, _ := base64.StdEncoding.DecodeString(b64)
		name, _, _ := strings.Cut(string(key), "/")
		if f.holders[name] == string(key) {
			delete(f.holders, name)
			f.cond.Broadcast()
		}
		fmt.Fprint(w, `{"header":{}}`)
	default:
		http.NotFound(w, r)
	}
}

func TestEtcdTargetAgainstFakeGateway(t *testing.T) {
	f, srv := newFakeEtcd(t)
	target, err := NewEtcdTarget(srv.URL, time.Minute, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	for _, contended := range []bool{false, true} {
		res, err := Run(context.Background(), target, Config{Clients: 4, Cycles: 80, Contended: contended})
		if err != nil {
			t.Fatal(err)
		}
		// etcd's lock waits instead of answering "held".
		if res.Cycles != 80 || res.Attempts != 80 || res.Held != 0 || res.Errors != 0 || res.Target != "etcd" {
			t.Fatalf("contended=%v: %+v", contended, res)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks != 160 || len(f.leases) != 0 || len(f.holders) != 0 {
		t.Fatalf("gateway saw %d locks; leases left %v, holders left %v (want 160, none, none)", f.locks, f.leases, f.holders)
	}
}
