package lockcore

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"db.primary", true},
		{"A-Z.a-z.0-9", true},
		{"-", true},
		{".", true},
		{strings.Repeat("n", 128), true},
		{strings.Repeat("n", 129), false},
		{"", false},
		{"has space", false},
		{"under_score", false},
		{"a/b", false},
		{"a:b", false},
		{"{tag}", false},
		{"ünï", false},
		{"caf\xe9", false},
		{"new\nline", false},
		{"nul\x00", false},
	} {
		err := ValidateName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("ValidateName(%q): want nil, got %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q): want an error wrapping ErrInvalidName, got %v", tc.name, err)
		}
	}
}

func TestValidateLeaseID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"my_chosen-ID-42", true},
		{NewLeaseID(), true},
		{strings.Repeat("l", 64), true},
		{strings.Repeat("l", 65), false},
		{"", false},
		{"dot.ted", false},
		{"has space", false},
		{"ünï", false},
		{"\xff", false},
		{"{tag}", false},
	} {
		err := ValidateLeaseID(tc.id)
		if tc.ok && err != nil {
			t.Errorf("ValidateLeaseID(%q): want nil, got %v", tc.id, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidLeaseID) {
			t.Errorf("ValidateLeaseID(%q): want an error wrapping ErrInvalidLeaseID, got %v", tc.id, err)
		}
	}
}

func TestValidateLogin(t *testing.T) {
	for _, tc := range []struct {
		login string
		ok    bool
	}{
		{"octocat", true},
		{"ops-team_2.x", true},
		{strings.Repeat("l", 64), true},
		{strings.Repeat("l", 65), false},
		{"", false},
		{"has space", false},
		{"a/b", false},
		{"ünï", false},
		{"\xff", false},
	} {
		err := ValidateLogin(tc.login)
		if tc.ok && err != nil {
			t.Errorf("ValidateLogin(%q): want nil, got %v", tc.login, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidLogin) {
			t.Errorf("ValidateLogin(%q): want an error wrapping ErrInvalidLogin, got %v", tc.login, err)
		}
	}
}

func TestLimitsTTL(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		in   *int64
		want time.Duration
		ok   bool
	}{
		{nil, 60 * time.Second, true},
		{i(1), time.Second, true},
		{i(60), time.Minute, true},
		{i(3600), time.Hour, true},
		{i(3601), 0, false},
		{i(0), 0, false},
		{i(-1), 0, false},
		{i(1 << 62), 0, false},
	} {
		got, err := DefaultLimits.TTL(tc.in)
		desc := "nil"
		if tc.in != nil {
			desc = strconv.FormatInt(*tc.in, 10)
		}
		switch {
		case tc.ok && (err != nil || got != tc.want):
			t.Errorf("TTL(%s): want %v, nil; got %v, %v", desc, tc.want, got, err)
		case !tc.ok && !errors.Is(err, ErrInvalidTTL):
			t.Errorf("TTL(%s): want an error wrapping ErrInvalidTTL, got %v, %v", desc, got, err)
		}
	}

	short := DefaultLimits
	short.MaxTTL, short.DefaultTTL = 10*time.Second, 5*time.Second
	if got, err := short.TTL(nil); err != nil || got != 5*time.Second {
		t.Errorf("TTL(nil) with DefaultTTL 5s: want 5s, nil; got %v, %v", got, err)
	}
	if _, err := short.TTL(i(11)); !errors.Is(err, ErrInvalidTTL) {
		t.Errorf("TTL(11) with MaxTTL 10s: want an error wrapping ErrInvalidTTL, got %v", err)
	}
}

func TestLimitsValidateMetadata(t *testing.T) {
	for _, tc := range []struct {
		desc string
		m    string
		ok   bool
	}{
		{"empty", "", true},
		{"ascii", "host-7", true},
		{"1024 ascii bytes", strings.Repeat("m", 1024), true},
		{"1025 ascii bytes", strings.Repeat("m", 1025), false},
		{"1024 bytes of 2-byte runes", strings.Repeat("é", 512), true},
		{"1026 bytes of 2-byte runes", strings.Repeat("é", 513), false},
		{"1023 bytes plus a 2-byte rune", strings.Repeat("m", 1023) + "é", false},
		{"non-ASCII", "héllo ✓ 🐙", true},
		{"NUL and controls", "a\x00b\nc\t", true},
		{"invalid UTF-8", "caf\xe9", false},
		{"truncated rune", "\xe2\x9c", false},
	} {
		err := DefaultLimits.ValidateMetadata(tc.m)
		if tc.ok && err != nil {
			t.Errorf("ValidateMetadata(%s): want nil, got %v", tc.desc, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidMetadata) {
			t.Errorf("ValidateMetadata(%s): want an error wrapping ErrInvalidMetadata, got %v", tc.desc, err)
		}
	}
	none := DefaultLimits
	none.MaxMetadataBytes = 0
	if err := none.ValidateMetadata("x"); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("ValidateMetadata(x) with MaxMetadataBytes 0: want an error wrapping ErrInvalidMetadata, got %v", err)
	}
	if err := none.ValidateMetadata(""); err != nil {
		t.Errorf("ValidateMetadata(\"\") with MaxMetadataBytes 0: want nil, got %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	with := func(f func(*Limits)) Limits {
		l := DefaultLimits
		f(&l)
		return l
	}
	for _, tc := range []struct {
		desc string
		l    Limits
		ok   bool
	}{
		{"defaults", DefaultLimits, true},
		{"1s max and default", with(func(l *Limits) { l.MaxTTL, l.DefaultTTL = time.Second, time.Second }), true},
		{"zero metadata bytes", with(func(l *Limits) { l.MaxMetadataBytes = 0 }), true},
		{"one held lock", with(func(l *Limits) { l.MaxHeldLocks = 1 }), true},
		{"zero value", Limits{}, false},
		{"max TTL below 1s", with(func(l *Limits) { l.MaxTTL = 999 * time.Millisecond }), false},
		{"max TTL not whole seconds", with(func(l *Limits) { l.MaxTTL = 3600*time.Second + time.Millisecond }), false},
		{"default TTL above max", with(func(l *Limits) { l.DefaultTTL = 3601 * time.Second }), false},
		{"default TTL zero", with(func(l *Limits) { l.DefaultTTL = 0 }), false},
		{"default TTL not whole seconds", with(func(l *Limits) { l.DefaultTTL = 1500 * time.Millisecond }), false},
		{"negative metadata bytes", with(func(l *Limits) { l.MaxMetadataBytes = -1 }), false},
		{"zero held locks", with(func(l *Limits) { l.MaxHeldLocks = 0 }), false},
	} {
		err := tc.l.Validate()
		if tc.ok && err != nil {
			t.Errorf("Validate(%s): want nil, got %v", tc.desc, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("Validate(%s): want an error, got nil", tc.desc)
		}
	}
}

func TestDefaultLimitsMatchContract(t *testing.T) {
	want := Limits{MaxTTL: time.Hour, DefaultTTL: time.Minute, MaxMetadataBytes: 1024, MaxHeldLocks: 100}
	if DefaultLimits != want {
		t.Errorf("DefaultLimits: want %+v (API.md), got %+v", want, DefaultLimits)
	}
}

func TestInputError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind error
	}{
		{ValidateName(""), ErrInvalidName},
		{ValidateLeaseID(""), ErrInvalidLeaseID},
		{ValidateLogin(""), ErrInvalidLogin},
		{DefaultLimits.ValidateMetadata("\xff"), ErrInvalidMetadata},
	} {
		var ie *InputError
		if !errors.As(tc.err, &ie) {
			t.Errorf("%v: want an *InputError, got %T", tc.err, tc.err)
			continue
		}
		if ie.Kind != tc.kind || !errors.Is(tc.err, tc.kind) {
			t.Errorf("%v: want Kind %v and errors.Is true, got Kind %v", tc.err, tc.kind, ie.Kind)
		}
		if ie.Error() == "" || ie.Error() != ie.Msg {
			t.Errorf("%v: want Error() = Msg and non-empty, got %q vs %q", tc.err, ie.Error(), ie.Msg)
		}
		for _, other := range []error{ErrInvalidName, ErrInvalidLeaseID, ErrInvalidLogin, ErrInvalidMetadata, ErrInvalidTTL, ErrNotFound} {
			if other != tc.kind && errors.Is(tc.err, other) {
				t.Errorf("%v: want errors.Is false for %v, got true", tc.err, other)
			}
		}
	}
	wrapped := errors.Join(errors.New("context"), &InputError{Kind: ErrInvalidTTL, Msg: "bad ttl"})
	if !errors.Is(wrapped, ErrInvalidTTL) {
		t.Errorf("errors.Is through a wrapped InputError: want true, got false")
	}
}

// TestNotAllowedNamesTheCharacter: a rejected name, lease id or login says
// which character broke the rule, counted from 1 as a person counts, and
// quoted so that a space or a control character is visible; only a string
// of allowed characters is refused for its length.
func TestNotAllowedNamesTheCharacter(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ValidateName("no_underscores"), "(character 3, '_', is not allowed)"},
		{ValidateName("a b"), "(character 2, ' ', is not allowed)"},
		{ValidateName("_"), "(character 1, '_', is not allowed)"},
		{ValidateName("nul\x00"), `(character 4, '\x00', is not allowed)`},
		{ValidateName("new\nline"), `(character 4, '\n', is not allowed)`},
		{ValidateName("ünï"), "(character 1, 'ü', is not allowed)"},
		{ValidateName("caf\xe9"), "(character 4 is not valid UTF-8)"},
		{ValidateName("a\uFFFD"), "(character 2, '\uFFFD', is not allowed)"},
		{ValidateLeaseID("lease.1"), "(character 6, '.', is not allowed)"},
		{ValidateLogin("who am i"), "(character 4, ' ', is not allowed)"},
		// The character is named before the length is counted: 70 'é'
		// are 140 bytes, but the 'é' is the mistake.
		{ValidateName(strings.Repeat("é", 70)), "(character 1, 'é', is not allowed)"},
		{ValidateLeaseID(strings.Repeat("é", 40)), "(character 1, 'é', is not allowed)"},
		{ValidateName(strings.Repeat("n", 129)), "must be 1 to 128 characters of A-Z, a-z, 0-9, '.' and '-' (got 129)"},
		{ValidateName(""), "(got 0)"},
		{ValidateLeaseID(strings.Repeat("L", 65)), "(got 65)"},
		{ValidateLogin(strings.Repeat("l", 65)), "(got 65)"},
	} {
		if tc.err == nil || !strings.HasSuffix(tc.err.Error(), tc.want) {
			t.Errorf("want an error ending in %q, got %v", tc.want, tc.err)
		}
	}
}

// TestTTLMillis: store TTLs are whole milliseconds rounded up, never zero
// for a positive TTL, never past what a Duration holds, and a TTL that is
// not positive is ErrInvalidTTL.
func TestTTLMillis(t *testing.T) {
	for _, c := range []struct {
		ttl  time.Duration
		want int64
	}{
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{1500 * time.Microsecond, 2},
		{time.Minute, 60000},
		{math.MaxInt64, math.MaxInt64 / int64(time.Millisecond)},
	} {
		if got, err := TTLMillis(c.ttl); err != nil || got != c.want {
			t.Errorf("TTLMillis(%v) = %d, %v; want %d", c.ttl, got, err, c.want)
		}
	}
	for _, ttl := range []time.Duration{0, -time.Millisecond, math.MinInt64} {
		if _, err := TTLMillis(ttl); !errors.Is(err, ErrInvalidTTL) {
			t.Errorf("TTLMillis(%v): %v; want ErrInvalidTTL", ttl, err)
		}
	}
}

// TestMaxTTLSecondsFitsEveryPlatform: MaxTTLSeconds (9223372036) must be an
// int64 constant. As an int it overflows where an int has 32 bits
// (GOARCH=386, arm), and the commands that use it do not compile there
// (make build32 checks that too).
func TestMaxTTLSecondsFitsEveryPlatform(t *testing.T) {
	var v any = MaxTTLSeconds
	if _, ok := v.(int64); !ok || v != int64(9223372036) {
		t.Fatalf("MaxTTLSeconds is %v (%T), want int64 9223372036", v, v)
	}
}
