package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/octostore/octostore/lockcore"
)

var bg = context.Background()

func lease(name, leaseID string, fence, expires, ttl int64, meta sql.NullString) lockcore.Lease {
	return lockcore.Lease{
		Name:         name,
		LeaseID:      leaseID,
		FencingToken: fence,
		ExpiresAt:    msTime(expires),
		TTL:          time.Duration(ttl) * time.Millisecond,
		Metadata:     meta.String,
	}
}

// acquireInput validates the input of Acquire and AcquireAs and returns the
// TTL in milliseconds and the metadata to store (NULL for none).
func acquireInput(name string, opts lockcore.AcquireOptions) (ttl int64, meta sql.NullString, err error) {
	if err := lockcore.ValidateName(name); err != nil {
		return 0, meta, err
	}
	if err := lockcore.ValidateLeaseID(opts.LeaseID); err != nil {
		return 0, meta, err
	}
	if ttl, err = lockcore.TTLMillis(opts.TTL); err != nil {
		return 0, meta, err
	}
	if opts.MaxHeld < 1 {
		return 0, meta, fmt.Errorf("sqlitestore: acquire: MaxHeld must be at least 1 (got %d)", opts.MaxHeld)
	}
	if opts.Metadata != nil {
		meta = sql.NullString{String: *opts.Metadata, Valid: true}
	}
	return ttl, meta, nil
}

// renewInput validates the input of Renew and RenewAs and returns the TTL in
// milliseconds.
func renewInput(name, leaseID string, ttl time.Duration) (int64, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return 0, err
	}
	if err := lockcore.ValidateLeaseID(leaseID); err != nil {
		return 0, err
	}
	return lockcore.TTLMillis(ttl)
}

// releaseInput validates the input of Release and ReleaseAs.
func releaseInput(name, leaseID string) error {
	if err := lockcore.ValidateName(name); err != nil {
		return err
	}
	return lockcore.ValidateLeaseID(leaseID)
}

// tokenIs reports, inside the writer's transaction, whether the token hash
// tok belongs to accountID.
func (s *Store) tokenIs(what string, tok []byte, accountID string) (bool, error) {
	var one int
	err := s.w.tokenIs.QueryRowContext(bg, tok, accountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.translate(what, err)
	}
	return true, nil
}

// errToken is the error of a TokenLocks write whose token does not belong
// to the account.
func errToken(what string) error {
	return fmt.Errorf("sqlitestore: %s: token: %w", what, lockcore.ErrNotFound)
}

// acquireStep is the writer step of Acquire (tok nil) and AcquireAs (tok the
// token hash that must belong to accountID, checked first). Input has been
// validated; ttl is in milliseconds.
func (s *Store) acquireStep(now int64, tok []byte, accountID, name, leaseID string, ttl int64, maxHeld int, meta sql.NullString) (lockcore.AcquireResult, error) {
	w := s.w
	res := lockcore.AcquireResult{Now: msTime(now)}
	var (
		curLease        sql.NullString
		fence, exp, tms sql.NullInt64
		curMeta         sql.NullString
		err             error
	)
	if tok == nil {
		err = w.lockSelect.QueryRowContext(bg, accountID, name).Scan(&curLease, &fence, &exp, &tms, &curMeta)
	} else {
		// The token check rides on the lock's read: one statement.
		var tokenOK bool
		err = w.lockSelectAs.QueryRowContext(bg, accountID, name, tok).Scan(&tokenOK, &curLease, &fence, &exp, &tms, &curMeta)
		if err == nil && !tokenOK {
			return lockcore.AcquireResult{}, errToken("acquire")
		}
	}
	found := err == nil && curLease.Valid
	switch {
	case found && exp.Int64 > now && curLease.String == leaseID:
		// Idempotent retry of the current lease.
		if _, err := w.lockRetry.ExecContext(bg, accountID, name, now+ttl, ttl, meta); err != nil {
			return lockcore.AcquireResult{}, s.translate("acquire", err)
		}
		if meta.Valid {
			curMeta = meta
		}
		res.Acquired = true
		res.Lease = lease(name, curLease.String, fence.Int64, now+ttl, ttl, curMeta)
		return res, nil
	case found && exp.Int64 > now:
		res.Lease = lease(name, curLease.String, fence.Int64, exp.Int64, tms.Int64, curMeta)
		return res, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return lockcore.AcquireResult{}, s.translate("acquire", err)
	}
	// Free. Quota: while the account has fewer rows than its quota (expired
	// ones included) it cannot be at it, and nothing needs cleaning; only
	// at the quota are its expired rows dropped (this one included) and the
	// unexpired ones counted. An account's rows so stay bounded by its
	// quota without a DELETE on every acquire.
	var rows int64
	if err := w.countRows.QueryRowContext(bg, accountID, maxHeld).Scan(&rows); err != nil {
		return lockcore.AcquireResult{}, s.translate("acquire", err)
	}
	if rows >= int64(maxHeld) {
		if _, err := w.lockPurge.ExecContext(bg, accountID, now); err != nil {
			return lockcore.AcquireResult{}, s.translate("acquire", err)
		}
		var held int64
		if err := w.countHeld.QueryRowContext(bg, accountID, now, maxHeld).Scan(&held); err != nil {
			return lockcore.AcquireResult{}, s.translate("acquire", err)
		}
		if held >= int64(maxHeld) {
			return lockcore.AcquireResult{}, fmt.Errorf("sqlitestore: account holds %d unexpired locks: %w", held, lockcore.ErrLockLimitExceeded)
		}
	}
	// The fencing token: the account's counter plus one, but never below
	// the clock in microseconds (a hybrid logical clock; never below the
	// write's clamped time either, now, when the clock was set back).
	// Tokens rise by one between acquires within a microsecond and
	// otherwise follow the clock, so a database brought back from a copy
	// older than the tokens it handed out (without octostore restore)
	// still issues tokens above them, as long as the clock is right.
	var next int64
	if err := w.nextFence.QueryRowContext(bg, accountID, max(s.now().UnixMicro(), now*1000)).Scan(&next); err != nil {
		return lockcore.AcquireResult{}, s.translate("acquire", err)
	}
	if _, err := w.lockInsert.ExecContext(bg, accountID, name, leaseID, next, now+ttl, ttl, meta); err != nil {
		return lockcore.AcquireResult{}, s.translate("acquire", err)
	}
	res.Acquired = true
	res.Lease = lease(name, leaseID, next, now+ttl, ttl, meta)
	return res, nil
}

// acquire validates the input and runs acquireStep as one writer step.
func (s *Store) acquire(ctx context.Context, tok []byte, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	ttl, meta, err := acquireInput(name, opts)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	var res lockcore.AcquireResult
	err = s.writeClean(ctx, func(now int64) (err error) {
		res, err = s.acquireStep(now, tok, accountID, name, opts.LeaseID, ttl, opts.MaxHeld, meta)
		return err
	})
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	return res, nil
}

// Acquire implements lockcore.Locks: one atomic step in the writer's batch
// transaction, committed (fsync'd) before it returns.
func (s *Store) Acquire(ctx context.Context, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	return s.acquire(ctx, nil, accountID, name, opts)
}

// AcquireAs implements lockcore.TokenLocks: it is Acquire, done only if the
// token hash belongs to accountID. The token check and the acquire are one
// step of the writer (one extra primary-key lookup in the same batch
// transaction), so a token that RotateToken or RevokeToken retired before
// AcquireAs was called is refused. Input is validated first, with the errors
// of Acquire; then a token that does not belong to accountID (unknown,
// revoked, rotated away, or another account's) gives an error wrapping
// lockcore.ErrNotFound and changes nothing (no fencing token is spent).
// Otherwise the result and errors are those of Acquire.
func (s *Store) AcquireAs(ctx context.Context, token lockcore.TokenHash, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	return s.acquire(ctx, token[:], accountID, name, opts)
}

// renewStep is the writer step of Renew (tok nil) and RenewAs (tok the
// token hash that must belong to accountID). With a token, the token
// condition is part of the one conditional UPDATE; only when that changes
// no row is the token looked up, to tell a bad token (ErrNotFound) from a
// lease that is not current (ErrLeaseNotCurrent).
func (s *Store) renewStep(now int64, tok []byte, accountID, name, leaseID string, ttl int64) (lockcore.Lease, error) {
	var (
		fence int64
		meta  sql.NullString
		row   *sql.Row
	)
	if tok == nil {
		row = s.w.lockRenew.QueryRowContext(bg, accountID, name, leaseID, now, now+ttl, ttl)
	} else {
		row = s.w.lockRenewAs.QueryRowContext(bg, accountID, name, leaseID, now, now+ttl, ttl, tok)
	}
	err := row.Scan(&fence, &meta)
	if errors.Is(err, sql.ErrNoRows) {
		if tok != nil {
			if ok, err := s.tokenIs("renew", tok, accountID); err != nil {
				return lockcore.Lease{}, err
			} else if !ok {
				return lockcore.Lease{}, errToken("renew")
			}
		}
		return lockcore.Lease{}, fmt.Errorf("sqlitestore: renew %q: %w", name, lockcore.ErrLeaseNotCurrent)
	}
	if err != nil {
		return lockcore.Lease{}, s.translate("renew", err)
	}
	return lease(name, leaseID, fence, now+ttl, ttl, meta), nil
}

// renew validates the input and runs renewStep as one writer step.
func (s *Store) renew(ctx context.Context, tok []byte, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	t, err := renewInput(name, leaseID, ttl)
	if err != nil {
		return lockcore.Lease{}, err
	}
	var l lockcore.Lease
	err = s.writeClean(ctx, func(now int64) (err error) {
		l, err = s.renewStep(now, tok, accountID, name, leaseID, t)
		return err
	})
	if err != nil {
		return lockcore.Lease{}, err
	}
	return l, nil
}

// Renew implements lockcore.Locks: one conditional UPDATE in the writer's
// batch transaction, committed before it returns.
func (s *Store) Renew(ctx context.Context, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	return s.renew(ctx, nil, accountID, name, leaseID, ttl)
}

// RenewAs implements lockcore.TokenLocks: it is Renew, done only if the
// token hash belongs to accountID. The token condition is folded into
// Renew's one conditional UPDATE in the writer's batch transaction, so a
// token that RotateToken or RevokeToken retired before RenewAs was called
// is refused. Input is validated first, with the errors of Renew; then a
// token that does not belong to accountID gives an error wrapping
// lockcore.ErrNotFound and changes nothing. With a good token the result
// and errors are those of Renew (ErrLeaseNotCurrent for a lease that does
// not hold the lock now).
func (s *Store) RenewAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	return s.renew(ctx, token[:], accountID, name, leaseID, ttl)
}

// releaseStep is the writer step of Release (tok nil) and ReleaseAs (tok
// the token hash that must belong to accountID), in the manner of
// renewStep: one conditional DELETE, and a token lookup only when it
// deletes nothing.
func (s *Store) releaseStep(now int64, tok []byte, accountID, name, leaseID string) error {
	var (
		r   sql.Result
		err error
	)
	if tok == nil {
		r, err = s.w.lockRelease.ExecContext(bg, accountID, name, leaseID, now)
	} else {
		r, err = s.w.lockReleaseAs.ExecContext(bg, accountID, name, leaseID, now, tok)
	}
	if err != nil {
		return s.translate("release", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return s.translate("release", err)
	}
	if n == 0 {
		if tok != nil {
			if ok, err := s.tokenIs("release", tok, accountID); err != nil {
				return err
			} else if !ok {
				return errToken("release")
			}
		}
		return fmt.Errorf("sqlitestore: release %q: %w", name, lockcore.ErrLeaseNotCurrent)
	}
	return nil
}

// release validates the input and runs releaseStep as one writer step.
func (s *Store) release(ctx context.Context, tok []byte, accountID, name, leaseID string) error {
	if err := releaseInput(name, leaseID); err != nil {
		return err
	}
	return s.writeRelease(ctx, func(now int64) error {
		return s.releaseStep(now, tok, accountID, name, leaseID)
	})
}

// Release implements lockcore.Locks: one conditional DELETE in the writer's
// batch transaction, committed before it returns.
func (s *Store) Release(ctx context.Context, accountID, name, leaseID string) error {
	return s.release(ctx, nil, accountID, name, leaseID)
}

// ReleaseAs implements lockcore.TokenLocks: it is Release, done only if the
// token hash belongs to accountID. The token condition is folded into
// Release's one conditional DELETE in the writer's batch transaction, so a
// token that RotateToken or RevokeToken retired before ReleaseAs was called
// is refused. Input is validated first, with the errors of Release; then a
// token that does not belong to accountID gives an error wrapping
// lockcore.ErrNotFound and changes nothing. With a good token the errors
// are those of Release (ErrLeaseNotCurrent for a lease that does not hold
// the lock now).
func (s *Store) ReleaseAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string) error {
	return s.release(ctx, token[:], accountID, name, leaseID)
}

// Get implements lockcore.Locks on the read pool.
func (s *Store) Get(ctx context.Context, accountID, name string) (lockcore.LockState, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return lockcore.LockState{}, err
	}
	if s.isClosed() {
		return lockcore.LockState{}, errClosed
	}
	var (
		leaseID         string
		fence, exp, ttl int64
		meta            sql.NullString
	)
	err := s.r.lockGet.QueryRowContext(ctx, accountID, name).Scan(&leaseID, &fence, &exp, &ttl, &meta)
	now := s.readNowMs()
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lockcore.LockState{Name: name}, nil
	case err != nil:
		return lockcore.LockState{}, s.translate("get", err)
	case exp <= now:
		return lockcore.LockState{Name: name}, nil
	}
	return lockcore.LockState{Name: name, Held: true, Lease: lease(name, leaseID, fence, exp, ttl, meta)}, nil
}

// List implements lockcore.Locks on the read pool.
func (s *Store) List(ctx context.Context, accountID string) ([]lockcore.Lease, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	rows, err := s.r.lockList.QueryContext(ctx, accountID, s.readNowMs())
	if err != nil {
		return nil, s.translate("list", err)
	}
	defer rows.Close()
	out := []lockcore.Lease{}
	for rows.Next() {
		var (
			name, leaseID   string
			fence, exp, ttl int64
			meta            sql.NullString
		)
		if err := rows.Scan(&name, &leaseID, &fence, &exp, &ttl, &meta); err != nil {
			return nil, s.translate("list", err)
		}
		out = append(out, lease(name, leaseID, fence, exp, ttl, meta))
	}
	if err := rows.Err(); err != nil {
		return nil, s.translate("list", err)
	}
	return out, nil
}
