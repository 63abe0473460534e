package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/octostore/octostore/lockcore"
)

func account(id, login string, githubID sql.NullInt64, created int64) lockcore.Account {
	return lockcore.Account{ID: id, Login: login, GitHubID: githubID.Int64, CreatedAt: msTime(created)}
}

// EnsureAccount implements lockcore.Accounts. Look-up and creation are one
// step of the writer, so concurrent calls for one login create one account.
func (s *Store) EnsureAccount(ctx context.Context, login string) (lockcore.Account, bool, error) {
	if err := lockcore.ValidateLogin(login); err != nil {
		return lockcore.Account{}, false, err
	}
	var (
		acct    lockcore.Account
		created bool
	)
	err := s.write(ctx, func(now int64) error {
		var id string
		var at int64
		err := s.w.operatorByLogin.QueryRowContext(bg, login).Scan(&id, &at)
		if err == nil {
			acct = account(id, login, sql.NullInt64{}, at)
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return s.translate("ensure account", err)
		}
		id = lockcore.NewAccountID()
		if _, err := s.w.accountInsert.ExecContext(bg, id, login, now); err != nil {
			return s.translate("ensure account", err)
		}
		acct, created = account(id, login, sql.NullInt64{}, now), true
		return nil
	})
	if err != nil {
		return lockcore.Account{}, false, err
	}
	return acct, created, nil
}

// UpsertGitHubAccount implements lockcore.Accounts with one upsert keyed by
// the GitHub id.
func (s *Store) UpsertGitHubAccount(ctx context.Context, githubID int64, login string) (lockcore.Account, error) {
	if err := lockcore.ValidateLogin(login); err != nil {
		return lockcore.Account{}, err
	}
	if githubID <= 0 {
		return lockcore.Account{}, fmt.Errorf("sqlitestore: GitHub id must be positive (got %d)", githubID)
	}
	var acct lockcore.Account
	err := s.write(ctx, func(now int64) error {
		var id string
		var at int64
		err := s.w.githubUpsert.QueryRowContext(bg, lockcore.NewAccountID(), login, githubID, now).Scan(&id, &at)
		if err != nil {
			return s.translate("upsert GitHub account", err)
		}
		acct = account(id, login, sql.NullInt64{Int64: githubID, Valid: true}, at)
		return nil
	})
	if err != nil {
		return lockcore.Account{}, err
	}
	return acct, nil
}

// AccountByID implements lockcore.Accounts on the read pool.
func (s *Store) AccountByID(ctx context.Context, id string) (lockcore.Account, error) {
	if s.isClosed() {
		return lockcore.Account{}, errClosed
	}
	var (
		login string
		gh    sql.NullInt64
		at    int64
	)
	err := s.r.accountByID.QueryRowContext(ctx, id).Scan(&login, &gh, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return lockcore.Account{}, fmt.Errorf("sqlitestore: account %q: %w", id, lockcore.ErrNotFound)
	}
	if err != nil {
		return lockcore.Account{}, s.translate("account by id", err)
	}
	return account(id, login, gh, at), nil
}

// CountAccounts implements lockcore.Accounts on the read pool.
func (s *Store) CountAccounts(ctx context.Context) (int64, error) {
	if s.isClosed() {
		return 0, errClosed
	}
	var n int64
	if err := s.r.countAccounts.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, s.translate("count accounts", err)
	}
	return n, nil
}

// insertToken records hash for accountID inside the writer's transaction.
// Recording a hash the account already has is a no-op; a hash that belongs
// to another account is refused.
func (s *Store) insertToken(accountID string, hash lockcore.TokenHash, now int64) error {
	r, err := s.w.tokenInsert.ExecContext(bg, hash[:], accountID, now)
	if err != nil {
		return s.translate("add token", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return s.translate("add token", err)
	} else if n == 1 {
		return nil
	}
	var owner string
	if err := s.w.tokenOwner.QueryRowContext(bg, hash[:]).Scan(&owner); err != nil {
		return s.translate("add token", err)
	}
	if owner != accountID {
		return errors.New("sqlitestore: add token: the token hash already belongs to another account")
	}
	return nil
}

// AddToken implements lockcore.Accounts in one writer step.
func (s *Store) AddToken(ctx context.Context, accountID string, hash lockcore.TokenHash) error {
	return s.write(ctx, func(now int64) error {
		var (
			login string
			gh    sql.NullInt64
			at    int64
		)
		err := s.w.accountByID.QueryRowContext(bg, accountID).Scan(&login, &gh, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlitestore: add token: account %q: %w", accountID, lockcore.ErrNotFound)
		}
		if err != nil {
			return s.translate("add token", err)
		}
		return s.insertToken(accountID, hash, now)
	})
}

// AccountByToken implements lockcore.Accounts with one read-pool query.
func (s *Store) AccountByToken(ctx context.Context, hash lockcore.TokenHash) (lockcore.Account, error) {
	if s.isClosed() {
		return lockcore.Account{}, errClosed
	}
	var (
		id, login string
		gh        sql.NullInt64
		at        int64
	)
	err := s.r.accountByToken.QueryRowContext(ctx, hash[:]).Scan(&id, &login, &gh, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return lockcore.Account{}, fmt.Errorf("sqlitestore: token: %w", lockcore.ErrNotFound)
	}
	if err != nil {
		return lockcore.Account{}, s.translate("account by token", err)
	}
	return account(id, login, gh, at), nil
}

// AccountIDByToken is AccountByToken for a caller that needs only the
// account id (the HTTP handlers' authentication, which looks for this
// method): one primary-key lookup in the tokens table instead of a join,
// with the same answer as AccountByToken at the same moment (a token is
// only ever added to an existing account, and accounts are never deleted).
// It returns an error wrapping lockcore.ErrNotFound for an unknown, revoked
// or rotated-away token, and one wrapping lockcore.ErrUnavailable when the
// database cannot be read.
func (s *Store) AccountIDByToken(ctx context.Context, hash lockcore.TokenHash) (string, error) {
	if s.isClosed() {
		return "", errClosed
	}
	var id string
	err := s.r.accountIDByTok.QueryRowContext(ctx, hash[:]).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlitestore: token: %w", lockcore.ErrNotFound)
	}
	if err != nil {
		return "", s.translate("account id by token", err)
	}
	return id, nil
}

// RotateToken implements lockcore.Accounts: delete old and insert new in one
// writer step. Writer steps run one at a time, so of concurrent rotations of
// one token exactly one finds it. Once the writer has applied the rotation,
// it is answered with its commit's outcome even if ctx ends first (see
// writeSettled): an error never hides a rotation that took effect.
func (s *Store) RotateToken(ctx context.Context, old, new lockcore.TokenHash) (lockcore.Account, error) {
	var acct lockcore.Account
	err := s.writeSettled(ctx, func(now int64) error {
		var id string
		err := s.w.tokenDelete.QueryRowContext(bg, old[:]).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlitestore: rotate token: %w", lockcore.ErrNotFound)
		}
		if err != nil {
			return s.translate("rotate token", err)
		}
		if err := s.insertToken(id, new, now); err != nil {
			return err
		}
		var (
			login string
			gh    sql.NullInt64
			at    int64
		)
		if err := s.w.accountByID.QueryRowContext(bg, id).Scan(&login, &gh, &at); err != nil {
			return s.translate("rotate token", err)
		}
		acct = account(id, login, gh, at)
		return nil
	})
	if err != nil {
		return lockcore.Account{}, err
	}
	return acct, nil
}

// RevokeToken implements lockcore.Accounts in one writer step.
func (s *Store) RevokeToken(ctx context.Context, hash lockcore.TokenHash) error {
	return s.write(ctx, func(now int64) error {
		var id string
		err := s.w.tokenDelete.QueryRowContext(bg, hash[:]).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlitestore: revoke token: %w", lockcore.ErrNotFound)
		}
		if err != nil {
			return s.translate("revoke token", err)
		}
		return nil
	})
}

// RevokeAccountTokens implements lockcore.AccountTokens: one write deletes
// every token row of the account, so no rotation can slip between (the
// writer runs writes one at a time).
func (s *Store) RevokeAccountTokens(ctx context.Context, accountID string) (int, error) {
	var n int64
	err := s.write(ctx, func(int64) error {
		res, err := s.w.tokensDelete.ExecContext(bg, accountID)
		if err != nil {
			return s.translate("revoke account tokens", err)
		}
		n, err = res.RowsAffected()
		return s.translate("revoke account tokens", err)
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
