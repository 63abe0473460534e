package sqlitestore

import (
	"context"
	"sync/atomic"
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
	state atomic.Uint32
	done  chan error // buffered (1): the writer never blocks on an answer
}

// write queues apply for the writer and waits for the outcome, which the
// syncer gives only after the batch that applied it has committed and an
// fsync of the WAL begun after that commit has completed: nil, apply's own
// error, or an error wrapping lockcore.ErrUnavailable (closed store, failed
// commit or fsync, context ended). The caller returns as soon as ctx ends.
func (s *Store) write(ctx context.Context, apply func(now int64) error) error {
	if ctx.Err() != nil {
		return ctxErr(ctx, false)
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	o := &op{ctx: ctx, apply: apply, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.queue = append(s.queue, o)
	s.mu.Unlock()
	s.signal()

	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opPending, opAbandoned) {
			return ctxErr(ctx, false)
		}
		return ctxErr(ctx, true)
	}
}

// signal wakes the writer if it is waiting.
func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the writer goroutine: it takes the queued ops (up to
// maxBatch), runs them as one batch and hands the outcome to the syncer,
// until the store is closed and the queue is empty. It does not wait for
// the disk, and takes the next batch as soon as one op is queued; the
// syncer, not the writer, lingers so that callers share fsyncs.
func (s *Store) writeLoop() {
	defer func() {
		s.smu.Lock()
		s.writerExited = true
		s.smu.Unlock()
		s.signalSyncer()
		close(s.writerDone)
	}()
	batch := make([]*op, 0, s.maxBatch)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		n := min(len(s.queue), s.maxBatch)
		batch = append(batch[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()

		if s.beforeBatch != nil {
			s.beforeBatch(len(batch))
		}
		if r := s.runBatch(batch); r != nil {
			s.handOff(r)
		}
		clear(batch)
	}
}

// result is a batch the writer has finished: the ops whose callers are
// still waiting, in queue order, with their outcomes. The syncer answers
// them after an fsync that began after the batch's COMMIT (when commit is
// set) and after every earlier batch has been answered.
type result struct {
	ops    []*op
	errs   []error
	commit bool
}

// handOff queues r for the syncer.
func (s *Store) handOff(r *result) {
	s.smu.Lock()
	s.synq = append(s.synq, r)
	s.synqOps += len(r.ops)
	s.smu.Unlock()
	s.signalSyncer()
}

// signalSyncer wakes the syncer if it is waiting.
func (s *Store) signalSyncer() {
	select {
	case s.swake <- struct{}{}:
	default:
	}
}

// runBatch applies the ops of one batch in one transaction and commits
// once. It returns the outcomes for the syncer to answer, or nil when it
// has answered every op itself (a failure of the transaction, or a store
// whose fsync has failed: those answers wrap ErrUnavailable and promise
// nothing, so they need not wait for an fsync).
func (s *Store) runBatch(batch []*op) *result {
	s.batches.Add(1)
	if err := s.failed.Load(); err != nil {
		for _, o := range batch {
			if o.state.CompareAndSwap(opPending, opClaimed) {
				o.done <- *err
			}
		}
		return nil
	}
	bg := context.Background() // ops' own contexts must not interrupt the batch
	errs := make([]error, len(batch))
	skip := make([]bool, len(batch)) // abandoned by the caller: never applied, never answered

	// fatal ends the batch after a failure of the transaction itself at op
	// k (-1: before any op): everything is rolled back, every op up to k
	// that is still wanted and every later op that can still be claimed
	// gets an error wrapping ErrUnavailable.
	fatal := func(k int, what string, err error) {
		_, _ = s.w.rollback.ExecContext(bg)
		e := translate(what, err)
		for i, o := range batch {
			if i <= k && !skip[i] || i > k && o.state.CompareAndSwap(opPending, opClaimed) {
				o.done <- e
			}
		}
	}

	if _, err := s.w.begin.ExecContext(bg); err != nil {
		fatal(-1, "begin", err)
		return nil
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
			if errs[i] = o.apply(s.nowMs()); errs[i] != nil {
				_, _ = s.w.rollback.ExecContext(bg)
				return &result{ops: []*op{o}, errs: errs[i : i+1]}
			}
			applied++
			break
		}
		if _, err := s.w.savepoint.ExecContext(bg); err != nil {
			fatal(i, "savepoint", err)
			return nil
		}
		if errs[i] = o.apply(s.nowMs()); errs[i] != nil {
			if _, err := s.w.rollbackToSP.ExecContext(bg); err != nil {
				fatal(i, "rollback to savepoint", err)
				return nil
			}
		} else {
			applied++
		}
		if _, err := s.w.releaseSP.ExecContext(bg); err != nil {
			fatal(i, "release savepoint", err)
			return nil
		}
	}
	r := &result{ops: make([]*op, 0, len(batch)), errs: make([]error, 0, len(batch))}
	for i, o := range batch {
		if !skip[i] {
			r.ops = append(r.ops, o)
			r.errs = append(r.errs, errs[i])
		}
	}
	if applied == 0 {
		_, _ = s.w.rollback.ExecContext(bg)
		return r
	}
	if _, err := s.w.commit.ExecContext(bg); err != nil {
		fatal(len(batch)-1, "commit", err)
		return nil
	}
	s.commits.Add(1)
	r.commit = true
	if s.afterCommit != nil {
		ctxs := make([]context.Context, len(r.ops))
		for i, o := range r.ops {
			ctxs[i] = o.ctx
		}
		s.afterCommit(ctxs)
	}
	return r
}
