package storetest

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/octostore/octostore/lockcore"
)

func testQuota(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	const maxHeld, tries = 100, 200

	type outcome struct {
		res lockcore.AcquireResult
		err error
	}
	out := make([]outcome, tries)
	leases := make([]string, tries)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tries {
		leases[i] = lockcore.NewLeaseID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			o := opts(leases[i], longTTL)
			o.MaxHeld = maxHeld
			out[i].res, out[i].err = s.Acquire(ctx, acct, fmt.Sprintf("q-%03d", i), o)
		}()
	}
	close(start)
	wg.Wait()

	var won []int
	refused := 0
	for i, o := range out {
		switch {
		case o.err == nil && o.res.Acquired:
			won = append(won, i)
		case errors.Is(o.err, lockcore.ErrLockLimitExceeded):
			refused++
		default:
			t.Errorf("concurrent Acquire(q-%03d): want Acquired=true or an error wrapping %q, got Acquired=%v, %v", i, lockcore.ErrLockLimitExceeded, o.res.Acquired, o.err)
		}
	}
	if len(won) != maxHeld || refused != tries-maxHeld {
		t.Fatalf("%d concurrent acquires of distinct names with quota %d: want %d acquired and %d refused, got %d and %d",
			tries, maxHeld, maxHeld, tries-maxHeld, len(won), refused)
	}
	if n := len(listNames(t, s, acct)); n != maxHeld {
		t.Errorf("List at the quota: want %d locks, got %d", maxHeld, n)
	}
	for i, o := range out {
		if o.err != nil {
			wantFree(t, s, acct, fmt.Sprintf("q-%03d", i))
		}
	}

	o := opts(lockcore.NewLeaseID(), longTTL)
	o.MaxHeld = maxHeld
	_, err := s.Acquire(ctx, acct, "q-extra", o)
	wantErr(t, "Acquire of a new name at the quota", err, lockcore.ErrLockLimitExceeded)
	wantFree(t, s, acct, "q-extra")

	// A retry of a held lock at the quota is not a new lock.
	w := won[0]
	ro := opts(leases[w], 2*longTTL)
	ro.MaxHeld = maxHeld
	retry, err := s.Acquire(ctx, acct, fmt.Sprintf("q-%03d", w), ro)
	if err != nil || !retry.Acquired || retry.Lease.FencingToken != out[w].res.Lease.FencingToken {
		t.Errorf("idempotent re-acquire at the quota: want Acquired=true with token %d, nil; got Acquired=%v token %d, %v",
			out[w].res.Lease.FencingToken, retry.Acquired, retry.Lease.FencingToken, err)
	}
	// Contending for a held lock at the quota is "held", not "over quota".
	co := opts(lockcore.NewLeaseID(), longTTL)
	co.MaxHeld = maxHeld
	held, err := s.Acquire(ctx, acct, fmt.Sprintf("q-%03d", w), co)
	if err != nil || held.Acquired || held.Lease.LeaseID != leases[w] {
		t.Errorf("Acquire by another lease of a held lock at the quota: want Acquired=false with the holder's lease %s, nil; got Acquired=%v lease %q, %v",
			leases[w], held.Acquired, held.Lease.LeaseID, err)
	}

	// Releasing one makes room for exactly one more.
	if err := s.Release(ctx, acct, fmt.Sprintf("q-%03d", w), leases[w]); err != nil {
		t.Fatalf("Release at the quota: want nil error, got %v", err)
	}
	mustAcquire(t, s, acct, "q-extra", o)
	o2 := opts(lockcore.NewLeaseID(), longTTL)
	o2.MaxHeld = maxHeld
	_, err = s.Acquire(ctx, acct, "q-extra2", o2)
	wantErr(t, "Acquire of a new name at the quota again", err, lockcore.ErrLockLimitExceeded)
}

func testMutualExclusion(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	// The workers stop after a number of acquisitions, not of attempts: how
	// many attempts a hand-off costs depends on the scheduler (under -race on
	// two cores a holder can be descheduled while the others spin through
	// hundreds of refusals). maxAttempts only bounds a store that never grants.
	const workers, want, maxAttempts, name = 16, 60, 1_000_000, "mutex"

	var (
		got    atomic.Int64
		left   atomic.Int64
		inside atomic.Int64
		mu     sync.Mutex
		tokens []int64
		wg     sync.WaitGroup
	)
	left.Store(maxAttempts)
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for got.Load() < want && left.Add(-1) >= 0 {
				lease := lockcore.NewLeaseID()
				res, err := s.Acquire(ctx, acct, name, opts(lease, longTTL))
				if err != nil {
					t.Errorf("contended Acquire: want nil error, got %v", err)
					return
				}
				if !res.Acquired {
					if res.Lease.LeaseID == lease || res.Lease.LeaseID == "" {
						t.Errorf("contended Acquire refused: want the other holder's lease, got %s", fmtLease(res.Lease))
					}
					runtime.Gosched()
					continue
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("contended Acquire: want at most one holder at a time, got %d holders (token %d)", n, res.Lease.FencingToken)
				}
				mu.Lock()
				tokens = append(tokens, res.Lease.FencingToken)
				mu.Unlock()
				got.Add(1)
				runtime.Gosched()
				inside.Add(-1)
				if err := s.Release(ctx, acct, name, lease); err != nil {
					t.Errorf("Release by the holder under contention: want nil error, got %v", err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()

	t.Logf("%d workers: %d acquisitions in %d attempts", workers, len(tokens), maxAttempts-max(left.Load(), 0))
	if len(tokens) < want {
		t.Errorf("%d workers, %d attempts: want at least %d acquisitions, got %d", workers, maxAttempts, want, len(tokens))
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("fencing tokens in acquisition order: want strictly increasing, got %d after %d (acquisition %d)", tokens[i], tokens[i-1], i)
		}
	}
	wantFree(t, s, acct, name)
}
