package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// writeStmts are the statements of the write connection, prepared once.
type writeStmts struct {
	begin, commit, rollback            *sql.Stmt
	savepoint, releaseSP, rollbackToSP *sql.Stmt

	lockSelect   *sql.Stmt
	lockSelectAs *sql.Stmt
	lockPurge    *sql.Stmt
	countRows    *sql.Stmt
	countHeld    *sql.Stmt
	nextFence    *sql.Stmt
	lockInsert   *sql.Stmt
	lockRetry    *sql.Stmt
	lockRenew    *sql.Stmt
	lockRelease  *sql.Stmt

	// The TokenLocks variants: the same with a token condition.
	lockRenewAs   *sql.Stmt
	lockReleaseAs *sql.Stmt
	tokenIs       *sql.Stmt

	operatorByLogin *sql.Stmt
	accountInsert   *sql.Stmt
	githubUpsert    *sql.Stmt
	accountByID     *sql.Stmt
	tokenInsert     *sql.Stmt
	tokenOwner      *sql.Stmt
	tokenDelete     *sql.Stmt
	tokensDelete    *sql.Stmt

	healthProbe *sql.Stmt
	clockRead   *sql.Stmt
	clockRaise  *sql.Stmt
}

// readStmts are the statements of the read pool, prepared once (database/sql
// prepares each again lazily on every pooled connection that runs it).
type readStmts struct {
	ping           *sql.Stmt
	lockGet        *sql.Stmt
	lockList       *sql.Stmt
	accountByID    *sql.Stmt
	accountByToken *sql.Stmt
	accountIDByTok *sql.Stmt
	countAccounts  *sql.Stmt
}

const lockCols = `lease_id, fence, expires_at_ms, ttl_ms, metadata`

type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// stmtDef is one statement to prepare and where to keep it.
type stmtDef struct {
	dst   **sql.Stmt
	query string
}

// prepareAll prepares every statement of defs; on failure it closes those
// already prepared.
func prepareAll(ctx context.Context, p preparer, defs []stmtDef) error {
	for i, d := range defs {
		st, err := p.PrepareContext(ctx, d.query)
		if err != nil {
			closeAll(defs[:i])
			return fmt.Errorf("prepare %q: %w", d.query, err)
		}
		*d.dst = st
	}
	return nil
}

// closeAll closes every prepared statement of defs. It leaves the fields
// set: a read that passed the store's closed check just before Close may
// still load one, and must get "statement is closed" (which translate maps
// to ErrUnavailable) rather than a nil pointer. Closing a statement twice
// is harmless.
func closeAll(defs []stmtDef) error {
	var errs []error
	for _, d := range defs {
		if *d.dst != nil {
			errs = append(errs, (*d.dst).Close())
		}
	}
	return errors.Join(errs...)
}

func (w *writeStmts) defs() []stmtDef {
	return []stmtDef{
		{&w.begin, `BEGIN IMMEDIATE`},
		{&w.commit, `COMMIT`},
		{&w.rollback, `ROLLBACK`},
		{&w.savepoint, `SAVEPOINT op`},
		{&w.releaseSP, `RELEASE op`},
		{&w.rollbackToSP, `ROLLBACK TO op`},

		// (now): the health check's write (migration 0002).
		{&w.healthProbe, `UPDATE health_probe SET at_ms = ?1 WHERE id = 1`},
		// The file's clock: the latest time any writer of the file ran
		// at (see syncClock); (now) for clockRaise, which never lowers it.
		{&w.clockRead, `SELECT at_ms FROM health_probe WHERE id = 1`},
		{&w.clockRaise, `UPDATE health_probe SET at_ms = max(at_ms, ?1) WHERE id = 1`},

		// (account, name)
		{&w.lockSelect, `SELECT ` + lockCols + ` FROM locks WHERE account_id = ?1 AND name = ?2`},
		// (account, name, token hash): always one row: whether the token
		// belongs to the account, then the lock's columns (NULL when there
		// is no row).
		{&w.lockSelectAs, `SELECT EXISTS (SELECT 1 FROM tokens WHERE hash = ?3 AND account_id = ?1),
		 l.lease_id, l.fence, l.expires_at_ms, l.ttl_ms, l.metadata
		 FROM (SELECT 1) LEFT JOIN locks l ON l.account_id = ?1 AND l.name = ?2`},
		// (account, limit): the account's rows, expired or not, counted up
		// to limit.
		{&w.countRows, `SELECT count(*) FROM (SELECT 1 FROM locks WHERE account_id = ?1 LIMIT ?2)`},
		// (account, now): forget the account's expired leases, so that the
		// rows an account keeps stay bounded by its quota.
		{&w.lockPurge, `DELETE FROM locks WHERE account_id = ?1 AND expires_at_ms <= ?2`},
		// (account, now, limit): unexpired locks, counted up to limit.
		{&w.countHeld, `SELECT count(*) FROM
		 (SELECT 1 FROM locks WHERE account_id = ?1 AND expires_at_ms > ?2 LIMIT ?3)`},
		// (account, now in microseconds): the next fencing token,
		// max(counter + 1, now), stored back (see acquireStep).
		{&w.nextFence, `INSERT INTO fences(account_id, fence) VALUES (?1, max(1, ?2))
		 ON CONFLICT(account_id) DO UPDATE SET fence = max(fence + 1, ?2) RETURNING fence`},
		// (account, name, lease, fence, expires, ttl, metadata): a new lease,
		// replacing an expired row if there is one.
		{&w.lockInsert, `INSERT INTO locks(account_id, name, lease_id, fence, expires_at_ms, ttl_ms, metadata)
		 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
		 ON CONFLICT(account_id, name) DO UPDATE SET lease_id = excluded.lease_id,
		   fence = excluded.fence, expires_at_ms = excluded.expires_at_ms,
		   ttl_ms = excluded.ttl_ms, metadata = excluded.metadata`},
		// (account, name, expires, ttl, metadata or NULL to keep it)
		{&w.lockRetry, `UPDATE locks SET expires_at_ms = ?3, ttl_ms = ?4, metadata = coalesce(?5, metadata)
		 WHERE account_id = ?1 AND name = ?2`},
		// (account, name, lease, now, expires, ttl)
		{&w.lockRenew, `UPDATE locks SET expires_at_ms = ?5, ttl_ms = ?6
		 WHERE account_id = ?1 AND name = ?2 AND lease_id = ?3 AND expires_at_ms > ?4
		 RETURNING fence, metadata`},
		// (account, name, lease, now)
		{&w.lockRelease, `DELETE FROM locks
		 WHERE account_id = ?1 AND name = ?2 AND lease_id = ?3 AND expires_at_ms > ?4`},
		// (account, name, lease, now, expires, ttl, token hash): lockRenew,
		// done only if the token belongs to the account.
		{&w.lockRenewAs, `UPDATE locks SET expires_at_ms = ?5, ttl_ms = ?6
		 WHERE account_id = ?1 AND name = ?2 AND lease_id = ?3 AND expires_at_ms > ?4
		   AND EXISTS (SELECT 1 FROM tokens WHERE hash = ?7 AND account_id = ?1)
		 RETURNING fence, metadata`},
		// (account, name, lease, now, token hash): lockRelease, done only if
		// the token belongs to the account.
		{&w.lockReleaseAs, `DELETE FROM locks
		 WHERE account_id = ?1 AND name = ?2 AND lease_id = ?3 AND expires_at_ms > ?4
		   AND EXISTS (SELECT 1 FROM tokens WHERE hash = ?5 AND account_id = ?1)`},
		// (token hash, account): a row if the token belongs to the account.
		{&w.tokenIs, `SELECT 1 FROM tokens WHERE hash = ?1 AND account_id = ?2`},

		// (login)
		{&w.operatorByLogin, `SELECT id, created_at_ms FROM accounts WHERE login = ?1 AND github_id IS NULL`},
		// (id, login, created)
		{&w.accountInsert, `INSERT INTO accounts(id, login, github_id, created_at_ms) VALUES (?1, ?2, NULL, ?3)`},
		// (id, login, github id, created)
		{&w.githubUpsert, `INSERT INTO accounts(id, login, github_id, created_at_ms) VALUES (?1, ?2, ?3, ?4)
		 ON CONFLICT(github_id) DO UPDATE SET login = excluded.login
		 RETURNING id, created_at_ms`},
		// (id)
		{&w.accountByID, `SELECT login, github_id, created_at_ms FROM accounts WHERE id = ?1`},
		// (hash, account, created)
		{&w.tokenInsert, `INSERT INTO tokens(hash, account_id, created_at_ms) VALUES (?1, ?2, ?3)
		 ON CONFLICT(hash) DO NOTHING`},
		// (hash)
		{&w.tokenOwner, `SELECT account_id FROM tokens WHERE hash = ?1`},
		// (hash)
		{&w.tokenDelete, `DELETE FROM tokens WHERE hash = ?1 RETURNING account_id`},
		{&w.tokensDelete, `DELETE FROM tokens WHERE account_id = ?1`},
	}
}

func prepareWrite(ctx context.Context, c *sql.Conn) (*writeStmts, error) {
	w := new(writeStmts)
	if err := prepareAll(ctx, c, w.defs()); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *writeStmts) close() error { return closeAll(w.defs()) }

func (r *readStmts) defs() []stmtDef {
	return []stmtDef{
		{&r.ping, `SELECT 1`},
		// (account, name)
		{&r.lockGet, `SELECT ` + lockCols + ` FROM locks WHERE account_id = ?1 AND name = ?2`},
		// (account, now)
		{&r.lockList, `SELECT name, ` + lockCols + ` FROM locks
		 WHERE account_id = ?1 AND expires_at_ms > ?2 ORDER BY name`},
		// (id)
		{&r.accountByID, `SELECT login, github_id, created_at_ms FROM accounts WHERE id = ?1`},
		// (hash)
		{&r.accountByToken, `SELECT a.id, a.login, a.github_id, a.created_at_ms
		 FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?1`},
		// (hash)
		{&r.accountIDByTok, `SELECT account_id FROM tokens WHERE hash = ?1`},
		{&r.countAccounts, `SELECT count(*) FROM accounts`},
	}
}

func prepareRead(ctx context.Context, db *sql.DB) (*readStmts, error) {
	r := new(readStmts)
	if err := prepareAll(ctx, db, r.defs()); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *readStmts) close() error { return closeAll(r.defs()) }
