package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// closeChildEnv names the directory in which the child process of
// TestCloseSaysWhenDeletedWALIsLost works.
const closeChildEnv = "OCTOSTORE_TEST_CLOSE_CHILD_DIR"

// acquireMany opens a store at path and acquires n locks in it, and
// returns the store, the account and the last lease.
func acquireMany(t *testing.T, path string, n int) (*sqlitestore.Store, lockcore.Account, lockcore.AcquireResult) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, s, "alice")
	var last lockcore.AcquireResult
	for i := range n {
		if last, err = s.Acquire(ctx, a.ID, fmt.Sprintf("lock-%d", i), opts("l")); err != nil || !last.Acquired {
			s.Close()
			t.Fatalf("Acquire: %+v, %v", last, err)
		}
	}
	return s, a, last
}

// TestCloseCopiesDeletedWAL: the writes acknowledged before the -wal file
// was deleted are in the database file after Close (what the README's
// "stop it with SIGTERM" relies on).
func TestCloseCopiesDeletedWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "octostore.db")
	s, a, last := acquireMany(t, path, 20)
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the -wal was deleted: %v", err)
	}
	s, err := sqlitestore.Open(context.Background(), path, sqlitestore.Options{})
	if err != nil {
		t.Fatalf("Open after the close: %v", err)
	}
	defer s.Close()
	st, err := s.Get(context.Background(), a.ID, "lock-19")
	if err != nil || !st.Held || st.Lease.FencingToken != last.Lease.FencingToken {
		t.Fatalf("the last acquire before the -wal was deleted, after Close and Open: %+v, %v", st, err)
	}
}

// TestCloseSaysWhenDeletedWALIsLost: when the -wal file was deleted while
// the store had it open and Close cannot copy it into the database file
// (here the file cannot grow: RLIMIT_FSIZE, set in a child process so
// that it binds nothing else; on a full disk it is the same), the
// acknowledged writes it held are lost, and Close must say so: SQLite's
// own copy at close fails without a word.
func TestCloseSaysWhenDeletedWALIsLost(t *testing.T) {
	if dir := os.Getenv(closeChildEnv); dir != "" {
		closeWithoutRoom(t, dir)
		return
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCloseSaysWhenDeletedWALIsLost$", "-test.count=1")
	cmd.Env = append(os.Environ(), closeChildEnv+"="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

// closeWithoutRoom is the child's part of TestCloseSaysWhenDeletedWALIsLost.
func closeWithoutRoom(t *testing.T, dir string) {
	path := filepath.Join(dir, "octostore.db")
	s, _, _ := acquireMany(t, path, 20)
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = uint64(fi.Size())
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	err = s.Close()
	if err == nil {
		t.Fatal("Close: nil, though the writes in the deleted -wal could not be copied into the database file")
	}
	if msg := err.Error(); !strings.Contains(msg, "deleted") || !strings.Contains(msg, "lost") || !strings.Contains(msg, "octostore restore") {
		t.Errorf("Close's error %q does not say that the writes are lost and what to do", msg)
	}
}

// TestCloseWithAReaderOfTheDeletedWAL: when the -wal file was deleted and
// another connection (an operator's sqlite3, a backup) has a read open at
// Close, the checkpoint copies every page but cannot empty the log, and
// SQLite reports it busy. Nothing is lost then, and Close must not say
// that the writes are lost (the operator would be told to bring back a
// backup).
func TestCloseWithAReaderOfTheDeletedWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "octostore.db")
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t, s, "alice")
	var last lockcore.AcquireResult
	for i := range 20 {
		if last, err = s.Acquire(ctx, a.ID, fmt.Sprintf("lock-%d", i), opts("l")); err != nil || !last.Acquired {
			s.Close()
			t.Fatalf("Acquire: %+v, %v", last, err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + "-wal"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close with a reader on the deleted -wal, every page copied: %v", err)
	}
	tx.Rollback()
	db.Close()
	if s, err = sqlitestore.Open(ctx, path, sqlitestore.Options{}); err != nil {
		t.Fatalf("Open after the close: %v", err)
	}
	defer s.Close()
	st, err := s.Get(ctx, a.ID, "lock-19")
	if err != nil || !st.Held || st.Lease.FencingToken != last.Lease.FencingToken {
		t.Fatalf("the last acquire before the -wal was deleted, after Close and Open: %+v, %v", st, err)
	}
}
