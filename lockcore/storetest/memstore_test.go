package storetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// memData is the shared state behind memStore instances: what survives a
// Reopen.
type memData struct {
	mu       sync.Mutex
	now      time.Time
	accounts map[string]lockcore.Account
	byLogin  map[string]string // operator accounts: login → id
	byGitHub map[int64]string
	tokens   map[lockcore.TokenHash]string
	locks    map[lockKey]lockcore.Lease
	fence    map[string]int64
}

type lockKey struct{ acct, name string }

func newMemData() *memData {
	return &memData{
		now:      time.Date(2026, 11, 27, 22, 43, 2, 123e6, time.UTC),
		accounts: map[string]lockcore.Account{},
		byLogin:  map[string]string{},
		byGitHub: map[int64]string{},
		tokens:   map[lockcore.TokenHash]string{},
		locks:    map[lockKey]lockcore.Lease{},
		fence:    map[string]int64{},
	}
}

// memStore is a small in-memory lockcore.Store used to check the suite
// itself: as written it passes Run, and each named fault breaks one promise
// that Run must catch.
type memStore struct {
	d      *memData
	fault  string
	closed atomic.Bool
}

// Faults memStore can inject; each names a broken promise.
const (
	faultNone          = ""
	faultRevive        = "revive"         // Renew ignores expiry.
	faultNoFence       = "nofence"        // every new lease gets token 1.
	faultNoQuota       = "noquota"        // MaxHeld is ignored.
	faultShared        = "shared"         // lock names are global, not per account.
	faultSteal         = "steal"          // Acquire takes a held lock.
	faultRotateKeepOld = "rotate-keepold" // RotateToken does not forget the old token.
	faultAmnesia       = "amnesia"        // Reopen returns an empty store.
	faultIgnoreCtx     = "ignorectx"      // contexts are ignored.
	faultUnsorted      = "unsorted"       // List is in reverse order.
	faultSeconds       = "seconds"        // expiry is truncated to whole seconds.
	faultNoValidate    = "novalidate"     // names and lease ids are not checked.
	faultCountExpired  = "countexpired"   // expired locks count against the quota.
	faultNoClose       = "noclose"        // a closed store still answers.
	faultIDAny         = "idany"          // AccountIDByToken accepts unknown tokens.
	faultAsAny         = "asany"          // the TokenLocks methods ignore the token.
	faultRevokeOne     = "revokeone"      // RevokeAccountTokens revokes one token only.
)

func (s *memStore) begin(ctx context.Context) error {
	if s.closed.Load() && s.fault != faultNoClose {
		return fmt.Errorf("memstore closed: %w", lockcore.ErrUnavailable)
	}
	if s.fault != faultIgnoreCtx {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", lockcore.ErrUnavailable, err)
		}
	}
	s.d.mu.Lock()
	return nil
}

func (s *memStore) end() { s.d.mu.Unlock() }

func (s *memStore) key(acct, name string) lockKey {
	if s.fault == faultShared {
		return lockKey{name: name}
	}
	return lockKey{acct, name}
}

func (s *memStore) validName(name string) error {
	if s.fault == faultNoValidate {
		return nil
	}
	return lockcore.ValidateName(name)
}

func (s *memStore) validLease(id string) error {
	if s.fault == faultNoValidate {
		return nil
	}
	return lockcore.ValidateLeaseID(id)
}

// current returns the unexpired lease of k. Callers hold d.mu.
func (s *memStore) current(k lockKey) (lockcore.Lease, bool) {
	l, ok := s.d.locks[k]
	if !ok || !s.d.now.Before(l.ExpiresAt) {
		return lockcore.Lease{}, false
	}
	return l, true
}

// roundTTL rounds a TTL up to whole milliseconds, as stores keep it.
func roundTTL(ttl time.Duration) time.Duration {
	if r := ttl % time.Millisecond; r != 0 {
		ttl += time.Millisecond - r
	}
	return ttl
}

func (s *memStore) expiry(ttl time.Duration) time.Time {
	e := s.d.now.Add(ttl)
	if s.fault == faultSeconds {
		e = e.Truncate(time.Second)
	}
	return e
}

func (s *memStore) Acquire(ctx context.Context, acct, name string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := s.validName(name); err != nil {
		return lockcore.AcquireResult{}, err
	}
	if err := s.validLease(o.LeaseID); err != nil {
		return lockcore.AcquireResult{}, err
	}
	if err := s.begin(ctx); err != nil {
		return lockcore.AcquireResult{}, err
	}
	defer s.end()
	o.TTL = roundTTL(o.TTL)
	now, k := s.d.now, s.key(acct, name)
	if cur, ok := s.current(k); ok {
		if cur.LeaseID == o.LeaseID {
			cur.ExpiresAt, cur.TTL = s.expiry(o.TTL), o.TTL
			if o.Metadata != nil {
				cur.Metadata = *o.Metadata
			}
			s.d.locks[k] = cur
			return lockcore.AcquireResult{Acquired: true, Lease: cur, Now: now}, nil
		}
		if s.fault != faultSteal {
			return lockcore.AcquireResult{Lease: cur, Now: now}, nil
		}
	}
	if s.fault != faultNoQuota {
		held := 0
		for lk, l := range s.d.locks {
			if lk.acct == k.acct && (s.fault == faultCountExpired || now.Before(l.ExpiresAt)) {
				held++
			}
		}
		if held >= o.MaxHeld {
			return lockcore.AcquireResult{}, fmt.Errorf("%d locks held: %w", held, lockcore.ErrLockLimitExceeded)
		}
	}
	s.d.fence[acct]++
	l := lockcore.Lease{Name: name, LeaseID: o.LeaseID, FencingToken: s.d.fence[acct], ExpiresAt: s.expiry(o.TTL), TTL: o.TTL}
	if s.fault == faultNoFence {
		l.FencingToken = 1
	}
	if o.Metadata != nil {
		l.Metadata = *o.Metadata
	}
	s.d.locks[k] = l
	return lockcore.AcquireResult{Acquired: true, Lease: l, Now: now}, nil
}

func (s *memStore) Renew(ctx context.Context, acct, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	if err := s.validName(name); err != nil {
		return lockcore.Lease{}, err
	}
	if err := s.validLease(leaseID); err != nil {
		return lockcore.Lease{}, err
	}
	if err := s.begin(ctx); err != nil {
		return lockcore.Lease{}, err
	}
	defer s.end()
	ttl = roundTTL(ttl)
	k := s.key(acct, name)
	cur, ok := s.current(k)
	if s.fault == faultRevive {
		cur, ok = s.d.locks[k]
	}
	if !ok || cur.LeaseID != leaseID {
		return lockcore.Lease{}, lockcore.ErrLeaseNotCurrent
	}
	cur.ExpiresAt, cur.TTL = s.expiry(ttl), ttl
	s.d.locks[k] = cur
	return cur, nil
}

func (s *memStore) Release(ctx context.Context, acct, name, leaseID string) error {
	if err := s.validName(name); err != nil {
		return err
	}
	if err := s.validLease(leaseID); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	k := s.key(acct, name)
	if cur, ok := s.current(k); !ok || cur.LeaseID != leaseID {
		return lockcore.ErrLeaseNotCurrent
	}
	delete(s.d.locks, k)
	return nil
}

func (s *memStore) Get(ctx context.Context, acct, name string) (lockcore.LockState, error) {
	if err := s.validName(name); err != nil {
		return lockcore.LockState{}, err
	}
	if err := s.begin(ctx); err != nil {
		return lockcore.LockState{}, err
	}
	defer s.end()
	l, ok := s.current(s.key(acct, name))
	return lockcore.LockState{Name: name, Held: ok, Lease: l}, nil
}

func (s *memStore) List(ctx context.Context, acct string) ([]lockcore.Lease, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.end()
	out := []lockcore.Lease{}
	for k := range s.d.locks {
		if k.acct != acct && s.fault != faultShared {
			continue
		}
		if l, ok := s.current(k); ok {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b lockcore.Lease) int { return cmp.Compare(a.Name, b.Name) })
	if s.fault == faultUnsorted {
		slices.Reverse(out)
	}
	return out, nil
}

func (s *memStore) EnsureAccount(ctx context.Context, login string) (lockcore.Account, bool, error) {
	if err := lockcore.ValidateLogin(login); err != nil {
		return lockcore.Account{}, false, err
	}
	if err := s.begin(ctx); err != nil {
		return lockcore.Account{}, false, err
	}
	defer s.end()
	if id, ok := s.d.byLogin[login]; ok {
		return s.d.accounts[id], false, nil
	}
	a := lockcore.Account{ID: lockcore.NewAccountID(), Login: login, CreatedAt: s.d.now}
	s.d.accounts[a.ID], s.d.byLogin[login] = a, a.ID
	return a, true, nil
}

func (s *memStore) UpsertGitHubAccount(ctx context.Context, githubID int64, login string) (lockcore.Account, error) {
	if err := lockcore.ValidateLogin(login); err != nil {
		return lockcore.Account{}, err
	}
	if githubID <= 0 {
		return lockcore.Account{}, fmt.Errorf("github id %d is not positive", githubID)
	}
	if err := s.begin(ctx); err != nil {
		return lockcore.Account{}, err
	}
	defer s.end()
	a := lockcore.Account{ID: lockcore.NewAccountID(), GitHubID: githubID, CreatedAt: s.d.now}
	if id, ok := s.d.byGitHub[githubID]; ok {
		a = s.d.accounts[id]
	}
	a.Login = login
	s.d.accounts[a.ID], s.d.byGitHub[githubID] = a, a.ID
	return a, nil
}

func (s *memStore) AccountByID(ctx context.Context, id string) (lockcore.Account, error) {
	if err := s.begin(ctx); err != nil {
		return lockcore.Account{}, err
	}
	defer s.end()
	a, ok := s.d.accounts[id]
	if !ok {
		return lockcore.Account{}, fmt.Errorf("account %s: %w", id, lockcore.ErrNotFound)
	}
	return a, nil
}

func (s *memStore) CountAccounts(ctx context.Context) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	return int64(len(s.d.accounts)), nil
}

func (s *memStore) AddToken(ctx context.Context, acct string, h lockcore.TokenHash) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	if _, ok := s.d.accounts[acct]; !ok {
		return fmt.Errorf("account %s: %w", acct, lockcore.ErrNotFound)
	}
	s.d.tokens[h] = acct
	return nil
}

func (s *memStore) AccountByToken(ctx context.Context, h lockcore.TokenHash) (lockcore.Account, error) {
	if err := s.begin(ctx); err != nil {
		return lockcore.Account{}, err
	}
	defer s.end()
	id, ok := s.d.tokens[h]
	if !ok {
		return lockcore.Account{}, fmt.Errorf("token: %w", lockcore.ErrNotFound)
	}
	return s.d.accounts[id], nil
}

// AccountIDByToken is the optional one-step lookup, answering as
// AccountByToken does (unless faultIDAny).
func (s *memStore) AccountIDByToken(ctx context.Context, h lockcore.TokenHash) (string, error) {
	if err := s.begin(ctx); err != nil {
		return "", err
	}
	defer s.end()
	id, ok := s.d.tokens[h]
	if !ok && s.fault == faultIDAny {
		for _, other := range s.d.tokens {
			return other, nil
		}
	}
	if !ok {
		return "", fmt.Errorf("token: %w", lockcore.ErrNotFound)
	}
	return id, nil
}

func (s *memStore) RotateToken(ctx context.Context, old, new lockcore.TokenHash) (lockcore.Account, error) {
	if err := s.begin(ctx); err != nil {
		return lockcore.Account{}, err
	}
	defer s.end()
	id, ok := s.d.tokens[old]
	if !ok {
		return lockcore.Account{}, fmt.Errorf("token: %w", lockcore.ErrNotFound)
	}
	if s.fault != faultRotateKeepOld {
		delete(s.d.tokens, old)
	}
	s.d.tokens[new] = id
	return s.d.accounts[id], nil
}

func (s *memStore) RevokeToken(ctx context.Context, h lockcore.TokenHash) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	if _, ok := s.d.tokens[h]; !ok {
		return fmt.Errorf("token: %w", lockcore.ErrNotFound)
	}
	delete(s.d.tokens, h)
	return nil
}

// RevokeAccountTokens is the optional lockcore.AccountTokens: it forgets
// every token of acct (only one with faultRevokeOne).
func (s *memStore) RevokeAccountTokens(ctx context.Context, acct string) (int, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.end()
	n := 0
	for h, id := range s.d.tokens {
		if id == acct && (n == 0 || s.fault != faultRevokeOne) {
			delete(s.d.tokens, h)
			n++
		}
	}
	return n, nil
}

// tokenIs checks, for the TokenLocks methods, that h belongs to acct (unless
// faultAsAny). The check and the lock step that follows are two critical
// sections, which is enough for a suite that runs them one at a time.
func (s *memStore) tokenIs(ctx context.Context, h lockcore.TokenHash, acct string) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	defer s.end()
	if s.d.tokens[h] != acct && s.fault != faultAsAny {
		return fmt.Errorf("token: %w", lockcore.ErrNotFound)
	}
	return nil
}

// AcquireAs implements lockcore.TokenLocks.
func (s *memStore) AcquireAs(ctx context.Context, h lockcore.TokenHash, acct, name string, o lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := s.validName(name); err != nil {
		return lockcore.AcquireResult{}, err
	}
	if err := s.validLease(o.LeaseID); err != nil {
		return lockcore.AcquireResult{}, err
	}
	if err := s.tokenIs(ctx, h, acct); err != nil {
		return lockcore.AcquireResult{}, err
	}
	return s.Acquire(ctx, acct, name, o)
}

// RenewAs implements lockcore.TokenLocks.
func (s *memStore) RenewAs(ctx context.Context, h lockcore.TokenHash, acct, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	if err := s.validName(name); err != nil {
		return lockcore.Lease{}, err
	}
	if err := s.validLease(leaseID); err != nil {
		return lockcore.Lease{}, err
	}
	if err := s.tokenIs(ctx, h, acct); err != nil {
		return lockcore.Lease{}, err
	}
	return s.Renew(ctx, acct, name, leaseID, ttl)
}

// ReleaseAs implements lockcore.TokenLocks.
func (s *memStore) ReleaseAs(ctx context.Context, h lockcore.TokenHash, acct, name, leaseID string) error {
	if err := s.validName(name); err != nil {
		return err
	}
	if err := s.validLease(leaseID); err != nil {
		return err
	}
	if err := s.tokenIs(ctx, h, acct); err != nil {
		return err
	}
	return s.Release(ctx, acct, name, leaseID)
}

func (s *memStore) Ping(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	s.end()
	return nil
}

func (s *memStore) Close() error {
	s.closed.Store(true)
	return nil
}

var (
	_ lockcore.Store         = (*memStore)(nil)
	_ lockcore.TokenLocks    = (*memStore)(nil)
	_ lockcore.AccountTokens = (*memStore)(nil)
)
