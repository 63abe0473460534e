package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// backupBusyTimeout is how long Backup and Restore wait for a lock that
// another process (a running server's writer) holds on a file.
const backupBusyTimeout = 5 * time.Second

// Backup writes a consistent copy of the OctoStore database at src to the
// new file dst, and returns its size in bytes. Servers may go on using src
// meanwhile: the copy is one read transaction (SQLite's VACUUM INTO), so
// it holds every write acknowledged before it began and none of the ones
// after, and it does not stop the writer. The copy is written next to dst
// under a temporary name, fsync'd, and only then given the name dst, so
// dst is either absent or a whole copy, also after a crash.
//
// Backup never changes src and never overwrites: dst must not exist, and
// src must be an existing OctoStore database (one with a schema version),
// or the error says which is not so. A src that a writer holds locked for
// longer than 5 s is an error wrapping lockcore.ErrUnavailable.
func Backup(ctx context.Context, src, dst string) (int64, error) {
	if err := mustNotExist(dst, "backup"); err != nil {
		return 0, err
	}
	if _, err := os.Stat(src); err != nil {
		return 0, fmt.Errorf("sqlitestore: backup: %w", err)
	}
	// To read a database in WAL mode SQLite needs its -wal and -shm files,
	// and makes them when no process has the database open. A user who
	// cannot write the database (a backup user with read access) would
	// leave them behind, owned by that user and unwritable by the server,
	// which could then not start ("unable to open database file").
	if _, err := os.Lstat(src + "-shm"); errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(src, os.O_WRONLY, 0)
		if err != nil && errors.Is(err, os.ErrPermission) {
			return 0, fmt.Errorf("sqlitestore: backup: this user cannot write %s, and no server has it open: reading it would leave -wal and -shm files of this user next to it, which its server could not open; run backup as the user that runs the server (or while the server runs)", src)
		}
		if err == nil {
			f.Close()
		}
	}
	db, err := sql.Open("sqlite", backupSourceURI(src))
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: backup: open %s: %w", src, err)
	}
	defer db.Close()
	if err := checkOctoStore(ctx, db, src); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: backup: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	// VACUUM INTO accepts an empty file as its target.
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmpName); err != nil {
		return 0, translate("backup "+src, err)
	}
	return publish(tmpName, dst, "backup")
}

// backupSourceURI is the driver URI Backup reads src with. mode=rw:
// never create src, and no journal_mode pragma, which would convert a
// database that is not in WAL mode. The connection writes too: when no
// server has src open but a -wal file is left (a server killed or
// crashed), SQLite copies that log into src as the connection closes and
// deletes it, so it syncs like the server's (syncPragmas: on macOS a
// plain fsync could lose those writes in a power cut after the -wal is
// gone).
func backupSourceURI(src string) string {
	return fileURI(src, existingFileQuery)
}

// existingFileQuery is the URI query of Backup's and Restore's
// connections: never create the file, wait backupBusyTimeout for a lock,
// and sync every write as the server does (syncPragmas).
var existingFileQuery = "mode=rw&_pragma=busy_timeout(" + strconv.FormatInt(backupBusyTimeout.Milliseconds(), 10) + ")&" + syncPragmas

// Restore makes the database dst, which must not exist, from a copy that
// Backup wrote, so that a server started on dst keeps the fencing promise:
// every fencing token it hands out is greater than every token handed out
// for the same account before, also the ones the database behind the
// backup issued after the backup was taken. To that end it
//   - drops every lock of the backup: their holders may have released
//     them since, and others taken them with later tokens; after the
//     restore they are free, and a new lease gets a new, larger token;
//   - raises the fencing counter of every account (also those with no
//     counter yet) to at least floor, which must be greater than every
//     token issued since the backup was taken. The caller picks it; the
//     command line's default is the current Unix time in microseconds,
//     which is above every token issued before as long as the clock has
//     not gone back and no earlier restore was given a floor above it
//     (tokens are max(the account's last + 1, the clock in µs)).
//
// Tokens and accounts are kept as the backup has them, and the schema is
// brought up to date. The result is written under a temporary name next
// to dst, fsync'd and then named dst, so dst is never a half-made
// database. Restore refuses (changing nothing) a dst that exists, a dst
// with a -wal, -shm or -journal file left next to it (SQLite would replay
// a stale log into the restored file), a backup with a -wal file next to
// it (a live database, whose latest writes that file holds) or a -journal
// file that SQLite would roll back (a write to it was interrupted
// half-way; see hotJournal), a file that
// is not an OctoStore database, a floor outside 1..lockcore.MaxFenceFloor,
// and a floor below a fencing counter of the backup (a
// *lockcore.FloorBelowCounterError: the floor cannot be above every token
// issued, and a clock-based default that is means the clock is behind).
func Restore(ctx context.Context, backup, dst string, floor int64) (lockcore.RestoreResult, error) {
	if floor < 1 || floor > lockcore.MaxFenceFloor {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: fencing floor must be from 1 to %d (got %d)", lockcore.MaxFenceFloor, floor)
	}
	for _, p := range []string{dst, dst + "-wal", dst + "-shm", dst + "-journal"} {
		if err := mustNotExist(p, "restore"); err != nil {
			return lockcore.RestoreResult{}, err
		}
	}
	if _, err := os.Stat(backup + "-wal"); err == nil {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: %s has a -wal file next to it: it is a database in use, not a backup (make one with Backup)", backup)
	}
	// A rollback journal next to the file holds the pages of a write that
	// was interrupted; the file alone, which is all that is copied, may be
	// half of that write.
	if hotJournal(backup + "-journal") {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: %s has a -journal file next to it: a write to it was interrupted, and the file alone may hold half of it (use another backup, or roll the write back first: sqlite3 %s 'PRAGMA quick_check')", backup, backup)
	}
	in, err := os.Open(backup)
	if err != nil {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restoring-*")
	if err != nil {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(tmpName + suffix)
		}
	}()
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: %w", err)
	}
	res, err := prepareRestored(ctx, tmpName, backup, floor)
	if err != nil {
		return lockcore.RestoreResult{}, err
	}
	if _, err := publish(tmpName, dst, "restore"); err != nil {
		return lockcore.RestoreResult{}, err
	}
	return res, nil
}

// hotJournal reports whether path is a rollback journal that SQLite would
// play back into its database when it next opens it: one that exists and
// does not begin with a zero byte (SQLite's own test, less the lock it
// also checks). An empty journal (journal_mode=TRUNCATE leaves one after
// every write, and a write stopped before its journal had a header leaves
// one too) and one whose header was zeroed (journal_mode=PERSIST) hold
// nothing to roll back, so SQLite reads the file as it is, and `sqlite3
// FILE 'PRAGMA quick_check'` would not remove them. A journal that exists
// but cannot be read counts as one to roll back.
func hotJournal(path string) bool {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	defer f.Close()
	var first [1]byte
	n, err := f.Read(first[:])
	if n == 0 {
		return err != io.EOF
	}
	return first[0] != 0
}

// prepareRestored applies Restore's changes to the copy at path, in one
// transaction, and leaves it a self-contained file (rollback journal, no
// -wal) so that it can be renamed.
func prepareRestored(ctx context.Context, path, backup string, floor int64) (lockcore.RestoreResult, error) {
	db, err := sql.Open("sqlite", fileURI(path, existingFileQuery+"&_pragma=foreign_keys(ON)&_txlock=immediate"))
	if err != nil {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	c, err := db.Conn(ctx)
	if damaged(err) {
		return lockcore.RestoreResult{}, damagedBackup(backup, err.Error())
	}
	if err != nil {
		return lockcore.RestoreResult{}, translate("restore", err)
	}
	defer c.Close()
	// The whole backup is checked before anything is changed: a damaged
	// page that the restore's own statements do not read would otherwise
	// be found only by the server's start, after the operator has moved
	// the live database aside for a copy that cannot serve.
	detail, err := integrityProblems(ctx, c)
	if err != nil {
		return lockcore.RestoreResult{}, translate("check "+backup, err)
	}
	if detail != "" {
		return lockcore.RestoreResult{}, damagedBackup(backup, detail)
	}
	if err := checkOctoStore(ctx, c, backup); err != nil {
		return lockcore.RestoreResult{}, err
	}
	if err := migrate(ctx, c); err != nil {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore %s: %w", backup, err)
	}
	res := lockcore.RestoreResult{Floor: floor}
	err = func() (err error) {
		if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_, _ = c.ExecContext(context.Background(), "ROLLBACK")
			}
		}()
		r, err := c.ExecContext(ctx, "DELETE FROM locks")
		if err != nil {
			return err
		}
		if res.LocksDropped, err = r.RowsAffected(); err != nil {
			return err
		}
		var top lockcore.FloorBelowCounterError
		err = c.QueryRowContext(ctx, "SELECT account_id, fence FROM fences ORDER BY fence DESC, account_id LIMIT 1").Scan(&top.AccountID, &top.Counter)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil && top.Counter > floor {
			top.Floor = floor
			return &top
		}
		// A counter for every account that has none yet ("WHERE true" tells
		// the parser that ON CONFLICT belongs to the insert, not to a join),
		// then every counter raised to the floor.
		if _, err := c.ExecContext(ctx, `INSERT INTO fences(account_id, fence) SELECT id, ?1 FROM accounts WHERE true
			ON CONFLICT(account_id) DO NOTHING`, floor); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, "UPDATE fences SET fence = max(fence, ?1)", floor); err != nil {
			return err
		}
		if err := c.QueryRowContext(ctx, "SELECT count(*) FROM accounts").Scan(&res.Accounts); err != nil {
			return err
		}
		_, err = c.ExecContext(ctx, "COMMIT")
		return err
	}()
	var low *lockcore.FloorBelowCounterError
	if errors.As(err, &low) {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore %s: %w", backup, err)
	}
	if err != nil {
		return lockcore.RestoreResult{}, translate("restore "+backup, err)
	}
	// Fold any write-ahead log into the file and stop using one, so the
	// file alone is the database when it is renamed.
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode=DELETE").Scan(&mode); err != nil {
		return lockcore.RestoreResult{}, translate("restore "+backup, err)
	}
	if mode != "delete" {
		return lockcore.RestoreResult{}, fmt.Errorf("sqlitestore: restore: could not leave WAL mode (journal mode %q)", mode)
	}
	return res, nil
}

// damagedBackup is Restore's error for a backup that SQLite finds
// damaged, or that is not a SQLite file: the file to replace is the
// backup, not the database a server uses.
func damagedBackup(backup, detail string) error {
	return fmt.Errorf("sqlitestore: restore: the backup %s is damaged or is not a SQLite database (%s); nothing was changed: restore another backup (one made with `octostore backup`)", backup, detail)
}

// checkOctoStore returns an error unless db (opened from path) answers as
// an OctoStore database: a SQLite file with a schema version and the
// accounts table.
func checkOctoStore(ctx context.Context, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, path string) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return translate("read "+path, err)
	}
	var tables int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('accounts', 'fences', 'locks', 'tokens')").Scan(&tables); err != nil {
		return translate("read "+path, err)
	}
	if version < 1 || tables != 4 {
		return fmt.Errorf("sqlitestore: %s is not an OctoStore database (schema version %d, %d of its 4 tables)", path, version, tables)
	}
	return nil
}

// mustNotExist returns an error naming path when something is there.
func mustNotExist(path, what string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("sqlitestore: %s: %s exists; it is never overwritten (move it aside, or choose another name)", what, path)
	case errors.Is(err, os.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
}

// publish fsyncs the finished file tmp, gives it the name dst (failing if
// dst appeared meanwhile), fsyncs the directory so the name survives a
// crash, and returns the file's size. tmp is left for the caller to remove.
func publish(tmp, dst, what string) (int64, error) {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	err = f.Sync()
	fi, serr := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, mustNotExist(dst, what)
		}
		return 0, fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return 0, fmt.Errorf("sqlitestore: %s: sync the directory of %s: %w", what, dst, err)
	}
	return fi.Size(), nil
}

// fileURI returns the driver's file: URI for path with the query q.
// SQLite reads what follows "file://" up to the next slash as an
// authority, and refuses any but "localhost": a path that begins with two
// slashes (//srv/share/octo.db, Windows' UNC form with forward slashes, or
// a Unix path such as //var/lib/octo.db) gets its first slash escaped,
// which SQLite decodes back.
func fileURI(path, q string) string {
	p := (&url.URL{Path: path}).EscapedPath()
	if strings.HasPrefix(p, "//") {
		p = "%2F" + p[1:]
	}
	return "file:" + p + "?" + q
}
