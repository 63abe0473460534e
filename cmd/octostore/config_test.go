package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// TestSQLiteWaitIsBoundedByOpTimeout: while another process holds the
// database's write lock, a lock write gives up after --op-timeout, not after
// SQLite's default busy wait of 5 s (the caller's own context here is far
// longer, as the handler's is not seen by a write SQLite is waiting in).
func TestSQLiteWaitIsBoundedByOpTimeout(t *testing.T) {
	const opTimeout = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "busy.db")
	var sf storeFlags
	sf.register(flag.NewFlagSet("t", flag.ContinueOnError))
	sf.db, sf.redisURL, sf.opTimeout = path, "", opTimeout
	ctx := context.Background()
	st, _, err := sf.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, _, err := st.EnsureAccount(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}

	long, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = st.Acquire(long, acct.ID, "job", lockcore.AcquireOptions{LeaseID: "l1", TTL: time.Minute, MaxHeld: 10})
	took := time.Since(start)
	if !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("acquire under another process's write lock: %v, want ErrUnavailable", err)
	}
	if took > 3*time.Second {
		t.Fatalf("acquire gave up after %v; the op timeout is %v and SQLite's default wait 5s", took, opTimeout)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if res, err := st.Acquire(long, acct.ID, "job", lockcore.AcquireOptions{LeaseID: "l1", TTL: time.Minute, MaxHeld: 10}); err != nil || !res.Acquired {
		t.Fatalf("acquire once the lock is free: %+v %v", res, err)
	}
}
