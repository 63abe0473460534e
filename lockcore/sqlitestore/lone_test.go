package sqlitestore_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"

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

	got := func() (v any) {
		defer func() { v = recover() }()
		_ = s.WriteFunc(ctx, func(int64) error { panic("boom") })
		return nil
	}()
	if got != "boom" {
		t.Fatalf("panic in a lone write: recovered %v, want boom", got)
	}
	for i := range 2 {
		r, err := s.Acquire(ctx, acct.ID, fmt.Sprintf("after-%d", i), opts(lockcore.NewLeaseID()))
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire %d after the panic: %+v, %v", i, r, err)
		}
	}
}
