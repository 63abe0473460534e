package lockcore

import "errors"

// Sentinel errors. Backends wrap their own failures into these with %w and
// callers test them with errors.Is; the HTTP layer maps each to one status
// and code.
var (
	// ErrLeaseNotCurrent means the lease named in a renew or release is not
	// the lock's current holder: it expired, was released, was replaced by
	// another lease, or never existed.
	ErrLeaseNotCurrent = errors.New("lease is not current")

	// ErrLockLimitExceeded means the account already holds its maximum
	// number of unexpired locks, so a new acquire was refused.
	ErrLockLimitExceeded = errors.New("lock limit exceeded")

	// ErrInvalidName means a lock name broke the naming rule.
	ErrInvalidName = errors.New("invalid lock name")
	// ErrInvalidTTL means a TTL was out of range or not an integer.
	ErrInvalidTTL = errors.New("invalid ttl")
	// ErrInvalidMetadata means metadata was too long or not a UTF-8 string.
	ErrInvalidMetadata = errors.New("invalid metadata")
	// ErrInvalidLeaseID means a lease id broke the lease-id rule.
	ErrInvalidLeaseID = errors.New("invalid lease id")
	// ErrInvalidLogin means an account login was empty or malformed.
	ErrInvalidLogin = errors.New("invalid login")

	// ErrNotFound means the account or token asked for does not exist.
	ErrNotFound = errors.New("not found")

	// ErrUnavailable means the store could not be reached or did not answer
	// in time. The operation may or may not have taken effect; retrying an
	// acquire with the same lease id is safe.
	ErrUnavailable = errors.New("store unavailable")
)

// InputError is a validation failure: Kind is one of the ErrInvalid*
// sentinels (so errors.Is(err, ErrInvalidName) holds) and Msg is a sentence
// for a person saying what was wrong and where.
type InputError struct {
	Kind error
	Msg  string
}

// Error returns the human sentence.
func (e *InputError) Error() string { return e.Msg }

// Unwrap returns the sentinel kind.
func (e *InputError) Unwrap() error { return e.Kind }

func inputErr(kind error, msg string) error { return &InputError{Kind: kind, Msg: msg} }
