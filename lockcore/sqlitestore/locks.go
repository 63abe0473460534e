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

// ttlMs checks a TTL and returns it in milliseconds (rounded up, so that a
// positive TTL never becomes zero).
func ttlMs(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, &lockcore.InputError{Kind: lockcore.ErrInvalidTTL, Msg: fmt.Sprintf("ttl must be positive (got %v)", ttl)}
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}

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

// Acquire implements lockcore.Locks: one atomic step in the writer's batch
// transaction, committed (fsync'd) before it returns.
func (s *Store) Acquire(ctx context.Context, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return lockcore.AcquireResult{}, err
	}
	if err := lockcore.ValidateLeaseID(opts.LeaseID); err != nil {
		return lockcore.AcquireResult{}, err
	}
	ttl, err := ttlMs(opts.TTL)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	if opts.MaxHeld < 1 {
		return lockcore.AcquireResult{}, fmt.Errorf("sqlitestore: acquire: MaxHeld must be at least 1 (got %d)", opts.MaxHeld)
	}
	var meta sql.NullString
	if opts.Metadata != nil {
		meta = sql.NullString{String: *opts.Metadata, Valid: true}
	}

	var res lockcore.AcquireResult
	err = s.write(ctx, func(now int64) error {
		w := s.w
		res = lockcore.AcquireResult{Now: msTime(now)}
		var (
			curLease        string
			fence, exp, tms int64
			curMeta         sql.NullString
		)
		err := w.lockSelect.QueryRowContext(bg, accountID, name).Scan(&curLease, &fence, &exp, &tms, &curMeta)
		switch {
		case err == nil && exp > now && curLease == opts.LeaseID:
			// Idempotent retry of the current lease.
			if _, err := w.lockRetry.ExecContext(bg, accountID, name, now+ttl, ttl, meta); err != nil {
				return translate("acquire", err)
			}
			if meta.Valid {
				curMeta = meta
			}
			res.Acquired = true
			res.Lease = lease(name, curLease, fence, now+ttl, ttl, curMeta)
			return nil
		case err == nil && exp > now:
			res.Lease = lease(name, curLease, fence, exp, tms, curMeta)
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return translate("acquire", err)
		}
		// Free: drop the account's expired rows (this one included), check
		// the quota, then take a fresh fencing token.
		if _, err := w.lockPurge.ExecContext(bg, accountID, now); err != nil {
			return translate("acquire", err)
		}
		var held int64
		if err := w.countHeld.QueryRowContext(bg, accountID, now, opts.MaxHeld).Scan(&held); err != nil {
			return translate("acquire", err)
		}
		if held >= int64(opts.MaxHeld) {
			return fmt.Errorf("sqlitestore: account holds %d unexpired locks: %w", held, lockcore.ErrLockLimitExceeded)
		}
		if err := w.nextFence.QueryRowContext(bg, accountID).Scan(&fence); err != nil {
			return translate("acquire", err)
		}
		if _, err := w.lockInsert.ExecContext(bg, accountID, name, opts.LeaseID, fence, now+ttl, ttl, meta); err != nil {
			return translate("acquire", err)
		}
		res.Acquired = true
		res.Lease = lease(name, opts.LeaseID, fence, now+ttl, ttl, meta)
		return nil
	})
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	return res, nil
}

// Renew implements lockcore.Locks: one conditional UPDATE in the writer's
// batch transaction, committed before it returns.
func (s *Store) Renew(ctx context.Context, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return lockcore.Lease{}, err
	}
	if err := lockcore.ValidateLeaseID(leaseID); err != nil {
		return lockcore.Lease{}, err
	}
	t, err := ttlMs(ttl)
	if err != nil {
		return lockcore.Lease{}, err
	}
	var l lockcore.Lease
	err = s.write(ctx, func(now int64) error {
		var (
			fence int64
			meta  sql.NullString
		)
		err := s.w.lockRenew.QueryRowContext(bg, accountID, name, leaseID, now, now+t, t).Scan(&fence, &meta)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlitestore: renew %q: %w", name, lockcore.ErrLeaseNotCurrent)
		}
		if err != nil {
			return translate("renew", err)
		}
		l = lease(name, leaseID, fence, now+t, t, meta)
		return nil
	})
	if err != nil {
		return lockcore.Lease{}, err
	}
	return l, nil
}

// Release implements lockcore.Locks: one conditional DELETE in the writer's
// batch transaction, committed before it returns.
func (s *Store) Release(ctx context.Context, accountID, name, leaseID string) error {
	if err := lockcore.ValidateName(name); err != nil {
		return err
	}
	if err := lockcore.ValidateLeaseID(leaseID); err != nil {
		return err
	}
	return s.write(ctx, func(now int64) error {
		r, err := s.w.lockRelease.ExecContext(bg, accountID, name, leaseID, now)
		if err != nil {
			return translate("release", err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return translate("release", err)
		}
		if n == 0 {
			return fmt.Errorf("sqlitestore: release %q: %w", name, lockcore.ErrLeaseNotCurrent)
		}
		return nil
	})
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
	now := s.nowMs()
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return lockcore.LockState{Name: name}, nil
	case err != nil:
		return lockcore.LockState{}, translate("get", err)
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
	rows, err := s.r.lockList.QueryContext(ctx, accountID, s.nowMs())
	if err != nil {
		return nil, translate("list", err)
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
			return nil, translate("list", err)
		}
		out = append(out, lease(name, leaseID, fence, exp, ttl, meta))
	}
	if err := rows.Err(); err != nil {
		return nil, translate("list", err)
	}
	return out, nil
}
