package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// Op states: a queued op is pending until either the writer claims it (just
// before applying it) or its caller abandons it (its context ended first).
// Exactly one of the two wins, so an abandoned op is never applied.
const (
	opPending uint32 = iota
	opClaimed
	opAbandoned
)

// op is one queued write. apply runs on the writer goroutine inside the
// batch transaction; it stores its results in variables of the caller's
// closure, which the caller reads only after receiving from done.
type op struct {
	ctx   context.Context
	apply func(now int64) error
	// clean: apply either succeeds, or fails with a refusal (see refusal)
	// having changed nothing anyone can observe, or fails otherwise (a
	// database error) and the whole batch is rolled back. Such an op needs
	// no SAVEPOINT of its own.
	clean bool
	// frees: apply is a release, which may free a lock; the writer applies
	// such ops before the other ops of their batch (see freesFirst).
	frees bool
	state atomic.Uint32
	done  chan error // buffered (1): the writer never blocks on an answer
}

// refusal reports whether err is an answer about the request (the lock,
// lease, quota or token say no) rather than a failure of the database.
func refusal(err error) bool {
	return errors.Is(err, lockcore.ErrLeaseNotCurrent) || errors.Is(err, lockcore.ErrLockLimitExceeded) ||
		errors.Is(err, lockcore.ErrNotFound)
}

// errBatchFailed answers the other ops of a batch that a clean op's
// database error, or a panic in another op, rolled back: none of them took
// effect.
var errBatchFailed = fmt.Errorf("sqlitestore: the batch was rolled back after a failure of another write: %w", lockcore.ErrUnavailable)

// writePanic is what an op's apply panicked with (a bug), with the stack
// of the goroutine that ran it. runBatch treats it as a failure of the whole
// batch (rolled back, the other ops answered errBatchFailed), and the
// caller of write re-panics with it on its own goroutine, so that a bug in
// one write fails that request instead of the writer goroutine and with it
// the process.
type writePanic struct {
	value any
	stack []byte
}

func (p *writePanic) Error() string {
	return fmt.Sprintf("sqlitestore: a write panicked: %v\n\nstack of the goroutine that ran it:\n%s", p.value, p.stack)
}

// applyOp runs o.apply, turning a panic in it into a *writePanic error.
func (s *Store) applyOp(o *op) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &writePanic{value: v, stack: debug.Stack()}
		}
	}()
	// Never earlier than a write before it (see lastNow).
	now := max(s.nowMs(), s.lastNow)
	if now != s.lastNow {
		s.lastNow = now
		s.clockFloor.Store(now)
	}
	return o.apply(now)
}

// outcome is what the caller of write gets for the answer err: err itself,
// except that a write that panicked panics again here.
func outcome(err error) error {
	var p *writePanic
	if errors.As(err, &p) {
		panic(p)
	}
	return err
}

// write queues apply for the writer and waits for the outcome: nil once the
// batch that applied it has committed, apply's own error, or an error
// wrapping lockcore.ErrUnavailable (closed store, failed commit, context
// ended). The caller returns as soon as ctx ends, unless it is committing
// its write itself (the writer was idle; see enqueue), in which case it
// returns when that commit ends. If apply panics, its batch is rolled back
// and write panics with a *writePanic on the caller's goroutine.
func (s *Store) write(ctx context.Context, apply func(now int64) error) error {
	return s.enqueue(ctx, apply, opViaCaller)
}

// writeClean is write for an apply that is clean (see op.clean): the lock
// writes, whose refusals all come before any change other than dropping
// expired rows, which no reader can tell from their absence.
func (s *Store) writeClean(ctx context.Context, apply func(now int64) error) error {
	return s.enqueue(ctx, apply, opViaCaller|opClean)
}

// writeRelease is writeClean for a release, which the writer applies before
// the other writes of its batch, so that an acquire in the same batch finds
// the lock free (see freesFirst).
func (s *Store) writeRelease(ctx context.Context, apply func(now int64) error) error {
	return s.enqueue(ctx, apply, opViaCaller|opClean|opFrees)
}

// writeSettled is write for an apply whose caller must learn its outcome
// once it may have been applied: a token rotation, whose caller would keep
// the old token after an error, while the batch that applied the rotation
// retires it on commit (and the new token is lost with the answer). Until
// the writer claims the op, ctx ending abandons it, as for write; once it
// is claimed, the caller waits for its batch to end, past ctx.
func (s *Store) writeSettled(ctx context.Context, apply func(now int64) error) error {
	return s.enqueue(ctx, apply, opViaCaller|opSettled)
}

// pingWriter queues a write of the health_probe row and waits, at most
// until ctx ends, for the batch that takes it to commit: it fails when the
// writer is stuck (a lock held by another process, a stalled fsync) or
// when a write cannot be stored (a full disk). The write is not clean, so
// its failure fails the other writes of its batch only when SQLite has
// rolled the transaction back already (see runBatch). It always goes
// through the writer's queue, never runs on the caller's goroutine, so
// that it returns when ctx ends even while SQLite waits for a lock.
func (s *Store) pingWriter(ctx context.Context) error {
	err := s.enqueue(ctx, func(now int64) error {
		_, err := s.w.healthProbe.ExecContext(bg, now)
		return err
	}, 0)
	if err != nil && !errors.Is(err, lockcore.ErrUnavailable) {
		// Whatever stopped the write, the store cannot take one.
		return fmt.Errorf("sqlitestore: health probe: %v: %w", err, lockcore.ErrUnavailable)
	}
	return err
}

// opFlags say how enqueue treats a write.
type opFlags uint8

const (
	// opViaCaller lets the write run on its caller's goroutine when the
	// writer is idle.
	opViaCaller opFlags = 1 << iota
	// opClean marks a clean apply (see op.clean).
	opClean
	// opFrees marks a release (see op.frees).
	opFrees
	// opSettled makes the caller of a claimed op wait for its batch's
	// outcome even after its context ended (see writeSettled).
	opSettled
)

// enqueue is write, writeClean, writeRelease, writeSettled and pingWriter,
// which differ in their flags.
func (s *Store) enqueue(ctx context.Context, apply func(now int64) error, flags opFlags) error {
	if ctx.Err() != nil {
		return ctxErr(ctx, false)
	}
	o := &op{ctx: ctx, apply: apply, clean: flags&opClean != 0, frees: flags&opFrees != 0, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	if flags&opViaCaller != 0 && s.idle && len(s.queue) == 0 && s.running.TryLock() {
		// Nobody else is writing: commit this write on the caller's own
		// goroutine, sparing the two goroutine hand-offs to the writer and
		// back. Writes that arrive meanwhile queue up for the writer.
		s.mu.Unlock()
		s.runOne(o)
		return outcome(<-o.done)
	}
	s.queue = append(s.queue, o)
	s.mu.Unlock()
	s.signal()

	select {
	case err := <-o.done:
		return outcome(err)
	case <-ctx.Done():
		if o.state.CompareAndSwap(opPending, opAbandoned) {
			return s.abandonedErr(ctx, false)
		}
		if flags&opSettled != 0 {
			// Claimed: the writer answers it with its batch's outcome.
			return outcome(<-o.done)
		}
		select {
		case err := <-o.done: // answered as the context ended: say what happened
			return outcome(err)
		default:
			return s.abandonedErr(ctx, true)
		}
	}
}

// runOne runs a batch of the one op o on the calling goroutine, which holds
// s.running, and releases s.running. If writes queued up meanwhile, the
// writer (which they signalled) takes them next. A panic in o's apply comes
// back as its answer (see writePanic); should the batch end otherwise
// abnormally (a panic outside apply, or runtime.Goexit, which a test's
// t.FailNow calls), the transaction is rolled back before the panic or exit
// goes on, so that it does not leave the write connection inside an open
// transaction for the writes that follow.
func (s *Store) runOne(o *op) {
	defer s.running.Unlock()
	completed := false
	defer func() {
		if !completed {
			_, _ = s.w.rollback.ExecContext(bg)
		}
	}()
	if s.beforeBatch != nil {
		s.beforeBatch(1)
	}
	one := [1]*op{o}
	s.runBatch(one[:])
	completed = true
}

// signal wakes the writer if it is waiting.
func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// setIdle records whether the writer is waiting with nothing to do after
// a batch of at most one write.
func (s *Store) setIdle(idle bool) {
	s.mu.Lock()
	s.idle = idle
	s.mu.Unlock()
}

// queued returns the queue length and whether the store is closing.
func (s *Store) queued() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue), s.closed
}

// writeLoop is the writer goroutine: it takes the queued ops (up to
// maxBatch) and runs them as one batch, until the store is closed and the
// queue is empty.
//
// After a batch of n > 1 ops it lingers (at most maxLinger, and at most half
// the last commit time) until n ops are queued again: the n callers it just
// answered are typically about to send their next write, and letting them
// join the next batch instead of the one after it halves the fsyncs per
// write under load. A lone writer never lingers.
func (s *Store) writeLoop() {
	defer close(s.writerDone)
	batch := make([]*op, 0, s.maxBatch)
	var (
		last       int           // size of the previous batch
		lastCommit time.Duration // how long the previous batch took
		timer      *time.Timer
	)
	for {
		n, closed := s.queued()
		if n == 0 && closed {
			return
		}
		if n == 0 && last <= 1 {
			// Idle: a lone caller may now commit its write itself (see
			// enqueue) until the writer is woken by a queued write.
			s.setIdle(true)
			<-s.wake
			s.setIdle(false)
			continue
		}
		if linger := min(s.maxLinger, lastCommit/2); n < min(last, s.maxBatch) && !closed && linger > 0 {
			deadline := time.Now().Add(linger)
			for n < min(last, s.maxBatch) && !closed {
				d := time.Until(deadline)
				if d <= 0 {
					break
				}
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-s.wake:
				case <-timer.C:
				}
				timer.Stop()
				n, closed = s.queued()
			}
		}
		if n == 0 {
			last = 0
			continue
		}

		s.running.Lock()
		s.mu.Lock()
		n = min(len(s.queue), s.maxBatch)
		batch = append(batch[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()
		freesFirst(batch)

		if s.beforeBatch != nil {
			s.beforeBatch(len(batch))
		}
		start := time.Now()
		s.runBatch(batch)
		s.running.Unlock()
		last, lastCommit = len(batch), time.Since(start)
		clear(batch)
	}
}

// freesFirst moves the releases of batch before its other ops, keeping
// the order within each group. The ops of one batch are all in flight at
// once (none is answered before the batch commits), so any order among
// them is a valid order of events; with the releases first, an acquire in
// the same batch as the release of its lock takes it in that batch's
// commit rather than being told "held" and taking it one commit later.
func freesFirst(batch []*op) {
	k := 0 // batch[:k] are the releases moved so far
	for i, o := range batch {
		if o.frees {
			copy(batch[k+1:i+1], batch[k:i])
			batch[k] = o
			k++
		}
	}
}

// syncClock sets s.lastNow, the time the batch's writes run at, inside the
// batch's transaction (so under the file's write lock, which every process
// writing the file takes in turn), and returns the file's clock as it
// found it: the latest time any writer of the file ran at, this process's
// or another's (the health probe's row, which commitClock sets). Writes
// run at the store clock now, but never earlier than the file's clock,
// nor than this process's own latest writes (their batch may have been
// rolled back, and the file's clock with it), unless another process has
// lowered the file's clock since (it clamped expiries after a step back,
// which covers them). When the clock went back by more than clockStepMs,
// syncClock first runs clampExpiries against that latest time, commits it
// with the file's clock set to now, and begins the batch's transaction
// again.
//
// Judging the step by this process's own writes alone is not enough when
// another process writes the file too (a second `octostore serve`): a
// process whose writer had been idle took no step and wrote leases at the
// earlier time, and the other process's clamp then took them for leases
// that had expired before the step, freeing a lock it had just
// acknowledged for a second lease.
func (s *Store) syncClock(now int64) (int64, error) {
	var file int64
	if err := s.w.clockRead.QueryRowContext(bg).Scan(&file); err != nil {
		return 0, err
	}
	last := file
	if file >= s.fileClock {
		last = max(file, s.lastNow)
	}
	s.fileClock = file
	if now < last-clockStepMs {
		// The clock went back: see clampExpiries. The clamp and the
		// lowered file clock are committed at once, on their own, so
		// that a batch rolled back after them (an op refused) does not
		// take them back.
		if _, err := s.wconn.ExecContext(bg, clampExpiries, now, last); err != nil {
			return 0, err
		}
		if _, err := s.w.healthProbe.ExecContext(bg, now); err != nil {
			return 0, err
		}
		if _, err := s.w.commit.ExecContext(bg); err != nil {
			return 0, err
		}
		s.lastNow, s.fileClock, file = now, now, now
		s.clockFloor.Store(now)
		if _, err := s.w.begin.ExecContext(bg); err != nil {
			return 0, err
		}
		return file, nil
	}
	s.lastNow = max(now, last)
	s.clockFloor.Store(s.lastNow)
	return file, nil
}

// commitClock, just before the batch commits, sets the file's clock (found
// at file by syncClock) to the time the batch's writes ran at, and returns
// the file's clock as the commit leaves it. It lets the file's clock lag
// that time by less than clockLagMs, so that it costs a statement and a
// page in the log a few times a second, not in every commit (measured: 5%
// fewer cycles/s at 32 clients when every commit set it). The lag is
// safe because it is shorter than any lease's TTL (lockcore's shortest is
// 1 s): a process that has not seen a step back writes its leases at no
// earlier than the file's clock, so they expire after this process's
// latest write time even so, and this process's clamp (see syncClock)
// never takes them for leases that had expired before the step.
//
// That holds only if every batch keeps the file's clock within
// clockLagMs of the time it ran at, also one that changed no row (every
// acquire in it answered "held") and one rolled back (see recordClock):
// syncClock's clamp judges leases expired by this process's latest time,
// and a lease another process wrote after a step back at the older file
// clock would otherwise be freed by it while still within its TTL. Such a
// batch so writes a page (and costs an fsync) at most once per
// clockLagMs, not in every commit.
func (s *Store) commitClock(file int64) (int64, error) {
	if s.lastNow-file < clockLagMs {
		return file, nil
	}
	if _, err := s.w.healthProbe.ExecContext(bg, s.lastNow); err != nil {
		return 0, err
	}
	return s.lastNow, nil
}

// recordClock, after a batch was rolled back (its ops all refused or
// abandoned), sets the file's clock to the time the batch ran at in a
// transaction of its own, when the file's clock lags that time by
// clockLagMs or more (see commitClock): the batch's answers were judged
// at that time (a renew refused because the lease had expired), and
// syncClock's clamp will judge by it. It leaves the clock alone when
// another process has lowered it since this batch read it (a clamp after
// a step back, which covers this batch's time). Best effort: on a failure
// the write connection is left outside any transaction and the next batch
// tries again.
func (s *Store) recordClock() {
	if s.lastNow-s.fileClock < clockLagMs {
		return
	}
	if _, err := s.w.begin.ExecContext(bg); err != nil {
		return
	}
	var file int64
	err := s.w.clockRead.QueryRowContext(bg).Scan(&file)
	if err == nil && file >= s.fileClock {
		if _, err = s.w.clockRaise.ExecContext(bg, s.lastNow); err == nil {
			if _, err = s.w.commit.ExecContext(bg); err == nil {
				s.fileClock = max(file, s.lastNow)
				return
			}
		}
	}
	_, _ = s.w.rollback.ExecContext(bg)
}

// runBatch applies the ops of one batch in one transaction, commits once
// and answers every op whose caller is still waiting. An op that is not
// clean runs inside its own SAVEPOINT, rolled back if it fails; a clean op
// runs without one, and a database error in it rolls the whole batch back,
// as does a panic in any op (see writePanic) and an op that is not clean
// failing in a way after which SQLite has already rolled the transaction
// back (a full disk or an I/O error inside its statement). The caller
// holds s.running.
func (s *Store) runBatch(batch []*op) {
	s.batches.Add(1)
	bg := context.Background() // ops' own contexts must not interrupt the batch
	errs := make([]error, len(batch))
	skip := make([]bool, len(batch)) // abandoned by the caller: never applied, never answered

	// fatal ends the batch after a failure of the transaction itself at op
	// k (-1: before any op): everything is rolled back, every op up to k
	// that is still wanted and every later op that can still be claimed
	// gets an error wrapping ErrUnavailable.
	fatal := func(k int, what string, err error) {
		_, _ = s.w.rollback.ExecContext(bg)
		e := s.translate(what, err)
		for i, o := range batch {
			if i <= k && !skip[i] || i > k && o.state.CompareAndSwap(opPending, opClaimed) {
				o.done <- e
			}
		}
	}

	// abort ends the batch after op i failed in a way that spoils the
	// transaction (a clean op's database error, a panic): everything is
	// rolled back, op i gets its error, every other op that is still wanted
	// or can still be claimed gets errBatchFailed.
	abort := func(i int) {
		_, _ = s.w.rollback.ExecContext(bg)
		for j, other := range batch {
			switch {
			case j == i:
				other.done <- errs[i]
			case j < i && !skip[j] || j > i && other.state.CompareAndSwap(opPending, opClaimed):
				other.done <- errBatchFailed
			}
		}
	}

	now := s.nowMs()
	if now-s.filesChecked >= filesCheckMs || now < s.filesChecked {
		if err := s.checkFiles(); err != nil {
			fatal(-1, "check files", err)
			return
		}
		s.filesChecked = now
	}
	s.beginAt.Store(s.sinceOpen())
	_, berr := s.w.begin.ExecContext(bg)
	s.beginAt.Store(0)
	if berr != nil {
		fatal(-1, "begin", berr)
		return
	}
	// The clock again, now that the transaction holds the write lock:
	// while BEGIN waited for it, another process may have committed
	// leases written later than now, which syncClock would take for a
	// clock set back, and whose clamp from now would cut them short.
	fileClock, err := s.syncClock(s.nowMs())
	if err != nil {
		fatal(-1, "read the store clock or clamp lease expiries", err)
		return
	}
	multi := len(batch) > 1
	applied := 0
	for i, o := range batch {
		if !o.state.CompareAndSwap(opPending, opClaimed) {
			skip[i] = true
			continue
		}
		if o.ctx.Err() != nil {
			errs[i] = ctxErr(o.ctx, false)
			continue
		}
		if !multi {
			if errs[i] = s.applyOp(o); errs[i] != nil {
				_, _ = s.w.rollback.ExecContext(bg)
				s.recordClock()
				o.done <- errs[i]
				return
			}
			applied++
			break
		}
		if o.clean {
			if errs[i] = s.applyOp(o); errs[i] == nil {
				applied++
			} else if !refusal(errs[i]) {
				abort(i)
				return
			}
			continue
		}
		if _, err := s.w.savepoint.ExecContext(bg); err != nil {
			fatal(i, "savepoint", err)
			return
		}
		if errs[i] = s.applyOp(o); errs[i] != nil {
			var p *writePanic
			if errors.As(errs[i], &p) {
				abort(i)
				return
			}
			if _, err := s.w.rollbackToSP.ExecContext(bg); err != nil {
				// After some errors in a statement (SQLITE_FULL,
				// SQLITE_IOERR, SQLITE_NOMEM, an interrupt) SQLite
				// has rolled the whole transaction back itself, its
				// savepoints with it ("no such savepoint"): the
				// batch is gone, as after a clean op's failure.
				abort(i)
				return
			}
		} else {
			applied++
		}
		if _, err := s.w.releaseSP.ExecContext(bg); err != nil {
			fatal(i, "release savepoint", err)
			return
		}
	}
	if applied == 0 {
		_, _ = s.w.rollback.ExecContext(bg)
		s.recordClock()
	} else if fileClock, err = s.commitClock(fileClock); err != nil {
		fatal(len(batch)-1, "set the file's clock", err)
		return
	} else if _, err := s.w.commit.ExecContext(bg); err != nil {
		fatal(len(batch)-1, "commit", err)
		return
	} else {
		s.commits.Add(1)
		s.fileClock = fileClock
	}
	for i, o := range batch {
		if !skip[i] {
			o.done <- errs[i]
		}
	}
}
