package lockcore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Account is a namespace of locks and the owner of bearer tokens.
type Account struct {
	// ID is the stable, opaque account id (see NewAccountID).
	ID string
	// Login is the display name: the GitHub login, or the name an operator
	// gave. It is not unique across GitHub and operator-made accounts.
	Login string
	// GitHubID is GitHub's numeric user id, or 0 for an operator-made account.
	GitHubID int64
	// CreatedAt is when the account was created, by the store's clock.
	CreatedAt time.Time
}

// Lease is one holding of one lock.
type Lease struct {
	// Name is the lock's name within its account.
	Name string
	// LeaseID identifies the holding; only its holder should know it.
	LeaseID string
	// FencingToken is strictly greater than every token issued before it for
	// the same lock name in the same account. It never changes for the life
	// of the lease (renewals and idempotent re-acquires keep it). Both
	// stores make it max(the account's last token + 1, the store's clock
	// in microseconds), so it is about 1.8e15 (exact below 2^53 until the
	// year 2255) and stays above tokens a store lost after handing them out.
	FencingToken int64
	// ExpiresAt is when the lease ends unless renewed, by the store's clock,
	// at millisecond precision. The lease is held while now < ExpiresAt.
	ExpiresAt time.Time
	// TTL is the TTL the lease was last acquired or renewed with.
	TTL time.Duration
	// Metadata is free text the holder attached; "" means none.
	Metadata string
}

// HolderID returns the opaque, stable id of the lease that is shown to
// callers competing for the lock; it does not reveal the lease id.
func (l Lease) HolderID() string { return HolderID(l.LeaseID) }

// HolderID returns the opaque id shown for a lease id: a truncated SHA-256,
// the same on every store and instance.
func HolderID(leaseID string) string {
	sum := sha256.Sum256([]byte("octostore-holder\x00" + leaseID))
	return "h_" + hex.EncodeToString(sum[:12])
}

// LockState is what a store knows of one lock at one moment.
type LockState struct {
	// Name is the lock's name.
	Name string
	// Held reports whether an unexpired lease holds the lock.
	Held bool
	// Lease is the current lease; meaningful only when Held.
	Lease Lease
}

// AcquireOptions are the inputs of Store.Acquire beyond account and name.
// Callers validate them with the rules of this package first.
type AcquireOptions struct {
	// LeaseID is the id of the lease to create. It must be set (see
	// NewLeaseID); acquiring again with the lease id of the current holder
	// is an idempotent retry.
	LeaseID string
	// TTL is how long the lease lasts; it must be positive. Stores keep it
	// at millisecond precision.
	TTL time.Duration
	// Metadata, when non-nil, is stored with the lease (on an idempotent
	// retry it replaces the old metadata). Nil means none for a new lease
	// and "keep" for a retry.
	Metadata *string
	// MaxHeld is the account's quota of unexpired locks; it must be >= 1.
	MaxHeld int
}

// AcquireResult is the answer of Store.Acquire.
type AcquireResult struct {
	// Acquired reports whether the caller holds the lock now (a new lease or
	// an idempotent retry of the current one).
	Acquired bool
	// Lease is the caller's lease when Acquired, else the current holder's.
	Lease Lease
	// Now is the store's clock at the moment of the operation, for working
	// out how long until the holder's lease expires.
	Now time.Time
}

// TokenHash is the SHA-256 of a bearer token: the only form of a token that
// is ever stored.
type TokenHash [32]byte

// String returns the hash in lower-case hex.
func (h TokenHash) String() string { return hex.EncodeToString(h[:]) }

// TimeFormat is the contract's timestamp layout: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t in the contract's layout.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// MaxFenceFloor is the largest fencing floor a restore accepts: 2^52
// (≈ 4.5e15, the Unix time in microseconds in the year 2112), above the
// clock floors a restore uses by default. Tokens counted on from it stay
// below 2^53 for another 2^52 acquires, and tokens that follow the clock
// (a new lease's token is never below the store's clock in microseconds)
// stay below it until the year 2255, so they are exact wherever a number
// is a double: in the Redis store's Lua scripts, which would otherwise
// round a larger counter and hand one token out again, and in JSON parsers
// such as JavaScript's.
const MaxFenceFloor = int64(1) << 52

// FloorBelowCounterError is a restore's refusal, changing nothing, of a
// fencing floor below a fencing counter the restored data already holds:
// that account has issued tokens above the floor, so the floor cannot be
// greater than every token issued, and counting on from the counter could
// hand out again tokens issued after the backup. A floor equal to the
// highest counter is accepted.
type FloorBelowCounterError struct {
	// Floor is the floor the restore was given.
	Floor int64
	// Counter is the highest fencing counter found, and AccountID its
	// account.
	Counter   int64
	AccountID string
}

// Error says which floor was refused, because of which account's counter,
// and what floor to give instead.
func (e *FloorBelowCounterError) Error() string {
	return fmt.Sprintf("the fencing floor %d is below the fencing counter of account %s in the restored data (%d): give a floor of at least %d, above every token issued", e.Floor, e.AccountID, e.Counter, e.Counter)
}

// RestoreResult says what a store's restore changed (see
// sqlitestore.Restore and redisstore.Store.PrepareRestored).
type RestoreResult struct {
	// LocksDropped is the number of locks dropped (expired ones not yet
	// cleaned up included): after a restore no lock is held.
	LocksDropped int64
	// Accounts is the number of accounts whose fencing counter is now at
	// least Floor.
	Accounts int64
	// Floor is the floor the counters were raised to.
	Floor int64
}
