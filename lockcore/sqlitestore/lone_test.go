package sqlitestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// goid returns the id of the calling goroutine, from the first line of its
// stack ("goroutine N [running]:"). Tests only.
func goid(t *testing.T) uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		t.Fatalf("goroutine id from %q: %v", buf[:], err)
	}
	return id
}

// TestLoneWriteRunsOnCallersGoroutine checks the lone-caller path: while
// the writer is idle, a write is committed on its caller's goroutine (no
// hand-off to the writer and back), and writes that arrive while it runs
// queue up and are committed together by the writer.
func TestLoneWriteRunsOnCallersGoroutine(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()

	var mu sync.Mutex
	var ran []uint64 // goroutine of each batch
	var sizes []int
	gateHook := s.gate.hook
	s.SetBeforeBatch(func(n int) {
		mu.Lock()
		ran, sizes = append(ran, goid(t)), append(sizes, n)
		mu.Unlock()
		gateHook(n)
	})
	batches := func() ([]uint64, []int) {
		mu.Lock()
		defer mu.Unlock()
		return append([]uint64(nil), ran...), append([]int(nil), sizes...)
	}

	s.WaitIdle()
	acct := mustAccount(t, s, "alice") // the first batch
	me := goid(t)
	for i := range 3 {
		r, err := s.Acquire(ctx, acct.ID, fmt.Sprintf("lone-%d", i), opts(lockcore.NewLeaseID()))
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire %d: %+v, %v", i, r, err)
		}
	}
	if got, _ := batches(); len(got) != 4 || got[0] != me || got[1] != me || got[2] != me || got[3] != me {
		t.Fatalf("lone writes ran on goroutines %v, want 4 batches on the caller's (%d)", got, me)
	}

	// A lone write stalls on its own goroutine; five more queue behind it
	// and the writer commits them as one batch.
	release := s.stall(t)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Acquire(ctx, acct.ID, fmt.Sprintf("queued-%d", i), opts(lockcore.NewLeaseID()))
		}()
	}
	s.waitQueued(len(errs))
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("queued write %d: %v", i, err)
		}
	}
	got, n := batches()
	if len(n) != 6 || n[4] != 1 || n[5] != len(errs) {
		t.Fatalf("batch sizes %v, want [1 1 1 1 1 %d]", n, len(errs))
	}
	if got[5] == got[4] {
		t.Fatalf("the queued batch ran on the stalled caller's goroutine %d, want the writer's", got[4])
	}
	held, err := s.List(ctx, acct.ID)
	if err != nil || len(held) != 3+len(errs) {
		t.Fatalf("List: %d leases, %v; want %d", len(held), err, 3+len(errs))
	}
}

// TestLoneWritePanicRollsBack checks that a panic inside a lone write,
// which runs on its caller's goroutine (where an HTTP server's recovery
// may catch it and carry on), reaches the caller and leaves the store
// usable: its transaction is rolled back, not left open under the next
// write.
func TestLoneWritePanicRollsBack(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	s.WaitIdle()

	if got := recoverWrite(s, func(int64) error { panic("boom") }); !strings.Contains(got, "boom") {
		t.Fatalf("panic in a lone write: recovered %q, want boom", got)
	}
	for i := range 2 {
		r, err := s.Acquire(ctx, acct.ID, fmt.Sprintf("after-%d", i), opts(lockcore.NewLeaseID()))
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire %d after the panic: %+v, %v", i, r, err)
		}
	}
}

// recoverWrite runs apply as a write and returns what the write panicked
// with, as text ("" if it did not panic).
func recoverWrite(s *testStore, apply func(int64) error) (got string) {
	defer func() {
		if v := recover(); v != nil {
			got = fmt.Sprint(v)
		}
	}()
	_ = s.WriteFunc(context.Background(), apply)
	return ""
}

// TestBatchedPanicRollsBack: a write that panics while it runs in a batch
// on the writer goroutine does not take the process down. Its caller gets
// the panic on its own goroutine, the other write of the batch is answered
// with an error and not applied, and the store goes on writing.
func TestBatchedPanicRollsBack(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	release := s.stall(t)
	panicked := make(chan string, 1)
	go func() { panicked <- recoverWrite(s, func(int64) error { panic("boom") }) }()
	s.waitQueued(1)
	bystander := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, acct.ID, "bystander", opts(lockcore.NewLeaseID()))
		bystander <- err
	}()
	s.waitQueued(2)
	release()
	if got := <-panicked; !strings.Contains(got, "boom") || !strings.Contains(got, "writeLoop") {
		t.Fatalf("caller of the panicking write recovered %q, want boom and the writer's stack", got)
	}
	if err := <-bystander; !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("the other write of the batch: %v, want ErrUnavailable", err)
	}
	if l, err := s.Get(ctx, acct.ID, "bystander"); err != nil || l.Held {
		t.Fatalf("the rolled-back acquire is visible: %+v, %v", l, err)
	}
	if r, err := s.Acquire(ctx, acct.ID, "after", opts(lockcore.NewLeaseID())); err != nil || !r.Acquired {
		t.Fatalf("Acquire after the panic: %+v, %v", r, err)
	}
}

// TestLoneWriteGoexitRollsBack: runtime.Goexit (t.FailNow) inside a lone
// write ends its goroutine without leaving the write connection inside an
// open transaction.
func TestLoneWriteGoexitRollsBack(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	acct := mustAccount(t, s, "alice")
	s.WaitIdle()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.WriteFunc(ctx, func(int64) error { runtime.Goexit(); return nil })
	}()
	<-done
	if r, err := s.Acquire(ctx, acct.ID, "next", opts(lockcore.NewLeaseID())); err != nil || !r.Acquired {
		t.Fatalf("Acquire after a Goexit in a lone write: %+v, %v", r, err)
	}
}

// TestReadRacingCloseIsUnavailable: a read that passed the closed check just
// before Close ran, and only then uses its statement, gets an error wrapping
// ErrUnavailable, not a nil-pointer panic or an internal error. The store's
// clock, which List reads between the check and the query, holds the read
// there while Close runs.
func TestReadRacingCloseIsUnavailable(t *testing.T) {
	var hold atomic.Bool
	inList, closed := make(chan struct{}), make(chan struct{})
	now := func() time.Time {
		if hold.CompareAndSwap(true, false) {
			close(inList)
			<-closed
		}
		return time.Now()
	}
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), sqlitestore.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan string, 1)
	hold.Store(true)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				res <- fmt.Sprint("panic: ", v)
			}
		}()
		_, err := s.List(context.Background(), "acct")
		res <- fmt.Sprintf("%v (ErrUnavailable: %v)", err, errors.Is(err, lockcore.ErrUnavailable))
	}()
	<-inList
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(closed)
	if got := <-res; !strings.HasSuffix(got, "(ErrUnavailable: true)") {
		t.Fatalf("List racing Close: %s; want an error wrapping ErrUnavailable", got)
	}
}

// TestLoneWriteCancelledBeforeApplyNotApplied checks the lone-caller path
// against a context that ends after the write was handed over but before
// it is applied (here: in the before-batch hook, which runs on the
// caller's goroutine just before the batch): the write is not applied,
// its caller gets ErrUnavailable, and no fencing token is spent.
func TestLoneWriteCancelledBeforeApplyNotApplied(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	bg := context.Background()
	acct := mustAccount(t, s, "alice")

	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	var hooked atomic.Int32
	var hookG atomic.Uint64
	s.SetBeforeBatch(func(int) {
		if hooked.Add(1) == 1 {
			hookG.Store(goid(t))
			cancel()
		}
	})
	s.WaitIdle()
	me := goid(t)
	if _, err := s.Acquire(ctx, acct.ID, "x", opts("lease-1")); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("acquire whose context ended before it was applied: %v, want ErrUnavailable", err)
	}
	if hooked.Load() != 1 || hookG.Load() != me {
		t.Fatalf("before-batch hook ran %d times, on goroutine %d; want once, on the caller's (%d)", hooked.Load(), hookG.Load(), me)
	}
	if st, err := s.Get(bg, acct.ID, "x"); err != nil || st.Held {
		t.Fatalf("Get after the cancelled acquire: %+v, %v; want free", st, err)
	}
	res, err := s.Acquire(bg, acct.ID, "x", opts("lease-2"))
	if want := s.fenceAfter(0); err != nil || !res.Acquired || res.Lease.FencingToken != want {
		t.Fatalf("next acquire: %+v, %v; want acquired with fencing token %d (no token spent)", res, err, want)
	}
}
