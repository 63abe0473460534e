package lockcore

import (
	"context"
	"time"
)

// Store is a backend that keeps accounts, tokens and locks. Every method is
// safe for concurrent use by many goroutines and, for a shared backend such as
// Redis, by many processes. Every method honours ctx: a context that has
// ended before the call makes it return at once with an error wrapping
// ErrUnavailable (or ctx.Err()), without touching the backend, and a call
// under way returns by ctx's deadline at the latest. (Whether a
// cancellation without a deadline also cuts short a call already waiting on
// the backend depends on the store: the SQLite writer's queue and the Redis
// pipeline do, a direct Redis round trip waits for its deadline or the
// store's operation timeout.) Any failure to reach or hear from the backend
// wraps ErrUnavailable.
//
// Times are the store's own clock (the database server's for a shared store,
// the injected clock for an embedded one) at millisecond precision.
type Store interface {
	Locks
	Accounts

	// Ping checks that the backend answers. It returns an error wrapping
	// ErrUnavailable when it does not.
	Ping(ctx context.Context) error

	// Close releases the store's resources. Calls of the other methods
	// after Close fail with an error wrapping ErrUnavailable (so a request
	// still in flight when a server shuts down is answered 503, not 500).
	Close() error
}

// Locks is the lock half of a Store. Locks live in an account's namespace:
// the same name in two accounts is two unrelated locks, and no method lets
// one account see or change another's. Names and lease ids that break
// ValidateName or ValidateLeaseID are refused with an error wrapping
// ErrInvalidName or ErrInvalidLeaseID and change nothing.
type Locks interface {
	// Acquire takes the lock name for a new lease, atomically:
	//   - if the lock is free (never taken, released, or expired), and the
	//     account holds fewer than opts.MaxHeld unexpired locks, a lease with
	//     a fresh fencing token (strictly greater than any before it in the
	//     account) is created: Acquired is true;
	//   - if the current lease has opts.LeaseID, it is an idempotent retry:
	//     the same lease and fencing token are returned with the expiry moved
	//     to now+TTL (and the metadata replaced if given): Acquired is true;
	//   - if another lease holds it, nothing changes: Acquired is false and
	//     Lease is the holder's;
	//   - if the lock is free but the account is at its quota, it returns an
	//     error wrapping ErrLockLimitExceeded and nothing changes.
	// Once Acquire returns successfully the outcome is durable to the extent
	// the backend promises (SQLite: fsync'd).
	Acquire(ctx context.Context, accountID, name string, opts AcquireOptions) (AcquireResult, error)

	// Renew moves the expiry of the current lease leaseID to now+ttl and
	// returns it (fencing token unchanged). It returns an error wrapping
	// ErrLeaseNotCurrent if leaseID does not hold the lock now: expired,
	// released, replaced or unknown. An expired lease is never revived.
	Renew(ctx context.Context, accountID, name, leaseID string, ttl time.Duration) (Lease, error)

	// Release frees the lock if leaseID holds it now. It returns an error
	// wrapping ErrLeaseNotCurrent otherwise, and changes nothing.
	Release(ctx context.Context, accountID, name, leaseID string) error

	// Get returns the state of one lock: Held with its lease, or not held
	// (never an error for a free or unknown lock).
	Get(ctx context.Context, accountID, name string) (LockState, error)

	// List returns the account's unexpired leases sorted by name (byte
	// order). An account with none gets an empty slice.
	List(ctx context.Context, accountID string) ([]Lease, error)
}

// Accounts is the account and token half of a Store. Tokens are only ever
// handled as their SHA-256 (TokenHash); a store never sees a raw token.
type Accounts interface {
	// EnsureAccount returns the operator-made account (GitHubID 0) with this
	// login, creating it if there is none; created says which. A login
	// breaking ValidateLogin gets an error wrapping ErrInvalidLogin.
	EnsureAccount(ctx context.Context, login string) (acct Account, created bool, err error)

	// UpsertGitHubAccount returns the account of GitHub user githubID,
	// creating it if needed and setting its login to login (a renamed
	// GitHub user keeps one account). A login breaking ValidateLogin gets
	// an error wrapping ErrInvalidLogin; a githubID that is not positive
	// is a caller's bug and gets an error wrapping no sentinel. Either
	// way nothing changes.
	UpsertGitHubAccount(ctx context.Context, githubID int64, login string) (Account, error)

	// AccountByID returns the account or an error wrapping ErrNotFound.
	AccountByID(ctx context.Context, id string) (Account, error)

	// CountAccounts returns how many accounts exist.
	CountAccounts(ctx context.Context) (int64, error)

	// AddToken records a token hash for the account. An account may hold
	// many tokens. It returns an error wrapping ErrNotFound if the account
	// does not exist.
	AddToken(ctx context.Context, accountID string, hash TokenHash) error

	// AccountByToken returns the account the token hash belongs to, or an
	// error wrapping ErrNotFound for an unknown or revoked token.
	AccountByToken(ctx context.Context, hash TokenHash) (Account, error)

	// RotateToken replaces old by new for the same account: once it returns,
	// old is unknown to every instance and new works. Of concurrent
	// rotations of one token exactly one succeeds; the others, and any
	// rotation of an unknown token, get an error wrapping ErrNotFound.
	RotateToken(ctx context.Context, old, new TokenHash) (Account, error)

	// RevokeToken forgets a token hash, or returns an error wrapping
	// ErrNotFound if it is unknown.
	RevokeToken(ctx context.Context, hash TokenHash) error
}

// AccountTokens is an optional capability of a Store, found by type
// assertion: retiring every token of one account at once, for an operator
// who must cut an account off without knowing its tokens (a leaked token
// may already have been rotated to one that only its thief knows).
type AccountTokens interface {
	// RevokeAccountTokens revokes every token of the account and returns
	// how many it revoked. Once it returns nil, every token the account
	// held when it was called, and every token that a rotation of one of
	// them running meanwhile handed to its caller, is refused as a revoked
	// token is: by every instance, at once. Tokens added later (AddToken, a new GitHub sign-in) work.
	// An account without tokens, or an unknown account id, gets 0. Safe
	// for concurrent use; an error may leave some of the tokens revoked,
	// and a retry finishes the job.
	RevokeAccountTokens(ctx context.Context, accountID string) (int, error)
}

// TokenLocks is an optional capability of a Store, found by type assertion:
// the three lock writes of Locks, each done only if a bearer token belongs
// to the account at the moment of the write, in the same atomic step. It
// lets a caller that already believes it knows a token's account (the HTTP
// handlers keep a small map of token hash to account id, which never goes
// stale because a hash names at most one account ever) skip the separate
// AccountByToken round trip and still honour a rotation or revocation at
// once: a token that RotateToken or RevokeToken has retired (on any
// instance) is refused by every call that starts after that returned. The
// handlers use it for every lock write, also after a lookup, so that a
// token retired between the lookup and the write is refused too.
//
// Each method acts exactly as its Locks counterpart with accountID when
// token belongs to accountID. Otherwise (unknown, revoked or rotated-away
// token, or a token of another account) it changes nothing and returns an
// error wrapping ErrNotFound. Input is validated as by the Locks method,
// before the token is looked at. The methods are safe for concurrent use.
type TokenLocks interface {
	// AcquireAs is Acquire for accountID, done only if token belongs to it.
	AcquireAs(ctx context.Context, token TokenHash, accountID, name string, opts AcquireOptions) (AcquireResult, error)
	// RenewAs is Renew for accountID, done only if token belongs to it.
	RenewAs(ctx context.Context, token TokenHash, accountID, name, leaseID string, ttl time.Duration) (Lease, error)
	// ReleaseAs is Release for accountID, done only if token belongs to it.
	ReleaseAs(ctx context.Context, token TokenHash, accountID, name, leaseID string) error
}
