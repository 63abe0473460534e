package sqlitestore_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// probeAt reads the health_probe row that Ping writes.
func probeAt(t *testing.T, s *testStore) int64 {
	t.Helper()
	var at int64
	if err := s.ReadDB().QueryRow(`SELECT at_ms FROM health_probe WHERE id = 1`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestPingWritesTheProbe: Ping commits a write of the health_probe row at
// the store's clock, so a write that cannot be stored fails it.
func TestPingWritesTheProbe(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	commits := s.Commits()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got, want := probeAt(t, s), s.clock.Now().UnixMilli(); got != want {
		t.Errorf("health_probe.at_ms = %d after Ping, want the store's now %d", got, want)
	}
	if s.Commits() != commits+1 {
		t.Errorf("commits %d → %d: Ping must commit its write", commits, s.Commits())
	}
}

// TestPingFailsWhenWritesFail: while the probe's write fails (a trigger
// aborts it, standing in for a full disk: the writer is free, only the
// write cannot be stored), Ping fails with ErrUnavailable; a lock write in
// the same batch as a failing probe still takes effect; once writes work
// again, Ping succeeds.
func TestPingFailsWhenWritesFail(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a := mustAccount(t, s, "alice")
	if _, err := s.WriteConn().ExecContext(ctx, `CREATE TRIGGER full BEFORE UPDATE ON health_probe
		BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Ping while the probe's write fails: want ErrUnavailable, got %v", err)
	}

	// The probe and an acquire in one batch.
	release := s.stall(t)
	var wg sync.WaitGroup
	var pingErr, acqErr error
	var got lockcore.AcquireResult
	wg.Add(2)
	go func() { defer wg.Done(); pingErr = s.Ping(ctx) }()
	s.waitQueued(1)
	go func() { defer wg.Done(); got, acqErr = s.Acquire(ctx, a.ID, "job", opts("lease-1")) }()
	s.waitQueued(2)
	release()
	wg.Wait()
	if !errors.Is(pingErr, lockcore.ErrUnavailable) {
		t.Errorf("Ping batched with an acquire: want ErrUnavailable, got %v", pingErr)
	}
	if acqErr != nil || !got.Acquired {
		t.Errorf("Acquire batched with a failing probe: %+v, %v; want acquired", got, acqErr)
	}
	if st, err := s.Get(ctx, a.ID, "job"); err != nil || !st.Held {
		t.Errorf("Get(job) after the batch: %+v, %v; want held", st, err)
	}

	if _, err := s.WriteConn().ExecContext(ctx, `DROP TRIGGER full`); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping once writes work again: %v", err)
	}
}

// TestMigrationAddsTheProbe: a database of schema version 1 (from before
// the health probe) is migrated on Open, keeping its data, and Ping works
// on it.
func TestMigrationAddsTheProbe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "octostore.db")
	clock := newFakeClock()
	ctx := context.Background()
	old := openAt(t, path, clock, sqlitestore.Options{})
	a := mustAccount(t, old, "alice")
	held, err := old.Acquire(ctx, a.ID, "job", lockcore.AcquireOptions{LeaseID: "lease-1", TTL: time.Hour, MaxHeld: 100})
	if err != nil || !held.Acquired {
		t.Fatalf("Acquire: %+v, %v", held, err)
	}
	// Back to version 1: its schema is version 2's without health_probe.
	if _, err := old.WriteConn().ExecContext(ctx, `DROP TABLE health_probe`); err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteConn().ExecContext(ctx, `PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path, clock, sqlitestore.Options{})
	var version int
	if err := s.ReadDB().QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("user_version after Open: %d, %v; want 2", version, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on the migrated database: %v", err)
	}
	if st, err := s.Get(ctx, a.ID, "job"); err != nil || !st.Held || st.Lease.FencingToken != held.Lease.FencingToken {
		t.Errorf("Get(job) after the migration: %+v, %v; want held with fencing token %d", st, err, held.Lease.FencingToken)
	}
}
