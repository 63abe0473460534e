package lockcore

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	tokenRe   = regexp.MustCompile(`^os_[A-Za-z0-9_-]{43}$`)
	uuidV4Re  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	accountRe = regexp.MustCompile(`^acct_[0-9a-f]{20}$`)
	holderRe  = regexp.MustCompile(`^h_[0-9a-f]{24}$`)
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, h := NewToken()
		if !tokenRe.MatchString(tok) {
			t.Fatalf("NewToken: want a token matching %s, got %q", tokenRe, tok)
		}
		if want := sha256.Sum256([]byte(tok)); h != TokenHash(want) {
			t.Fatalf("NewToken(%q): want hash SHA-256 of the token %x, got %x", tok, want, h)
		}
		if seen[tok] {
			t.Fatalf("NewToken: want distinct tokens, got %q twice", tok)
		}
		seen[tok] = true
		parsed, err := ParseToken(tok)
		if err != nil || parsed != h {
			t.Fatalf("ParseToken(NewToken()): want the token's hash, nil; got %x, %v", parsed, err)
		}
	}
}

func TestHashToken(t *testing.T) {
	// SHA-256("abc") is a published test vector.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashToken("abc").String(); got != want {
		t.Errorf("HashToken(abc).String(): want %s, got %s", want, got)
	}
	if HashToken("os_a") == HashToken("os_b") {
		t.Errorf("HashToken: want different hashes for different tokens, got the same")
	}
	var h TokenHash
	if got := h.String(); got != strings.Repeat("0", 64) {
		t.Errorf("zero TokenHash.String(): want 64 zeros, got %q", got)
	}
}

func TestParseToken(t *testing.T) {
	good, _ := NewToken()
	body := good[len(TokenPrefix):]
	for _, tc := range []struct {
		desc, tok string
	}{
		{"empty", ""},
		{"prefix only", "os_"},
		{"wrong prefix", "xx_" + body},
		{"upper-case prefix", "OS_" + body},
		{"no prefix", body},
		{"one short", good[:len(good)-1]},
		{"one long", good + "A"},
		{"standard base64 plus", "os_" + body[:42] + "+"},
		{"standard base64 slash", "os_" + body[:42] + "/"},
		{"padding", "os_" + body[:42] + "="},
		{"space", "os_" + body[:42] + " "},
		{"non-ASCII", "os_" + body[:41] + "é"},
		{"non-canonical last character", "os_" + strings.Repeat("A", 42) + "B"},
	} {
		if h, err := ParseToken(tc.tok); err == nil {
			t.Errorf("ParseToken(%s %q): want an error, got hash %x", tc.desc, tc.tok, h)
		}
	}
	canonical := "os_" + strings.Repeat("A", 42) + "E"
	if h, err := ParseToken(canonical); err != nil || h != HashToken(canonical) {
		t.Errorf("ParseToken(%q): want its hash, nil; got %x, %v", canonical, h, err)
	}
}

func TestHideTokens(t *testing.T) {
	tok, _ := NewToken()
	tok2, _ := NewToken()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/locks/leader/acquire", "/locks/leader/acquire"},
		{"/locks/" + tok + "/acquire", "/locks/os_[hidden]/acquire"},
		{tok, "os_[hidden]"},
		{tok + tok2, "os_[hidden]"},
		{tok + "." + tok2, "os_[hidden].os_[hidden]"},
		{"ios_client-42", "ios_client-42"},
		{"os_" + tok[3:45], "os_" + tok[3:45]},
		{"os_os_" + tok[3:], "os_[hidden]"},
		{"x:" + tok + "A:y", "x:os_[hidden]:y"},
		{"OS_" + tok[3:], "OS_" + tok[3:]},
	} {
		if got := HideTokens(tc.in); got != tc.want {
			t.Errorf("HideTokens(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestHideTokensAgainstRegexp compares HideTokens with the regular
// expression of its doc comment on strings made of the characters that
// matter (the prefix's, base64url and not).
func TestHideTokensAgainstRegexp(t *testing.T) {
	re := regexp.MustCompile(`os_[A-Za-z0-9_-]{43,}`)
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"o", "s", "_", "os_", "A", "-", "/", ".", strings.Repeat("b", 20)}
	for n := 0; n < 20000; n++ {
		var sb strings.Builder
		for k := rng.IntN(16); k > 0; k-- {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		in := sb.String()
		if got, want := HideTokens(in), re.ReplaceAllString(in, "os_[hidden]"); got != want {
			t.Fatalf("HideTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewLeaseID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewLeaseID()
		if !uuidV4Re.MatchString(id) {
			t.Fatalf("NewLeaseID: want a canonical UUID v4, got %q", id)
		}
		if err := ValidateLeaseID(id); err != nil {
			t.Fatalf("NewLeaseID() = %q: want a valid lease id, got %v", id, err)
		}
		if seen[id] {
			t.Fatalf("NewLeaseID: want distinct ids, got %q twice", id)
		}
		seen[id] = true
	}
}

func TestNewAccountID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewAccountID()
		if !accountRe.MatchString(id) {
			t.Fatalf("NewAccountID: want %s, got %q", accountRe, id)
		}
		if strings.ContainsAny(id, "{}") {
			t.Fatalf("NewAccountID: want no braces (Redis hash tag), got %q", id)
		}
		if seen[id] {
			t.Fatalf("NewAccountID: want distinct ids, got %q twice", id)
		}
		seen[id] = true
	}
}

func TestHolderID(t *testing.T) {
	for _, id := range []string{"a", "my-lease", NewLeaseID(), strings.Repeat("x", 64)} {
		h := HolderID(id)
		if !holderRe.MatchString(h) {
			t.Errorf("HolderID(%q): want %s, got %q", id, holderRe, h)
		}
		if again := HolderID(id); again != h {
			t.Errorf("HolderID(%q): want stable, got %q then %q", id, h, again)
		}
		if strings.Contains(h, id) || strings.Contains(h, hex.EncodeToString([]byte(id))) {
			t.Errorf("HolderID(%q) = %q: want it not to reveal the lease id", id, h)
		}
		if l := (Lease{LeaseID: id}); l.HolderID() != h {
			t.Errorf("Lease{LeaseID:%q}.HolderID(): want %q, got %q", id, h, l.HolderID())
		}
		if plain := sha256.Sum256([]byte(id)); strings.HasPrefix(hex.EncodeToString(plain[:]), h[2:]) {
			t.Errorf("HolderID(%q): want a domain-separated hash, got a prefix of the plain SHA-256", id)
		}
	}
	if HolderID("a") == HolderID("b") {
		t.Errorf("HolderID: want different ids for different leases, got %q for both", HolderID("a"))
	}
	// Pinned so that every store and instance shows the same holder id.
	sum := sha256.Sum256([]byte("octostore-holder\x00lease-1"))
	if want, got := "h_"+hex.EncodeToString(sum[:12]), HolderID("lease-1"); got != want {
		t.Errorf("HolderID(lease-1): want %s, got %s", want, got)
	}
}

func TestFormatTime(t *testing.T) {
	plus2 := time.FixedZone("UTC+2", 2*3600)
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 22, 43, 2, 123456789, time.UTC), "2026-11-27T22:43:02.123Z"},
		{time.Date(2026, 11, 27, 22, 43, 2, 0, time.UTC), "2026-11-27T22:43:02.000Z"},
		{time.Date(2026, 11, 28, 0, 43, 2, 5e6, plus2), "2026-11-27T22:43:02.005Z"},
		{time.UnixMilli(0), "1970-01-01T00:00:00.000Z"},
	} {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v): want %s, got %s", tc.in, tc.want, got)
		}
	}
}
