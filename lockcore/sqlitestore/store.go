// Package sqlitestore is a durable lockcore.Store in one SQLite file, on the
// pure-Go driver modernc.org/sqlite (so CGO_ENABLED=0 builds work).
//
// Durability: the database runs in WAL mode, and every write method
// (Acquire, Renew, Release and the account and token writes) returns
// success, or an error of the operation itself (such as
// lockcore.ErrLeaseNotCurrent), only after its transaction has been
// committed AND an fdatasync of the write-ahead log (the "-wal" file) that
// began after that commit has completed; only errors wrapping
// lockcore.ErrUnavailable, which promise nothing, may come sooner. The write connection runs
// synchronous=NORMAL, so SQLite's COMMIT writes the transaction's frames to
// the WAL without syncing them; the store syncs them itself (see Group
// commit). In WAL mode NORMAL is still corruption-safe: checkpoints sync the
// WAL before copying it into the database file and sync the database file
// afterwards. A process crash (SIGKILL, panic) loses nothing that COMMIT
// has written, since the frames are already in the OS page cache; only a
// power loss or kernel crash can drop a committed batch, and only one whose
// fsync had not completed, so none of its callers had been answered.
//
// If an fsync fails (or the WAL file is found replaced), the callers waiting
// on it get an error wrapping lockcore.ErrUnavailable (their writes may or
// may not be durable), and from then on every method fails with
// ErrUnavailable (queued writes are not applied) until the store is closed
// and opened again: on Linux a
// failed fsync is not retryable (the kernel may have dropped the dirty
// pages and a second fsync would succeed without writing them).
//
// Group commit: all writes go through one writer goroutine that owns the
// only write connection. It takes every write that is waiting (up to
// Options.MaxBatch), applies them one after another inside ONE transaction,
// each in its own SAVEPOINT so that one operation's failure does not undo the
// others, and commits once. Later operations of a batch see the effects of
// earlier ones, so the batch is equivalent to running its operations one by
// one in queue order. The writer does not wait for the disk: it hands the
// finished batch, with each operation's outcome, to one syncer goroutine
// and starts the next batch at once. The syncer takes every batch handed to
// it so far, in order, calls fdatasync on the WAL once (which covers every
// frame written before the call, so every batch committed before it began),
// then answers all their callers in queue order. So while the syncer waits
// for the disk the writer applies and commits the next batch, and the
// busier the store, the more batches share each fsync. After answering
// several callers the syncer lingers briefly (Options.MaxLinger) so that
// their next writes, usually sent at once, share the next fsync rather
// than straddle two. A batch that committed nothing (none of its
// operations changed anything) needs no fsync of its own but is answered
// in the same order, after the fsync of the batches before it, because its
// answers may depend on their effects.
//
// Cancellation: a write whose context ends before the writer applies it is
// never applied; its caller gets an error wrapping lockcore.ErrUnavailable.
// If the context ends after the writer has applied it but before its answer
// (that is, before the commit and the fsync after it have completed), the
// caller also returns at once with ErrUnavailable and the outcome is unknown
// (as ErrUnavailable documents): the write may still become durable.
//
// Reads (Get, List, AccountByID, AccountByToken, CountAccounts, Ping) run on
// a separate pool of read-only connections concurrently with the writer;
// under WAL they see every write that was acknowledged before they began.
// They may also see a committed write whose fsync has not completed yet
// (until the next fsync completes: at most the rest of the fsync under way,
// a linger and one more fsync), whose caller has therefore not been
// answered. That keeps the writers' promise: no caller is told anything
// about its write before it is durable, and a process crash loses no
// committed write. Only a power loss or kernel crash in that window can
// undo what a reader saw: say, a lease whose Acquire was never answered
// and, after the restart, is not held, its fencing token free to be issued
// again to a later holder (a token no Acquire caller ever received). Redis
// with appendfsync always has the same power-loss window for the writes it
// has applied but not yet fsync'd, but it also holds its replies to reads
// until that fsync; this store does not hold reads.
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

	// MaxBatch bounds how many write operations share one transaction; 0
	// means 256. One fsync may cover several transactions.
	MaxBatch int

	// MaxReadConns bounds the read connection pool; 0 means 8.
	MaxReadConns int

	// MaxLinger bounds how long the syncer, after answering several
	// writes, waits for as many writes to be committed again before it
	// starts the next fsync (the callers it just answered usually come
	// straight back, and would otherwise need an fsync of their own). It
	// never waits longer than half the last fsync took, so a fast disk
	// lingers less. 0 means 500µs; negative means never linger.
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

	shut atomic.Bool // set by Close; read without the lock by readers

	writerDone chan struct{}

	// The hand-off from the writer to the syncer.
	smu          sync.Mutex
	synq         []*result     // batches committed, not yet answered, in order
	synqOps      int           // ops in synq
	writerExited bool          // the writer has returned: no more batches
	swake        chan struct{} // capacity 1: "synq or writerExited changed"
	syncerDone   chan struct{}

	walPath string
	wal     *os.File // the WAL, opened by Open; used only by the syncer
	failed  atomic.Pointer[error]

	commits atomic.Int64 // successful COMMITs, for tests
	batches atomic.Int64 // batches run, for tests

	// beforeBatch, when set (tests only), is called by the writer with the
	// size of each batch it has taken, before it applies it.
	beforeBatch func(n int)
	// afterCommit, when set (tests only), is called by the writer right
	// after each successful COMMIT, before the batch is handed to the
	// syncer, with the contexts of the ops the batch will answer.
	afterCommit func(ctxs []context.Context)
	// syncHook, when set (tests only), is called by the syncer instead of
	// the WAL fsync, with the real fsync as its argument.
	syncHook func(sync func() error) error
	// answerFirst (tests only) makes the syncer answer a group before it
	// syncs it: a deliberately broken order that the tests must catch.
	answerFirst bool
}

// errClosed is returned by every method called after Close.
var errClosed = fmt.Errorf("sqlitestore: store is closed: %w", lockcore.ErrUnavailable)

// dsn returns the driver DSN for path with the pragmas every connection
// needs and the given synchronous level (FULL or NORMAL); extra is appended
// as more query parameters.
func dsn(path string, busy time.Duration, synchronous, extra string) string {
	p := (&url.URL{Path: path}).EscapedPath()
	q := "_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(" + synchronous + ")" +
		"&_pragma=foreign_keys(ON)"
	if extra != "" {
		q += "&" + extra
	}
	return "file:" + p + "?" + q
}

// Open opens (creating it if needed) the SQLite database at path, brings its
// schema up to date with the embedded migrations and starts the writer. The
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
		swake:      make(chan struct{}, 1),
		syncerDone: make(chan struct{}),
	}

	// The write connection does not sync its commits (NORMAL): the syncer
	// fsyncs the WAL before any caller is answered. Read connections never
	// commit, so their level (FULL, as before) changes nothing; checkpoints
	// sync the same way at either level.
	var err error
	s.wdb, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, "NORMAL", "_txlock=immediate"))
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

	if err = s.openWAL(ctx); err != nil {
		return fail("open WAL of", err)
	}

	s.rdb, err = sql.Open("sqlite", dsn(path, opts.BusyTimeout, "FULL", "_pragma=query_only(1)"))
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
	go s.syncLoop()
	return s, nil
}

// openWAL opens the WAL that the write connection writes to, for the
// syncer to fsync. migrate has read the database on the write connection,
// so SQLite has opened (creating it if needed) that WAL, and the connection
// writes to it for as long as it is open (see syncWAL for why it stays the
// same file). Its name is SQLite's full path of the database (relative
// paths and symbolic links resolved) plus "-wal". A database that is not
// in WAL mode (say, on a file system without shared memory) is refused:
// without a WAL the write connection's synchronous=NORMAL is not durable.
func (s *Store) openWAL(ctx context.Context) error {
	var mode string
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, not WAL", mode)
	}
	var (
		seq        int
		name, file string
	)
	rows, err := s.wconn.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return err
		}
		if name == "main" {
			s.walPath = file + "-wal"
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if s.walPath == "" || !filepath.IsAbs(s.walPath) {
		return fmt.Errorf("no file for the main database (got %q)", s.walPath)
	}
	if s.wal, err = os.OpenFile(s.walPath, os.O_RDONLY, 0); err != nil {
		return fmt.Errorf("%w: %w", lockcore.ErrUnavailable, err)
	}
	return nil
}

// Path returns the database file path given to Open.
func (s *Store) Path() string { return s.path }

// Ping checks that the store is open, that no fsync of its WAL has failed
// and that the database answers a query on a read connection; otherwise the
// error wraps lockcore.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.unusable(); err != nil {
		return err
	}
	var one int
	if err := s.r.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return translate("ping", err)
	}
	return nil
}

// Close lets the writer finish the writes already queued and the syncer
// fsync and answer every batch committed, stops both and closes the
// database. Calls after Close (including a second Close) fail with an error
// wrapping lockcore.ErrUnavailable.
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
	<-s.syncerDone
	return s.closeDB()
}

// unusable returns the error every method returns once the store is closed
// (errClosed) or an fsync has failed, and nil while the store is usable.
func (s *Store) unusable() error {
	if s.shut.Load() {
		return errClosed
	}
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// closeDB closes statements, the write connection, both pools and the WAL
// file the syncer used.
func (s *Store) closeDB() error {
	var errs []error
	if s.wal != nil {
		errs = append(errs, s.wal.Close())
	}
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
	if err.Error() == "sql: database is closed" {
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

var _ lockcore.Store = (*Store)(nil)
