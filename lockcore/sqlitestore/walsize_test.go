package sqlitestore_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// TestWALShrinksAfterALongRead: a read transaction that lasts (a backup's
// VACUUM INTO of a large database, taken while the server writes) keeps
// SQLite from starting its write-ahead log over, so the -wal file grows
// for as long as it lasts. Once it has ended, the log must come back down
// to at most sqlitestore.WALSizeLimit, instead of keeping its largest size
// on disk for ever.
func TestWALShrinksAfterALongRead(t *testing.T) {
	s := openTest(t, sqlitestore.Options{})
	ctx := context.Background()
	a := mustAccount(t, s, "alice")
	meta := strings.Repeat("m", 1024)
	cycle := func() {
		t.Helper()
		o := opts("lease")
		o.Metadata = &meta
		if r, err := s.Acquire(ctx, a.ID, "big", o); err != nil || !r.Acquired {
			t.Fatalf("Acquire: %+v, %v", r, err)
		}
		if err := s.Release(ctx, a.ID, "big", "lease"); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(s.path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	// The long read: a snapshot held on a connection of the read pool.
	tx, err := s.ReadDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM locks").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for walSize() <= sqlitestore.WALSizeLimit+4<<20 {
		cycle()
	}
	grown := walSize()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// SQLite checkpoints once the log holds 1,000 pages and starts it over
	// at the next write after a checkpoint that copied it all; a few
	// thousand pages of writes are enough for both.
	for i := 0; i < 2000 && walSize() > sqlitestore.WALSizeLimit; i++ {
		cycle()
	}
	if got := walSize(); got > sqlitestore.WALSizeLimit {
		t.Fatalf("-wal is %d bytes after the long read ended (%d at its end), want at most %d", got, grown, sqlitestore.WALSizeLimit)
	}
}
