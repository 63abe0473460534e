package sqlitestore_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// TestCleanWriteFailureRollsBackItsBatch: the lock writes run without a
// SAVEPOINT of their own, so a database error in one of them (provoked by a
// trigger that aborts inserting the lock "boom") must roll back the whole
// batch: the failing write gets the database's error, every other write of
// the batch an error wrapping ErrUnavailable, and none of them takes effect
// (locks free, fencing counter where it was). The next batch works.
func TestCleanWriteFailureRollsBackItsBatch(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a := mustAccount(t, s, "alice")
	first, err := s.Acquire(ctx, a.ID, "first", opts("lease-0"))
	if err != nil || !first.Acquired {
		t.Fatalf("Acquire(first): %+v, %v", first, err)
	}
	if _, err := s.WriteConn().ExecContext(ctx, `CREATE TRIGGER boom BEFORE INSERT ON locks
		WHEN NEW.name = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END`); err != nil {
		t.Fatal(err)
	}

	release := s.stall(t)
	var wg sync.WaitGroup
	names := []string{"a", "boom", "c"}
	errs := make([]error, len(names))
	var relErr error
	n := 0
	for i, name := range names {
		n++
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = s.Acquire(ctx, a.ID, name, opts("lease-"+name)) }()
		s.waitQueued(n)
	}
	n++
	wg.Add(1)
	go func() { defer wg.Done(); relErr = s.Release(ctx, a.ID, "first", "lease-0") }()
	s.waitQueued(n)
	release()
	wg.Wait()

	if errs[1] == nil || errors.Is(errs[1], lockcore.ErrUnavailable) {
		t.Errorf("Acquire(boom): want the database's own error, got %v", errs[1])
	}
	for _, i := range []int{0, 2} {
		if !errors.Is(errs[i], lockcore.ErrUnavailable) {
			t.Errorf("Acquire(%s) in the failed batch: want ErrUnavailable, got %v", names[i], errs[i])
		}
	}
	if !errors.Is(relErr, lockcore.ErrUnavailable) {
		t.Errorf("Release(first) in the failed batch: want ErrUnavailable, got %v", relErr)
	}
	for _, name := range names {
		if st, err := s.Get(ctx, a.ID, name); err != nil || st.Held {
			t.Errorf("Get(%s) after the rolled-back batch: want free, got %+v, %v", name, st, err)
		}
	}
	if st, err := s.Get(ctx, a.ID, "first"); err != nil || !st.Held {
		t.Errorf("Get(first): the rolled-back release must not have freed it, got %+v, %v", st, err)
	}
	next, err := s.Acquire(ctx, a.ID, "a", opts("lease-a"))
	if err != nil || !next.Acquired || next.Lease.FencingToken != first.Lease.FencingToken+1 {
		t.Errorf("Acquire(a) after the rolled-back batch: want fencing token %d (the batch's fences rolled back), got %+v, %v",
			first.Lease.FencingToken+1, next, err)
	}
}
