package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

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
	path := filepath.Join(t.TempDir(), "octostore.db")
	clock := newFakeClock()
	a := openAt(t, path, clock, sqlitestore.Options{})
	b := openAt(t, path, clock, sqlitestore.Options{})
	acct := mustAccount(t, a, "acct")

	clock.Advance(185 * time.Second)
	old, err := a.Acquire(ctx, acct.ID, "old", opts("gone")) // TTL 10 s: expired at t0+195
	if err != nil || !old.Acquired {
		t.Fatal(old, err)
	}
	clock.Advance(15 * time.Second)
	if err := a.Ping(ctx); err != nil { // a's writer runs at t0+200; b's last ran at t0
		t.Fatal(err)
	}
	clock.Advance(-50 * time.Second) // set back to t0+150

	one, err := b.Acquire(ctx, acct.ID, "x", opts("one")) // acknowledged for 10 s
	if err != nil || !one.Acquired {
		t.Fatal(one, err)
	}
	if l, err := b.Renew(ctx, acct.ID, "old", "gone", 10*time.Second); err == nil {
		t.Errorf("b renewed a lease that had expired before the clock went back (by a's writes): %+v", l)
	}
	if err := a.Ping(ctx); err != nil { // a's next batch: it sees the step back
		t.Fatal(err)
	}
	two, err := a.Acquire(ctx, acct.ID, "x", opts("two"))
	if err != nil {
		t.Fatal(err)
	}
	if two.Acquired {
		t.Errorf("lease %q acquired via b for 10 s, and at the same instant lease %q acquired via a: two holders", one.Lease.LeaseID, two.Lease.LeaseID)
	}
	if st, err := b.Get(ctx, acct.ID, "x"); err != nil || !st.Held || st.Lease.LeaseID != "one" {
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
	path := filepath.Join(t.TempDir(), "octostore.db")
	clock := newFakeClock()
	a := openAt(t, path, clock, sqlitestore.Options{})
	acct := mustAccount(t, a, "acct")
	clock.Advance(100 * time.Second)
	if err := a.Ping(ctx); err != nil { // the health check writes the probe at t0+100
		t.Fatal(err)
	}
	clock.Advance(-60 * time.Second) // set back to t0+40
	one, err := a.Acquire(ctx, acct.ID, "x", opts("one"))
	if err != nil || !one.Acquired {
		t.Fatal(one, err)
	}
	openAt(t, path, clock, sqlitestore.Options{}) // the command
	if st, err := a.Get(ctx, acct.ID, "x"); err != nil || !st.Held || st.Lease.LeaseID != "one" {
		t.Errorf("Get after a command opened the file: %+v, %v; want held by one", st, err)
	}
	two, err := a.Acquire(ctx, acct.ID, "x", opts("two"))
	if err != nil {
		t.Fatal(err)
	}
	if two.Acquired {
		t.Errorf("lease one acknowledged for 10 s, and lease two acquired at the same instant: two holders")
	}
}

// TestHeldAnswerWritesNothing: a write whose batch changes nothing (an
// acquire answered "held") commits no page, so it costs no fsync; keeping
// the file's clock (see TestClockSetBackTwoStoresOneFile) must not add
// one, once the clock has caught up with the last write (the first batch
// after a write may set it: see commitClock). The log's frame count
// (PRAGMA wal_checkpoint's second column) stays where it was.
func TestHeldAnswerWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, sqlitestore.Options{})
	acct := mustAccount(t, s, "acct")
	if r, err := s.Acquire(ctx, acct.ID, "x", opts("one")); err != nil || !r.Acquired {
		t.Fatal(r, err)
	}
	s.clock.Advance(time.Second)
	if r, err := s.Acquire(ctx, acct.ID, "x", opts("two")); err != nil || r.Acquired {
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
		s.clock.Advance(time.Second) // each attempt at a later millisecond
		r, err := s.Acquire(ctx, acct.ID, "x", opts("two"))
		if err != nil || r.Acquired {
			t.Fatalf("attempt %d: %+v, %v; want held", i, r, err)
		}
	}
	if after := frames(); after != before {
		t.Errorf("three acquires answered held added %d frames to the log, want 0", after-before)
	}
}
