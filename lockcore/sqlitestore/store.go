// Package sqlitestore is a durable lockcore.Store in one SQLite file, on the
// pure-Go driver modernc.org/sqlite (so CGO_ENABLED=0 builds work).
//
// Durability: the database runs in WAL mode with synchronous=FULL (and
// fullfsync, which macOS needs for a sync to reach the disk), and every
// write method (Acquire, Renew, Release, their lockcore.TokenLocks variants
// AcquireAs, RenewAs and ReleaseAs, and the account and token writes)
// returns success only after its transaction has been committed and fsync'd.
//
// Group commit: all writes go through one writer goroutine that owns the
// only write connection. It takes every write that is waiting (up to
// Options.MaxBatch), applies them one after another inside ONE transaction,
// commits once (one fsync for the whole batch) and then answers every
// caller. One operation's refusal (lock held, quota, stale lease) does not
// undo the others: the lock writes refuse before they change anything, and
// the account and token writes run in a SAVEPOINT of their own. A database
// error in a lock write rolls the whole batch back, as does one in any
// write after which SQLite has rolled the transaction back itself (a full
// disk or an I/O error inside a statement), and every operation of the
// batch gets an error wrapping lockcore.ErrUnavailable. Later operations
// of a batch see the effects of earlier ones, so the batch is equivalent to
// running its operations one by one: the releases first, then the other
// operations, each group in queue order. All of a batch's operations are in
// flight together, so any order is a valid one; releases go first so that
// an acquire waiting on a lock takes it in the same commit as the release
// that frees it. While a batch commits, new writes queue up and form the
// next batch, so the busier the store, the more writes share each fsync.
// When the writer is idle (its last batch held at most one write and
// nothing is queued), a write is instead run as a batch of one on its
// caller's goroutine, holding the same write connection; writes that arrive
// meanwhile queue up for the writer.
//
// Cancellation: a write whose context ends before it is applied is never
// applied; its caller gets an error wrapping lockcore.ErrUnavailable. If
// the context ends after the writer has applied it but before the commit
// has been acknowledged, the caller also returns at once with
// ErrUnavailable and the outcome is unknown (as ErrUnavailable documents).
// A lone write run on its caller's goroutine cannot be abandoned once
// applied: its caller returns when that commit ends. RotateToken is never
// abandoned once applied either (see writeSettled): its caller waits for
// the commit past ctx, so that an error never hides a rotation that retired
// the caller's token.
//
// Panics: a write that panics (a bug) rolls its whole batch back, wherever
// it ran; the other operations of the batch get an error wrapping
// lockcore.ErrUnavailable, and the panic goes on on the goroutine of the
// write's caller (with the stack where it happened in its message), so that
// an HTTP server's recovery fails that one request and the store keeps
// working.
//
// Reads (Get, List, AccountByID, AccountByToken, AccountIDByToken,
// CountAccounts, and the query Ping makes before its write) run on a
// separate pool of read-only connections concurrently with the writer;
// under WAL they see every write that was acknowledged before they began.
//
// All methods are safe for concurrent use. The file may also be opened by
// several processes at once (SQLite's own locking and the busy timeout
// serialise them), but group commit only batches within one process.
package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/octostore/octostore/lockcore"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Now is the store's clock; nil means time.Now. Times are kept at
	// millisecond precision. Tests inject a fake clock here.
	Now func() time.Time

	// BusyTimeout is how long a connection waits for a lock held by another
	// connection or process before failing; 0 means 5s.
	BusyTimeout time.Duration

	// MaxBatch bounds how many write operations share one transaction (and
	// one fsync); 0 means 256.
	MaxBatch int

	// MaxReadConns bounds the read connection pool; 0 means 8.
	MaxReadConns int

	// MaxLinger bounds how long the writer, after a batch of several
	// writes, waits for as many writes to queue up again before it starts
	// the next batch (the callers it just answered usually come straight
	// back). It never waits longer than half the last batch took, so a fast
	// disk lingers less. 0 means 500µs; negative means never linger.
	MaxLinger time.Duration
}

// Store is a lockcore.Store in a SQLite file. Create it with Open and release
// it with Close. Its methods are safe for concurrent use; writes are
// group-committed by one writer goroutine (see the package documentation).
type Store struct {
	path     string
	now      func() time.Time
	maxBatch int

	wdb   *sql.DB // holds the single write connection
	wconn *sql.Conn
	w     *writeStmts
	rdb   *sql.DB // read-only pool
	r     *readStmts

	maxLinger time.Duration

	// lastNow is the latest store clock reading the writer has seen (in
	// Unix ms); only whoever holds running touches it. A write never
	// runs at an earlier time: when the clock goes back by less than
	// clockStepMs (too little to clamp expiries for), writes keep using
	// lastNow until the clock catches up, so that a lease that had
	// expired by then is not held again.
	lastNow int64

	// fileClock is the file's clock (see syncClock) as this process last
	// left it: read at the start of a batch, set at its commit. A file
	// clock found lower means another process has lowered it (clamped
	// expiries after the clock went back). Only whoever holds running
	// touches it.
	fileClock int64

	// clockFloor is lastNow for the reads (Get, List), which judge expiry
	// by no earlier time than the writes have: a lease a write found
	// expired is never shown held again.
	clockFloor atomic.Int64

	// files are the database file and its -wal and -shm files as Open
	// found them; a batch first checks that the names still lead to them
	// (see checkFiles) when filesCheckMs have passed since filesChecked
	// (store clock, Unix ms). Only whoever holds running touches
	// filesChecked.
	files        []openFile
	filesChecked int64

	// beginAt is when the batch running now started its BEGIN, as
	// sinceOpen's reading, 0 while no batch is in one. Only this process's
	// batches write, so a BEGIN that lasts waits for a write lock held by
	// another connection; see abandonedErr.
	beginAt atomic.Int64
	// opened is when Open made the store; its monotonic reading times
	// BEGIN's waits, which a step of the wall clock must not lengthen.
	opened time.Time

	// damage is set by the first operation that finds the file damaged
	// (SQLITE_CORRUPT, SQLITE_NOTADB); Ping then fails until a restart,
	// whose quick_check refuses the file.
	damage atomic.Pointer[damageSeen]

	mu     sync.Mutex
	queue  []*op
	closed bool
	wake   chan struct{} // capacity 1: "the queue or closed changed"
	idle   bool          // the writer waits on wake after a batch of at most one

	// running is held by whoever runs a batch: the writer, or a lone
	// caller committing its own write while the writer is idle.
	running sync.Mutex

	shut atomic.Bool // set by Close; read without the lock by readers

	writerDone chan struct{}

	commits atomic.Int64 // successful COMMITs, for tests
	batches atomic.Int64 // batches run, for tests

	// beforeBatch, when set (tests only), is called by the writer with the
	// size of each batch it has taken, before it applies it.
	beforeBatch func(n int)
}

// errClosed is returned by every method called after Close.
var errClosed = fmt.Errorf("sqlitestore: store is closed: %w", lockcore.ErrUnavailable)

// walSizeLimit is the size in bytes that SQLite cuts the -wal file back
// to when it starts the log over (PRAGMA journal_size_limit). Between
// checkpoints the log holds about 4 MB (1,000 pages), so this never cuts
// in normal service; it undoes the growth of a long read transaction (a
// backup's VACUUM INTO under load), which would otherwise keep the file
// at its largest size for good.
const walSizeLimit = 32 << 20

// syncPragmas are the DSN parameters of every connection that writes: a
// commit syncs the file before it returns, and fullfsync makes each sync
// on macOS an F_FULLFSYNC, which flushes the drive's own cache (a plain
// fsync there stops at the drive, so a power cut could lose an
// acknowledged write). Elsewhere SQLite ignores fullfsync.
const syncPragmas = "_pragma=synchronous(FULL)&_pragma=fullfsync(ON)"

// dsn returns the driver DSN for path with the pragmas every connection
// needs; extra is appended as more query parameters.
func dsn(path string, busy time.Duration, extra string) string {
	q := "_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&" + syncPragmas +
		"&_pragma=foreign_keys(ON)" +
		"&_pragma=journal_size_limit(" + strconv.Itoa(walSizeLimit) + ")"
	if extra != "" {
		q += "&" + extra
	}
	return fileURI(path, q)
}

// Open opens (creating it if needed) the SQLite database at path, brings its
// schema up to date with the embedded migrations and starts the writer. A
// database it creates is readable and writable by its owner only (0600;
// SQLite gives its -wal and -shm files the same), since it holds token
// hashes, lease ids and metadata; an existing file keeps its mode. (On
// Windows a file's mode bits do not limit who reads it: the folder's
// permissions do.) The
// error wraps lockcore.ErrUnavailable when the file cannot be opened or is
// locked for longer than the busy timeout.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.MaxReadConns <= 0 {
		opts.MaxReadConns = 8
	}
	if opts.MaxLinger == 0 {
		opts.MaxLinger = 500 * time.Microsecond
	}
	s := &Store{
		path:       path,
		now:        opts.Now,
		maxBatch:   opts.MaxBatch,
		maxLinger:  opts.MaxLinger,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		opened:     time.Now(),
	}

	// Best effort: if the file cannot be made here (no such directory, say),
	// SQLite's own open below fails with its error.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	}
	var err error
	s.wdb, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	fail := func(what string, err error) (*Store, error) {
		s.closeDB()
		return nil, translate(what+" "+path, err)
	}
	if s.wconn, err = s.wdb.Conn(ctx); err != nil {
		return fail("open", explainCantOpen(path, err))
	}
	if err = quickCheck(ctx, s.wconn, path); err != nil {
		s.closeDB()
		return nil, err
	}
	if err = migrate(ctx, s.wconn); err != nil {
		return fail("migrate", err)
	}
	if s.w, err = prepareWrite(ctx, s.wconn); err != nil {
		return fail("prepare", err)
	}
	// The file's clock (the health probe's row): the latest time any
	// writer of the file ran at, an earlier run's or another process's
	// (see syncClock). Leases that had expired by then stay expired (see
	// clampExpiries).
	var lastRun int64
	if err = s.w.clockRead.QueryRowContext(ctx).Scan(&lastRun); err != nil {
		return fail("read the health probe", err)
	}
	// One write before serving: a file SQLite could only open read-only
	// (no write permission on it, a read-only filesystem) opens and
	// migrates without complaint when it is up to date, and the server
	// would then answer every write 503 for ever. It never lowers the
	// file's clock: another process may be writing the file at that time.
	s.lastNow = s.nowMs()
	if _, err = s.w.clockRaise.ExecContext(ctx, s.lastNow); err != nil {
		if isReadOnly(err) {
			err = fmt.Errorf("%w (the user running octostore must be able to write the file, its -wal and -shm files and their directory)", err)
		}
		return fail("write", err)
	}
	if s.files, err = statFiles(path); err != nil {
		return fail("stat", err)
	}
	// The clock may have been set back since the last run (see
	// clampExpiries). The scan is a read first, so that a token command
	// run beside a server holds no write lock over it.
	var stretched bool
	if err = s.wconn.QueryRowContext(ctx, stretchedLeases, s.lastNow, lastRun).Scan(&stretched); err != nil {
		return fail("check lease expiries", err)
	}
	if stretched {
		if err = s.clampAtOpen(ctx); err != nil {
			return fail("clamp lease expiries", err)
		}
	}
	// The file's clock as Open leaves it (clockRaise or clampAtOpen): a
	// lower one found by a batch means another process has lowered it
	// since (see syncClock), also before this process's first batch.
	s.fileClock = max(lastRun, s.lastNow)
	s.clockFloor.Store(s.lastNow)

	s.rdb, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, "_pragma=query_only(1)"))
	if err != nil {
		return fail("open", err)
	}
	s.rdb.SetMaxOpenConns(opts.MaxReadConns)
	s.rdb.SetMaxIdleConns(opts.MaxReadConns)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if s.r, err = prepareRead(ctx, s.rdb); err != nil {
		return fail("prepare", err)
	}

	go s.writeLoop()
	return s, nil
}

// explainCantOpen adds to SQLite's "unable to open database file"
// (SQLITE_CANTOPEN), which names no cause, what is wrong with path and
// what to do; other errors pass unchanged.
func explainCantOpen(path string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_CANTOPEN {
		return err
	}
	dir := filepath.Dir(path)
	switch fi, serr := os.Stat(dir); {
	case errors.Is(serr, os.ErrNotExist) || serr == nil && !fi.IsDir():
		return fmt.Errorf("%w (the directory %s does not exist: create it, or give another database file)", err, dir)
	case serr != nil:
		return fmt.Errorf("%w (the directory %s cannot be reached: %v)", err, dir, serr)
	}
	if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
		return fmt.Errorf("%w (%s is a directory: give the database file inside it)", err, path)
	}
	return fmt.Errorf("%w (the user running octostore must be able to read and write %s, its -wal and -shm files, which another user's command may have left behind: check their owner, and their directory)", err, path)
}

// Path returns the database file path given to Open.
func (s *Store) Path() string { return s.path }

// Ping checks that the store is open, that the database answers a query on
// a read connection, and that the writer commits a write (of one row of
// its own, fsync'd like any write) before ctx ends: every lock operation
// is a write, so a writer that is stuck (a lock another process holds on
// the file, a stalled disk) or writes that cannot be stored (a full disk)
// make the store unavailable even while reads work. It also fails once
// an operation has found the file damaged, until a restart (whose
// quick_check then refuses the file). Otherwise the error wraps
// lockcore.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return errClosed
	}
	if d := s.damage.Load(); d != nil {
		return fmt.Errorf("sqlitestore: ping: %w: %s found the database file damaged (%s): stop every process using it, move it and its -wal and -shm files aside, and bring back a backup with `octostore restore`", lockcore.ErrUnavailable, d.what, d.err)
	}
	var one int
	if err := s.r.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return s.translate("ping", err)
	}
	return s.pingWriter(ctx)
}

// Close lets the writer finish the writes already queued, stops it and
// closes the database. Calls after Close (including a second Close), and
// reads that were under way when it closed the database, fail with an
// error wrapping lockcore.ErrUnavailable. When the -wal file was deleted
// or replaced while the store had it open, the only copy of the writes it
// holds is in the deleted file: Close copies them into the database file,
// and its error says so if that copy fails (a full disk, say), since
// those writes are then lost.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.closed = true
	s.shut.Store(true)
	s.signal()
	s.mu.Unlock()
	<-s.writerDone
	s.running.Lock() // a lone caller's batch may still be running
	defer s.running.Unlock()
	lost := s.lastCheckpoint()
	return errors.Join(lost, s.closeDB())
}

// lastCheckpoint copies the write-ahead log into the database file when
// the -wal file was deleted or replaced since Open, and returns an error
// if that copy does not complete. SQLite makes the same copy when the last
// connection closes, but says nothing when it fails; with the -wal still
// in place nothing is lost then (the next Open reads it), so only the
// deleted case is checked.
func (s *Store) lastCheckpoint() error {
	wal := s.files[1]
	if fi, err := os.Stat(wal.name); err == nil && os.SameFile(fi, wal.info) {
		return nil
	}
	var busy, frames, copied int
	err := s.wconn.QueryRowContext(bg, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &copied)
	// busy is also set when every page was copied but a reader kept
	// SQLite from emptying the log (TRUNCATE waits for readers): the
	// database file then holds every write, and nothing is lost.
	if err == nil && busy != 0 && copied < frames {
		err = fmt.Errorf("%d of %d pages copied, the rest kept by a reader", copied, frames)
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlitestore: close: %s was deleted or replaced while the server had it open, and the writes it held could not be copied into %s (%v): they are lost and the file may be damaged; start the server again to see whether it is (a damaged file is refused), and if so bring back a backup with `octostore restore`, whose fence floor keeps fencing tokens above every one issued",
		wal.name, s.path, err)
}

func (s *Store) isClosed() bool { return s.shut.Load() }

// closeDB closes statements, the write connection and both pools.
func (s *Store) closeDB() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	if s.r != nil {
		errs = append(errs, s.r.close())
	}
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitestore: close: %w", err)
	}
	return nil
}

// nowMs returns the store clock in Unix milliseconds.
func (s *Store) nowMs() int64 { return s.now().UnixMilli() }

// readNowMs is the time the reads judge expiry by: the store clock, or
// the latest time a write ran at if that is later (see clockFloor).
func (s *Store) readNowMs() int64 { return max(s.nowMs(), s.clockFloor.Load()) }

// msTime turns Unix milliseconds into a UTC time.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// translate maps a database or context error onto lockcore's sentinels:
// context ends, busy/locked databases, I/O errors, a damaged file and a
// closed pool wrap lockcore.ErrUnavailable (keeping the detail in the
// message, and for a damaged file what to do); anything else is returned
// with context but no sentinel (an internal error).
func translate(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, lockcore.ErrUnavailable) {
		return err
	}
	if damaged(err) {
		return fmt.Errorf("sqlitestore: %s: %w: %w (the database file is damaged: stop every process using it, move it and its -wal and -shm files aside, and bring back a backup with `octostore restore`)", what, lockcore.ErrUnavailable, err)
	}
	if unavailable(err) {
		return fmt.Errorf("sqlitestore: %s: %w: %w", what, lockcore.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlitestore: %s: %w", what, err)
}

// translate is the package's translate, which also remembers that the
// file was found damaged (see Ping).
func (s *Store) translate(what string, err error) error {
	if damaged(err) {
		s.damage.CompareAndSwap(nil, &damageSeen{what, err.Error()})
	}
	return translate(what, err)
}

// damageSeen is the first operation that found the file damaged, and
// SQLite's words.
type damageSeen struct{ what, err string }

// damaged reports whether err is SQLite's report of a damaged file
// (SQLITE_CORRUPT, SQLITE_NOTADB): not a bug of the caller, and not one
// that retrying mends.
func damaged(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB
}

func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) {
		return true
	}
	// database/sql's errors for a closed pool or statement have no exported
	// value; a call racing Close gets one of them.
	if msg := err.Error(); msg == "sql: database is closed" || msg == "sql: statement is closed" {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
			sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_READONLY:
			return true
		}
	}
	return false
}

// quickCheck runs SQLite's PRAGMA quick_check (every page of every table
// and index is read and its structure checked; linear in the file's
// size) and returns an error naming the damage and what to do when the
// file is corrupt. Without it a damaged page shows only when a request
// touches it: that request fails, and /health, which reads and writes
// pages of its own, goes on saying ok.
func quickCheck(ctx context.Context, c *sql.Conn, path string) error {
	detail, err := integrityProblems(ctx, c)
	if err != nil {
		return translate("check "+path, err)
	}
	if detail != "" {
		return damagedFile(path, detail)
	}
	return nil
}

// damageDetail sorts an error of quick_check: SQLite's report of a
// damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) is returned as the damage's
// detail; anything else (an ended context, busy, I/O, cannot open) says
// nothing about the file's content and is returned as the error, so that
// an interrupted Open is never reported as a damaged file.
func damageDetail(err error) (detail string, _ error) {
	if damaged(err) {
		return err.Error(), nil
	}
	return "", err
}

// integrityProblems runs SQLite's quick_check on c. detail names the
// damage found ("" for none), also when SQLite's answer is an error that
// means a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB); err is any other
// failure (an ended context, busy, I/O), which says nothing about the
// file's content.
func integrityProblems(ctx context.Context, c *sql.Conn) (detail string, err error) {
	rows, err := c.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return damageDetail(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return damageDetail(err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return damageDetail(err)
	}
	return strings.Join(problems, "; "), nil
}

// damagedFile is the error for a file that quick_check found damaged.
func damagedFile(path, detail string) error {
	return fmt.Errorf("sqlitestore: %s is damaged (%s): stop every process using it, move it and its -wal and -shm files aside, and bring back a backup with `octostore restore`", path, detail)
}

// clampExpiries (?1 the store clock now, ?2 the latest earlier clock
// reading known, both Unix ms) shortens every lease that has more than
// its TTL left to expire TTL from now, and keeps expired every lease that
// had expired by ?2. Expiry instants are wall-clock readings; when the
// clock is set back, a lease would otherwise stay held for as long as the
// clock went back on top of its TTL (a 60 s lease of a crashed holder
// blocking its lock for an hour), and a lease that had already expired
// (and was shown free) would be held again. A clamped lease still lasts
// at least as long as its holder was promised: it expires TTL after this
// moment, which is later than TTL after the holder's last acquire or
// renew.
const clampExpiries = `UPDATE locks SET expires_at_ms = CASE WHEN expires_at_ms <= ?2 THEN ?1 ELSE ?1 + ttl_ms END
 WHERE expires_at_ms > ?1 + ttl_ms OR (expires_at_ms > ?1 AND expires_at_ms <= ?2)`

// stretchedLeases (?1, ?2 as for clampExpiries) says whether
// clampExpiries would change any lease.
const stretchedLeases = `SELECT EXISTS (SELECT 1 FROM locks
 WHERE expires_at_ms > ?1 + ttl_ms OR (expires_at_ms > ?1 AND expires_at_ms <= ?2))`

// clockStepMs is how far back the clock must go between two batches for
// the writer to clamp expiries (clampExpiries scans every lock); after a
// smaller step, reads and writes judge expiry by the latest time a write
// ran at (lastNow, clockFloor) until the clock catches up, which
// lengthens leases by less than this and never revives an expired one.
const clockStepMs = 1000

// clockLagMs is how far the file's clock may lag the time this process's
// writes ran at (see commitClock); less than the shortest TTL.
const clockLagMs = 250

// filesCheckMs is how often, at most, a batch checks the database's files
// (checkFiles: three stats, ≈ 4 µs here, which every lone write would
// otherwise pay). Writes acknowledged in the moments between a deletion
// and its check are at risk as before; every write after it is refused.
const filesCheckMs = 100

// openFile is a file of the database and what Stat said of it at Open.
type openFile struct {
	name string
	info os.FileInfo
}

// statFiles returns the database file and its -wal and -shm files, which
// exist while the store has the database open.
func statFiles(path string) ([]openFile, error) {
	var files []openFile
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		files = append(files, openFile{name, fi})
	}
	return files, nil
}

// checkFiles returns an error wrapping lockcore.ErrUnavailable when the
// database file or its -wal or -shm file has been deleted or replaced
// since Open. SQLite goes on using the files it has open and does not
// notice: writes to a deleted -wal are acknowledged and then lost at the
// next crash (a lock acquired then is free again, for a second lease; the
// fencing tokens, which follow the clock, still go up), and another process
// (octostore token, backup) opening the database meanwhile uses other
// files than the server's, so its writes are lost as well.
func (s *Store) checkFiles() error {
	for _, f := range s.files {
		fi, err := os.Stat(f.name)
		if err == nil && os.SameFile(fi, f.info) {
			continue
		}
		return fmt.Errorf("sqlitestore: %s was deleted or replaced while the server had it open, so writes are refused (they would be lost at the next crash, and a lock acquired meanwhile given to a second lease); stop the server with SIGTERM, not kill -9 (its shutdown copies what it wrote into %s), and never delete the -wal and -shm files of a database in use: %w",
			f.name, s.path, lockcore.ErrUnavailable)
	}
	return nil
}

// clampAtOpen runs clampExpiries in one transaction with a fresh read of
// the file's clock, which another process may have moved since Open read
// it, and sets the file's clock to the time of the clamp (see syncClock).
// That time is read once the transaction holds the write lock, and s.lastNow
// raised to it: a server beside this process may have acknowledged leases
// while Open waited for that lock, and measured from Open's earlier clock
// reading they would look stretched and be cut short of their TTL.
func (s *Store) clampAtOpen(ctx context.Context) error {
	if _, err := s.w.begin.ExecContext(ctx); err != nil {
		return err
	}
	now := max(s.nowMs(), s.lastNow)
	err := func() error {
		var last int64
		if err := s.w.clockRead.QueryRowContext(ctx).Scan(&last); err != nil {
			return err
		}
		if _, err := s.wconn.ExecContext(ctx, clampExpiries, now, last); err != nil {
			return err
		}
		_, err := s.w.healthProbe.ExecContext(ctx, now)
		return err
	}()
	if err == nil {
		_, err = s.w.commit.ExecContext(ctx)
	}
	if err != nil {
		_, _ = s.w.rollback.ExecContext(bg)
		return err
	}
	s.lastNow = now
	return nil
}

// isReadOnly reports whether err is SQLite's "attempt to write a readonly
// database" (any of its extended codes).
func isReadOnly(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY
}

// ctxErr is the error of a caller whose context ended; unknown says whether
// the write may have been committed (true) or was certainly not applied.
func ctxErr(ctx context.Context, unknown bool) error {
	if unknown {
		return fmt.Errorf("sqlitestore: %w: %w (the write may or may not have been committed)", lockcore.ErrUnavailable, context.Cause(ctx))
	}
	return fmt.Errorf("sqlitestore: %w: %w (the write was not applied)", lockcore.ErrUnavailable, context.Cause(ctx))
}

// sinceOpen is the time since Open on the monotonic clock, in ns, plus 1
// so that it is never 0 (beginAt's "no batch in BEGIN").
func (s *Store) sinceOpen() int64 { return int64(time.Since(s.opened)) + 1 }

// lockWaitNoted is how long the writer must have waited in BEGIN before an
// abandoned write's error blames the write lock: a BEGIN that takes the
// lock at once lasts microseconds.
const lockWaitNoted = 100 * time.Millisecond

// abandonedErr is ctxErr for a write whose context ended while it waited
// for a batch. When the batch running then has waited lockWaitNoted or
// more for the database's write lock, the error says so: the context's
// own error ("context deadline exceeded") names no cause, and the usual
// one is another process holding the lock.
func (s *Store) abandonedErr(ctx context.Context, unknown bool) error {
	err := ctxErr(ctx, unknown)
	if at := s.beginAt.Load(); at != 0 {
		if waited := time.Duration(s.sinceOpen() - at); waited >= lockWaitNoted {
			// Seconds in one format whatever the wait ("0.380s", "61.000s"),
			// not Duration's "380ms", "1.2s", "1m1s": the HTTP server's log
			// throttle tells causes apart by their text without digits.
			return fmt.Errorf("%w; the store had waited %.3fs for the database's write lock, which another connection holds (another process using the file: a second server, an operator command, a backup tool, a sqlite3 shell)", err, waited.Seconds())
		}
	}
	return err
}

var (
	_ lockcore.Store         = (*Store)(nil)
	_ lockcore.TokenLocks    = (*Store)(nil)
	_ lockcore.AccountTokens = (*Store)(nil)
)
