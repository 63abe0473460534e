package sqlitestore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/leakcheck"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
	"github.com/octostore/octostore/lockcore/storetest"
)

// TestMain fails the run if goroutines started by the tests outlive them.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

// fakeClock is a mutex-protected clock the tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

// newEpochClock is a fake clock at the Unix epoch. Fencing tokens are
// never below the store's clock in microseconds; at the epoch that floor is
// 0, so tokens are the counter alone, as on a machine whose clock cannot be
// trusted. The restore tests use it: there a restore's floor is what keeps
// tokens above those a lost database issued.
func newEpochClock() *fakeClock {
	return &fakeClock{t: time.Unix(0, 0).UTC()}
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

// gate stalls the writer before one batch, so that tests can queue ops
// behind it and control what the next batch contains.
type gate struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	open    chan struct{}
}

func (g *gate) hook(int) {
	g.mu.Lock()
	if !g.armed {
		g.mu.Unlock()
		return
	}
	g.armed = false
	entered, open := g.entered, g.open
	g.mu.Unlock()
	close(entered)
	<-open
}

// arm makes the writer stop before its next batch; wait blocks until it
// has, and release lets it go on.
func (g *gate) arm() (wait, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
	g.entered, g.open = make(chan struct{}), make(chan struct{})
	entered, open := g.entered, g.open
	var once sync.Once
	return func() { <-entered }, func() { once.Do(func() { close(open) }) }
}

type testStore struct {
	*sqlitestore.Store
	clock *fakeClock
	gate  *gate
	path  string
}

// fenceAfter is the fencing token the store must hand out next to an
// account whose last token was last (0 for none): one more, but never
// below the store's clock in microseconds. A test that sees another
// number knows a token was spent, or lost, where none should have been.
func (s *testStore) fenceAfter(last int64) int64 {
	return max(last+1, s.clock.Now().UnixMicro())
}

func openAt(t testing.TB, path string, clock *fakeClock, opts sqlitestore.Options) *testStore {
	t.Helper()
	opts.Now = clock.Now
	s, err := sqlitestore.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	g := &gate{}
	s.SetBeforeBatch(g.hook)
	ts := &testStore{Store: s, clock: clock, gate: g, path: path}
	t.Cleanup(func() { _ = s.Close() })
	return ts
}

func openTest(t testing.TB, opts sqlitestore.Options) *testStore {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "octostore.db"), newFakeClock(), opts)
}

// stall stops the writer with a write of its own in flight and returns a
// function that lets it continue. The blocking write is an EnsureAccount
// of login "stall-N", which the caller may ignore.
func (s *testStore) stall(t *testing.T) (release func()) {
	t.Helper()
	wait, open := s.gate.arm()
	done := make(chan error, 1)
	go func() {
		_, _, err := s.EnsureAccount(context.Background(), fmt.Sprintf("stall-%d", time.Now().UnixNano()))
		done <- err
	}()
	wait()
	t.Cleanup(open)
	return func() {
		open()
		if err := <-done; err != nil {
			t.Errorf("stalling write: %v", err)
		}
	}
}

// queuer returns a queuer for s.
func (s *testStore) queuer() *queuer { return &queuer{s: s} }

// queuer queues writes behind a stalled writer in a known order.
type queuer struct {
	s  *testStore
	wg sync.WaitGroup
	n  int
}

// run calls f, which makes one write, on a goroutine of its own, and
// returns once that write is queued after those of the earlier calls.
func (q *queuer) run(f func()) {
	q.n++
	q.wg.Add(1)
	go func() { defer q.wg.Done(); f() }()
	q.s.waitQueued(q.n)
}

// wait waits until every f given to run has returned.
func (q *queuer) wait() { q.wg.Wait() }

// waitQueued waits until n writes are queued behind a stalled writer.
func (s *testStore) waitQueued(n int) {
	for s.QueueLen() < n {
		time.Sleep(time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: func(t *testing.T) *storetest.Instance {
		clock := newFakeClock()
		path := filepath.Join(t.TempDir(), "octostore.db")
		cur := openAt(t, path, clock, sqlitestore.Options{})
		inst := &storetest.Instance{Store: cur.Store, Advance: clock.Advance}
		inst.Reopen = func() lockcore.Store {
			if err := cur.Close(); err != nil {
				t.Fatalf("Close before reopen: %v", err)
			}
			cur = openAt(t, path, clock, sqlitestore.Options{})
			return cur.Store
		}
		return inst
	}})
}

func mustAccount(t *testing.T, s lockcore.Store, login string) lockcore.Account {
	t.Helper()
	a, _, err := s.EnsureAccount(context.Background(), login)
	if err != nil {
		t.Fatalf("EnsureAccount(%q): %v", login, err)
	}
	return a
}

func opts(lease string) lockcore.AcquireOptions {
	return lockcore.AcquireOptions{LeaseID: lease, TTL: 10 * time.Second, MaxHeld: 100}
}

// TestPragmas checks that the DSN pragmas are in effect on the write
// connection and on several pooled read connections at once.
func TestPragmas(t *testing.T) {
	s := openTest(t, sqlitestore.Options{BusyTimeout: 1234 * time.Millisecond})
	ctx := context.Background()
	check := func(who string, q func(string) (string, error)) {
		want := map[string]string{"journal_mode": "wal", "synchronous": "2", "fullfsync": "1", "foreign_keys": "1", "busy_timeout": "1234", "journal_size_limit": strconv.Itoa(sqlitestore.WALSizeLimit)}
		for p, w := range want {
			got, err := q("PRAGMA " + p)
			if err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", who, p, err)
			}
			if !strings.EqualFold(got, w) {
				t.Errorf("%s: PRAGMA %s = %q, want %q", who, p, got, w)
			}
		}
	}
	check("write conn", func(q string) (v string, err error) {
		err = s.WriteConn().QueryRowContext(ctx, q).Scan(&v)
		return v, err
	})
	// Hold three read connections at once so they are distinct.
	for i := 0; i < 3; i++ {
		c, err := s.ReadDB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(fmt.Sprintf("read conn %d", i), func(q string) (v string, err error) {
			err = c.QueryRowContext(ctx, q).Scan(&v)
			return v, err
		})
		var qo string
		if err := c.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
			t.Errorf("read conn %d: query_only = %q, %v; want 1", i, qo, err)
		}
	}
}

// TestGroupCommit checks that writes queued while the writer is busy are
// applied in one transaction with one commit, and that MaxBatch bounds it.
func TestGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		maxBatch, ops int
		wantBatches   int64
	}{
		{maxBatch: 0, ops: 50, wantBatches: 1},
		{maxBatch: 4, ops: 10, wantBatches: 3},
	} {
		t.Run(fmt.Sprintf("max=%d,ops=%d", tc.maxBatch, tc.ops), func(t *testing.T) {
			s := openTest(t, sqlitestore.Options{MaxBatch: tc.maxBatch})
			acct := mustAccount(t, s, "alice")
			release := s.stall(t)
			commits0, batches0 := s.Commits(), s.Batches()

			var wg sync.WaitGroup
			results := make([]lockcore.AcquireResult, tc.ops)
			errs := make([]error, tc.ops)
			for i := 0; i < tc.ops; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = s.Acquire(context.Background(), acct.ID, fmt.Sprintf("lock-%d", i), opts(lockcore.NewLeaseID()))
				}()
			}
			s.waitQueued(tc.ops)
			release()
			wg.Wait()

			seen := map[int64]bool{}
			for i := range errs {
				if errs[i] != nil || !results[i].Acquired {
					t.Fatalf("op %d: Acquired=%v err=%v", i, results[i].Acquired, errs[i])
				}
				if seen[results[i].Lease.FencingToken] {
					t.Fatalf("fencing token %d issued twice", results[i].Lease.FencingToken)
				}
				seen[results[i].Lease.FencingToken] = true
			}
			// The stalled write is one batch and one commit of its own.
			if got := s.Batches() - batches0; got != tc.wantBatches+1 {
				t.Errorf("batches = %d, want %d", got, tc.wantBatches+1)
			}
			if got := s.Commits() - commits0; got != tc.wantBatches+1 {
				t.Errorf("commits = %d, want %d", got, tc.wantBatches+1)
			}
			held, err := s.List(context.Background(), acct.ID)
			if err != nil || len(held) != tc.ops {
				t.Fatalf("List: %d leases, %v; want %d", len(held), err, tc.ops)
			}
		})
	}
}

// TestBatchOpsSeeEachOther checks that ops of one batch (releases aside,
// see TestReleasesRunFirstInBatch) run in queue order, each seeing the
// effects of earlier ones, and that one op's failure (even after a partial
// write) undoes only that op.
func TestBatchOpsSeeEachOther(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	alice, bob := mustAccount(t, s, "alice"), mustAccount(t, s, "bob")
	aliceTok, bobTok := lockcore.HashToken("a"), lockcore.HashToken("b")
	if err := s.AddToken(ctx, alice.ID, aliceTok); err != nil {
		t.Fatal(err)
	}
	if err := s.AddToken(ctx, bob.ID, bobTok); err != nil {
		t.Fatal(err)
	}

	release := s.stall(t)
	q := s.queuer()
	var (
		first, second lockcore.AcquireResult
		err1, err2    error
		third         lockcore.AcquireResult
		rotErr, err3  error
	)
	q.run(func() { first, err1 = s.Acquire(ctx, alice.ID, "x", opts("lease-1")) })
	q.run(func() { second, err2 = s.Acquire(ctx, alice.ID, "x", opts("lease-2")) })
	// Deletes aliceTok, then fails inserting bob's hash: must be undone.
	q.run(func() { _, rotErr = s.RotateToken(ctx, aliceTok, bobTok) })
	q.run(func() { third, err3 = s.Acquire(ctx, alice.ID, "y", opts("lease-3")) })
	release()
	q.wait()

	if err1 != nil || !first.Acquired {
		t.Fatalf("first acquire: %+v, %v", first, err1)
	}
	if err2 != nil || second.Acquired || second.Lease.LeaseID != "lease-1" {
		t.Fatalf("second acquire in the same batch: want held by lease-1, got %+v, %v", second, err2)
	}
	if rotErr == nil {
		t.Fatal("rotating onto another account's token hash: want an error")
	}
	if err3 != nil || !third.Acquired || third.Lease.FencingToken != first.Lease.FencingToken+1 {
		t.Fatalf("acquire after the failed op in the same batch: %+v, %v; want acquired with token %d", third, err3, first.Lease.FencingToken+1)
	}
	if a, err := s.AccountByToken(ctx, aliceTok); err != nil || a.ID != alice.ID {
		t.Fatalf("alice's token after the failed rotation: %+v, %v (the failed op's delete leaked)", a, err)
	}
	if st, err := s.Get(ctx, alice.ID, "x"); err != nil || !st.Held || st.Lease.LeaseID != "lease-1" {
		t.Fatalf("Get after the batch: %+v, %v; want held by lease-1", st, err)
	}
}

// TestReleasesRunFirstInBatch checks that the writer applies a batch's
// releases before its other ops (each group in queue order): an acquire
// queued before the release of its lock takes the lock in the same commit,
// and a release queued after the acquire it would undo finds that lease
// not yet holding. Run in queue order, both acquires would be told "held".
func TestReleasesRunFirstInBatch(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	held, err := s.Acquire(ctx, acct.ID, "x", opts("lease-a"))
	if err != nil || !held.Acquired {
		t.Fatalf("Acquire lease-a: %+v, %v", held, err)
	}

	release := s.stall(t)
	commits0, batches0 := s.Commits(), s.Batches()
	q := s.queuer()
	var (
		b, c       lockcore.AcquireResult
		errB, errC error
		relA, relB error
	)
	q.run(func() { b, errB = s.Acquire(ctx, acct.ID, "x", opts("lease-b")) })
	q.run(func() { c, errC = s.Acquire(ctx, acct.ID, "x", opts("lease-c")) })
	q.run(func() { relA = s.Release(ctx, acct.ID, "x", "lease-a") })
	q.run(func() { relB = s.Release(ctx, acct.ID, "x", "lease-b") })
	release()
	q.wait()

	if relA != nil {
		t.Fatalf("release of lease-a: %v", relA)
	}
	if !errors.Is(relB, lockcore.ErrLeaseNotCurrent) {
		t.Fatalf("release of lease-b, applied before its acquire: %v; want ErrLeaseNotCurrent", relB)
	}
	if errB != nil || !b.Acquired || b.Lease.FencingToken != held.Lease.FencingToken+1 {
		t.Fatalf("acquire of lease-b, queued before the release of lease-a: %+v, %v; want acquired with token %d", b, errB, held.Lease.FencingToken+1)
	}
	if errC != nil || c.Acquired || c.Lease.LeaseID != "lease-b" {
		t.Fatalf("acquire of lease-c: %+v, %v; want held by lease-b", c, errC)
	}
	// The stalled write's batch, then the four ops in one batch and commit.
	if got := s.Batches() - batches0; got != 2 {
		t.Errorf("batches = %d, want 2", got)
	}
	if got := s.Commits() - commits0; got != 2 {
		t.Errorf("commits = %d, want 2", got)
	}
	if st, err := s.Get(ctx, acct.ID, "x"); err != nil || !st.Held || st.Lease.LeaseID != "lease-b" {
		t.Fatalf("Get after the batch: %+v, %v; want held by lease-b", st, err)
	}
}

// TestCancelledWriteNotApplied checks that a write whose context ends while
// it waits in the queue returns ErrUnavailable and is never applied.
func TestCancelledWriteNotApplied(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	acct := mustAccount(t, s, "alice")
	release := s.stall(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1"))
		done <- err
	}()
	s.waitQueued(1)
	cancel()
	if err := <-done; !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("cancelled acquire: want ErrUnavailable, got %v", err)
	}
	release()

	bg := context.Background()
	st, err := s.Get(bg, acct.ID, "x")
	if err != nil || st.Held {
		t.Fatalf("Get after the cancelled acquire: %+v, %v; want free", st, err)
	}
	res, err := s.Acquire(bg, acct.ID, "x", opts("lease-2"))
	if want := s.fenceAfter(0); err != nil || !res.Acquired || res.Lease.FencingToken != want {
		t.Fatalf("next acquire: %+v, %v; want acquired with fencing token %d (no token spent)", res, err, want)
	}

	// A context that has already ended never reaches the queue.
	dead, cancel2 := context.WithCancel(bg)
	cancel2()
	if _, err := s.Acquire(dead, acct.ID, "y", opts("lease-3")); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("acquire with a dead context: want ErrUnavailable, got %v", err)
	}
	if st, _ := s.Get(bg, acct.ID, "y"); st.Held {
		t.Fatal("acquire with a dead context was applied")
	}
}

// copyFile copies src to dst if src exists.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashSnapshot checks that acknowledged writes are in the files on
// disk while the store is still open: a copy of the database and its WAL
// taken without closing (as a crash would leave them) holds them.
func TestCrashSnapshot(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	tok := lockcore.HashToken("tok")
	if err := s.AddToken(ctx, acct.ID, tok); err != nil {
		t.Fatal(err)
	}
	res, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1"))
	if err != nil || !res.Acquired {
		t.Fatalf("Acquire: %+v, %v", res, err)
	}

	snap := filepath.Join(t.TempDir(), "snap.db")
	copyFile(t, s.Path(), snap)
	copyFile(t, s.Path()+"-wal", snap+"-wal")
	c := openAt(t, snap, s.clock, sqlitestore.Options{})
	if a, err := c.AccountByToken(ctx, tok); err != nil || a.ID != acct.ID {
		t.Fatalf("token in the snapshot: %+v, %v", a, err)
	}
	st, err := c.Get(ctx, acct.ID, "x")
	if err != nil || !st.Held || st.Lease.LeaseID != "lease-1" || st.Lease.FencingToken != res.Lease.FencingToken {
		t.Fatalf("lock in the snapshot: %+v, %v", st, err)
	}
}

// TestReopenKeepsFencing checks that fencing tokens keep increasing across a
// close and reopen, and that expired leases are not revived.
func TestReopenKeepsFencing(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	r1, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("second Close: want ErrUnavailable, got %v", err)
	}
	if _, err := s.Acquire(ctx, acct.ID, "y", opts("lease-9")); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Acquire after Close: want ErrUnavailable, got %v", err)
	}
	if _, err := s.Get(ctx, acct.ID, "x"); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Get after Close: want ErrUnavailable, got %v", err)
	}

	s2 := openAt(t, s.path, s.clock, sqlitestore.Options{})
	if n, err := s2.CountAccounts(ctx); err != nil || n != 1 {
		t.Fatalf("CountAccounts after reopen: %d, %v", n, err)
	}
	s2.clock.Advance(10 * time.Second) // exactly the TTL: expired
	if _, err := s2.Renew(ctx, acct.ID, "x", "lease-1", time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Fatalf("Renew of an expired lease: want ErrLeaseNotCurrent, got %v", err)
	}
	r2, err := s2.Acquire(ctx, acct.ID, "x", opts("lease-1"))
	if err != nil || !r2.Acquired || r2.Lease.FencingToken <= r1.Lease.FencingToken {
		t.Fatalf("re-acquire after expiry: %+v, %v; want a new lease with a token above %d", r2, err, r1.Lease.FencingToken)
	}
}

// TestLockSemantics is a compact check of the Locks contract.
func TestLockSemantics(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a, b := mustAccount(t, s, "alice"), mustAccount(t, s, "bob")
	meta := "host-7"
	o := opts("lease-1")
	o.Metadata = &meta
	r, err := s.Acquire(ctx, a.ID, "x", o)
	if err != nil || !r.Acquired || r.Lease.Metadata != meta || !r.Now.Equal(s.clock.Now()) ||
		!r.Lease.ExpiresAt.Equal(s.clock.Now().Add(10*time.Second)) || r.Lease.TTL != 10*time.Second {
		t.Fatalf("Acquire: %+v, %v", r, err)
	}
	// Same name in another account is another lock.
	if rb, err := s.Acquire(ctx, b.ID, "x", opts("lease-b")); err != nil || !rb.Acquired {
		t.Fatalf("Acquire in another account: %+v, %v", rb, err)
	}
	// Held by another lease.
	if r2, err := s.Acquire(ctx, a.ID, "x", opts("lease-2")); err != nil || r2.Acquired || r2.Lease.LeaseID != "lease-1" {
		t.Fatalf("Acquire of a held lock: %+v, %v", r2, err)
	}
	// Idempotent retry keeps the token, moves the expiry, keeps metadata.
	s.clock.Advance(time.Second)
	r3, err := s.Acquire(ctx, a.ID, "x", opts("lease-1"))
	if err != nil || !r3.Acquired || r3.Lease.FencingToken != r.Lease.FencingToken || r3.Lease.Metadata != meta ||
		!r3.Lease.ExpiresAt.Equal(s.clock.Now().Add(10*time.Second)) {
		t.Fatalf("idempotent retry: %+v, %v", r3, err)
	}
	// Renew by another lease fails; by the holder succeeds.
	if _, err := s.Renew(ctx, a.ID, "x", "lease-2", time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Fatalf("Renew by a non-holder: %v", err)
	}
	l, err := s.Renew(ctx, a.ID, "x", "lease-1", time.Minute)
	if err != nil || l.FencingToken != r.Lease.FencingToken || l.TTL != time.Minute || l.Metadata != meta {
		t.Fatalf("Renew: %+v, %v", l, err)
	}
	// Bob cannot release alice's lock.
	if err := s.Release(ctx, b.ID, "x", "lease-1"); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Fatalf("Release from another account: %v", err)
	}
	// Quota.
	q := opts("lease-q")
	q.MaxHeld = 1
	if _, err := s.Acquire(ctx, a.ID, "y", q); !errors.Is(err, lockcore.ErrLockLimitExceeded) {
		t.Fatalf("Acquire over quota: %v", err)
	}
	list, err := s.List(ctx, a.ID)
	if err != nil || len(list) != 1 || list[0].Name != "x" {
		t.Fatalf("List: %+v, %v", list, err)
	}
	if err := s.Release(ctx, a.ID, "x", "lease-1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := s.Release(ctx, a.ID, "x", "lease-1"); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Fatalf("second Release: %v", err)
	}
	r4, err := s.Acquire(ctx, a.ID, "x", opts("lease-3"))
	if err != nil || !r4.Acquired || r4.Lease.FencingToken <= r.Lease.FencingToken {
		t.Fatalf("Acquire after release: %+v, %v", r4, err)
	}
	if _, err := s.Acquire(ctx, a.ID, "bad/name", opts("l")); !errors.Is(err, lockcore.ErrInvalidName) {
		t.Fatalf("invalid name: %v", err)
	}
	if _, err := s.Acquire(ctx, a.ID, "x", opts("bad lease")); !errors.Is(err, lockcore.ErrInvalidLeaseID) {
		t.Fatalf("invalid lease id: %v", err)
	}
	if list, err := s.List(ctx, "acct_nobody"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("List of an empty account: %#v, %v", list, err)
	}
}

// TestMutualExclusion has many goroutines race for one lock: exactly one
// wins, and of many concurrent rotations of one token exactly one wins.
func TestMutualExclusion(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	tok := lockcore.HashToken("t0")
	if err := s.AddToken(ctx, acct.ID, tok); err != nil {
		t.Fatal(err)
	}
	const n = 32
	var wg sync.WaitGroup
	wins := make([]bool, n)
	rotated := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Acquire(ctx, acct.ID, "leader", opts(fmt.Sprintf("lease-%d", i)))
			if err != nil {
				t.Errorf("Acquire: %v", err)
			}
			wins[i] = r.Acquired
			_, rotated[i] = s.RotateToken(ctx, tok, lockcore.HashToken(fmt.Sprintf("t%d", i+1)))
		}()
	}
	wg.Wait()
	var won, rot int
	for i := range wins {
		if wins[i] {
			won++
		}
		if rotated[i] == nil {
			rot++
		} else if !errors.Is(rotated[i], lockcore.ErrNotFound) {
			t.Errorf("losing rotation: want ErrNotFound, got %v", rotated[i])
		}
	}
	if won != 1 || rot != 1 {
		t.Fatalf("winners: %d acquires, %d rotations; want 1 and 1", won, rot)
	}
	if _, err := s.AccountByToken(ctx, tok); !errors.Is(err, lockcore.ErrNotFound) {
		t.Fatalf("rotated-away token: want ErrNotFound, got %v", err)
	}
}

// TestAccounts is a compact check of the Accounts contract.
func TestAccounts(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a, created, err := s.EnsureAccount(ctx, "ops")
	if err != nil || !created || !strings.HasPrefix(a.ID, "acct_") || a.GitHubID != 0 {
		t.Fatalf("EnsureAccount: %+v, %v, %v", a, created, err)
	}
	if a2, created, err := s.EnsureAccount(ctx, "ops"); err != nil || created || a2 != a {
		t.Fatalf("EnsureAccount again: %+v, %v, %v", a2, created, err)
	}
	if _, _, err := s.EnsureAccount(ctx, "bad login"); !errors.Is(err, lockcore.ErrInvalidLogin) {
		t.Fatalf("EnsureAccount with a bad login: %v", err)
	}
	g, err := s.UpsertGitHubAccount(ctx, 42, "ops") // same login as the operator account
	if err != nil || g.ID == a.ID || g.GitHubID != 42 {
		t.Fatalf("UpsertGitHubAccount: %+v, %v", g, err)
	}
	g2, err := s.UpsertGitHubAccount(ctx, 42, "renamed")
	if err != nil || g2.ID != g.ID || g2.Login != "renamed" || !g2.CreatedAt.Equal(g.CreatedAt) {
		t.Fatalf("UpsertGitHubAccount after a rename: %+v, %v", g2, err)
	}
	if got, err := s.AccountByID(ctx, g.ID); err != nil || got != g2 {
		t.Fatalf("AccountByID: %+v, %v; want %+v", got, err, g2)
	}
	if _, err := s.AccountByID(ctx, "acct_nobody"); !errors.Is(err, lockcore.ErrNotFound) {
		t.Fatalf("AccountByID of an unknown id: %v", err)
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 2 {
		t.Fatalf("CountAccounts: %d, %v", n, err)
	}
	h := lockcore.HashToken("x")
	if err := s.AddToken(ctx, "acct_nobody", h); !errors.Is(err, lockcore.ErrNotFound) {
		t.Fatalf("AddToken for an unknown account: %v", err)
	}
	if err := s.AddToken(ctx, a.ID, h); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AccountByToken(ctx, h); err != nil || got != a {
		t.Fatalf("AccountByToken: %+v, %v", got, err)
	}
	if err := s.RevokeToken(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, h); !errors.Is(err, lockcore.ErrNotFound) {
		t.Fatalf("second RevokeToken: %v", err)
	}
	if _, err := s.RotateToken(ctx, h, lockcore.HashToken("y")); !errors.Is(err, lockcore.ErrNotFound) {
		t.Fatalf("RotateToken of an unknown token: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestExpiredRowsPurged checks that an account's table rows stay bounded by
// its quota: expired rows are left alone while the account has fewer rows
// than its quota (no DELETE on every acquire), and dropped by the acquire
// that finds it at the quota.
func TestExpiredRowsPurged(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	o := func(lease string) lockcore.AcquireOptions {
		return lockcore.AcquireOptions{LeaseID: lease, TTL: 10 * time.Second, MaxHeld: 3}
	}
	rows := func() int {
		t.Helper()
		var n int
		if err := s.ReadDB().QueryRowContext(ctx, "SELECT count(*) FROM locks WHERE account_id = ?", acct.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Acquire(ctx, acct.ID, fmt.Sprintf("old-%d", i), o(fmt.Sprintf("l%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.clock.Advance(11 * time.Second)
	if res, err := s.Acquire(ctx, acct.ID, "new-1", o("l8")); err != nil || !res.Acquired {
		t.Fatalf("Acquire(new-1): %+v, %v", res, err)
	}
	if n := rows(); n != 3 {
		t.Fatalf("rows below the quota: %d, want 3 (two expired rows left alone, one held)", n)
	}
	if res, err := s.Acquire(ctx, acct.ID, "new-2", o("l9")); err != nil || !res.Acquired {
		t.Fatalf("Acquire(new-2) at the quota with two expired rows: %+v, %v", res, err)
	}
	if n := rows(); n != 2 {
		t.Fatalf("rows after an acquire at the quota: %d, want 2 (the expired rows dropped)", n)
	}
}

// TestExpiryInstant checks the boundary of expiry on every read and write:
// a lease is held while now < ExpiresAt, so one millisecond before its
// expiry it is held and listed, and at exactly its expiry it is free to
// Get and List, cannot be renewed or released, and is taken by a new lease
// with a greater fencing token.
func TestExpiryInstant(t *testing.T) {
	const ttl = 10 * time.Second
	for _, tc := range []struct {
		name     string
		advance  time.Duration
		wantHeld bool
	}{
		{"1ms before expiry", ttl - time.Millisecond, true},
		{"at expiry", ttl, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, sqlitestore.Options{})
			ctx := context.Background()
			acct := mustAccount(t, s, "alice")
			meta := "host-7"
			o := lockcore.AcquireOptions{LeaseID: "lease-1", TTL: ttl, Metadata: &meta, MaxHeld: 100}
			first, err := s.Acquire(ctx, acct.ID, "x", o)
			if err != nil || !first.Acquired {
				t.Fatalf("Acquire: %+v, %v", first, err)
			}
			s.clock.Advance(tc.advance)

			st, err := s.Get(ctx, acct.ID, "x")
			if err != nil || st.Held != tc.wantHeld {
				t.Errorf("Get: %+v, %v; want Held=%v", st, err, tc.wantHeld)
			}
			list, err := s.List(ctx, acct.ID)
			if err != nil || (len(list) == 1) != tc.wantHeld || len(list) > 1 {
				t.Errorf("List: %+v, %v; want %v", list, err, map[bool]string{true: "[x]", false: "[]"}[tc.wantHeld])
			}
			other, err := s.Acquire(ctx, acct.ID, "x", opts("lease-2"))
			if err != nil || other.Acquired == tc.wantHeld {
				t.Fatalf("Acquire by another lease: %+v, %v; want Acquired=%v", other, err, !tc.wantHeld)
			}
			if !tc.wantHeld && other.Lease.FencingToken <= first.Lease.FencingToken {
				t.Errorf("Acquire by another lease at expiry: token %d, want > %d", other.Lease.FencingToken, first.Lease.FencingToken)
			}
			if tc.wantHeld {
				if other.Lease.LeaseID != "lease-1" || other.Lease.Metadata != meta {
					t.Errorf("Acquire of a held lock: holder %+v, want lease-1 with metadata %q", other.Lease, meta)
				}
				if _, err := s.Renew(ctx, acct.ID, "x", "lease-1", ttl); err != nil {
					t.Errorf("Renew 1ms before expiry: %v", err)
				}
				if err := s.Release(ctx, acct.ID, "x", "lease-1"); err != nil {
					t.Errorf("Release 1ms before expiry: %v", err)
				}
				return
			}
			// lease-1 expired: lease-2 holds the lock now, and lease-1 can
			// neither renew nor release it.
			if _, err := s.Renew(ctx, acct.ID, "x", "lease-1", ttl); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
				t.Errorf("Renew of the expired lease: %v, want ErrLeaseNotCurrent", err)
			}
			if err := s.Release(ctx, acct.ID, "x", "lease-1"); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
				t.Errorf("Release of the expired lease: %v, want ErrLeaseNotCurrent", err)
			}
			if st, err := s.Get(ctx, acct.ID, "x"); err != nil || !st.Held || st.Lease.LeaseID != "lease-2" {
				t.Errorf("Get after the new acquire: %+v, %v; want held by lease-2", st, err)
			}
		})
	}
}

// TestExpiryInstantNoRenewRelease checks at exactly the expiry instant that
// the expired lease can neither renew nor release the lock (on a lock
// nobody has taken since), and that acquiring with its own lease id makes
// a new lease rather than reviving it.
func TestExpiryInstantNoRenewRelease(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	first, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1"))
	if err != nil || !first.Acquired {
		t.Fatalf("Acquire: %+v, %v", first, err)
	}
	s.clock.Advance(10 * time.Second) // exactly the TTL of opts
	if _, err := s.Renew(ctx, acct.ID, "x", "lease-1", time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("Renew at expiry: %v, want ErrLeaseNotCurrent", err)
	}
	if err := s.Release(ctx, acct.ID, "x", "lease-1"); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("Release at expiry: %v, want ErrLeaseNotCurrent", err)
	}
	again, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1"))
	if err != nil || !again.Acquired || again.Lease.FencingToken <= first.Lease.FencingToken {
		t.Fatalf("Acquire with the expired lease's id at expiry: %+v, %v; want a new lease with a token above %d",
			again, err, first.Lease.FencingToken)
	}
}

// TestSubMillisecondTTLRoundsUp checks that a TTL is kept at millisecond
// precision rounded up, so that a positive TTL never makes a lease that is
// expired the moment it is granted, on acquire and on renew.
func TestSubMillisecondTTLRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{time.Nanosecond, time.Millisecond},
		{500 * time.Microsecond, time.Millisecond},
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{2 * time.Millisecond, 2 * time.Millisecond},
		// The largest Duration is not a whole number of milliseconds, and
		// rounding it up would not fit in a Duration: it is rounded down.
		{math.MaxInt64, math.MaxInt64 / time.Millisecond * time.Millisecond},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			s := openTest(t, sqlitestore.Options{})
			ctx := context.Background()
			acct := mustAccount(t, s, "alice")
			now := s.clock.Now()
			o := opts("lease-1")
			o.TTL = tc.ttl
			r, err := s.Acquire(ctx, acct.ID, "x", o)
			if err != nil || !r.Acquired || r.Lease.TTL != tc.want || !r.Lease.ExpiresAt.Equal(now.Add(tc.want)) {
				t.Fatalf("Acquire with TTL %v: %+v, %v; want TTL %v, expiry now+%v", tc.ttl, r, err, tc.want, tc.want)
			}
			if st, err := s.Get(ctx, acct.ID, "x"); err != nil || !st.Held || st.Lease.TTL != tc.want {
				t.Fatalf("Get right after the acquire: %+v, %v; want held with TTL %v", st, err, tc.want)
			}
			l, err := s.Renew(ctx, acct.ID, "x", "lease-1", tc.ttl)
			if err != nil || l.TTL != tc.want || !l.ExpiresAt.Equal(now.Add(tc.want)) {
				t.Fatalf("Renew with TTL %v: %+v, %v; want TTL %v, expiry now+%v", tc.ttl, l, err, tc.want, tc.want)
			}
			s.clock.Advance(tc.want)
			if st, err := s.Get(ctx, acct.ID, "x"); err != nil || st.Held {
				t.Fatalf("Get after %v: %+v, %v; want free", tc.want, st, err)
			}
		})
	}
}

// TestNewLeaseOverExpiredRow checks that a new lease on a lock whose
// expired row is still stored keeps nothing of the old lease: its TTL,
// metadata (none given means none) and fencing token are its own, in what
// Get and List report.
func TestNewLeaseOverExpiredRow(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	meta := "old-holder"
	o := lockcore.AcquireOptions{LeaseID: "lease-1", TTL: 2 * time.Second, Metadata: &meta, MaxHeld: 100}
	old, err := s.Acquire(ctx, acct.ID, "x", o)
	if err != nil || !old.Acquired {
		t.Fatalf("Acquire: %+v, %v", old, err)
	}
	s.clock.Advance(3 * time.Second)
	o2 := opts("lease-2") // 10s, no metadata
	r, err := s.Acquire(ctx, acct.ID, "x", o2)
	if err != nil || !r.Acquired || r.Lease.FencingToken <= old.Lease.FencingToken {
		t.Fatalf("Acquire over the expired row: %+v, %v", r, err)
	}
	want := lockcore.Lease{Name: "x", LeaseID: "lease-2", FencingToken: r.Lease.FencingToken,
		ExpiresAt: s.clock.Now().Add(o2.TTL), TTL: o2.TTL}
	st, err := s.Get(ctx, acct.ID, "x")
	if err != nil || !st.Held || st.Lease != want {
		t.Errorf("Get: %+v, %v; want held by %+v", st, err, want)
	}
	list, err := s.List(ctx, acct.ID)
	if err != nil || len(list) != 1 || list[0] != want {
		t.Errorf("List: %+v, %v; want [%+v]", list, err, want)
	}
}

// TestQuotaCountsOwnLocksOnly checks that the quota counts the account's
// own unexpired locks only, also on the path that purges its expired rows
// (taken once its rows reach the quota): other accounts' locks never count.
func TestQuotaCountsOwnLocksOnly(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a, b := mustAccount(t, s, "alice"), mustAccount(t, s, "bob")
	o := func(lease string, ttl time.Duration) lockcore.AcquireOptions {
		return lockcore.AcquireOptions{LeaseID: lease, TTL: ttl, MaxHeld: 2}
	}
	for _, step := range []struct {
		acct, name string
		ttl        time.Duration
	}{
		{a.ID, "a-short", time.Second},
		{a.ID, "a-long", time.Minute},
		{b.ID, "b-1", time.Minute},
		{b.ID, "b-2", time.Minute},
	} {
		if r, err := s.Acquire(ctx, step.acct, step.name, o(lockcore.NewLeaseID(), step.ttl)); err != nil || !r.Acquired {
			t.Fatalf("Acquire(%s): %+v, %v", step.name, r, err)
		}
	}
	s.clock.Advance(2 * time.Second) // a-short expires: alice holds 1 of 2
	if r, err := s.Acquire(ctx, a.ID, "a-new", o(lockcore.NewLeaseID(), time.Minute)); err != nil || !r.Acquired {
		t.Fatalf("Acquire by alice holding 1 of 2 (bob holding 2): %+v, %v; want acquired", r, err)
	}
	if _, err := s.Acquire(ctx, a.ID, "a-over", o(lockcore.NewLeaseID(), time.Minute)); !errors.Is(err, lockcore.ErrLockLimitExceeded) {
		t.Fatalf("Acquire by alice holding 2 of 2: %v, want ErrLockLimitExceeded", err)
	}
}

// TestUpsertGitHubAccountNeedsPositiveID checks that a GitHub id that is
// not positive (0 is what an operator-made account reports) is refused and
// creates nothing.
func TestUpsertGitHubAccountNeedsPositiveID(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	for _, id := range []int64{0, -1} {
		if acct, err := s.UpsertGitHubAccount(ctx, id, "octocat"); err == nil {
			t.Errorf("UpsertGitHubAccount(%d): %+v, nil; want an error", id, acct)
		}
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 0 {
		t.Fatalf("CountAccounts after refused upserts: %d, %v; want 0", n, err)
	}
}

// holdWriteLock takes the write lock of the database at path on a
// connection of its own (BEGIN IMMEDIATE), as another process would, and
// returns the function that lets it go (ROLLBACK); the connection is
// closed when the test ends.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBusyIsUnavailable checks that a database locked by another connection
// for longer than the busy timeout gives ErrUnavailable, and that the store
// works again once the lock is gone.
func TestBusyIsUnavailable(t *testing.T) {
	s := openTest(t, sqlitestore.Options{BusyTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")

	release := holdWriteLock(t, s.Path())
	if _, err := s.Acquire(ctx, acct.ID, "x", opts("l1")); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Acquire while another connection holds the write lock: want ErrUnavailable, got %v", err)
	}
	release()
	if r, err := s.Acquire(ctx, acct.ID, "x", opts("l1")); err != nil || !r.Acquired {
		t.Fatalf("Acquire after the lock is gone: %+v, %v", r, err)
	}
}

// TestLockWaitNoteIsOneCause: the note an abandoned write's error gets
// for a long wait in BEGIN must read the same for every wait once its
// digits are dropped, as the HTTP server's log throttle drops them to tell
// one cause from another; otherwise one outage is logged as a new cause
// each time the wait's unit changes (ms, then s, then m).
func TestLockWaitNoteIsOneCause(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	noDigits := func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}
	var first string
	for _, waited := range []time.Duration{150 * time.Millisecond, 999 * time.Millisecond, 1500 * time.Millisecond, 75 * time.Second} {
		err := s.AbandonedAfter(waited)
		if !errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(err.Error(), "for the database's write lock") {
			t.Fatalf("a write abandoned after %v in BEGIN: %v; want ErrUnavailable blaming the write lock", waited, err)
		}
		key := strings.Map(noDigits, err.Error())
		if first == "" {
			first = key
		} else if key != first {
			t.Errorf("after %v in BEGIN the error reads %q without its digits; after 150ms it read %q", waited, key, first)
		}
	}
}

// TestPingChecksTheWriter: while another connection holds the database's
// write lock, reads still work but Ping fails with ErrUnavailable, and it
// returns when its context ends rather than after the (here one minute)
// busy timeout the writer waits, with an error that blames the write lock
// (for the log of /health); once the lock is gone, Ping succeeds.
func TestPingChecksTheWriter(t *testing.T) {
	s := openTest(t, sqlitestore.Options{BusyTimeout: time.Minute})
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	release := holdWriteLock(t, s.Path())
	if _, err := s.List(ctx, "nobody"); err != nil {
		t.Fatalf("a read while another connection holds the write lock: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	start := time.Now()
	err := s.Ping(pctx)
	cancel()
	if !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Ping while another connection holds the write lock: want ErrUnavailable, got %v", err)
	}
	if !strings.Contains(err.Error(), "for the database's write lock, which another connection holds") {
		t.Errorf("Ping while another connection holds the write lock: %v; want it to say so", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("Ping took %v: it waited for the busy timeout, not for its context", took)
	}
	release()
	// The writer may still be waiting for the lock on the abandoned ping's
	// batch; the next ping queues behind it and succeeds once it is done.
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the lock is gone: %v", err)
	}
}

// TestNewerSchemaRefused checks that Open refuses a database migrated by a
// newer program instead of using it.
func TestNewerSchemaRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version func(latest int) int
	}{
		{"one newer", func(latest int) int { return latest + 1 }},
		{"far newer", func(int) int { return 999 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTest(t, sqlitestore.Options{})
			ctx := context.Background()
			var latest int
			if err := s.WriteConn().QueryRowContext(ctx, "PRAGMA user_version").Scan(&latest); err != nil || latest < 1 {
				t.Fatalf("user_version of a new database: %d, %v", latest, err)
			}
			if _, err := s.WriteConn().ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", tc.version(latest))); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s2, err := sqlitestore.Open(ctx, s.Path(), sqlitestore.Options{}); err == nil {
				s2.Close()
				t.Fatalf("Open of a database with schema version %d (this program's is %d): want an error", tc.version(latest), latest)
			}
		})
	}
}

// TestCloseDrainsQueue checks that Close lets writes already queued finish
// (and commit) before it returns, and refuses new ones.
func TestCloseDrainsQueue(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	release := s.stall(t)

	acquired := make(chan error, 1)
	go func() {
		r, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1"))
		if err == nil && !r.Acquired {
			err = errors.New("not acquired")
		}
		acquired <- err
	}()
	s.waitQueued(1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for {
		// Close marks the store closed before it waits for the writer.
		if _, err := s.Get(ctx, acct.ID, "x"); errors.Is(err, lockcore.ErrUnavailable) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Renew(ctx, acct.ID, "x", "lease-1", time.Minute); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("write during Close: want ErrUnavailable, got %v", err)
	}
	release()
	if err := <-acquired; err != nil {
		t.Fatalf("write queued before Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := openAt(t, s.path, s.clock, sqlitestore.Options{})
	if st, err := s2.Get(ctx, acct.ID, "x"); err != nil || !st.Held || st.Lease.LeaseID != "lease-1" {
		t.Fatalf("lock after Close and reopen: %+v, %v", st, err)
	}
}

// TestCloseDrainsQueueBehindWriterBatch checks that Close lets the writer
// finish a write that queued while the writer itself (not a lone caller)
// was running a batch: the write is applied and answered, not dropped.
func TestCloseDrainsQueueBehindWriterBatch(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")

	// A lone write stalls; "a" queues for the writer, which stalls in turn
	// before the batch that applies it.
	release := s.stall(t)
	q := s.queuer()
	errA := make(chan error, 1)
	q.run(func() {
		_, err := s.Acquire(ctx, acct.ID, "a", opts("lease-a"))
		errA <- err
	})
	waitWriter, openWriter := s.gate.arm()
	t.Cleanup(openWriter)
	release()
	waitWriter()

	// "b" queues behind the writer's batch, then Close begins.
	// The deadline only bounds how long a dropped write would hang.
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	errB := make(chan error, 1)
	resB := make(chan lockcore.AcquireResult, 1)
	go func() {
		r, err := s.Acquire(bctx, acct.ID, "b", opts("lease-b"))
		resB <- r
		errB <- err
	}()
	s.waitQueued(1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for {
		// Close marks the store closed before it waits for the writer.
		if _, err := s.Get(ctx, acct.ID, "a"); errors.Is(err, lockcore.ErrUnavailable) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	openWriter()
	q.wait()
	if err := <-errA; err != nil {
		t.Fatalf("write in the writer's batch: %v", err)
	}
	if r, err := <-resB, <-errB; err != nil || !r.Acquired {
		t.Fatalf("write queued behind the writer's batch before Close: %+v, %v; want acquired", r, err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := openAt(t, s.path, s.clock, sqlitestore.Options{})
	for _, name := range []string{"a", "b"} {
		if st, err := s2.Get(ctx, acct.ID, name); err != nil || !st.Held {
			t.Fatalf("lock %q after Close and reopen: %+v, %v; want held", name, st, err)
		}
	}
}

// TestAccountIDByTokenClosed checks that the one-lookup token check fails
// with ErrUnavailable on a closed store; its answers are checked by
// storetest's Tokens.
func TestAccountIDByTokenClosed(t *testing.T) {
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "closed.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.AccountIDByToken(context.Background(), lockcore.TokenHash{}); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("closed store: %v, want ErrUnavailable", err)
	}
}

// TestNewDatabaseIsPrivate: a database Open creates, and its -wal and -shm
// files, are readable by their owner only (they hold token hashes, lease
// ids and metadata); a database that already exists keeps its mode.
func TestNewDatabaseIsPrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "private.db")
	st, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.EnsureAccount(ctx, "perm"); err != nil { // a write: the WAL exists
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group and others", filepath.Base(f), perm)
		}
	}
	st.Close()

	shared := filepath.Join(dir, "shared.db")
	if err := os.WriteFile(shared, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	st, err = sqlitestore.Open(ctx, shared, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("an existing database's mode changed: %v %v", fi.Mode(), err)
	}
}

// TestAddTokenRetry checks that AddToken is safe to retry (a caller whose
// first call ended with ErrUnavailable and an unknown outcome calls again):
// adding a hash the account already has succeeds and changes nothing, while
// the same hash for another account is refused and keeps its owner.
func TestAddTokenRetry(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a, b := mustAccount(t, s, "alice"), mustAccount(t, s, "bob")
	h := lockcore.HashToken("os_retried")
	for i := range 2 {
		if err := s.AddToken(ctx, a.ID, h); err != nil {
			t.Fatalf("AddToken #%d of the same hash for its own account: %v, want nil", i+1, err)
		}
	}
	if err := s.AddToken(ctx, b.ID, h); err == nil {
		t.Fatal("AddToken of alice's hash for bob: nil, want an error")
	}
	if got, err := s.AccountByToken(ctx, h); err != nil || got.ID != a.ID {
		t.Fatalf("AccountByToken: %+v, %v; want alice (%s)", got, err, a.ID)
	}
	if n, err := s.RevokeAccountTokens(ctx, a.ID); err != nil || n != 1 {
		t.Fatalf("RevokeAccountTokens(alice): %d, %v; want 1 (one token row)", n, err)
	}
}

// TestOpenRefusesForeignDatabase checks that Open leaves another
// application's SQLite file (schema version 0, tables of its own) alone
// instead of adding OctoStore's tables to it.
func TestOpenRefusesForeignDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes(body) VALUES ('keep me')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of another application's database succeeded")
	}
	if !strings.Contains(err.Error(), "not an OctoStore database") {
		t.Errorf("error %q does not say it is not an OctoStore database", err)
	}
	db, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name IN ('accounts', 'locks', 'fences', 'tokens')").Scan(&n); err != nil || n != 0 {
		t.Errorf("OctoStore tables added to the foreign database: %d (%v)", n, err)
	}
}

// TestOpenRefusesReadOnlyFile checks that a database file the process can
// only read stops Open, instead of a store that answers every write
// "unavailable". Root writes a 0444 file anyway, so as root the file is
// made immutable (chattr +i) instead, which binds root too.
func TestOpenRefusesReadOnlyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "octostore.db")
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Fatalf("chattr +i %s (to make the file read-only for root): %v %s", path, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
	} else if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a read-only database file succeeded")
	}
	if !strings.Contains(err.Error(), "readonly") || !strings.Contains(err.Error(), "must be able to write") {
		t.Errorf("error %q does not say the file is read-only and what to do", err)
	}
}

// TestOpenRefusesCorruptFile checks that a database with a damaged page
// in the middle stops Open with a message that says what to do, rather
// than opening and failing only the requests that touch that page.
func TestOpenRefusesCorruptFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "octostore.db")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, s, "a")
	meta := strings.Repeat("m", 200)
	for i := 0; i < 80; i++ {
		o := opts(fmt.Sprintf("l%d", i))
		o.Metadata = &meta
		if _, err := s.Acquire(ctx, a.ID, fmt.Sprintf("n%d", i), o); err != nil {
			t.Fatal(err)
		}
	}
	s.Close() // checkpoints: the file alone is the database
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(b) / 4096
	if pages < 6 {
		t.Fatalf("only %d pages", pages)
	}
	mid := pages / 2 * 4096
	for i := mid; i < mid+4096; i++ {
		b[i] = 0x5a
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a damaged page succeeded")
	}
	if !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "octostore restore") {
		t.Errorf("error %q does not say the file is damaged and what to do", err)
	}
	// Damage that appears while a store runs (Open checked the file
	// before) is a store that cannot answer, 503, not an internal error.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRow("SELECT count(*) FROM locks WHERE metadata LIKE '%x%'").Scan(&n)
	if err == nil {
		t.Fatal("a full scan of the damaged file succeeded")
	}
	if terr := sqlitestore.Translate("get", err); !errors.Is(terr, lockcore.ErrUnavailable) || !strings.Contains(terr.Error(), "damaged") {
		t.Errorf("translate(%v) = %v, want ErrUnavailable saying the file is damaged", err, terr)
	}
}

// TestWritesRefusedAfterWALDeleted checks that once the -wal (or -shm)
// file of the open database is deleted, writes and Ping fail with
// ErrUnavailable instead of being acknowledged into a file that the next
// crash loses (which would issue fencing tokens again), from the first
// batch 100 ms after the last check (filesCheckMs).
func TestWritesRefusedAfterWALDeleted(t *testing.T) {
	for _, suffix := range []string{"-wal", "-shm"} {
		t.Run(suffix, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, sqlitestore.Options{})
			a := mustAccount(t, s, "a")
			if _, err := s.Acquire(ctx, a.ID, "x", opts("one")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(s.path + suffix); err != nil {
				t.Fatal(err)
			}
			s.clock.Advance(99 * time.Millisecond) // the files were checked less than 100 ms ago
			if _, err := s.Acquire(ctx, a.ID, "y", opts("early")); err != nil {
				t.Fatalf("Acquire within 100 ms of the last check: %v", err)
			}
			s.clock.Advance(time.Millisecond)
			_, err := s.Acquire(ctx, a.ID, "y", opts("two"))
			if !errors.Is(err, lockcore.ErrUnavailable) {
				t.Fatalf("Acquire after %s was deleted: %v, want ErrUnavailable", suffix, err)
			}
			if !strings.Contains(err.Error(), "deleted or replaced") {
				t.Errorf("error %q does not say what happened", err)
			}
			if err := s.Ping(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
				t.Errorf("Ping after %s was deleted: %v, want ErrUnavailable", suffix, err)
			}
		})
	}
}

// clockBackCase opens a store on a fake clock, makes an account and gives
// it a 10 s lease of lock "x" (returned). setBack then moves the clock
// back an hour, with the store closed and opened again on the same file
// when restart is true, and returns the store to use from then on.
func clockBackCase(t *testing.T, restart bool) (s *testStore, a lockcore.Account, lease lockcore.AcquireResult, setBack func() *testStore) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "octostore.db")
	clock := newFakeClock()
	s = openAt(t, path, clock, sqlitestore.Options{})
	a = mustAccount(t, s, "a")
	lease, err := s.Acquire(context.Background(), a.ID, "x", opts("one")) // TTL 10 s
	if err != nil || !lease.Acquired {
		t.Fatal(lease, err)
	}
	return s, a, lease, func() *testStore {
		if !restart {
			clock.Advance(-time.Hour)
			return s
		}
		s.Close()
		clock.Advance(-time.Hour)
		return openAt(t, path, clock, sqlitestore.Options{})
	}
}

// TestClockSetBack checks that a clock set back (at a restart, or while
// the store runs) does not keep a lease held for longer than its TTL from
// then on: the lock of a holder that is gone is free again after TTL, not
// after TTL plus however far the clock went back. Fencing tokens still go
// up.
func TestClockSetBack(t *testing.T) {
	ctx := context.Background()
	for _, restart := range []bool{true, false} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			_, a, r1, setBack := clockBackCase(t, restart)
			s := setBack()
			r2, err := s.Acquire(ctx, a.ID, "x", opts("two"))
			if err != nil || r2.Acquired {
				t.Fatalf("right after the clock went back the lease must still be held: %+v %v", r2, err)
			}
			if left := r2.Lease.ExpiresAt.Sub(r2.Now); left > 10*time.Second {
				t.Errorf("lease of TTL 10 s has %v left after the clock went back", left)
			}
			s.clock.Advance(11 * time.Second)
			r3, err := s.Acquire(ctx, a.ID, "x", opts("two"))
			if err != nil || !r3.Acquired {
				t.Fatalf("11 s after the clock went back a 10 s lease still holds the lock: %+v %v", r3, err)
			}
			if r3.Lease.FencingToken <= r1.Lease.FencingToken {
				t.Errorf("fencing token %d after %d", r3.Lease.FencingToken, r1.Lease.FencingToken)
			}
		})
	}
}

// TestClockBackKeepsExpiredLeasesExpired checks that a lease that had
// expired before the clock went back stays expired: the clamp does not give
// it a new TTL (at a restart, the last clock reading of the earlier run is
// the health probe's).
func TestClockBackKeepsExpiredLeasesExpired(t *testing.T) {
	ctx := context.Background()
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			s, a, _, setBack := clockBackCase(t, restart)
			s.clock.Advance(100 * time.Second) // the lease has expired
			if st, err := s.Get(ctx, a.ID, "x"); err != nil || st.Held {
				t.Fatalf("100 s after a 10 s lease: %+v %v", st, err)
			}
			if err := s.Ping(ctx); err != nil { // a write: the writer sees the time
				t.Fatal(err)
			}
			s = setBack()
			if err := s.Ping(ctx); err != nil { // a batch: the writer sees the step back
				t.Fatal(err)
			}
			st, err := s.Get(ctx, a.ID, "x")
			if err != nil {
				t.Fatal(err)
			}
			if st.Held {
				t.Errorf("a lease that expired 90 s before the clock went back is held again: lease %s, %v left",
					st.Lease.LeaseID, st.Lease.ExpiresAt.Sub(s.clock.Now()))
			}
		})
	}
}

// TestSmallClockStepBackKeepsExpiredLeasesExpired checks that a lease
// that had expired stays expired when the clock then goes back by less
// than the step that makes the writer clamp expiries (1 s), and also when
// it goes back further and Get runs before any write: "an expired lease
// is never revived", neither by Renew nor in what Get and List show.
func TestSmallClockStepBackKeepsExpiredLeasesExpired(t *testing.T) {
	ctx := context.Background()
	for _, back := range []time.Duration{time.Millisecond, 900 * time.Millisecond, 5 * time.Second} {
		t.Run(back.String(), func(t *testing.T) {
			s := openTest(t, sqlitestore.Options{})
			a := mustAccount(t, s, "a")
			first, err := s.Acquire(ctx, a.ID, "x", opts("one")) // TTL 10 s
			if err != nil || !first.Acquired {
				t.Fatal(first, err)
			}
			s.clock.Advance(10*time.Second + 10*time.Millisecond) // 10 ms past its expiry
			if _, err := s.Renew(ctx, a.ID, "x", "one", 10*time.Second); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
				t.Fatalf("Renew 10 ms after the expiry: %v, want ErrLeaseNotCurrent", err)
			}
			s.clock.Advance(-back) // the lease's expiry is now ahead of the clock again, or nearly
			if st, err := s.Get(ctx, a.ID, "x"); err != nil || st.Held {
				t.Errorf("Get after the clock went back %v: %+v, %v; want free (the lease had expired)", back, st, err)
			}
			if ls, err := s.List(ctx, a.ID); err != nil || len(ls) != 0 {
				t.Errorf("List after the clock went back %v: %+v, %v; want none", back, ls, err)
			}
			if l, err := s.Renew(ctx, a.ID, "x", "one", 10*time.Second); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
				t.Errorf("Renew after the clock went back %v: %+v, %v; want ErrLeaseNotCurrent (an expired lease is never revived)", back, l, err)
			}
			again, err := s.Acquire(ctx, a.ID, "x", opts("one"))
			if err != nil || !again.Acquired || again.Lease.FencingToken <= first.Lease.FencingToken {
				t.Errorf("Acquire with the expired lease's id after the clock went back %v: %+v, %v; want a new lease with a token above %d", back, again, err, first.Lease.FencingToken)
			}
		})
	}
}

// TestCorruptOnlyForDamage checks that an Open interrupted while it checks
// the file (a SIGTERM, a deadline) is not reported as a damaged file,
// whose advice (restore a backup) would throw away a healthy database.
func TestCorruptOnlyForDamage(t *testing.T) {
	for _, err := range []error{context.Canceled, context.DeadlineExceeded, errors.New("disk I/O")} {
		if detail, got := sqlitestore.DamageDetail(err); detail != "" || got != err {
			t.Errorf("damageDetail(%v) = %q, %v: says damaged, want the error back", err, detail, got)
		}
	}
}

// TestPingFailsOnceDamageIsFound checks that damage found while the store
// runs (after Open's check) makes Ping fail from then on, so /health says
// 503, although Ping's own pages are intact.
func TestPingFailsOnceDamageIsFound(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, sqlitestore.Options{})
	a := mustAccount(t, s, "a")
	if _, err := s.Acquire(ctx, a.ID, "x", opts("one")); err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := s.ReadDB().QueryRow("SELECT rootpage FROM sqlite_schema WHERE name = 'locks'").Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadDB().QueryRow("PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteConn().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	// Overwrite the locks table's root page in the file, behind SQLite's
	// back, and drop the idle read connections, whose caches hold it.
	f, err := os.OpenFile(s.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0x5a}, int(pageSize)), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.ReadDB().SetMaxIdleConns(0)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping before the damage is found: %v", err)
	}
	if _, err := s.Get(ctx, a.ID, "x"); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Get of a lock on a damaged page: %v, want ErrUnavailable", err)
	}
	err = s.Ping(ctx)
	if !errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("Ping after Get found the damage: %v, want ErrUnavailable saying the file is damaged", err)
	}
}

// TestRotateAnsweredByItsCommit checks that a rotation whose context ends
// after the writer has applied it, before its batch commits, is answered
// with the commit's outcome. Before, it was answered with an error (503
// store_unavailable) while the commit went on retiring the old token: a
// client that then tried its old token, as the README advises, found it
// working until the commit and took the rotation for one that had not
// happened, with the new token lost with the answer.
func TestRotateAnsweredByItsCommit(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	alice := mustAccount(t, s, "alice")
	oldTok, newTok := lockcore.HashToken("old"), lockcore.HashToken("new")
	if err := s.AddToken(ctx, alice.ID, oldTok); err != nil {
		t.Fatal(err)
	}

	release := s.stall(t)
	q := s.queuer()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var rotErr error
	rotated := make(chan struct{})
	applied, unblock := make(chan struct{}), make(chan struct{})
	q.run(func() { _, rotErr = s.RotateToken(rctx, oldTok, newTok); close(rotated) })
	// Queued after the rotation, so in its batch and applied after it: it
	// holds the batch open until the rotation's context has ended.
	q.run(func() {
		if err := s.WriteFunc(ctx, func(int64) error { close(applied); <-unblock; return nil }); err != nil {
			t.Errorf("blocking write: %v", err)
		}
	})
	release()
	<-applied
	cancel()
	select {
	case <-rotated: // answered before the commit: the error this test is about
	case <-time.After(time.Second):
	}
	close(unblock)
	q.wait()

	if _, err := s.AccountByToken(ctx, oldTok); !errors.Is(err, lockcore.ErrNotFound) {
		t.Fatalf("old token after the batch: %v; want ErrNotFound (the rotation was applied and committed)", err)
	}
	if a, err := s.AccountByToken(ctx, newTok); err != nil || a.ID != alice.ID {
		t.Fatalf("new token after the batch: %+v, %v; want alice", a, err)
	}
	if rotErr != nil {
		t.Fatalf("RotateToken: %v; want success, since its rotation committed", rotErr)
	}
}
