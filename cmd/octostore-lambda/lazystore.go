package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// lazyStore is a lockcore.Store whose backend is opened on first use and,
// until an open succeeds, on every use after that. The bootstrap uses it
// when Redis does not answer at start-up, so that the function still starts,
// answers 503 store_unavailable (every method fails with an error wrapping
// lockcore.ErrUnavailable) while Redis is away, and serves normally from the
// first request after Redis answers, without a restart of the instance.
//
// It is safe for concurrent use: one open at a time; callers arriving while
// an open is under way wait for it (bounded by their own context).
type lazyStore struct {
	open func(context.Context) (lockcore.Store, error)

	store  atomic.Pointer[lockcore.Store]
	mu     chan struct{} // a one-slot semaphore guarding open and closed
	closed bool
	once   sync.Once
}

// newLazyStore returns a lazyStore that calls open to get its backend.
func newLazyStore(open func(context.Context) (lockcore.Store, error)) *lazyStore {
	return &lazyStore{open: open, mu: make(chan struct{}, 1)}
}

// get returns the backend, opening it if needed.
func (l *lazyStore) get(ctx context.Context) (lockcore.Store, error) {
	if s := l.store.Load(); s != nil {
		return *s, nil
	}
	select {
	case l.mu <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("redis: %w: %w", lockcore.ErrUnavailable, ctx.Err())
	}
	defer func() { <-l.mu }()
	if s := l.store.Load(); s != nil {
		return *s, nil
	}
	if l.closed {
		return nil, fmt.Errorf("redis: %w: store is closed", lockcore.ErrUnavailable)
	}
	s, err := l.open(ctx)
	if err != nil {
		if !errors.Is(err, lockcore.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", lockcore.ErrUnavailable, err)
		}
		return nil, err
	}
	l.store.Store(&s)
	return s, nil
}

// Acquire implements lockcore.Locks.
func (l *lazyStore) Acquire(ctx context.Context, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	return s.Acquire(ctx, accountID, name, opts)
}

// Renew implements lockcore.Locks.
func (l *lazyStore) Renew(ctx context.Context, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.Lease{}, err
	}
	return s.Renew(ctx, accountID, name, leaseID, ttl)
}

// Release implements lockcore.Locks.
func (l *lazyStore) Release(ctx context.Context, accountID, name, leaseID string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Release(ctx, accountID, name, leaseID)
}

// Get implements lockcore.Locks.
func (l *lazyStore) Get(ctx context.Context, accountID, name string) (lockcore.LockState, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.LockState{}, err
	}
	return s.Get(ctx, accountID, name)
}

// List implements lockcore.Locks.
func (l *lazyStore) List(ctx context.Context, accountID string) ([]lockcore.Lease, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.List(ctx, accountID)
}

// EnsureAccount implements lockcore.Accounts.
func (l *lazyStore) EnsureAccount(ctx context.Context, login string) (lockcore.Account, bool, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.Account{}, false, err
	}
	return s.EnsureAccount(ctx, login)
}

// UpsertGitHubAccount implements lockcore.Accounts.
func (l *lazyStore) UpsertGitHubAccount(ctx context.Context, githubID int64, login string) (lockcore.Account, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	return s.UpsertGitHubAccount(ctx, githubID, login)
}

// AccountByID implements lockcore.Accounts.
func (l *lazyStore) AccountByID(ctx context.Context, id string) (lockcore.Account, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	return s.AccountByID(ctx, id)
}

// CountAccounts implements lockcore.Accounts.
func (l *lazyStore) CountAccounts(ctx context.Context) (int64, error) {
	s, err := l.get(ctx)
	if err != nil {
		return 0, err
	}
	return s.CountAccounts(ctx)
}

// AddToken implements lockcore.Accounts.
func (l *lazyStore) AddToken(ctx context.Context, accountID string, hash lockcore.TokenHash) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.AddToken(ctx, accountID, hash)
}

// AccountByToken implements lockcore.Accounts.
func (l *lazyStore) AccountByToken(ctx context.Context, hash lockcore.TokenHash) (lockcore.Account, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	return s.AccountByToken(ctx, hash)
}

// AccountIDByToken forwards the Redis store's one-round-trip token lookup
// (an optional capability the handlers look for by type assertion), so the
// lazy wrapper does not hide it; a store without it answers through
// AccountByToken. Errors are those of AccountByToken.
func (l *lazyStore) AccountIDByToken(ctx context.Context, hash lockcore.TokenHash) (string, error) {
	s, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	if f, ok := s.(interface {
		AccountIDByToken(context.Context, lockcore.TokenHash) (string, error)
	}); ok {
		return f.AccountIDByToken(ctx, hash)
	}
	acct, err := s.AccountByToken(ctx, hash)
	return acct.ID, err
}

// tokenLocks returns the backend as a lockcore.TokenLocks: the backend
// itself when it has the capability (the Redis store does), else a
// two-step stand-in that checks the token's account first.
func (l *lazyStore) tokenLocks(ctx context.Context) (lockcore.TokenLocks, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	if tl, ok := s.(lockcore.TokenLocks); ok {
		return tl, nil
	}
	return checkedLocks{s}, nil
}

// AcquireAs implements lockcore.TokenLocks, so that the handlers keep the
// backend's one-round-trip lock writes behind the lazy wrapper (they look
// for the capability once, when they are built).
func (l *lazyStore) AcquireAs(ctx context.Context, token lockcore.TokenHash, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	tl, err := l.tokenLocks(ctx)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	return tl.AcquireAs(ctx, token, accountID, name, opts)
}

// RenewAs implements lockcore.TokenLocks.
func (l *lazyStore) RenewAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	tl, err := l.tokenLocks(ctx)
	if err != nil {
		return lockcore.Lease{}, err
	}
	return tl.RenewAs(ctx, token, accountID, name, leaseID, ttl)
}

// ReleaseAs implements lockcore.TokenLocks.
func (l *lazyStore) ReleaseAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string) error {
	tl, err := l.tokenLocks(ctx)
	if err != nil {
		return err
	}
	return tl.ReleaseAs(ctx, token, accountID, name, leaseID)
}

// checkedLocks is lockcore.TokenLocks for a store without it: the token's
// account is looked up, then the plain lock write runs. It keeps less than
// the interface promises: two steps, not one (a token retired between them
// is not seen by that write), and the token is checked before the input (a
// bad token with a bad name is ErrNotFound, not ErrInvalidName). The
// bootstrap's backend is always the Redis store, which has TokenLocks, so
// only tests reach it.
type checkedLocks struct{ s lockcore.Store }

func (c checkedLocks) check(ctx context.Context, token lockcore.TokenHash, accountID string) error {
	acct, err := c.s.AccountByToken(ctx, token)
	if err != nil {
		return err
	}
	if acct.ID != accountID {
		return fmt.Errorf("token of another account: %w", lockcore.ErrNotFound)
	}
	return nil
}

func (c checkedLocks) AcquireAs(ctx context.Context, token lockcore.TokenHash, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := c.check(ctx, token, accountID); err != nil {
		return lockcore.AcquireResult{}, err
	}
	return c.s.Acquire(ctx, accountID, name, opts)
}

func (c checkedLocks) RenewAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	if err := c.check(ctx, token, accountID); err != nil {
		return lockcore.Lease{}, err
	}
	return c.s.Renew(ctx, accountID, name, leaseID, ttl)
}

func (c checkedLocks) ReleaseAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string) error {
	if err := c.check(ctx, token, accountID); err != nil {
		return err
	}
	return c.s.Release(ctx, accountID, name, leaseID)
}

var _ lockcore.TokenLocks = (*lazyStore)(nil)

// RotateToken implements lockcore.Accounts.
func (l *lazyStore) RotateToken(ctx context.Context, old, new lockcore.TokenHash) (lockcore.Account, error) {
	s, err := l.get(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	return s.RotateToken(ctx, old, new)
}

// RevokeToken implements lockcore.Accounts.
func (l *lazyStore) RevokeToken(ctx context.Context, hash lockcore.TokenHash) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.RevokeToken(ctx, hash)
}

// Ping implements lockcore.Store: it opens the backend if needed, then
// pings it.
func (l *lazyStore) Ping(ctx context.Context) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

// Close closes the backend if it was opened; later calls fail with an error
// wrapping lockcore.ErrUnavailable.
func (l *lazyStore) Close() error {
	var err error
	l.once.Do(func() {
		l.mu <- struct{}{}
		defer func() { <-l.mu }()
		l.closed = true
		if s := l.store.Swap(nil); s != nil {
			err = (*s).Close()
		}
	})
	return err
}

var _ lockcore.Store = (*lazyStore)(nil)
