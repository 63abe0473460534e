package lockcore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// TokenPrefix starts every bearer token.
const TokenPrefix = "os_"

// tokenLen is the length of a token: the prefix and 32 bytes in unpadded
// base64url (43 characters).
const tokenLen = len(TokenPrefix) + 43

// NewToken returns a new bearer token (32 random bytes, base64url, prefixed
// "os_") and its hash. Only the hash may be stored; the token is shown once.
func NewToken() (token string, hash TokenHash) {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never returns an error.
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of a token, the key it is stored under.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// ParseToken checks that s is shaped like a token NewToken makes, without
// asking any store, so that garbage is refused before a lookup.
func ParseToken(s string) (TokenHash, error) {
	if len(s) != tokenLen || !strings.HasPrefix(s, TokenPrefix) {
		return TokenHash{}, fmt.Errorf("token must be %q followed by 43 base64url characters", TokenPrefix)
	}
	// The decoder skips CR and LF, so "43 characters" alone would let a
	// token with a line break inside through: the decoded length says.
	if b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(TokenPrefix):]); err != nil || len(b) != 32 {
		return TokenHash{}, fmt.Errorf("token must be %q followed by 43 base64url characters", TokenPrefix)
	}
	return HashToken(s), nil
}

// HideTokens returns s with every run shaped like a bearer token
// (TokenPrefix followed by at least 43 base64url characters) replaced by
// TokenPrefix + "[hidden]". Text that holds no such run is returned as it
// is, without copying. It is for text a client sent that ends up in a log
// (a path, a request id): a token put there by mistake must not be logged.
func HideTokens(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b already
	for i := 0; ; {
		j := strings.Index(s[i:], TokenPrefix)
		if j < 0 {
			break
		}
		start := i + j
		end := start + len(TokenPrefix)
		for end < len(s) && (isAlnum(s[end]) || s[end] == '-' || s[end] == '_') { // base64url
			end++
		}
		if end-start < tokenLen {
			i = start + len(TokenPrefix) // too short for a token
			continue
		}
		b.WriteString(s[done:start])
		b.WriteString(TokenPrefix + "[hidden]")
		done, i = end, end
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// NewLeaseID returns a random UUID v4 in canonical text form, which is a
// valid lease id.
func NewLeaseID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// NewAccountID returns a new random account id: "acct_" and 20 hex digits.
// It contains no '{' or '}' so it can sit inside a Redis hash tag.
func NewAccountID() string {
	var b [10]byte
	rand.Read(b[:])
	return "acct_" + hex.EncodeToString(b[:])
}
