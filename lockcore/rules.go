package lockcore

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Limits are the configurable bounds of the service. The zero value is not
// useful; start from DefaultLimits.
type Limits struct {
	// MaxTTL is the longest TTL an acquire or renew may ask for.
	MaxTTL time.Duration
	// DefaultTTL is used when a request gives no TTL.
	DefaultTTL time.Duration
	// MaxMetadataBytes bounds the metadata string, in bytes of UTF-8.
	MaxMetadataBytes int
	// MaxHeldLocks is how many unexpired locks one account may hold at once.
	MaxHeldLocks int
}

// DefaultLimits are the limits of the API contract.
var DefaultLimits = Limits{
	MaxTTL:           3600 * time.Second,
	DefaultTTL:       60 * time.Second,
	MaxMetadataBytes: 1024,
	MaxHeldLocks:     100,
}

// Validate reports whether the limits themselves are usable.
func (l Limits) Validate() error {
	switch {
	case l.MaxTTL < time.Second || l.MaxTTL%time.Second != 0:
		return fmt.Errorf("max TTL must be a whole number of seconds, at least 1s (got %v)", l.MaxTTL)
	case l.DefaultTTL < time.Second || l.DefaultTTL > l.MaxTTL || l.DefaultTTL%time.Second != 0:
		return fmt.Errorf("default TTL must be a whole number of seconds from 1s to the max TTL %v (got %v)", l.MaxTTL, l.DefaultTTL)
	case l.MaxMetadataBytes < 0:
		return fmt.Errorf("max metadata bytes must not be negative (got %d)", l.MaxMetadataBytes)
	case l.MaxHeldLocks < 1:
		return fmt.Errorf("max held locks must be at least 1 (got %d)", l.MaxHeldLocks)
	}
	return nil
}

// MaxTTLSeconds is the largest count of seconds a TTL limit may be set to:
// the most a time.Duration holds (about 292 years); a larger count would
// wrap around, when converted, to some other TTL. It is an int64, not an
// int: an int of 32 bits cannot hold it.
const MaxTTLSeconds = math.MaxInt64 / int64(time.Second)

// MaxNameLen is the longest lock name, in bytes (names are ASCII).
const MaxNameLen = 128

// MaxLeaseIDLen is the longest lease id, in bytes (lease ids are ASCII).
const MaxLeaseIDLen = 64

// ValidateName checks a lock name against ^[A-Za-z0-9.-]{1,128}$. The error
// wraps ErrInvalidName.
func ValidateName(name string) error {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '.' || c == '-') {
			return inputErr(ErrInvalidName, fmt.Sprintf("lock name must be 1 to %d characters of A-Z, a-z, 0-9, '.' and '-' (%s)", MaxNameLen, notAllowed(name, i)))
		}
	}
	if len(name) == 0 || len(name) > MaxNameLen {
		return inputErr(ErrInvalidName, fmt.Sprintf("lock name must be 1 to %d characters of A-Z, a-z, 0-9, '.' and '-' (got %d)", MaxNameLen, len(name)))
	}
	return nil
}

// ValidateLeaseID checks a lease id against ^[A-Za-z0-9_-]{1,64}$. The error
// wraps ErrInvalidLeaseID.
func ValidateLeaseID(id string) error {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(isAlnum(c) || c == '_' || c == '-') {
			return inputErr(ErrInvalidLeaseID, fmt.Sprintf("lease_id must be 1 to %d characters of A-Z, a-z, 0-9, '_' and '-' (%s)", MaxLeaseIDLen, notAllowed(id, i)))
		}
	}
	if len(id) == 0 || len(id) > MaxLeaseIDLen {
		return inputErr(ErrInvalidLeaseID, fmt.Sprintf("lease_id must be 1 to %d characters of A-Z, a-z, 0-9, '_' and '-' (got %d)", MaxLeaseIDLen, len(id)))
	}
	return nil
}

// TTL turns a requested ttl_seconds into a duration. A nil request means the
// default. The error wraps ErrInvalidTTL.
func (l Limits) TTL(seconds *int64) (time.Duration, error) {
	if seconds == nil {
		return l.DefaultTTL, nil
	}
	max := int64(l.MaxTTL / time.Second)
	if *seconds < 1 || *seconds > max {
		return 0, inputErr(ErrInvalidTTL, fmt.Sprintf("ttl_seconds must be an integer from 1 to %d (got %d)", max, *seconds))
	}
	return time.Duration(*seconds) * time.Second, nil
}

// maxTTLMs is the largest whole number of milliseconds a time.Duration
// holds (about 292 years).
const maxTTLMs = int64(math.MaxInt64 / time.Millisecond)

// TTLMillis checks a store-level TTL and returns it in whole milliseconds,
// rounded up, so that a positive TTL never becomes zero and a lease never
// lasts less than was asked (but never past what a Duration can hold
// again). Every store keeps TTLs this way. A TTL that is not positive is
// an *InputError of kind ErrInvalidTTL.
func TTLMillis(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, &InputError{Kind: ErrInvalidTTL, Msg: fmt.Sprintf("ttl must be positive (got %v)", ttl)}
	}
	ms := int64(ttl / time.Millisecond)
	if ttl%time.Millisecond != 0 && ms < maxTTLMs {
		ms++
	}
	return ms, nil
}

// ValidateMetadata checks that metadata is valid UTF-8 of at most
// MaxMetadataBytes bytes. The error wraps ErrInvalidMetadata.
func (l Limits) ValidateMetadata(m string) error {
	if !utf8.ValidString(m) {
		return inputErr(ErrInvalidMetadata, "metadata must be valid UTF-8")
	}
	if len(m) > l.MaxMetadataBytes {
		return inputErr(ErrInvalidMetadata, fmt.Sprintf("metadata must be at most %d bytes of UTF-8 (got %d)", l.MaxMetadataBytes, len(m)))
	}
	return nil
}

// ValidateLogin checks an account login: 1 to 64 bytes of A-Z, a-z, 0-9,
// '-', '_' and '.' (GitHub logins fit). The error wraps ErrInvalidLogin.
func ValidateLogin(login string) error {
	for i := 0; i < len(login); i++ {
		c := login[i]
		if !(isAlnum(c) || c == '-' || c == '_' || c == '.') {
			return inputErr(ErrInvalidLogin, fmt.Sprintf("login must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.' (%s)", notAllowed(login, i)))
		}
	}
	if len(login) == 0 || len(login) > 64 {
		return inputErr(ErrInvalidLogin, fmt.Sprintf("login must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.' (got %d)", len(login)))
	}
	return nil
}

// notAllowed says which character of s, starting at byte i, broke an ASCII
// rule, for an error message: "character 3, '_', is not allowed". Every
// byte before i is an allowed ASCII character, so i+1 counts characters
// as a person does. The rules check characters before length for the same
// reason: a length counted in bytes would be wrong for a string that is
// not ASCII, and the bad character is the mistake to point at. The character is quoted with Go's escapes (a control
// character or a space is never shown raw); a byte that does not start
// valid UTF-8 is named as such.
func notAllowed(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("character %d is not valid UTF-8", i+1)
	}
	return fmt.Sprintf("character %d, %q, is not allowed", i+1, r)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
