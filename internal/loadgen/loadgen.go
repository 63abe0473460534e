// Package loadgen is the load driver behind `octostore bench` and
// `make bench-compare`: N concurrent clients run acquire+release cycles
// against one lock service for a duration or a number of cycles, and the
// driver reports cycles/s, attempts/s and latency percentiles.
//
// The same driver measures three targets through one small interface
// (Target, Client): OctoStore over HTTP, etcd's v3 JSON gateway, and Redis
// running the project's own Lua scripts directly. Each client works on a
// lock name of its own (distinct) or all clients on one name (contended).
// In contended mode an acquire answered "held" counts as an attempt, not a
// cycle, and the client tries again at once (after Config.RetryDelay); a
// target whose acquire blocks until the lock is free (etcd) simply never
// answers "held", and its acquire latency includes the wait.
//
// Latencies are kept per client in log-linear histograms (see Histogram)
// and merged at the end, so measuring costs no locking on the hot path.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Target is a lock service under test. Implementations are safe for
// concurrent use: Run calls NewClient from many goroutines.
type Target interface {
	// Name names the target in reports ("octostore", "etcd", "redis-lua").
	Name() string
	// NewClient returns the client for worker id (0-based). Setup that a
	// real client does once (an etcd lease) belongs here, outside the
	// measured time.
	NewClient(ctx context.Context, id int) (Client, error)
	// Close releases what the target holds (idle connections, pools).
	Close() error
}

// Client is one worker's connection to a Target. It is used by one
// goroutine at a time.
type Client interface {
	// Acquire tries to take lock name. It returns acquired=true and the
	// handle Release needs, or acquired=false when another holder has it
	// (a "held" answer), or an error for anything else.
	Acquire(ctx context.Context, name string) (handle string, acquired bool, err error)
	// Release frees the lock taken with handle; an error if it was not
	// released.
	Release(ctx context.Context, name, handle string) error
	// Close ends the client (an etcd client revokes its lease here).
	Close() error
}

// Config describes one run.
type Config struct {
	// Clients is the number of concurrent clients (>= 1).
	Clients int
	// Duration bounds the run; 0 means no time bound (then Cycles must be
	// set).
	Duration time.Duration
	// Cycles, when positive, ends the run after this many cycles in all
	// (each client claims a cycle before it starts it). A claimed cycle
	// ends completed or with one error (of its acquire or its release), so
	// the count of completed cycles is exact unless errors or the Duration
	// end the run first, and a target that keeps failing cannot keep a run
	// without a Duration going for ever.
	Cycles int64
	// Contended puts every client on one lock name; otherwise each client
	// has its own.
	Contended bool
	// NamePrefix starts every lock name; "" means "bench-" and a random
	// tag, so that runs one after another never share a name.
	NamePrefix string
	// RetryDelay is how long a client waits after a "held" answer before
	// it tries again; 0 means at once.
	RetryDelay time.Duration
	// ErrorDelay is how long a client waits after an error before it goes
	// on; 0 means 10ms. It keeps a failing target from being hammered.
	ErrorDelay time.Duration
	// RequestTimeout bounds each request; 0 means 30s. A request in flight
	// when the run ends (its duration is over, or the caller's context is
	// cancelled: Ctrl-C) is let finish (within this bound), and a lock it
	// took is released, so that a run leaves no lock held.
	RequestTimeout time.Duration
	// Progress, when non-nil, gets a progress line once a second,
	// rewritten in place with \r, and a final newline.
	Progress io.Writer
}

// Result is the outcome of one run. Its JSON form is what
// `octostore bench --json` prints.
type Result struct {
	// Label is a free tag set by the caller (bench-compare names each
	// configuration with it).
	Label     string `json:"label,omitempty"`
	Target    string `json:"target"`
	Clients   int    `json:"clients"`
	Contended bool   `json:"contended"`
	// Seconds is the measured wall time of the run.
	Seconds float64 `json:"seconds"`
	// Cycles counts completed acquire+release pairs.
	Cycles int64 `json:"cycles"`
	// Attempts counts acquire requests: cycles, "held" answers and failed
	// acquires.
	Attempts int64 `json:"attempts"`
	// Held counts "held" answers (contended mode).
	Held int64 `json:"held"`
	// Errors counts failed acquires and releases.
	Errors         int64   `json:"errors"`
	CyclesPerSec   float64 `json:"cycles_per_sec"`
	AttemptsPerSec float64 `json:"attempts_per_sec"`
	// Acquire is the latency of every acquire request that got an answer
	// (acquired or held).
	Acquire Latency `json:"acquire"`
	// Release is the latency of every successful release.
	Release Latency `json:"release"`
	// Wait is the time from a cycle's first acquire request to the answer
	// that acquired the lock, retries after "held" included (an error ends
	// the cycle: the next one starts a new wait): in contended mode the
	// figure that compares across targets that answer "held" and those
	// that block.
	Wait Latency `json:"wait"`
	// FirstError is the first error seen, if any.
	FirstError string `json:"first_error,omitempty"`
	// Interrupted says the caller's context ended the run (Ctrl-C) before
	// its duration or cycle count did; the figures cover the run until
	// then, the requests in flight included.
	Interrupted bool `json:"interrupted,omitempty"`
	// GaveUp says the run stopped early because every client had an error
	// before any acquire got an answer; FirstError says why.
	GaveUp bool `json:"gave_up,omitempty"`
}

// worker is one client's counters and histograms.
type worker struct {
	acquire, release, wait Histogram
	held, errs             int64
	firstErr               error
}

// Run drives target with cfg until the duration ends, the cycle count is
// reached or ctx ends, and returns the figures. It returns an error only
// when the configuration is invalid or a client cannot be created; errors
// of individual requests are counted in the Result.
func Run(ctx context.Context, target Target, cfg Config) (Result, error) {
	if cfg.Clients < 1 {
		return Result{}, fmt.Errorf("loadgen: clients must be at least 1 (got %d)", cfg.Clients)
	}
	if cfg.Duration < 0 || cfg.Cycles < 0 {
		return Result{}, errors.New("loadgen: duration and cycles must not be negative")
	}
	if cfg.Duration == 0 && cfg.Cycles == 0 {
		return Result{}, errors.New("loadgen: set a duration or a cycle count")
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "bench-" + strconv.FormatUint(rand.Uint64()&0xffffff, 36) + "-"
	}
	if cfg.ErrorDelay <= 0 {
		cfg.ErrorDelay = 10 * time.Millisecond
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}

	clients := make([]Client, cfg.Clients)
	var (
		setupWG  sync.WaitGroup
		setupErr = make([]error, cfg.Clients)
	)
	for i := range clients {
		setupWG.Add(1)
		go func() {
			defer setupWG.Done()
			clients[i], setupErr[i] = target.NewClient(ctx, i)
		}()
	}
	setupWG.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := errors.Join(setupErr...); err != nil {
		return Result{}, fmt.Errorf("loadgen: %s: create clients: %w", target.Name(), err)
	}

	// The clock starts before the duration's timer, so that a run measures
	// at least its Duration.
	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		var c context.CancelFunc
		runCtx, c = context.WithTimeout(runCtx, cfg.Duration)
		defer c()
	}

	var (
		sh      = shared{giveUp: cancel, clients: int64(cfg.Clients)}
		workers = make([]worker, cfg.Clients)
		wg      sync.WaitGroup
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := cfg.NamePrefix + "shared"
			if !cfg.Contended {
				name = cfg.NamePrefix + strconv.Itoa(i)
			}
			runWorker(ctx, runCtx, &cfg, clients[i], name, &workers[i], &sh)
		}()
	}

	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			defer close(progressDone)
			progress(runCtx, cfg.Progress, target.Name(), start, &sh.cycles, &sh.attempts)
		}()
	} else {
		close(progressDone)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	<-progressDone

	var acq, rel, wait Histogram
	res := Result{Target: target.Name(), Clients: cfg.Clients, Contended: cfg.Contended, Seconds: elapsed.Seconds()}
	for i := range workers {
		w := &workers[i]
		acq.Merge(&w.acquire)
		rel.Merge(&w.release)
		wait.Merge(&w.wait)
		res.Held += w.held
		res.Errors += w.errs
		if w.firstErr != nil && res.FirstError == "" {
			res.FirstError = w.firstErr.Error()
		}
	}
	res.Cycles, res.Attempts = sh.cycles.Load(), sh.attempts.Load()
	res.Interrupted = ctx.Err() != nil
	res.GaveUp = sh.gaveUp.Load()
	if s := elapsed.Seconds(); s > 0 {
		res.CyclesPerSec = float64(res.Cycles) / s
		res.AttemptsPerSec = float64(res.Attempts) / s
	}
	res.Acquire, res.Release, res.Wait = acq.Summary(), rel.Summary(), wait.Summary()
	return res, nil
}

// shared is what the workers of one run count together.
type shared struct {
	cycles, attempts, claimed atomic.Int64
	// answered is set by the first acquire that gets an answer (acquired
	// or held); failed counts the clients that have had an error.
	answered atomic.Bool
	failed   atomic.Int64
	clients  int64
	// giveUp ends the run; gaveUp says it was called.
	giveUp context.CancelFunc
	gaveUp atomic.Bool
}

// runWorker is one client's loop, until stop ends (the duration is over,
// or ctx, the caller's, ends) or the cycle budget is spent. When every
// client has had an error before any acquire got an answer (a wrong URL
// or token, a server that is not there), the run gives up at once
// rather than fail for its whole duration. A request in
// flight when stop ends is let finish (bounded by cfg.RequestTimeout: its
// context keeps ctx's values but not its cancellation), and a lock it took
// is released, so a run never leaves locks behind, even when interrupted.
// That release also hands a contended lock on to the clients waiting for
// it (etcd queues them), which then release it in turn.
func runWorker(ctx, stop context.Context, cfg *Config, c Client, base string, w *worker, sh *shared) {
	fail := func(err error) {
		w.errs++
		if w.firstErr == nil {
			w.firstErr = err
			if sh.failed.Add(1) == sh.clients && !sh.answered.Load() {
				sh.gaveUp.Store(true)
				sh.giveUp()
			}
		}
		sleep(stop, cfg.ErrorDelay)
	}
	reqBase := context.WithoutCancel(ctx)
	req := func() (context.Context, context.CancelFunc) { return context.WithTimeout(reqBase, cfg.RequestTimeout) }
	name, gen := base, 0
	// After a failed acquire or release on distinct names the lock may be
	// held by our own lease until it expires (the answer was lost, or the
	// release did not happen): go on with a fresh name rather than meet
	// that stale lease. Contended runs share one name and keep it.
	abandonName := func() {
		if !cfg.Contended {
			gen++
			name = base + "-" + strconv.Itoa(gen)
		}
	}
	for stop.Err() == nil {
		if cfg.Cycles > 0 && sh.claimed.Add(1) > cfg.Cycles {
			return
		}
		// Acquire, retrying "held" answers, until acquired, an error, or
		// the run ends.
		var (
			handle      string
			first       = time.Now()
			got, failed bool
		)
		for stop.Err() == nil {
			rctx, cancel := req()
			t0 := time.Now()
			h, ok, err := c.Acquire(rctx, name)
			d := time.Since(t0)
			cancel()
			sh.attempts.Add(1)
			if err != nil {
				fail(fmt.Errorf("acquire %s: %w", name, err))
				abandonName()
				failed = true // the error ends this cycle (see Config.Cycles)
				break
			}
			w.acquire.Record(d)
			if !sh.answered.Load() {
				sh.answered.Store(true)
			}
			if ok {
				handle, got = h, true
				w.wait.Record(time.Since(first))
				break
			}
			w.held++
			if cfg.RetryDelay > 0 {
				sleep(stop, cfg.RetryDelay)
			}
		}
		if failed {
			continue
		}
		if !got {
			return
		}
		rctx, cancel := req()
		t0 := time.Now()
		err := c.Release(rctx, name, handle)
		d := time.Since(t0)
		cancel()
		if err != nil {
			fail(fmt.Errorf("release %s: %w", name, err))
			abandonName()
			continue
		}
		w.release.Record(d)
		sh.cycles.Add(1)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// progress writes a status line once a second until ctx ends, then a
// newline.
func progress(ctx context.Context, w io.Writer, name string, start time.Time, cycles, attempts *atomic.Int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastC, lastA int64
	last := start
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(w)
			return
		case now := <-tick.C:
			c, a := cycles.Load(), attempts.Load()
			dt := now.Sub(last).Seconds()
			fmt.Fprintf(w, "\r%s  %5.0fs  cycles %d (%.0f/s)  attempts %d (%.0f/s)   ",
				name, now.Sub(start).Seconds(), c, float64(c-lastC)/dt, a, float64(a-lastA)/dt)
			lastC, lastA, last = c, a, now
		}
	}
}
