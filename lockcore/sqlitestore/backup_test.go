package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// acquireFence acquires name for acct with a fresh lease and returns the
// fencing token, failing the test unless the lock was taken.
func acquireFence(t *testing.T, s lockcore.Store, acct, name string) int64 {
	t.Helper()
	r, err := s.Acquire(context.Background(), acct, name, opts(lockcore.NewLeaseID()))
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire(%s, %s): %+v, %v", acct, name, r, err)
	}
	return r.Lease.FencingToken
}

// TestBackupWhileWriting takes a backup while other goroutines acquire and
// release, and checks that the copy is a whole, consistent database: it
// passes SQLite's integrity check, opens as a store, and holds the
// accounts, tokens, locks and counters written before the backup began.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, sqlitestore.Options{})
	a := mustAccount(t, s, "alice")
	tok := mustToken(t, s, a.ID, "tok-alice")
	var fences []int64
	for i := 0; i < 5; i++ {
		fences = append(fences, acquireFence(t, s, a.ID, fmt.Sprintf("held-%d", i)))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			name := fmt.Sprintf("busy-%d", g)
			for {
				select {
				case <-stop:
					return
				default:
				}
				lease := lockcore.NewLeaseID()
				r, err := s.Acquire(ctx, a.ID, name, opts(lease))
				if err == nil && r.Acquired {
					err = s.Release(ctx, a.ID, name, lease)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	out := filepath.Join(dir, "copy.db")
	size, err := sqlitestore.Backup(ctx, s.path, out)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a write during the backup failed: %v", err)
	}
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != size || size == 0 {
		t.Fatalf("the copy: %v, %v; want %d bytes", fi, err, size)
	}
	noTempFiles(t, dir, ".partial-")

	db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check of the copy: %q, %v", check, err)
	}
	db.Close()

	c := openAt(t, out, newFakeClock(), sqlitestore.Options{})
	if got, err := c.AccountByToken(ctx, tok); err != nil || got.ID != a.ID {
		t.Errorf("the copy's token: %+v, %v; want account %s", got, err, a.ID)
	}
	for i := 0; i < 5; i++ {
		st, err := c.Get(ctx, a.ID, fmt.Sprintf("held-%d", i))
		if err != nil || !st.Held || st.Lease.FencingToken != fences[i] {
			t.Errorf("the copy's held-%d: %+v, %v; want held with fencing token %d", i, st, err, fences[i])
		}
	}
	if f := acquireFence(t, c, a.ID, "new"); f <= fences[4] {
		t.Errorf("a new lease in the copy got fencing token %d; want more than the %d issued before the backup", f, fences[4])
	}
}

// TestBackupRefuses checks the inputs Backup refuses, and that a refusal
// writes nothing.
func TestBackupRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, sqlitestore.Options{})
	mustAccount(t, s, "alice")

	exists := filepath.Join(dir, "exists.db")
	if err := os.WriteFile(exists, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := foreignDB(t, filepath.Join(dir, "foreign.db"))
	text := filepath.Join(dir, "text.db")
	if err := os.WriteFile(text, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, src, dst, want string
	}{
		{"destination exists", s.path, exists, "exists.db exists; it is never overwritten"},
		{"no source", filepath.Join(dir, "missing.db"), filepath.Join(dir, "out1.db"), "no such file"},
		{"not OctoStore", foreign, filepath.Join(dir, "out2.db"), "is not an OctoStore database (schema version 0, 0 of its 4 tables)"},
		{"not SQLite", text, filepath.Join(dir, "out3.db"), "not a database"},
		{"no such directory", s.path, filepath.Join(dir, "nodir", "out.db"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlitestore.Backup(ctx, tc.src, tc.dst)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Backup(%s, %s): %v; want an error containing %q", tc.src, tc.dst, err, tc.want)
			}
			if tc.dst != exists {
				if _, err := os.Stat(tc.dst); !os.IsNotExist(err) {
					t.Errorf("%s after a refused backup: %v; want it absent", tc.dst, err)
				}
			}
		})
	}
	if b, err := os.ReadFile(exists); err != nil || string(b) != "keep me" {
		t.Errorf("the existing file after the refusal: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("Backup created its missing source: %v", err)
	}
	noTempFiles(t, dir, ".partial-")
}

// TestRestoreKeepsFencingTokensIncreasing is the reason Restore exists: a
// database restored from a backup must not hand out again the fencing
// tokens that the lost database issued after the backup. It takes a
// backup, goes on issuing tokens (also to an account whose first lock
// comes after the backup), restores, and checks that every new token is
// above the floor and so above every token issued before; that the
// backup's locks are dropped; and that tokens and accounts still work.
func TestRestoreKeepsFencingTokensIncreasing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := openAt(t, filepath.Join(dir, "live.db"), newEpochClock(), sqlitestore.Options{})
	a := mustAccount(t, live, "alice")
	b := mustAccount(t, live, "bob") // no lock before the backup: no counter
	tokA := mustToken(t, live, a.ID, "tok-alice")
	acquireFence(t, live, a.ID, "x")
	acquireFence(t, live, a.ID, "y")

	backup := filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, live.path, backup); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	var highest int64
	for i := 0; i < 20; i++ {
		highest = max(highest, acquireFence(t, live, a.ID, fmt.Sprintf("after-%d", i)))
		highest = max(highest, acquireFence(t, live, b.ID, fmt.Sprintf("after-%d", i)))
	}
	if highest != 22 {
		t.Fatalf("the live database issued up to %d; want 22", highest)
	}

	const floor = 1000
	restored := filepath.Join(dir, "restored.db")
	res, err := sqlitestore.Restore(ctx, backup, restored, floor)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if want := (lockcore.RestoreResult{LocksDropped: 2, Accounts: 2, Floor: floor}); res != want {
		t.Errorf("Restore: %+v; want %+v", res, want)
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(restored + suffix); !os.IsNotExist(err) {
			t.Errorf("%s%s after Restore: %v; want the file alone to be the database", restored, suffix, err)
		}
	}

	r := openAt(t, restored, newEpochClock(), sqlitestore.Options{})
	if got, err := r.AccountByToken(ctx, tokA); err != nil || got.ID != a.ID {
		t.Errorf("the restored token: %+v, %v; want account %s", got, err, a.ID)
	}
	for _, acct := range []string{a.ID, b.ID} {
		if l, err := r.List(ctx, acct); err != nil || len(l) != 0 {
			t.Errorf("List(%s) after Restore: %+v, %v; want no locks", acct, l, err)
		}
	}
	if st, err := r.Get(ctx, a.ID, "x"); err != nil || st.Held {
		t.Errorf("x after Restore: %+v, %v; want free", st, err)
	}
	if f := acquireFence(t, r, a.ID, "x"); f != floor+1 {
		t.Errorf("alice's first token after Restore: %d; want %d", f, floor+1)
	}
	if f := acquireFence(t, r, b.ID, "x"); f != floor+1 {
		t.Errorf("bob's first token after Restore: %d; want %d (bob had no counter in the backup)", f, floor+1)
	}
	c := mustAccount(t, r, "carol")
	if f := acquireFence(t, r, c.ID, "x"); f != 1 {
		t.Errorf("a new account's first token: %d; want 1", f)
	}
}

// TestRestoreFloorAgainstCounters checks that a floor below an account's
// counter is refused (such a floor is not above every token issued), with
// the highest counter and its account named and no file left, and that a
// floor equal to the highest counter is taken: that account goes on from
// its counter, the others from the floor.
func TestRestoreFloorAgainstCounters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := openAt(t, filepath.Join(dir, "live.db"), newEpochClock(), sqlitestore.Options{})
	a, b := mustAccount(t, live, "alice"), mustAccount(t, live, "bob")
	for i := 0; i < 7; i++ {
		acquireFence(t, live, a.ID, fmt.Sprintf("l%d", i))
	}
	for i := 0; i < 3; i++ {
		acquireFence(t, live, b.ID, fmt.Sprintf("l%d", i))
	}
	backup := filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, live.path, backup); err != nil {
		t.Fatal(err)
	}
	for _, floor := range []int64{1, 3, 6} {
		restored := filepath.Join(dir, fmt.Sprintf("low-%d.db", floor))
		_, err := sqlitestore.Restore(ctx, backup, restored, floor)
		var low *lockcore.FloorBelowCounterError
		if !errors.As(err, &low) || *low != (lockcore.FloorBelowCounterError{Floor: floor, Counter: 7, AccountID: a.ID}) {
			t.Errorf("Restore with a floor of %d below alice's counter of 7: %v; want a FloorBelowCounterError naming alice and 7", floor, err)
		}
		if _, err := os.Stat(restored); !os.IsNotExist(err) {
			t.Errorf("%s after a refused restore: %v; want it absent", restored, err)
		}
	}
	noTempFiles(t, dir, ".restoring-")
	restored := filepath.Join(dir, "restored.db")
	if _, err := sqlitestore.Restore(ctx, backup, restored, 7); err != nil {
		t.Fatalf("Restore with the floor at the highest counter: %v", err)
	}
	r := openAt(t, restored, newEpochClock(), sqlitestore.Options{})
	if f := acquireFence(t, r, a.ID, "x"); f != 8 {
		t.Errorf("alice's first token after Restore with a floor of 7 over her counter of 7: %d; want 8", f)
	}
	if f := acquireFence(t, r, b.ID, "x"); f != 8 {
		t.Errorf("bob's first token after Restore with a floor of 7 over his counter of 3: %d; want 8", f)
	}
}

// TestRestoreRefuses checks every input Restore refuses, and that a
// refusal leaves no database (and no temporary file) behind.
func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := openAt(t, filepath.Join(dir, "live.db"), newFakeClock(), sqlitestore.Options{})
	mustAccount(t, live, "alice")
	backup := filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, live.path, backup); err != nil {
		t.Fatal(err)
	}
	exists := filepath.Join(dir, "exists.db")
	if err := os.WriteFile(exists, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	staleWAL := filepath.Join(dir, "stale.db")
	if err := os.WriteFile(staleWAL+"-wal", []byte("old log"), 0o600); err != nil {
		t.Fatal(err)
	}
	hotJournal := filepath.Join(dir, "hot.db")
	copyFile(t, backup, hotJournal)
	if err := os.WriteFile(hotJournal+"-journal", []byte("an interrupted write's rollback journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := foreignDB(t, filepath.Join(dir, "foreign.db"))
	newer := filepath.Join(dir, "newer.db")
	copyFile(t, backup, newer)
	ndb, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ndb.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	ndb.Close()

	out := func(n string) string { return filepath.Join(dir, n) }
	for _, tc := range []struct {
		name, backup, dst string
		floor             int64
		want              string
	}{
		{"destination exists", backup, exists, 10, "exists.db exists; it is never overwritten"},
		{"stale log at the destination", backup, staleWAL, 10, "stale.db-wal exists"},
		{"live database as the backup", live.path, out("o1.db"), 10, "has a -wal file next to it: it is a database in use"},
		{"backup with a rollback journal", hotJournal, out("o7.db"), 10, "has a -journal file next to it: a write to it was interrupted"},
		{"no backup", out("missing.db"), out("o2.db"), 10, "no such file"},
		{"not OctoStore", foreign, out("o3.db"), 10, "is not an OctoStore database"},
		{"newer schema", newer, out("o4.db"), 10, "schema version 999 is newer than this program's"},
		{"floor 0", backup, out("o5.db"), 0, "fencing floor must be from 1 to 4503599627370496 (got 0)"},
		{"floor too high", backup, out("o6.db"), lockcore.MaxFenceFloor + 1, "(got 4503599627370497)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlitestore.Restore(ctx, tc.backup, tc.dst, tc.floor)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore(%s, %s, %d): %v; want an error containing %q", tc.backup, tc.dst, tc.floor, err, tc.want)
			}
			if tc.dst != exists {
				if _, err := os.Stat(tc.dst); !os.IsNotExist(err) {
					t.Errorf("%s after a refused restore: %v; want it absent", tc.dst, err)
				}
			}
		})
	}
	noTempFiles(t, dir, ".restoring-")
}

// TestRestoreTakesABackupWithAColdJournal: a -journal file that SQLite
// would not roll back is no reason to refuse a backup. A program that
// wrote to the backup in journal_mode TRUNCATE leaves an empty one, and in
// PERSIST one whose header is zeroed; the file is whole, SQLite reads it
// as it is, and sqlite3's quick_check (which the refusal suggests) would
// not remove such a journal, so the backup could never be restored.
func TestRestoreTakesABackupWithAColdJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := openAt(t, filepath.Join(dir, "live.db"), newEpochClock(), sqlitestore.Options{})
	a := mustAccount(t, live, "alice")
	acquireFence(t, live, a.ID, "x")
	backup := filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, live.path, backup); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []string{"TRUNCATE", "PERSIST"} {
		copied := filepath.Join(dir, mode+".db")
		copyFile(t, backup, copied)
		db, err := sql.Open("sqlite", copied)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("PRAGMA journal_mode=" + mode); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE accounts SET login = login"); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(copied + "-journal"); err != nil {
			t.Fatalf("journal_mode %s left no -journal: %v", mode, err)
		}
		restored := filepath.Join(dir, mode+"-restored.db")
		floor := int64(1_000_000 * (i + 1))
		if _, err := sqlitestore.Restore(ctx, copied, restored, floor); err != nil {
			t.Fatalf("Restore of a backup with the -journal journal_mode %s left: %v", mode, err)
		}
		r := openAt(t, restored, newEpochClock(), sqlitestore.Options{})
		if f := acquireFence(t, r, a.ID, "x"); f != floor+1 {
			t.Errorf("first token after Restore (journal_mode %s): %d; want %d", mode, f, floor+1)
		}
	}
}

// TestRestoreFromACopiedFile restores from a plain copy of a database
// whose server had stopped (the other way to take a backup). Such a file
// is in WAL mode; Restore must leave one that is whole on its own, in
// rollback-journal mode (header bytes 18 and 19 are 1), so that renaming
// it loses nothing.
func TestRestoreFromACopiedFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "live.db")
	live, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Now: newEpochClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := live.EnsureAccount(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	acquireFence(t, live, a.ID, "x")
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "copy.db")
	copyFile(t, path, backup)
	if h := header(t, backup); h[18] != 2 || h[19] != 2 {
		t.Fatalf("the copied file's header bytes 18, 19: %d, %d; want 2, 2 (WAL mode)", h[18], h[19])
	}
	restored := filepath.Join(dir, "restored.db")
	if _, err := sqlitestore.Restore(ctx, backup, restored, 50); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if h := header(t, restored); h[18] != 1 || h[19] != 1 {
		t.Errorf("the restored file's header bytes 18, 19: %d, %d; want 1, 1 (rollback journal)", h[18], h[19])
	}
	r := openAt(t, restored, newEpochClock(), sqlitestore.Options{})
	if f := acquireFence(t, r, a.ID, "x"); f != 51 {
		t.Errorf("first token after Restore: %d; want 51", f)
	}
}

// header returns the first 100 bytes of the SQLite file at path.
func header(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 100 {
		t.Fatalf("read %s: %d bytes, %v", path, len(b), err)
	}
	return b[:100]
}

// foreignDB makes a SQLite database at path that is not OctoStore's.
func foreignDB(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE notes(x)"); err != nil {
		t.Fatal(err)
	}
	return path
}

// noTempFiles fails the test if a file whose name holds marker is in dir.
func noTempFiles(t *testing.T, dir, marker string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), marker) {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestRestoreRefusesDamagedBackup restores from backups that are damaged
// where the restore's own statements do not look (a page of an index of
// the tokens), and from a file that is not SQLite at all. Restore must
// refuse them, naming the backup as the file to replace, and make
// nothing: a restore that reports success with such a copy leaves a
// database that the server then refuses to start on, after the live one
// has been moved aside.
func TestRestoreRefusesDamagedBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := openAt(t, filepath.Join(dir, "live.db"), newFakeClock(), sqlitestore.Options{})
	a := mustAccount(t, live, "alice")
	for i := 0; i < 200; i++ {
		if err := live.AddToken(ctx, a.ID, lockcore.HashToken(fmt.Sprintf("os_%043d", i))); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(dir, "backup.db")
	if _, err := sqlitestore.Backup(ctx, live.path, backup); err != nil {
		t.Fatal(err)
	}
	// The root page of the index tokens_account, overwritten.
	db, err := sql.Open("sqlite", backup)
	if err != nil {
		t.Fatal(err)
	}
	var root int64
	err = db.QueryRow("SELECT rootpage FROM sqlite_schema WHERE name = 'tokens_account'").Scan(&root)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	for i := (root - 1) * pageSize; i < root*pageSize; i++ {
		b[i] = 0x5a
	}
	damaged := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, backup, dst string }{
		{"damaged index page", damaged, filepath.Join(dir, "r1.db")},
		{"not SQLite", garbage, filepath.Join(dir, "r2.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlitestore.Restore(ctx, tc.backup, tc.dst, 1000)
			if err == nil {
				t.Fatalf("Restore of %s succeeded", tc.backup)
			}
			want := "the backup " + tc.backup + " is damaged or is not a SQLite database"
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "restore another backup") {
				t.Errorf("Restore: %v; want an error containing %q that says to restore another backup", err, want)
			}
			if _, err := os.Stat(tc.dst); !os.IsNotExist(err) {
				t.Errorf("%s after a refused restore: %v; want it absent", tc.dst, err)
			}
		})
	}
	noTempFiles(t, dir, ".restoring-")
}

// TestStaleCopyWithoutRestoreDoesNotRepeatTokens: a database put back from
// a copy older than the tokens it handed out, without Restore (a file
// copied back by hand, a disk snapshot rolled back), must not hand those
// tokens out again while the clock is right: every token is at least the
// clock in microseconds, and the clock has moved on since they were
// issued. With a plain counter the copy would start again where the copy
// was taken.
func TestStaleCopyWithoutRestoreDoesNotRepeatTokens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newFakeClock()
	live := openAt(t, filepath.Join(dir, "live.db"), clock, sqlitestore.Options{})
	a := mustAccount(t, live, "alice")
	acquireFence(t, live, a.ID, "x")
	stale := filepath.Join(dir, "stale.db")
	if _, err := sqlitestore.Backup(ctx, live.path, stale); err != nil {
		t.Fatal(err)
	}
	var highest int64
	for i := range 5 {
		clock.Advance(time.Millisecond)
		highest = max(highest, acquireFence(t, live, a.ID, fmt.Sprintf("lost-%d", i)))
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Second) // the time it took to put the copy back
	back := openAt(t, stale, clock, sqlitestore.Options{})
	for i := range 5 {
		if f := acquireFence(t, back, a.ID, fmt.Sprintf("lost-%d", i)); f <= highest {
			t.Errorf("the stale copy gave lost-%d fencing token %d, not above %d that the lost database had already handed out", i, f, highest)
		}
	}
}

// TestPathsWithTwoLeadingSlashes opens, backs up and restores databases
// named by paths that begin with two slashes (a Unix path may; on Windows
// //host/share/file is a UNC path). SQLite reads the start of
// "file://host/..." as a URI authority, and refused such a path with
// "invalid uri authority". (filepath.Join would drop the second slash.)
func TestPathsWithTwoLeadingSlashes(t *testing.T) {
	ctx := context.Background()
	abs, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := "/" + abs
	live := openAt(t, dir+"/live.db", newEpochClock(), sqlitestore.Options{})
	a := mustAccount(t, live, "alice")
	tok := mustToken(t, live, a.ID, "tok-alice")
	backup := dir + "/backup.db"
	if _, err := sqlitestore.Backup(ctx, live.path, backup); err != nil {
		t.Fatalf("Backup(%q, %q): %v", live.path, backup, err)
	}
	restored := dir + "/restored.db"
	if _, err := sqlitestore.Restore(ctx, backup, restored, 1000); err != nil {
		t.Fatalf("Restore(%q, %q): %v", backup, restored, err)
	}
	r := openAt(t, restored, newEpochClock(), sqlitestore.Options{})
	if got, err := r.AccountByToken(ctx, tok); err != nil || got.ID != a.ID {
		t.Errorf("the restored token: %+v, %v; want account %s", got, err, a.ID)
	}
}

// TestBackupSourceSyncsFully checks the pragmas of Backup's connection to
// the database it copies. That connection writes when it is the last one
// to close a database with a -wal file left by a server that was killed
// (SQLite copies the log into the file and deletes it), so it must sync
// as the server's connections do, with fullfsync for macOS.
func TestBackupSourceSyncsFully(t *testing.T) {
	path := openTest(t, sqlitestore.Options{}).path
	db, err := sql.Open("sqlite", sqlitestore.BackupSourceURI(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for p, want := range map[string]string{"synchronous": "2", "fullfsync": "1", "busy_timeout": "5000"} {
		var got string
		if err := db.QueryRow("PRAGMA " + p).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", p, err)
		}
		if got != want {
			t.Errorf("Backup's connection: PRAGMA %s = %s; want %s", p, got, want)
		}
	}
}
