package sqlitestore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// TestClockSetBackTwoStoresOneFile checks the clock-step handling when two
// stores (two `octostore serve` processes, as README's "Durability" allows)
// write one file: after the clock is set back, a lease that one store
// acknowledges must not be cut short by the other store's clamp of
// expiries, and a lease that had expired by the latest time any store
// wrote at must not be renewed. Each store used to judge a step back only
// by the latest time its own writer had seen, so a store whose writer had
// been idle took no step, wrote leases at the earlier time, and the other
// store's clamp then took them for leases that had expired before the
// step: an acquire acknowledged for 10 s was free again at once, for a
// second lease.
func TestClockSetBackTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path, clock, a, acct := onOneFile(t)
	b := openAt(t, path, clock, sqlitestore.Options{})

	clock.Advance(185 * time.Second)
	old, err := a.Acquire(ctx, acct, "old", opts("gone")) // TTL 10 s: expired at t0+195
	if err != nil || !old.Acquired {
		t.Fatal(old, err)
	}
	clock.Advance(15 * time.Second)
	if err := a.Ping(ctx); err != nil { // a's writer runs at t0+200; b's last ran at t0
		t.Fatal(err)
	}
	clock.Advance(-50 * time.Second) // set back to t0+150

	one, err := b.Acquire(ctx, acct, "x", opts("one")) // acknowledged for 10 s
	if err != nil || !one.Acquired {
		t.Fatal(one, err)
	}
	if l, err := b.Renew(ctx, acct, "old", "gone", 10*time.Second); err == nil {
		t.Errorf("b renewed a lease that had expired before the clock went back (by a's writes): %+v", l)
	}
	if err := a.Ping(ctx); err != nil { // a's next batch: it sees the step back
		t.Fatal(err)
	}
	refusedWhileHeld(t, a, acct, 10*time.Second)
	if st, err := b.Get(ctx, acct, "x"); err != nil || !st.Held || st.Lease.LeaseID != "one" {
		t.Errorf("Get via b: %+v, %v; want held by one", st, err)
	}
}

// TestClockSetBackThenACommandOpens: one server (a) whose health checks
// keep the file's probe time recent; the clock is set back, a clamps and
// acknowledges a new 10 s lease; then an operator command opens the file
// (b, as `octostore token create` does). Its Open must not clamp again
// against the probe time from before the step, which would take the new
// lease for one that had expired before it and free it at once.
func TestClockSetBackThenACommandOpens(t *testing.T) {
	ctx := context.Background()
	path, clock, a, acct := onOneFile(t)
	clock.Advance(100 * time.Second)
	if err := a.Ping(ctx); err != nil { // the health check writes the probe at t0+100
		t.Fatal(err)
	}
	clock.Advance(-60 * time.Second) // set back to t0+40
	one, err := a.Acquire(ctx, acct, "x", opts("one"))
	if err != nil || !one.Acquired {
		t.Fatal(one, err)
	}
	openAt(t, path, clock, sqlitestore.Options{}) // the command
	if st, err := a.Get(ctx, acct, "x"); err != nil || !st.Held || st.Lease.LeaseID != "one" {
		t.Errorf("Get after a command opened the file: %+v, %v; want held by one", st, err)
	}
	refusedWhileHeld(t, a, acct, 10*time.Second)
}

// TestHeldAnswerWritesNothing: a write whose batch changes nothing (an
// acquire answered "held") commits no page, so it costs no fsync; keeping
// the file's clock (see TestClockSetBackTwoStoresOneFile) must not add
// one while the clock lags the batch's time by less than clockLagMs
// (250 ms; a batch past that sets it, whatever it changed: see
// commitClock and TestClockSetBackAfterUnrecordedBatches). The log's
// frame count (PRAGMA wal_checkpoint's second column) stays where it was.
func TestHeldAnswerWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, sqlitestore.Options{})
	acct := mustAccount(t, s, "acct").ID
	if r, err := s.Acquire(ctx, acct, "x", opts("one")); err != nil || !r.Acquired {
		t.Fatal(r, err)
	}
	s.clock.Advance(time.Second)
	if r, err := s.Acquire(ctx, acct, "x", opts("two")); err != nil || r.Acquired {
		t.Fatalf("first attempt: %+v, %v; want held", r, err)
	}
	frames := func() int {
		t.Helper()
		s.WaitIdle()
		var busy, logFrames, copied int
		if err := s.WriteConn().QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied); err != nil {
			t.Fatal(err)
		}
		return logFrames
	}
	before := frames()
	for i := range 3 {
		s.clock.Advance(time.Millisecond) // each attempt at a later millisecond
		r, err := s.Acquire(ctx, acct, "x", opts("two"))
		if err != nil || r.Acquired {
			t.Fatalf("attempt %d: %+v, %v; want held", i, r, err)
		}
	}
	if after := frames(); after != before {
		t.Errorf("three acquires answered held added %d frames to the log, want 0", after-before)
	}
}

// ttlOpts is opts with the given TTL.
func ttlOpts(lease string, ttl time.Duration) lockcore.AcquireOptions {
	o := opts(lease)
	o.TTL = ttl
	return o
}

// onOneFile opens a store on a new database file with a fake clock and
// makes the account "acct" through it, returning the file, the clock, the
// store and the account's id; the tests open more stores on path with the
// same clock, as more processes would.
func onOneFile(t *testing.T) (path string, clock *fakeClock, first *testStore, acct string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "octostore.db")
	clock = newFakeClock()
	first = openAt(t, path, clock, sqlitestore.Options{})
	return path, clock, first, mustAccount(t, first, "acct").ID
}

// refusedWhileHeld asks s for the lock "x" of acct for a lease "two" of
// the given TTL and fails the test if it gets it: the callers' lease
// "one", acknowledged for its TTL, still holds it.
func refusedWhileHeld(t *testing.T, s lockcore.Store, acct string, ttl time.Duration) {
	t.Helper()
	two, err := s.Acquire(context.Background(), acct, "x", ttlOpts("two", ttl))
	if err != nil {
		t.Fatal(err)
	}
	if two.Acquired {
		t.Errorf("lease one still holds the lock, and lease two acquired it at %v (until %v): two holders", two.Now, two.Lease.ExpiresAt)
	}
}

// TestClockSetBackAfterUnrecordedBatches: store a's writer runs batches
// that change no row (acquires answered "held", a refused renew), which
// leave the file's clock behind the time they ran at (commitClock). The
// clock is then set back by more than a second, store b (idle until then)
// acknowledges a 1 s lease at the set-back time, and a's next batch sees
// the step. a's clamp must not take b's lease for one that had expired by
// a's unrecorded time and free it: that would hand the lock to a second
// lease while the first is still within its TTL.
func TestClockSetBackAfterUnrecordedBatches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unrecorded func(t *testing.T, a *testStore, acct string)
	}{
		{"held answers", func(t *testing.T, a *testStore, acct string) {
			r, err := a.Acquire(context.Background(), acct, "busy", opts("other"))
			if err != nil || r.Acquired {
				t.Fatalf("acquire busy: %+v, %v; want held", r, err)
			}
		}},
		{"refused renew", func(t *testing.T, a *testStore, acct string) {
			if _, err := a.Renew(context.Background(), acct, "busy", "other", time.Minute); err == nil {
				t.Fatal("renew of a lease that is not current succeeded")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path, clock, a, acct := onOneFile(t)
			b := openAt(t, path, clock, sqlitestore.Options{})
			if r, err := a.Acquire(ctx, acct, "busy", ttlOpts("holder", time.Hour)); err != nil || !r.Acquired {
				t.Fatal(r, err)
			}
			for range 5 { // a's writer runs on, committing nothing
				clock.Advance(time.Second)
				tc.unrecorded(t, a, acct)
			}
			clock.Advance(-1500 * time.Millisecond)

			one, err := b.Acquire(ctx, acct, "x", ttlOpts("one", time.Second))
			if err != nil || !one.Acquired {
				t.Fatal(one, err)
			}
			refusedWhileHeld(t, a, acct, time.Second)
		})
	}
}

// TestCommandOpenBesideAServerKeepsItsLeases: an operator command opens
// the file beside a running server, with the clock never set back. Open
// reads the clock, then waits for the write lock (the server is
// committing), and the server acknowledges a 10 s lease meanwhile. Open
// must not take that lease for one stretched by a clock step (it expires
// more than its TTL after Open's clock reading) and cut it to 10 s from
// that earlier reading: the lock would be free for a second lease before
// the first one's TTL had passed.
func TestCommandOpenBesideAServerKeepsItsLeases(t *testing.T) {
	ctx := context.Background()
	path, clock, a, acct := onOneFile(t)
	clock.Advance(time.Minute)

	var once sync.Once
	cmdNow := func() time.Time {
		read := clock.Now()
		once.Do(func() { // between the command's clock reading and its write
			clock.Advance(50 * time.Millisecond)
			r, err := a.Acquire(ctx, acct, "x", opts("one"))
			if err != nil || !r.Acquired {
				t.Errorf("acquire one: %+v, %v", r, err)
			}
		})
		return read
	}
	cmd, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Now: cmdNow})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Advance(10*time.Second - 10*time.Millisecond) // lease one has 10 ms of its TTL left
	refusedWhileHeld(t, a, acct, 10*time.Second)
}

// TestStoreWaitingForTheWriteLockKeepsTheOthersLeases: store a reads the
// clock for a batch, then waits for the file's write lock while store b
// commits batches for more than a second (a slow disk, or SQLite's busy
// handler letting b take the lock again and again); b acknowledges a lease
// meanwhile. a must not take b's later time for a clock set back and clamp
// b's lease to its TTL from a's earlier reading: that would cut the lease
// short by the wait, and a 1 s lease would be free for a's own acquire
// as soon as a got the lock.
func TestStoreWaitingForTheWriteLockKeepsTheOthersLeases(t *testing.T) {
	ctx := context.Background()
	path, clock, b, acct := onOneFile(t)

	var (
		mu    sync.Mutex
		armed bool
		one   lockcore.AcquireResult
	)
	aNow := func() time.Time {
		read := clock.Now()
		mu.Lock()
		fire := armed
		armed = false
		mu.Unlock()
		if fire { // a's batch has read the clock; b commits before a gets the lock
			clock.Advance(1200 * time.Millisecond)
			var err error
			if one, err = b.Acquire(ctx, acct, "x", ttlOpts("one", time.Second)); err != nil || !one.Acquired {
				t.Errorf("acquire one via b: %+v, %v", one, err)
			}
		}
		return read
	}
	a, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Now: aNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })

	mu.Lock()
	armed = true
	mu.Unlock()
	refusedWhileHeld(t, a, acct, time.Second)
}

// TestClockSetBackBeforeAStoresFirstBatch: store b has run no batch since
// it opened when the clock is set back; store a clamps expiries, lowering
// the file's clock, and acknowledges a new lease. b's first batch must
// see that another process lowered the clock, not clamp again from the
// time b opened at, which would take a's new lease for one that had
// expired before the step and free it.
func TestClockSetBackBeforeAStoresFirstBatch(t *testing.T) {
	ctx := context.Background()
	path, clock, a, acct := onOneFile(t)
	b := openAt(t, path, clock, sqlitestore.Options{})
	clock.Advance(-2 * time.Second)
	one, err := a.Acquire(ctx, acct, "x", ttlOpts("one", time.Second))
	if err != nil || !one.Acquired {
		t.Fatal(one, err)
	}
	refusedWhileHeld(t, b, acct, time.Second)
}
