// Package sqlitestore is a durable lockcore.Store in one SQLite file, on the
// pure-Go driver modernc.org/sqlite (so CGO_ENABLED=0 builds work).
//
// Durability: the database runs in WAL mode with synchronous=FULL, and every
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
// error in a lock write rolls the whole batch back, and every operation of
// the batch gets an error wrapping lockcore.ErrUnavailable. Later operations
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
// applied: its caller returns when that commit ends.
//
// Panics: a write that panics (a bug) rolls its whole batch back, wherever
// it ran; the other operations of the batch get an error wrapping
// lockcore.ErrUnavailable, and the panic goes on on the goroutine of the
// write's caller (with the stack where it happened in its message), so that
// an HTTP server's recovery fails that one request and the store keeps
// working.
//
// Reads (Get, List, AccountByID, AccountByToken, CountAccounts, Ping) run on
// a separate pool of read-only connections concurrently with the writer;
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
	"net/url"
	"os"
	"strconv"
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

// dsn returns the driver DSN for path with the pragmas every connection
// needs; extra is appended as more query parameters.
func dsn(path string, busy time.Duration, extra string) string {
	p := (&url.URL{Path: path}).EscapedPath()
	q := "_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=foreign_keys(ON)"
	if extra != "" {
		q += "&" + extra
	}
	return "file:" + p + "?" + q
}

// Open opens (creating it if needed) the SQLite database at path, brings its
// schema up to date with the embedded migrations and starts the writer. A
// database it creates is readable and writable by its owner only (0600;
// SQLite gives its -wal and -shm files the same), since it holds token
// hashes, lease ids and metadata; an existing file keeps its mode. The
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
		return fail("open", err)
	}
	if err = migrate(ctx, s.wconn); err != nil {
		return fail("migrate", err)
	}
	if s.w, err = prepareWrite(ctx, s.wconn); err != nil {
		return fail("prepare", err)
	}

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

// Path returns the database file path given to Open.
func (s *Store) Path() string { return s.path }

// Ping checks that the store is open, that the database answers a query on
// a read connection, and that the writer commits a write (of one row of
// its own, fsync'd like any write) before ctx ends: every lock operation
// is a write, so a writer that is stuck (a lock another process holds on
// the file, a stalled disk) or writes that cannot be stored (a full disk)
// make the store unavailable even while reads work. Otherwise the error
// wraps lockcore.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return errClosed
	}
	var one int
	if err := s.r.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return translate("ping", err)
	}
	return s.pingWriter(ctx)
}

// Close lets the writer finish the writes already queued, stops it and
// closes the database. Calls after Close (including a second Close), and
// reads that were under way when it closed the database, fail with an
// error wrapping lockcore.ErrUnavailable.
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
	return s.closeDB()
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

// msTime turns Unix milliseconds into a UTC time.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// translate maps a database or context error onto lockcore's sentinels:
// context ends, busy/locked databases, I/O errors and a closed pool wrap
// lockcore.ErrUnavailable (keeping the detail in the message); anything else
// is returned with context but no sentinel (an internal error).
func translate(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, lockcore.ErrUnavailable) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("sqlitestore: %s: %w: %w", what, lockcore.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlitestore: %s: %w", what, err)
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

// ctxErr is the error of a caller whose context ended; unknown says whether
// the write may have been committed (true) or was certainly not applied.
func ctxErr(ctx context.Context, unknown bool) error {
	if unknown {
		return fmt.Errorf("sqlitestore: %w: %w (the write may or may not have been committed)", lockcore.ErrUnavailable, context.Cause(ctx))
	}
	return fmt.Errorf("sqlitestore: %w: %w (the write was not applied)", lockcore.ErrUnavailable, context.Cause(ctx))
}

var (
	_ lockcore.Store         = (*Store)(nil)
	_ lockcore.TokenLocks    = (*Store)(nil)
	_ lockcore.AccountTokens = (*Store)(nil)
)
