package sqlitestore

import (
	"fmt"
	"os"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// syncLoop is the syncer goroutine. It takes every batch the writer has
// handed over so far, fsyncs the WAL once if any of them committed, and
// answers all their ops in order; it returns once the writer has returned
// and every batch handed over has been answered.
//
// A batch is in synq only after its COMMIT returned, and the syncer takes
// synq before it starts the fsync, so the fsync that precedes an answer
// always began after that answer's COMMIT: every frame the commit wrote is
// on disk before its callers hear of it. Batches that committed nothing
// wait in the same queue, so their answers (which may depend on earlier
// batches) come only after those batches are durable.
func (s *Store) syncLoop() {
	defer close(s.syncerDone)
	var (
		group    []*result
		lastSync time.Duration // how long the previous fsync took
		timer    *time.Timer
	)
	for {
		s.smu.Lock()
		for len(s.synq) == 0 && !s.writerExited {
			s.smu.Unlock()
			<-s.swake
			s.smu.Lock()
		}
		if len(s.synq) == 0 {
			s.smu.Unlock()
			return
		}
		group, s.synq = s.synq, group
		s.synqOps = 0
		s.smu.Unlock()

		if s.answerFirst {
			answer(group, nil)
		}
		var err error
		if e := s.failed.Load(); e != nil {
			err = *e
		} else if committed(group) {
			start := time.Now()
			if err = s.syncHooked(); err != nil {
				err = s.fail(err)
			}
			lastSync = time.Since(start)
		}
		n := 0
		if !s.answerFirst {
			n = answer(group, err)
		}
		clear(group)
		group = group[:0]
		if n > 1 && err == nil {
			s.linger(n, lastSync, &timer)
		}
	}
}

// committed reports whether any batch of group committed.
func committed(group []*result) bool {
	for _, r := range group {
		if r.commit {
			return true
		}
	}
	return false
}

// answer answers every op of group in order, with err instead of its own
// outcome when err is not nil, and returns how many ops it answered.
func answer(group []*result, err error) int {
	n := 0
	for _, r := range group {
		for i, o := range r.ops {
			if err != nil {
				o.done <- err
			} else {
				o.done <- r.errs[i]
			}
		}
		n += len(r.ops)
	}
	return n
}

// linger, after the syncer has answered n > 1 ops, waits until n more ops
// have been handed over than were waiting already, for at most maxLinger
// and at most half the last fsync: the callers it just answered are
// typically about to send their next write, and letting them share the
// next fsync instead of the one after it halves the fsyncs per write under
// load. It returns early once the writer has returned.
func (s *Store) linger(n int, lastSync time.Duration, timer **time.Timer) {
	d := min(s.maxLinger, lastSync/2)
	if d <= 0 {
		return
	}
	deadline := time.Now().Add(d)
	s.smu.Lock()
	want := s.synqOps + n
	s.smu.Unlock()
	for {
		s.smu.Lock()
		have, exited := s.synqOps, s.writerExited
		s.smu.Unlock()
		left := time.Until(deadline)
		if have >= want || exited || left <= 0 {
			return
		}
		if *timer == nil {
			*timer = time.NewTimer(left)
		} else {
			(*timer).Reset(left)
		}
		select {
		case <-s.swake:
		case <-(*timer).C:
		}
		(*timer).Stop()
	}
}

// syncHooked runs syncWAL, through the test hook when one is set.
func (s *Store) syncHooked() error {
	if s.syncHook != nil {
		return s.syncHook(s.syncWAL)
	}
	return s.syncWAL()
}

// syncWAL makes every frame written to the WAL so far durable.
//
// It syncs the file descriptor Open got for the WAL (SQLite's full path of
// the database plus "-wal"), after checking that the path still names that
// same file. It always does while the store
// is open: SQLite deletes the WAL only when the last connection to the
// database closes (in any process), and only after taking an EXCLUSIVE lock
// on the database file, which it cannot get while this store's write
// connection is open, because in WAL mode a connection holds a SHARED lock
// on the database file for as long as it is open. The write connection
// itself opened the WAL once and writes to it until it closes; checkpoints
// (wal_checkpoint(TRUNCATE), journal_size_limit) truncate or rewrite it in
// place, keeping the file. So a different file, or none, at that path means
// something outside SQLite removed or replaced the WAL; SQLite would go on
// writing to the unlinked file, which recovery never reads, so reopening
// the path and syncing the new file would acknowledge writes that a crash
// loses. syncWAL fails instead, and with it the store.
//
// SQLite itself fsyncs the directory the first time it syncs a newly
// created WAL (it syncs the WAL header when it writes the first frame, even
// at synchronous=NORMAL), so the file's directory entry is durable too.
func (s *Store) syncWAL() error {
	at, err := os.Stat(s.walPath)
	if err != nil {
		return fmt.Errorf("the WAL is gone: %w", err)
	}
	open, err := s.wal.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(at, open) {
		return fmt.Errorf("%s was replaced while the store was open", s.walPath)
	}
	return fdatasync(s.wal)
}

// fail records that the WAL could not be made durable and returns the
// error (wrapping lockcore.ErrUnavailable) that the callers waiting on that
// fsync, and every call after it, get.
func (s *Store) fail(cause error) error {
	err := fmt.Errorf("sqlitestore: fsync of %s failed, writes since the last good fsync may or may not be durable, and the store refuses every call until it is reopened: %w: %w",
		s.walPath, lockcore.ErrUnavailable, cause)
	s.failed.CompareAndSwap(nil, &err)
	return *s.failed.Load()
}
