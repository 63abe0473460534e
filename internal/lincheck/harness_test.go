package lincheck_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/lincheck"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

var soakFlag = flag.Bool("soak", false, "run long histories (also OCTOSTORE_SOAK=1)")

// soak reports whether the long version was asked for.
func soak() bool { return *soakFlag || os.Getenv("OCTOSTORE_SOAK") == "1" }

// soakDuration is how long each store is exercised in soak mode:
// $OCTOSTORE_SOAK_DURATION (a Go duration) or 60 s.
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("OCTOSTORE_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("OCTOSTORE_SOAK_DURATION: %v", err)
		}
		return d
	}
	return time.Minute
}

// opTimeout is the handler's per-operation store timeout in these tests.
const opTimeout = 3 * time.Second

// server is the real handler over one store, served over real HTTP.
type server struct {
	store lockcore.Store
	url   string
	http  *http.Client
}

func serve(t *testing.T, store lockcore.Store, storeName string) *server {
	t.Helper()
	ts := httptest.NewServer(contracttest.Wrap(t, functions.New(functions.Deps{
		Store: store, StoreName: storeName, Limits: lockcore.DefaultLimits, OpTimeout: opTimeout,
	})))
	t.Cleanup(ts.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &server{store: store, url: ts.URL, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

var accountSeq atomic.Int64

// client makes a fresh account with one token and returns a client for it.
func (s *server) client(t *testing.T) *lincheck.Client {
	t.Helper()
	ctx := context.Background()
	acct, _, err := s.store.EnsureAccount(ctx, "lin-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+strconv.FormatInt(accountSeq.Add(1), 10))
	if err != nil {
		t.Fatalf("EnsureAccount: %v", err)
	}
	tok, hash := lockcore.NewToken()
	if err := s.store.AddToken(ctx, acct.ID, hash); err != nil {
		t.Fatalf("AddToken: %v", err)
	}
	return &lincheck.Client{BaseURL: s.url, Token: tok, HTTP: s.http}
}

// figures sum up a run of several histories.
type figures struct {
	histories, ops, unknown, acquired, held, expired int
	maxCheck                                         time.Duration
}

func (f *figures) count(h lincheck.History) {
	f.histories++
	f.ops += len(h.Records)
	f.unknown += h.Unknown()
	for _, r := range h.Records {
		switch {
		case r.Output.Outcome == lincheck.Acquired:
			f.acquired++
		case r.Output.Outcome == lincheck.Held && r.Input.Kind == lincheck.OpAcquire:
			f.held++
		}
	}
}

// history runs one workload with fresh lock names in a fresh account and
// returns what it recorded.
func history(t *testing.T, s *server, w lincheck.Workload, k int) lincheck.History {
	t.Helper()
	c := s.client(t)
	w.Locks = []string{fmt.Sprintf("h%d-a", k), fmt.Sprintf("h%d-b", k)}
	w.Seed = time.Now().UnixNano()
	var rec lincheck.Recorder
	st := lincheck.Run(context.Background(), c, w, &rec)
	for _, b := range st.Breaches {
		t.Errorf("contract breach: %v", b)
	}
	// An operation whose answer was lost may still be running on the
	// server; the handler gives up on the store after opTimeout.
	return rec.History(time.Now().Add(opTimeout + time.Second))
}

// checkLinearizable runs histories with long TTLs against s, checking
// each with porcupine and with the timeline check, for two histories (or
// the soak duration).
func checkLinearizable(t *testing.T, s *server) {
	n, until := 2, time.Time{}
	if soak() {
		n, until = 1<<30, time.Now().Add(soakDuration(t))
	}
	var f figures
	for k := 0; k < n && (until.IsZero() || time.Now().Before(until)); k++ {
		h := history(t, s, lincheck.Workload{Clients: 8, OpsPerClient: 40}, k)
		f.count(h)
		res := lincheck.Verify(t, h, time.Minute, fmt.Sprintf("%s-history-%d", t.Name(), k))
		f.maxCheck = max(f.maxCheck, res.Took)
		if vs, _ := lincheck.CheckTimeline(h, 5*time.Millisecond); len(vs) > 0 {
			t.Errorf("history %d: %d timeline violations, first: %v", k, len(vs), vs[0])
		}
		if t.Failed() {
			break
		}
	}
	if f.acquired == 0 || f.held == 0 {
		t.Errorf("histories never contended (acquired %d, held %d): the check proved nothing", f.acquired, f.held)
	}
	t.Logf("SUMMARY %s: histories=%d operations=%d unknown=%d acquired=%d held=%d slowest_check=%v violations=%d",
		t.Name(), f.histories, f.ops, f.unknown, f.acquired, f.held, f.maxCheck.Round(time.Millisecond), boolInt(t.Failed()))
}

// checkExpiry runs histories with TTLs of 1-2 s, think time and abandoned
// leases, so that leases expire under the clients, and checks them with the
// store-clock timeline check.
func checkExpiry(t *testing.T, s *server) {
	// Short: one history, or more until a lease has expired. Whether one
	// expires within a history depends on how long the history runs (leases
	// last 1-2 s; a fast, idle machine finishes one in about 2 s) and on the
	// clients' random choices, so the cap is generous: the loop stops at the
	// first expiry, and a store whose leases never expire still fails, after
	// the tenth history.
	n, until := 10, time.Time{}
	if soak() {
		n, until = 1<<30, time.Now().Add(soakDuration(t))
	}
	var f figures
	for k := 0; k < n && (until.IsZero() || time.Now().Before(until)) && (!until.IsZero() || f.expired == 0); k++ {
		w := lincheck.Workload{
			Clients: 8, OpsPerClient: 40,
			TTLs:    []time.Duration{time.Second, 2 * time.Second},
			Abandon: 0.4, Think: 80 * time.Millisecond,
		}
		h := history(t, s, w, k)
		f.count(h)
		vs, st := lincheck.CheckTimeline(h, 5*time.Millisecond)
		for i, v := range vs {
			if i == 10 {
				t.Errorf("... %d more", len(vs)-i)
				break
			}
			t.Errorf("history %d: %v", k, v)
		}
		f.expired += st.Expired
		if t.Failed() {
			break
		}
	}
	if f.expired == 0 {
		t.Errorf("no lease expired in %d histories: the expiry check proved nothing", f.histories)
	}
	t.Logf("SUMMARY %s: histories=%d operations=%d unknown=%d acquired=%d expired_leases=%d violations=%d",
		t.Name(), f.histories, f.ops, f.unknown, f.acquired, f.expired, boolInt(t.Failed()))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sqliteServer(t *testing.T) *server {
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "octo.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serve(t, st, "sqlite")
}

func miniredisServer(t *testing.T) *server {
	m := miniredis.RunT(t)
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{OpTimeout: opTimeout})
	t.Cleanup(func() { st.Close() })
	return serve(t, st, "redis")
}

func redisServer(t *testing.T, url string, cluster bool) *server {
	st, err := redisstore.Open(context.Background(), redisstore.Config{URL: url, Cluster: cluster, OpTimeout: opTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return serve(t, st, "redis")
}

func TestLinearizableSQLite(t *testing.T) { checkLinearizable(t, sqliteServer(t)) }

func TestLinearizableMiniredis(t *testing.T) { checkLinearizable(t, miniredisServer(t)) }

func TestLinearizableRedis(t *testing.T) {
	checkLinearizable(t, redisServer(t, redistest.Start(t).URL(), false))
}

func TestLinearizableRedisCluster(t *testing.T) {
	checkLinearizable(t, redisServer(t, redistest.StartCluster(t).URL(), true))
}

func TestExpirySQLite(t *testing.T) { checkExpiry(t, sqliteServer(t)) }

func TestExpiryMiniredis(t *testing.T) { checkExpiry(t, miniredisServer(t)) }

func TestExpiryRedis(t *testing.T) {
	checkExpiry(t, redisServer(t, redistest.Start(t).URL(), false))
}

func TestExpiryRedisCluster(t *testing.T) {
	checkExpiry(t, redisServer(t, redistest.StartCluster(t).URL(), true))
}

// brokenStore wraps a store and breaks the lock's promises on purpose.
type brokenStore struct {
	lockcore.Store
	// stealEvery: every n-th acquire that finds the lock held by another
	// lease answers "acquired" anyway, with the holder's token.
	stealEvery int64
	// repeatTokens: every token shown is the real one with its low 40 bits
	// cleared (2^40 µs is 12.7 days of the clock that tokens follow), so
	// the leases of a test share one token.
	repeatTokens bool
	held         atomic.Int64
	broken       atomic.Int64
}

func (b *brokenStore) fake(t int64) int64 {
	if b.repeatTokens {
		return t &^ (1<<40 - 1)
	}
	return t
}

func (b *brokenStore) Acquire(ctx context.Context, acct, name string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	res, err := b.Store.Acquire(ctx, acct, name, o)
	if err != nil {
		return res, err
	}
	if !res.Acquired && b.stealEvery > 0 && b.held.Add(1)%b.stealEvery == 0 {
		b.broken.Add(1)
		res.Acquired = true
		res.Lease = lockcore.Lease{Name: name, LeaseID: o.LeaseID, FencingToken: res.Lease.FencingToken,
			ExpiresAt: res.Now.Add(o.TTL).Truncate(time.Millisecond), TTL: o.TTL}
	}
	if res.Acquired && b.repeatTokens && res.Lease.FencingToken != res.Lease.FencingToken&^(1<<40-1) {
		b.broken.Add(1)
	}
	res.Lease.FencingToken = b.fake(res.Lease.FencingToken)
	return res, nil
}

func (b *brokenStore) Renew(ctx context.Context, acct, name, lease string, ttl time.Duration) (lockcore.Lease, error) {
	l, err := b.Store.Renew(ctx, acct, name, lease, ttl)
	l.FencingToken = b.fake(l.FencingToken)
	return l, err
}

func (b *brokenStore) Get(ctx context.Context, acct, name string) (lockcore.LockState, error) {
	st, err := b.Store.Get(ctx, acct, name)
	st.Lease.FencingToken = b.fake(st.Lease.FencingToken)
	return st, err
}

// TestCheckerCatchesBrokenStores proves the checks can fail: against a
// store that lets a second holder in, or one that hands out a fencing
// token twice, porcupine finds the history illegal (and writes its
// visualisation) and the timeline check reports violations.
func TestCheckerCatchesBrokenStores(t *testing.T) {
	for _, c := range []struct {
		name  string
		wrap  func(lockcore.Store) *brokenStore
		kinds []string
	}{
		{"second holder", func(s lockcore.Store) *brokenStore { return &brokenStore{Store: s, stealEvery: 3} }, []string{"two holders", "token reused", "token order"}},
		{"repeated token", func(s lockcore.Store) *brokenStore { return &brokenStore{Store: s, repeatTokens: true} }, []string{"token order", "token reused"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "octo.db"), sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			b := c.wrap(st)
			s := serve(t, b, "sqlite")
			dir := t.TempDir()
			illegal, timeline := 0, 0
			for k := 0; k < 10 && (illegal == 0 || timeline == 0); k++ {
				h := history(t, s, lincheck.Workload{Clients: 8, OpsPerClient: 30}, k)
				res, err := lincheck.Check(h, time.Minute, dir, fmt.Sprintf("broken-%d", k))
				if err != nil {
					t.Fatal(err)
				}
				if res.Verdict == porcupine.Illegal {
					illegal++
					if _, err := os.Stat(res.Visualization); err != nil {
						t.Errorf("illegal history without a visualisation file: %v", err)
					}
				}
				vs, _ := lincheck.CheckTimeline(h, 5*time.Millisecond)
				for _, v := range vs {
					for _, k := range c.kinds {
						if v.Kind == k {
							timeline++
						}
					}
				}
			}
			if b.broken.Load() == 0 {
				t.Fatal("the broken store never misbehaved; the test proved nothing")
			}
			if illegal == 0 {
				t.Errorf("porcupine accepted every history of a store that misbehaved %d times", b.broken.Load())
			}
			if timeline == 0 {
				t.Errorf("the timeline check found none of %v in a store that misbehaved %d times", c.kinds, b.broken.Load())
			}
			t.Logf("misbehaved %d times; illegal histories %d; timeline violations %d", b.broken.Load(), illegal, timeline)
		})
	}
}
