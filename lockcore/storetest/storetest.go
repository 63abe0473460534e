// Package storetest is the specification of a lockcore.Store: a conformance
// suite that every backend must pass, in the shape of
// golang.org/x/net/nettest and gocloud.dev's drivertest.
//
// A backend's test file is a few lines that build a Harness (how to open a
// fresh, empty store, how to move its clock, how to reopen it over the same
// data) and call Run:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{Open: openTestStore})
//	}
//
// Run checks, through the lockcore.Store interface only, the promises the
// interface documents: accounts and tokens (including concurrent token
// rotation), acquire/renew/release/get/list, metadata, expiry, lease checks,
// idempotent re-acquire, strictly increasing fencing tokens (also across a
// reopen), the quota under concurrency, mutual exclusion under contention,
// isolation between accounts, refusal of invalid input, context
// cancellation, Ping, and the optional lockcore.TokenLocks (lock writes that
// check the bearer token in the same step) when the store has it. A store that passes is a store the HTTP handlers may
// use.
//
// Subtests run one after another (never in parallel), each on its own
// Instance, because a harness over a real Redis advances its clock by
// sleeping. The whole suite advances the clock once, by 2.1 s. Instances
// must provide Advance and Reopen; the subtests that need them fail if they
// are nil.
package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// Harness gives the suite fresh stores and control over their clock.
type Harness struct {
	// Open returns a fresh, empty store for one (sub)test; the harness
	// registers its own cleanup with t.Cleanup.
	Open func(t *testing.T) *Instance
}

// Instance is one opened store under test.
type Instance struct {
	// Store is the store under test.
	Store lockcore.Store
	// Advance moves the store's clock forward by at least d (fake clock,
	// miniredis FastForward+SetTime, or a real sleep for real Redis). Must
	// be safe to call from the test goroutine while no operation is in
	// flight.
	Advance func(d time.Duration)
	// Reopen closes Store and returns a new Store over the same data (a new
	// connection / file handle). The suite then uses the returned store (and
	// sets inst.Store to it).
	Reopen func() lockcore.Store
}

// Run runs every conformance test against stores from h, as subtests of t.
// The subtests run sequentially; each opens its own Instance.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inst := h.Open(t)
			if inst == nil || inst.Store == nil {
				t.Fatal("storetest: Harness.Open returned no store")
			}
			tc.fn(t, inst)
		})
	}
}

// cases lists the conformance tests in the order Run runs them.
var cases = []struct {
	name string
	fn   func(t *testing.T, inst *Instance)
}{
	{"Ping", testPing},
	{"Accounts", testAccounts},
	{"Tokens", testTokens},
	{"RotateTokenConcurrent", testRotateTokenConcurrent},
	{"AcquireHappyPath", testAcquireHappyPath},
	{"Metadata", testMetadata},
	{"Expiry", testExpiry},
	{"SubMillisecondTTL", testSubMillisecondTTL},
	{"LeaseChecks", testLeaseChecks},
	{"IdempotentReacquire", testIdempotentReacquire},
	{"Fencing", testFencing},
	{"Quota", testQuota},
	{"MutualExclusion", testMutualExclusion},
	{"AccountIsolation", testAccountIsolation},
	{"InvalidInput", testInvalidInput},
	{"Reopen", testReopen},
	{"CancelledContext", testCancelledContext},
	{"TokenLocks", testTokenLocks},
	{"RevokeAccountTokens", testRevokeAccountTokens},
}

// Durations used by the suite. Expiry waits are few and short because a
// harness over a real Redis sleeps in Advance. On a real clock, Expiry must
// list its shortTTL locks before they expire: shortTTL is the time a
// loaded machine (two cores, -race) gets for two calls, so it is not made
// smaller than 2 s.
const (
	longTTL    = 30 * time.Second
	shortTTL   = 2 * time.Second
	pastShort  = shortTTL + 100*time.Millisecond
	defaultMax = 100
)

func testPing(t *testing.T, inst *Instance) {
	if err := inst.Store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: want nil error, got %v", err)
	}
}

// newAccount creates an operator-made account with login and returns its id.
func newAccount(t *testing.T, s lockcore.Store, login string) string {
	t.Helper()
	acct, _, err := s.EnsureAccount(t.Context(), login)
	if err != nil {
		t.Fatalf("EnsureAccount(%q): want nil error, got %v", login, err)
	}
	if acct.ID == "" {
		t.Fatalf("EnsureAccount(%q): want a non-empty account id, got %+v", login, acct)
	}
	return acct.ID
}

// opts returns AcquireOptions with the default quota and no metadata.
func opts(leaseID string, ttl time.Duration) lockcore.AcquireOptions {
	return lockcore.AcquireOptions{LeaseID: leaseID, TTL: ttl, MaxHeld: defaultMax}
}

func ptr(s string) *string { return &s }

// mustAcquire acquires name and fails the test unless the caller now holds
// it. It checks the invariants every successful acquire must show.
func mustAcquire(t *testing.T, s lockcore.Store, acct, name string, o lockcore.AcquireOptions) lockcore.AcquireResult {
	t.Helper()
	res, err := s.Acquire(t.Context(), acct, name, o)
	if err != nil {
		t.Fatalf("Acquire(%q, lease %q): want nil error, got %v", name, o.LeaseID, err)
	}
	if !res.Acquired {
		t.Fatalf("Acquire(%q, lease %q): want Acquired=true, got false (holder %+v)", name, o.LeaseID, res.Lease)
	}
	checkAcquired(t, res, name, o)
	return res
}

// checkAcquired checks the fields of a successful acquire.
func checkAcquired(t *testing.T, res lockcore.AcquireResult, name string, o lockcore.AcquireOptions) {
	t.Helper()
	l := res.Lease
	if l.Name != name {
		t.Errorf("Acquire(%q): want Lease.Name %q, got %q", name, name, l.Name)
	}
	if l.LeaseID != o.LeaseID {
		t.Errorf("Acquire(%q): want Lease.LeaseID %q, got %q", name, o.LeaseID, l.LeaseID)
	}
	if l.FencingToken <= 0 {
		t.Errorf("Acquire(%q): want FencingToken > 0, got %d", name, l.FencingToken)
	}
	if res.Now.IsZero() {
		t.Errorf("Acquire(%q): want a non-zero Now, got the zero time", name)
	}
	if want := res.Now.Add(o.TTL).UnixMilli(); l.ExpiresAt.UnixMilli() != want {
		t.Errorf("Acquire(%q): want ExpiresAt = Now + TTL = %s, got %s (Now %s, TTL %v)",
			name, lockcore.FormatTime(time.UnixMilli(want)), lockcore.FormatTime(l.ExpiresAt), lockcore.FormatTime(res.Now), o.TTL)
	}
	if l.TTL != o.TTL {
		t.Errorf("Acquire(%q): want Lease.TTL %v, got %v", name, o.TTL, l.TTL)
	}
	if o.Metadata != nil && l.Metadata != *o.Metadata {
		t.Errorf("Acquire(%q): want Metadata %q, got %q", name, *o.Metadata, l.Metadata)
	}
}

// sameLease reports differences between two leases (expiry compared at
// millisecond precision).
func sameLease(t *testing.T, what string, got, want lockcore.Lease) {
	t.Helper()
	if got.Name != want.Name || got.LeaseID != want.LeaseID || got.FencingToken != want.FencingToken ||
		got.ExpiresAt.UnixMilli() != want.ExpiresAt.UnixMilli() || got.TTL != want.TTL || got.Metadata != want.Metadata {
		t.Errorf("%s: want lease %s, got %s", what, fmtLease(want), fmtLease(got))
	}
}

func fmtLease(l lockcore.Lease) string {
	return fmt.Sprintf("{Name:%q LeaseID:%q FencingToken:%d ExpiresAt:%s TTL:%v Metadata:%q}",
		l.Name, l.LeaseID, l.FencingToken, lockcore.FormatTime(l.ExpiresAt), l.TTL, l.Metadata)
}

// mustGet returns the state of a lock, failing the test on error.
func mustGet(t *testing.T, s lockcore.Store, acct, name string) lockcore.LockState {
	t.Helper()
	st, err := s.Get(t.Context(), acct, name)
	if err != nil {
		t.Fatalf("Get(%q): want nil error, got %v", name, err)
	}
	if st.Name != name {
		t.Errorf("Get(%q): want state Name %q, got %q", name, name, st.Name)
	}
	return st
}

// wantHeld checks that name is held by exactly the lease want.
func wantHeld(t *testing.T, s lockcore.Store, acct string, want lockcore.Lease) {
	t.Helper()
	st := mustGet(t, s, acct, want.Name)
	if !st.Held {
		t.Errorf("Get(%q): want held by %s, got free", want.Name, fmtLease(want))
		return
	}
	sameLease(t, fmt.Sprintf("Get(%q)", want.Name), st.Lease, want)
}

// wantFree checks that name is not held.
func wantFree(t *testing.T, s lockcore.Store, acct, name string) {
	t.Helper()
	if st := mustGet(t, s, acct, name); st.Held {
		t.Errorf("Get(%q): want free, got held by %s", name, fmtLease(st.Lease))
	}
}

// listNames returns the names List reports, in its order.
func listNames(t *testing.T, s lockcore.Store, acct string) []string {
	t.Helper()
	ls, err := s.List(t.Context(), acct)
	if err != nil {
		t.Fatalf("List: want nil error, got %v", err)
	}
	if ls == nil {
		t.Errorf("List: want a non-nil (possibly empty) slice, got nil")
	}
	names := make([]string, 0, len(ls))
	for _, l := range ls {
		names = append(names, l.Name)
	}
	return names
}

// wantList checks that List reports exactly names, in this order.
func wantList(t *testing.T, s lockcore.Store, acct string, names ...string) {
	t.Helper()
	got := listNames(t, s, acct)
	if names == nil {
		names = []string{}
	}
	if !slices.Equal(got, names) {
		t.Errorf("List: want names %q, got %q", names, got)
	}
}

// wantErr checks that err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: want an error wrapping %q, got %v", what, target, err)
	}
}

// storeNow returns the store's clock for account acct, read through the Now
// of an acquire of a probe lock that is released at once.
func storeNow(t *testing.T, s lockcore.Store, acct string) time.Time {
	t.Helper()
	lease := lockcore.NewLeaseID()
	res, err := s.Acquire(t.Context(), acct, "clock.probe", opts(lease, longTTL))
	if err != nil || !res.Acquired {
		t.Fatalf("Acquire(clock.probe) to read the store clock: want acquired, got %+v, %v", res, err)
	}
	if err := s.Release(t.Context(), acct, "clock.probe", lease); err != nil {
		t.Fatalf("Release(clock.probe): want nil error, got %v", err)
	}
	return res.Now
}
