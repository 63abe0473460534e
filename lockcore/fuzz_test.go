package lockcore_test

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/octostore/octostore/lockcore"
)

// The contract's input rules written as regular expressions: an independent
// statement of what the hand-written validators must accept.
var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9.-]{1,128}$`)
	leaseIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	loginRE   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	tokenRE   = regexp.MustCompile(`^os_[A-Za-z0-9_-]{43}$`)
)

// inputSeeds are strings near the edges of every rule: empty, the longest
// allowed and one more, each excluded punctuation, NUL, non-ASCII, invalid
// UTF-8 and look-alike digits.
var inputSeeds = []string{
	"", "a", "A", "0", ".", "..", "-", "_", "a.b-c", "my-lock.v2", "a b", "a/b", "a\\b", "a\x00", "\x00",
	"é", "\xff", "\xc0\xaf", "a\nb", "a\tb", "%2F", "ａ", "١", "\u202e",
	strings.Repeat("x", 63), strings.Repeat("x", 64), strings.Repeat("x", 65),
	strings.Repeat("x", 127), strings.Repeat("x", 128), strings.Repeat("x", 129),
	strings.Repeat("-", 128), strings.Repeat("é", 64),
}

// checkRule asserts that a validator's verdict on s matches re, and that a
// refusal is an *InputError of kind.
func checkRule(t *testing.T, what string, s string, err error, re *regexp.Regexp, kind error) {
	t.Helper()
	want := re.MatchString(s)
	if (err == nil) != want {
		t.Fatalf("%s(%q) = %v, regexp says valid=%v", what, s, err, want)
	}
	if err == nil {
		return
	}
	var ie *lockcore.InputError
	if !errors.As(err, &ie) || !errors.Is(err, kind) || ie.Msg == "" {
		t.Fatalf("%s(%q): error %#v is not an InputError of kind %v with a message", what, s, err, kind)
	}
	if len(ie.Msg) > 200 {
		t.Fatalf("%s(%q): message %q is too long to show a client", what, s, ie.Msg)
	}
}

// FuzzValidateName checks ValidateName against ^[A-Za-z0-9.-]{1,128}$: the
// same verdict for every string, an InputError wrapping ErrInvalidName on
// refusal, never a panic.
func FuzzValidateName(f *testing.F) {
	for _, s := range inputSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkRule(t, "ValidateName", s, lockcore.ValidateName(s), nameRE, lockcore.ErrInvalidName)
	})
}

// FuzzValidateLeaseID checks ValidateLeaseID against ^[A-Za-z0-9_-]{1,64}$.
func FuzzValidateLeaseID(f *testing.F) {
	for _, s := range inputSeeds {
		f.Add(s)
	}
	f.Add(lockcore.NewLeaseID())
	f.Fuzz(func(t *testing.T, s string) {
		checkRule(t, "ValidateLeaseID", s, lockcore.ValidateLeaseID(s), leaseIDRE, lockcore.ErrInvalidLeaseID)
	})
}

// FuzzValidateLogin checks ValidateLogin against ^[A-Za-z0-9._-]{1,64}$.
func FuzzValidateLogin(f *testing.F) {
	for _, s := range inputSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkRule(t, "ValidateLogin", s, lockcore.ValidateLogin(s), loginRE, lockcore.ErrInvalidLogin)
	})
}

// FuzzValidateMetadata checks that metadata is accepted exactly when it is
// valid UTF-8 of at most MaxMetadataBytes bytes.
func FuzzValidateMetadata(f *testing.F) {
	for _, s := range inputSeeds {
		f.Add(s)
	}
	f.Add(strings.Repeat("é", 512))
	f.Add(strings.Repeat("é", 512) + "a")
	f.Add(strings.Repeat("a", 1024) + "\xff")
	lim := lockcore.DefaultLimits
	f.Fuzz(func(t *testing.T, s string) {
		err := lim.ValidateMetadata(s)
		want := utf8.ValidString(s) && len(s) <= lim.MaxMetadataBytes
		if (err == nil) != want {
			t.Fatalf("ValidateMetadata(%q) = %v, want valid=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, lockcore.ErrInvalidMetadata) {
			t.Fatalf("ValidateMetadata(%q): error %v does not wrap ErrInvalidMetadata", s, err)
		}
	})
}

// FuzzLimitsTTL checks that a TTL is accepted exactly when it is 1..MaxTTL
// seconds, and then converts without overflow.
func FuzzLimitsTTL(f *testing.F) {
	for _, n := range []int64{-1 << 63, -1, 0, 1, 60, 3599, 3600, 3601, 1 << 62, 1<<63 - 1} {
		f.Add(n)
	}
	lim := lockcore.DefaultLimits
	f.Fuzz(func(t *testing.T, n int64) {
		d, err := lim.TTL(&n)
		want := n >= 1 && n <= 3600
		if (err == nil) != want {
			t.Fatalf("TTL(%d) = %v, %v; want valid=%v", n, d, err, want)
		}
		if err != nil && !errors.Is(err, lockcore.ErrInvalidTTL) {
			t.Fatalf("TTL(%d): error %v does not wrap ErrInvalidTTL", n, err)
		}
		if err == nil && d != time.Duration(n)*time.Second {
			t.Fatalf("TTL(%d) = %v", n, d)
		}
	})
}

// FuzzParseToken checks that ParseToken accepts exactly "os_" followed by
// the 43-character unpadded base64url form of 32 bytes (the canonical one:
// the last character carries no stray bits), and that the hash is
// HashToken's.
func FuzzParseToken(f *testing.F) {
	tok, _ := lockcore.NewToken()
	for _, s := range []string{
		tok, "", "os_", tok[:len(tok)-1], tok + "A", "OS_" + tok[3:], "os-" + tok[3:],
		"os_" + strings.Repeat("A", 43), "os_" + strings.Repeat("A", 42) + "B", "os_" + strings.Repeat("_", 43),
		"os_" + strings.Repeat("+", 43), "os_" + strings.Repeat("A", 42) + "=", "os_" + strings.Repeat("\xff", 43),
		" " + tok, tok + " ", "os_" + strings.Repeat("A", 42) + "\r", "os_\n" + strings.Repeat("A", 42),
		"os_" + strings.Repeat("A", 21) + "\r\n" + strings.Repeat("A", 20),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := lockcore.ParseToken(s)
		want := false
		if tokenRE.MatchString(s) {
			b, derr := base64.RawURLEncoding.DecodeString(s[3:])
			// Canonical: re-encoding the 32 bytes gives the same text.
			want = derr == nil && len(b) == 32 && base64.RawURLEncoding.EncodeToString(b) == s[3:]
		}
		if (err == nil) != want {
			t.Fatalf("ParseToken(%q) = %v, want valid=%v", s, err, want)
		}
		if err == nil && h != lockcore.HashToken(s) {
			t.Fatalf("ParseToken(%q) hash %v, want HashToken's", s, h)
		}
	})
}

// TestParseTokenRefusesLineBreaks is the regression test of a fuzz finding:
// base64 decoding skips CR and LF, so a 43-character string with a line
// break inside used to pass ParseToken.
func TestParseTokenRefusesLineBreaks(t *testing.T) {
	tok, _ := lockcore.NewToken()
	for _, s := range []string{
		"os_" + strings.Repeat("A", 42) + "\r", "os_\n" + strings.Repeat("A", 42), tok[:len(tok)-1] + "\r", tok[:len(tok)-1] + "\n", tok[:10] + "\r" + tok[11:], tok[:3] + "\n" + tok[4:],
	} {
		if _, err := lockcore.ParseToken(s); err == nil {
			t.Errorf("ParseToken(%q) accepted a line break", s)
		}
	}
	if _, err := lockcore.ParseToken(tok); err != nil {
		t.Errorf("ParseToken(%q) = %v", tok, err)
	}
}
