package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTarget is an in-memory lock service: one holder per name, with an
// optional number of "held" answers injected before each acquire succeeds
// and a failure of every failEvery-th release.
type fakeTarget struct {
	mu         sync.Mutex
	holders    map[string]string
	next       int
	heldFirst  int // answer "held" this many times per cycle before granting
	failEvery  int // fail every n-th release (0: never)
	releases   atomic.Int64
	maxHolders atomic.Int64
	closed     atomic.Int64
	newErr     error
}

func (f *fakeTarget) Name() string { return "fake" }
func (f *fakeTarget) Close() error { return nil }
func (f *fakeTarget) NewClient(ctx context.Context, id int) (Client, error) {
	if f.newErr != nil && id == 1 {
		return nil, f.newErr
	}
	return &fakeClient{f: f}, nil
}

type fakeClient struct {
	f        *fakeTarget
	refusals int
}

func (c *fakeClient) Acquire(ctx context.Context, name string) (string, bool, error) {
	f := c.f
	if c.refusals < f.heldFirst {
		c.refusals++
		return "", false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.holders[name]; ok {
		return "", false, nil
	}
	c.refusals = 0
	f.next++
	h := fmt.Sprint("lease-", f.next)
	f.holders[name] = h
	if n := int64(len(f.holders)); n > f.maxHolders.Load() {
		f.maxHolders.Store(n)
	}
	return h, true, nil
}

func (c *fakeClient) Release(ctx context.Context, name, handle string) error {
	f := c.f
	n := f.releases.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holders[name] != handle {
		return fmt.Errorf("%s is not held by %s", name, handle)
	}
	if f.failEvery > 0 && n%int64(f.failEvery) == 0 {
		return errors.New("injected release failure")
	}
	delete(f.holders, name)
	return nil
}

func (c *fakeClient) Close() error { c.f.closed.Add(1); return nil }

func newFake() *fakeTarget { return &fakeTarget{holders: map[string]string{}} }

func TestDistinctCycleBudgetIsExact(t *testing.T) {
	f := newFake()
	res, err := Run(context.Background(), f, Config{Clients: 8, Cycles: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles != 1000 || res.Attempts != 1000 || res.Held != 0 || res.Errors != 0 {
		t.Fatalf("cycles %d attempts %d held %d errors %d; want 1000 1000 0 0", res.Cycles, res.Attempts, res.Held, res.Errors)
	}
	if res.Acquire.Count != 1000 || res.Release.Count != 1000 || res.Wait.Count != 1000 {
		t.Fatalf("latency counts %d/%d/%d, want 1000 each", res.Acquire.Count, res.Release.Count, res.Wait.Count)
	}
	if f.maxHolders.Load() < 1 || f.maxHolders.Load() > 8 || len(f.holders) != 0 {
		t.Fatalf("holders at once: max %d, left %d", f.maxHolders.Load(), len(f.holders))
	}
	if f.closed.Load() != 8 {
		t.Fatalf("%d clients closed, want 8", f.closed.Load())
	}
	if res.Target != "fake" || res.Clients != 8 || res.Contended || res.CyclesPerSec <= 0 || res.AttemptsPerSec != res.CyclesPerSec {
		t.Fatalf("result %+v", res)
	}
}

func TestHeldAnswersAreAttemptsNotCycles(t *testing.T) {
	f := newFake()
	f.heldFirst = 2
	res, err := Run(context.Background(), f, Config{Clients: 4, Cycles: 200, Contended: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles != 200 {
		t.Fatalf("cycles %d, want 200", res.Cycles)
	}
	// Every cycle had at least its two injected refusals, plus real
	// contention on the one name.
	if res.Held < 400 || res.Attempts != res.Cycles+res.Held || res.Errors != 0 {
		t.Fatalf("attempts %d = cycles %d + held %d? errors %d", res.Attempts, res.Cycles, res.Held, res.Errors)
	}
	if res.Acquire.Count != uint64(res.Attempts) || res.Wait.Count != 200 {
		t.Fatalf("acquire latencies %d (want %d), waits %d (want 200)", res.Acquire.Count, res.Attempts, res.Wait.Count)
	}
	if f.maxHolders.Load() != 1 {
		t.Fatalf("contended: %d holders at once", f.maxHolders.Load())
	}
	if !res.Contended {
		t.Fatal("result does not say contended")
	}
}

func TestErrorsAreCountedAndRunGoesOn(t *testing.T) {
	f := newFake()
	f.failEvery = 10
	res, err := Run(context.Background(), f, Config{Clients: 2, Cycles: 90, ErrorDelay: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	// Each of the 90 claimed cycles ends in a release: every tenth fails
	// (an error, no cycle), the rest complete.
	if res.Errors != 9 || res.Cycles != 81 {
		t.Fatalf("cycles %d errors %d: want errors > 0 and cycles+errors = 90", res.Cycles, res.Errors)
	}
	if !strings.Contains(res.FirstError, "injected release failure") {
		t.Fatalf("first error %q", res.FirstError)
	}
	// After a failed release the client moved to a fresh name rather than
	// meeting its own stale lock, so no acquire ever saw "held".
	if res.Held != 0 {
		t.Fatalf("held %d, want 0", res.Held)
	}
}

// failingAcquire wraps the fake target: after its first okFirst acquires
// (of all clients together), which work, its acquires fail, either before
// doing anything (lost=false) or after taking the lock (lost=true: the
// answer was lost, as with a timeout).
type failingAcquire struct {
	*fakeTarget
	lost    bool
	okFirst int64
	calls   atomic.Int64
}

func (f *failingAcquire) NewClient(ctx context.Context, id int) (Client, error) {
	c, err := f.fakeTarget.NewClient(ctx, id)
	return &failingAcquireClient{Client: c, f: f}, err
}

type failingAcquireClient struct {
	Client
	f *failingAcquire
}

func (c *failingAcquireClient) Acquire(ctx context.Context, name string) (string, bool, error) {
	if c.f.calls.Add(1) <= c.f.okFirst {
		return c.Client.Acquire(ctx, name)
	}
	if c.f.lost {
		if _, ok, err := c.Client.Acquire(ctx, name); err != nil || !ok {
			return "", ok, err
		}
	}
	return "", false, errors.New("injected acquire failure")
}

// A run bounded by a cycle count only must end even when every acquire
// fails: each failed acquire ends its claimed cycle. It used to retry the
// acquire for ever (the run has no duration to end it), and after an
// acquire that took the lock but failed, to be told "held" by its own
// lease for ever (distinct names). The first acquire works, so that the
// run does not give up (TestGivesUpWhenEveryClientFailsFirst).
func TestFailedAcquiresEndACycleOnlyRun(t *testing.T) {
	for _, tc := range []struct {
		lost      bool
		contended bool
	}{{false, false}, {false, true}, {true, false}} {
		t.Run(fmt.Sprintf("lost=%v,contended=%v", tc.lost, tc.contended), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := Run(ctx, &failingAcquire{fakeTarget: newFake(), lost: tc.lost, okFirst: 1},
				Config{Clients: 2, Cycles: 20, Contended: tc.contended, ErrorDelay: time.Microsecond})
			if err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatalf("the run did not end by itself: %+v", res)
			}
			if res.Cycles != 1 || res.Errors != 19 || res.Attempts != 20 || res.Held != 0 || res.GaveUp ||
				!strings.Contains(res.FirstError, "injected acquire failure") {
				t.Fatalf("cycles %d attempts %d held %d errors %d gave up %v (%s); want 1 20 0 19 false",
					res.Cycles, res.Attempts, res.Held, res.Errors, res.GaveUp, res.FirstError)
			}
		})
	}
}

func TestDurationBoundAndProgress(t *testing.T) {
	f := newFake()
	var buf bytes.Buffer
	// A worker that has not started its first cycle when the duration ends
	// does none, so the duration must comfortably exceed how long a busy
	// machine (two cores, -race) can take to schedule the workers.
	const d = 500 * time.Millisecond
	res, err := Run(context.Background(), f, Config{Clients: 3, Duration: d, Progress: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cycles == 0 || res.Errors != 0 || res.Seconds < d.Seconds() {
		t.Fatalf("result %+v", res)
	}
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Fatalf("progress output %q does not end the line", buf.String())
	}
	if len(f.holders) != 0 {
		t.Fatalf("locks left held after the run: %v", f.holders)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgressLine(t *testing.T) {
	var buf lockedBuffer
	var c, a atomic.Int64
	c.Store(10)
	a.Store(15)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { progress(ctx, &buf, "x", time.Now(), &c, &a); close(done) }()
	// Wait (without a timed assertion) for the first line.
	for buf.String() == "" {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	out := buf.String()
	if !strings.HasPrefix(out, "\rx ") || !strings.Contains(out, "cycles 10") || !strings.Contains(out, "attempts 15") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("progress line %q", out)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Clients: 0, Cycles: 1},
		{Clients: 1},
		{Clients: 1, Duration: -time.Second},
		{Clients: 1, Cycles: -1},
	} {
		if _, err := Run(context.Background(), newFake(), cfg); err == nil {
			t.Errorf("config %+v: want an error", cfg)
		}
	}
	f := newFake()
	f.newErr = errors.New("no lease for you")
	if _, err := Run(context.Background(), f, Config{Clients: 3, Cycles: 1}); err == nil || !strings.Contains(err.Error(), "no lease for you") {
		t.Fatalf("client setup failure: got %v", err)
	}
	if f.closed.Load() != 2 {
		t.Fatalf("after a failed setup %d clients were closed, want the 2 that were made", f.closed.Load())
	}
}

// cancellingAcquire wraps the fake target: its n-th successful acquire
// cancels the caller's context (as Ctrl-C would) before it answers, so the
// run is interrupted while that client holds a lock.
type cancellingAcquire struct {
	*fakeTarget
	n      int64
	count  atomic.Int64
	cancel context.CancelFunc
}

func (f *cancellingAcquire) NewClient(ctx context.Context, id int) (Client, error) {
	c, err := f.fakeTarget.NewClient(ctx, id)
	return &cancellingAcquireClient{Client: c, f: f}, err
}

type cancellingAcquireClient struct {
	Client
	f *cancellingAcquire
}

func (c *cancellingAcquireClient) Acquire(ctx context.Context, name string) (string, bool, error) {
	h, ok, err := c.Client.Acquire(ctx, name)
	if ok && c.f.count.Add(1) == c.f.n {
		c.f.cancel()
	}
	return h, ok, err
}

// TestInterruptedRunReleasesItsLocks: the caller's context ending (Ctrl-C)
// ends the run as its duration would: the client that holds a lock then
// releases it, nothing is counted as an error, and the result says the run
// was interrupted. It used to return at once, leaving the lock held (on a
// real server, until its TTL ran out).
func TestInterruptedRunReleasesItsLocks(t *testing.T) {
	for _, contended := range []bool{false, true} {
		t.Run(fmt.Sprintf("contended=%v", contended), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := &cancellingAcquire{fakeTarget: newFake(), n: 10, cancel: cancel}
			res, err := Run(ctx, f, Config{Clients: 3, Duration: time.Hour, Contended: contended})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Interrupted || res.Errors != 0 || res.Cycles < 10 {
				t.Fatalf("result %+v: want interrupted, no errors, at least 10 cycles", res)
			}
			if res.Cycles != f.count.Load() {
				t.Fatalf("%d cycles for %d locks taken: each taken lock must be released and counted", res.Cycles, f.count.Load())
			}
			if len(f.holders) != 0 {
				t.Fatalf("locks left held after the interrupted run: %v", f.holders)
			}
		})
	}
}

// TestGivesUpWhenEveryClientFailsFirst: when every client's first request
// fails before any acquire got an answer (a wrong URL or token), the run
// ends at once, marked GaveUp, instead of failing for its whole duration;
// when one acquire got an answer first, later errors do not end it.
func TestGivesUpWhenEveryClientFailsFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Run(ctx, &failingAcquire{fakeTarget: newFake()},
		Config{Clients: 3, Duration: time.Hour, ErrorDelay: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the run did not give up: %+v", res)
	}
	if !res.GaveUp || res.Interrupted || res.Cycles != 0 || res.Errors < 3 ||
		!strings.Contains(res.FirstError, "injected acquire failure") {
		t.Fatalf("gave up %v interrupted %v cycles %d errors %d (%s); want gave up, 0 cycles, at least 3 errors",
			res.GaveUp, res.Interrupted, res.Cycles, res.Errors, res.FirstError)
	}

	res, err = Run(context.Background(), &failingAcquire{fakeTarget: newFake(), okFirst: 1},
		Config{Clients: 3, Cycles: 50, ErrorDelay: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.GaveUp || res.Cycles != 1 || res.Errors != 49 {
		t.Fatalf("after one answered acquire: gave up %v cycles %d errors %d; want no giving up, 1 cycle, 49 errors", res.GaveUp, res.Cycles, res.Errors)
	}
}
