package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// opIDKey carries a test op's number in its context, so that the commit
// hook can tell which ops a batch held.
type opIDKey struct{}

// syncOrder records, on one sequence, every COMMIT (per op) and every fsync
// start, and which fsync starts have completed.
type syncOrder struct {
	seq       atomic.Int64
	commitSeq []atomic.Int64 // per op: seq of its batch's COMMIT (0: none)
	doneStart atomic.Int64   // highest start seq of a completed fsync
	syncs     atomic.Int64
	syncDelay time.Duration
}

func (r *syncOrder) afterCommit(ctxs []context.Context) {
	c := r.seq.Add(1)
	for _, ctx := range ctxs {
		if id, ok := ctx.Value(opIDKey{}).(int); ok {
			r.commitSeq[id].Store(c)
		}
	}
}

func (r *syncOrder) sync(real func() error) error {
	start := r.seq.Add(1)
	r.syncs.Add(1)
	time.Sleep(r.syncDelay) // widen the window in which a broken order shows
	if err := real(); err != nil {
		return err
	}
	for {
		d := r.doneStart.Load()
		if d >= start || r.doneStart.CompareAndSwap(d, start) {
			return nil
		}
	}
}

// answersBeforeSync runs workers×rounds concurrent Acquire/Release calls
// and returns how many were answered before a completed fsync that started
// after their batch's COMMIT. Every call must succeed.
func answersBeforeSync(t *testing.T, answerFirst bool) (violations, ops int) {
	t.Helper()
	const workers, rounds = 16, 24
	s := openTest(t, sqlitestore.Options{})
	rec := &syncOrder{commitSeq: make([]atomic.Int64, workers*rounds), syncDelay: time.Millisecond}
	s.SetAfterCommit(rec.afterCommit)
	s.SetSyncHook(rec.sync)
	s.SetAnswerFirst(answerFirst)
	acct := mustAccount(t, s, "alice")

	var bad atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, lease := fmt.Sprintf("lock-%d", w), lockcore.NewLeaseID()
			for i := 0; i < rounds; i++ {
				id := w*rounds + i
				ctx := context.WithValue(context.Background(), opIDKey{}, id)
				var err error
				if i%2 == 0 {
					var r lockcore.AcquireResult
					if r, err = s.Acquire(ctx, acct.ID, name, opts(lease)); err == nil && !r.Acquired {
						err = errors.New("not acquired")
					}
				} else {
					err = s.Release(ctx, acct.ID, name, lease)
				}
				// Read the completed fsyncs first: they only grow, so a
				// violation seen here was one when the answer came.
				done, c := rec.doneStart.Load(), rec.commitSeq[id].Load()
				if err != nil {
					t.Errorf("op %d: %v", id, err)
					return
				}
				if c == 0 || done <= c {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("answerFirst=%v: %d ops, %d commits, %d fsyncs, %d answered before their fsync",
		answerFirst, workers*rounds, s.Commits(), rec.syncs.Load(), bad.Load())
	return int(bad.Load()), workers * rounds
}

// TestAnswerAfterSync checks, under many concurrent writes, that no write
// is answered before an fsync of the WAL that began after its batch's
// COMMIT has completed; and that the check catches a syncer that answers
// first and syncs after.
func TestAnswerAfterSync(t *testing.T) {
	t.Run("store", func(t *testing.T) {
		if bad, _ := answersBeforeSync(t, false); bad != 0 {
			t.Fatalf("%d writes were answered before an fsync that began after their commit", bad)
		}
	})
	t.Run("answer-first-is-caught", func(t *testing.T) {
		if bad, n := answersBeforeSync(t, true); bad == 0 {
			t.Fatalf("a syncer that answers before it syncs went unnoticed over %d writes", n)
		}
	})
}

// TestWriterDoesNotWaitForSync holds an fsync and checks that the writer
// commits the next batch meanwhile, that neither batch is answered before
// its own fsync, and that the second batch (committed during the first
// fsync) needs a second one.
func TestWriterDoesNotWaitForSync(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	var (
		hold    atomic.Bool
		entered = make(chan struct{}, 4)
		proceed = make(chan struct{})
		once    sync.Once
	)
	s.SetSyncHook(func(real func() error) error {
		if hold.Load() {
			entered <- struct{}{}
			<-proceed
		}
		return real()
	})
	stopHolding := func() { hold.Store(false); once.Do(func() { close(proceed) }) }
	t.Cleanup(stopHolding) // before Close, which waits for the syncer
	acct := mustAccount(t, s, "alice")
	ctx := context.Background()
	hold.Store(true)
	const long = 10 * time.Second
	waitSync := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-time.After(long):
			t.Fatalf("no fsync began %s", what)
		}
	}

	first := make(chan error, 1)
	go func() { _, err := s.Acquire(ctx, acct.ID, "a", opts("lease-a")); first <- err }()
	waitSync("for the first acquire")
	commits := s.Commits()
	second := make(chan error, 1)
	go func() { _, err := s.Acquire(ctx, acct.ID, "b", opts("lease-b")); second <- err }()
	for deadline := time.Now().Add(long); s.Commits() == commits; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not commit the second acquire while the first was being fsync'd")
		}
	}
	select {
	case err := <-first:
		t.Fatalf("first acquire answered during its fsync: %v", err)
	case err := <-second:
		t.Fatalf("second acquire answered during an fsync that began before its commit: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	// A reader may already see the committed, not yet durable, write.
	if st, err := s.Get(ctx, acct.ID, "b"); err != nil || !st.Held {
		t.Fatalf("Get of a committed write during its fsync: %+v, %v", st, err)
	}

	proceed <- struct{}{} // let the first fsync finish
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("first acquire: %v", err)
		}
	case <-time.After(long):
		t.Fatal("first acquire not answered after its fsync")
	}
	// The second acquire needs an fsync of its own.
	select {
	case <-entered:
	case err := <-second:
		t.Fatalf("second acquire answered after the fsync that began before its commit: %v", err)
	case <-time.After(long):
		t.Fatal("no fsync began for the second acquire")
	}
	stopHolding()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("second acquire: %v", err)
		}
	case <-time.After(long):
		t.Fatal("second acquire not answered after its fsync")
	}
}

// TestSyncFailureFailsStore checks that a failed fsync answers the writes
// waiting on it with ErrUnavailable, and that the store refuses every call
// afterwards, even once fsync would work again, until it is reopened.
func TestSyncFailureFailsStore(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	errEIO := errors.New("injected EIO")
	var broken atomic.Bool
	s.SetSyncHook(func(real func() error) error {
		if broken.Load() {
			return errEIO
		}
		return real()
	})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")

	// Concurrent writes: those in the group whose fsync fails get the fsync
	// error, and any later ones are refused with the same error.
	broken.Store(true)
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := s.Acquire(ctx, acct.ID, fmt.Sprintf("x%d", i), opts("lease-1"))
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; !errors.Is(err, lockcore.ErrUnavailable) || !errors.Is(err, errEIO) {
			t.Fatalf("write whose fsync failed: want ErrUnavailable wrapping the fsync error, got %v", err)
		}
	}

	broken.Store(false)
	if _, err := s.Acquire(ctx, acct.ID, "y", opts("lease-2")); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("write after a failed fsync: want ErrUnavailable, got %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Ping after a failed fsync: want ErrUnavailable, got %v", err)
	}
	if _, err := s.Get(ctx, acct.ID, "x0"); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Get after a failed fsync: want ErrUnavailable, got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after a failed fsync: %v", err)
	}
	s2 := openAt(t, s.path, s.clock, sqlitestore.Options{})
	if err := s2.Ping(ctx); err != nil {
		t.Fatalf("Ping after reopening: %v", err)
	}
	if _, err := s2.Acquire(ctx, acct.ID, "y", opts("lease-2")); err != nil {
		t.Fatalf("write after reopening: %v", err)
	}
}
