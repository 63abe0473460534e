package sqlitestore

import (
	"context"
	"database/sql"
	"time"
)

// Translate is translate, for the external tests.
var Translate = translate

// BackupSourceURI is backupSourceURI, for the external tests.
var BackupSourceURI = backupSourceURI

// DamageDetail is damageDetail, for the external tests.
var DamageDetail = damageDetail

// Commits returns how many batch transactions have committed.
func (s *Store) Commits() int64 { return s.commits.Load() }

// Batches returns how many batches the writer has run.
func (s *Store) Batches() int64 { return s.batches.Load() }

// QueueLen returns how many write ops wait for the writer.
func (s *Store) QueueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// SetBeforeBatch installs a hook the writer calls with each batch's size
// before applying it. Call it before any write is queued.
func (s *Store) SetBeforeBatch(f func(n int)) { s.beforeBatch = f }

// ReadDB returns the read pool.
func (s *Store) ReadDB() *sql.DB { return s.rdb }

// WriteConn returns the writer's connection (use only while no write runs).
func (s *Store) WriteConn() *sql.Conn { return s.wconn }

// WaitIdle waits until the writer is idle, so that the next lone write is
// committed on its caller's goroutine.
func (s *Store) WaitIdle() {
	for {
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// WriteFunc queues apply as a write of its own, as the store's methods do.
func (s *Store) WriteFunc(ctx context.Context, apply func(now int64) error) error {
	return s.write(ctx, apply)
}

// WALSizeLimit is walSizeLimit, for the external tests.
const WALSizeLimit = walSizeLimit

// AbandonedAfter returns the error of a write abandoned while the batch
// running then had waited for waited in BEGIN (use only while no write
// runs: it sets and clears the batch's mark).
func (s *Store) AbandonedAfter(waited time.Duration) error {
	s.beginAt.Store(s.sinceOpen() - int64(waited))
	defer s.beginAt.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	return s.abandonedErr(ctx, false)
}
