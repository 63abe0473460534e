package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// setMaxPageCount sets SQLite's max_page_count on the writer's connection
// (0: back to a limit no test reaches). A write that needs a page beyond
// it fails with SQLITE_FULL inside its statement, as on a full disk when
// a large transaction spills its cache, and SQLite then rolls the whole
// transaction back by itself. Call it only while no write runs.
func setMaxPageCount(t *testing.T, s *testStore, n int64) {
	t.Helper()
	if n == 0 {
		n = 1 << 30
	}
	s.WaitIdle()
	if _, err := s.WriteConn().ExecContext(context.Background(), fmt.Sprintf("PRAGMA max_page_count = %d", n)); err != nil {
		t.Fatal(err)
	}
}

// fillUntilFull adds tokens to acct, one write at a time, until one fails
// for want of a page, and returns the hash of that token: adding it again
// fails the same way while the limit stands.
func fillUntilFull(t *testing.T, s *testStore, acct lockcore.Account) lockcore.TokenHash {
	t.Helper()
	ctx := context.Background()
	for i := range 10000 {
		h := lockcore.HashToken(fmt.Sprintf("filler-%d", i))
		err := s.AddToken(ctx, acct.ID, h)
		if err == nil {
			continue
		}
		if !errors.Is(err, lockcore.ErrUnavailable) {
			t.Fatalf("AddToken on a full database: %v, want ErrUnavailable", err)
		}
		return h
	}
	t.Fatal("the database never filled up")
	return lockcore.TokenHash{}
}

// TestFullInNonCleanOpIsUnavailable: when a write that runs in a SAVEPOINT
// of its own (an account or token write, the health probe) fails inside a
// batch with an error after which SQLite rolls the whole transaction back
// itself (SQLITE_FULL here; SQLITE_IOERR and SQLITE_NOMEM too), every
// write of the batch is told ErrUnavailable (a 503), none is applied, and
// the store works again once there is room.
func TestFullInNonCleanOpIsUnavailable(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a := mustAccount(t, s, "alice")
	first, err := s.Acquire(ctx, a.ID, "x", opts("l0"))
	if err != nil || !first.Acquired {
		t.Fatalf("Acquire: %+v, %v", first, err)
	}
	if err := s.Release(ctx, a.ID, "x", "l0"); err != nil {
		t.Fatal(err)
	}

	var pages int64
	if err := s.WriteConn().QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	setMaxPageCount(t, s, pages)
	full := fillUntilFull(t, s, a)

	// A batch of an acquire, the token write that needs a page, and
	// another acquire; a ping holds the writer while they queue.
	wait, open := s.gate.arm()
	pinged := make(chan error, 1)
	go func() { pinged <- s.Ping(ctx) }()
	wait()
	q := s.queuer()
	var (
		r1, r2       lockcore.AcquireResult
		e1, e2, eTok error
	)
	q.run(func() { r1, e1 = s.Acquire(ctx, a.ID, "x", opts("l1")) })
	q.run(func() { eTok = s.AddToken(ctx, a.ID, full) })
	q.run(func() { r2, e2 = s.Acquire(ctx, a.ID, "y", opts("l2")) })
	open()
	q.wait()
	if err := <-pinged; err != nil {
		t.Fatalf("Ping: %v", err)
	}

	for _, c := range []struct {
		what string
		err  error
	}{{"acquire before the token write", e1}, {"token write", eTok}, {"acquire after the token write", e2}} {
		if !errors.Is(c.err, lockcore.ErrUnavailable) {
			t.Errorf("%s in a batch whose token write found the database full: %v, want ErrUnavailable (503), not an internal error (500)", c.what, c.err)
		}
	}
	if r1.Acquired || r2.Acquired {
		t.Errorf("acquires of a failed batch report success: %+v, %+v", r1, r2)
	}

	setMaxPageCount(t, s, 0)
	for _, name := range []string{"x", "y"} {
		if st, err := s.Get(ctx, a.ID, name); err != nil || st.Held {
			t.Errorf("Get(%q) after the failed batch: %+v, %v; want free", name, st, err)
		}
	}
	r, err := s.Acquire(ctx, a.ID, "x", opts("l3"))
	if err != nil || !r.Acquired || r.Lease.FencingToken <= first.Lease.FencingToken {
		t.Fatalf("Acquire once there is room: %+v, %v; want acquired with a token above %d", r, err, first.Lease.FencingToken)
	}
	if err := s.AddToken(ctx, a.ID, full); err != nil {
		t.Fatalf("AddToken once there is room: %v", err)
	}
}
