package redisstore_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestQuotaLazyCleanup checks that expired entries of the held set do not
// count against the quota even when nothing (such as List) cleaned them
// first, and that the set is cleaned when the quota is reached.
func TestQuotaLazyCleanup(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Now()
	m.SetTime(now)
	advance := func(d time.Duration) { now = now.Add(d); m.SetTime(now); m.FastForward(d) }
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: "q:"})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	acct := account(t, s, "quota")
	acq := func(name string, ttl time.Duration) error {
		o := acquireOpts(ttl)
		o.MaxHeld = 2
		res, err := s.Acquire(ctx, acct, name, o)
		if err == nil && !res.Acquired {
			t.Fatalf("Acquire(%s): not acquired, held by %+v", name, res.Lease)
		}
		return err
	}
	// A minute's lease, released once a is in the held set, keeps the set
	// alive for a minute (its PTTL follows its longest lease), so that the
	// two expired entries below stay in it until a cleanup.
	keep := acquireOpts(time.Minute)
	if r, err := s.Acquire(ctx, acct, "keep", keep); err != nil || !r.Acquired {
		t.Fatalf("Acquire(keep): %+v, %v", r, err)
	}
	if err := acq("a", time.Second); err != nil {
		t.Fatalf("Acquire(a): %v", err)
	}
	if err := s.Release(ctx, acct, "keep", keep.LeaseID); err != nil {
		t.Fatalf("Release(keep): %v", err)
	}
	if err := acq("b", time.Second); err != nil {
		t.Fatalf("Acquire(b): %v", err)
	}
	if err := acq("c", time.Minute); !errors.Is(err, lockcore.ErrLockLimitExceeded) {
		t.Fatalf("Acquire(c) at the quota: want ErrLockLimitExceeded, got %v", err)
	}
	advance(2 * time.Second)
	held := "q:{a:" + acct + "}:held"
	if n, _ := m.ZMembers(held); len(n) != 2 {
		t.Fatalf("held set before any cleanup: want the 2 expired entries, got %q", n)
	}
	for _, n := range []string{"c", "d"} {
		if err := acq(n, time.Minute); err != nil {
			t.Fatalf("Acquire(%s) after a and b expired: want acquired, got %v", n, err)
		}
	}
	if err := acq("e", time.Minute); !errors.Is(err, lockcore.ErrLockLimitExceeded) {
		t.Errorf("Acquire(e) with c and d held: want ErrLockLimitExceeded, got %v", err)
	}
	if n, err := m.ZMembers(held); err != nil || len(n) != 2 || n[0] != "c" || n[1] != "d" {
		t.Errorf("held set after the cleanup: want [c d], got %q, %v", n, err)
	}
}

// clockStore is a Store on miniredis whose two clocks the test moves
// separately: setNow moves the clock the scripts read (TIME) only, as when
// Redis has not yet dropped a key whose lease is over by the script's
// clock (Redis keeps a key through its expiry millisecond, and drops it
// lazily); dropKeys moves the key TTLs only, as when Redis dropped a lock
// key a moment before the lease's end by the script's clock.
type clockStore struct {
	s        *redisstore.Store
	m        *miniredis.Miniredis
	t0       time.Time
	setNow   func(sinceT0 time.Duration)
	dropKeys func(d time.Duration)
}

func newClockStore(t *testing.T, prefix string) *clockStore {
	t.Helper()
	m := miniredis.RunT(t)
	// A whole millisecond, so that t0 + a TTL is exactly a lease's expiry.
	t0 := time.Now().Truncate(time.Millisecond)
	m.SetTime(t0)
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: prefix})
	t.Cleanup(func() { s.Close() })
	return &clockStore{s: s, m: m, t0: t0,
		setNow:   func(d time.Duration) { m.SetTime(t0.Add(d)) },
		dropKeys: func(d time.Duration) { m.FastForward(d) },
	}
}

// TestLeaseEndsAtExpiresAt checks the scripts' boundary: a lease is held
// while now < ExpiresAt, so at ExpiresAt exactly (and later, while Redis
// still has the key) every operation sees it over, even though the lock
// key is still there: Get shows the lock free, renew and release refuse
// the lease, a new lease takes the lock with a greater fencing token and
// none of the old lease's metadata, the ended entries do not count against
// the quota, and List shows only the new leases.
func TestLeaseEndsAtExpiresAt(t *testing.T) {
	for _, past := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprintf("ExpiresAt+%v", past), func(t *testing.T) {
			c := newClockStore(t, "b:")
			s, ctx := c.s, t.Context()
			acct := account(t, s, "boundary")
			leases := map[string]lockcore.Lease{}
			for _, n := range []string{"get", "renew", "release", "take"} {
				o := acquireOpts(time.Second)
				meta := "old-" + n
				o.Metadata = &meta
				res, err := s.Acquire(ctx, acct, n, o)
				if err != nil || !res.Acquired {
					t.Fatalf("Acquire(%s): want acquired, got %+v, %v", n, res, err)
				}
				if !res.Lease.ExpiresAt.Equal(c.t0.Add(time.Second)) {
					t.Fatalf("Acquire(%s) at %s with ttl 1s: want ExpiresAt %s, got %s", n, c.t0, c.t0.Add(time.Second), res.Lease.ExpiresAt)
				}
				leases[n] = res.Lease
			}
			c.setNow(time.Second + past)
			for _, n := range []string{"get", "renew", "release", "take"} {
				if !c.m.Exists("b:{a:" + acct + "}:lock:" + n) {
					t.Fatalf("lock key %s: want still in Redis (only the scripts' clock moved)", n)
				}
			}

			if st, err := s.Get(ctx, acct, "get"); err != nil || st.Held {
				t.Errorf("Get at ExpiresAt+%v: want free, got %+v, %v", past, st, err)
			}
			if _, err := s.Renew(ctx, acct, "renew", leases["renew"].LeaseID, time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
				t.Errorf("Renew at ExpiresAt+%v: want ErrLeaseNotCurrent, got %v", past, err)
			}
			if err := s.Release(ctx, acct, "release", leases["release"].LeaseID); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
				t.Errorf("Release at ExpiresAt+%v: want ErrLeaseNotCurrent, got %v", past, err)
			}
			res, err := s.Acquire(ctx, acct, "take", acquireOpts(time.Minute))
			if err != nil || !res.Acquired {
				t.Fatalf("Acquire(take) by a new lease at ExpiresAt+%v: want acquired, got %+v, %v", past, res, err)
			}
			if res.Lease.FencingToken <= leases["take"].FencingToken || res.Lease.Metadata != "" {
				t.Errorf("Acquire(take) by a new lease with no metadata: want a fencing token > %d and no metadata, got %d and %q",
					leases["take"].FencingToken, res.Lease.FencingToken, res.Lease.Metadata)
			}
			if st, err := s.Get(ctx, acct, "take"); err != nil || !st.Held || st.Lease.LeaseID != res.Lease.LeaseID || st.Lease.Metadata != "" {
				t.Errorf("Get(take) after the new lease: want held by %s with no metadata, got %+v, %v", res.Lease.LeaseID, st, err)
			}
			// Only "take" is held: with a quota of 2, one more lock fits
			// (the acquire drops the ended entries from the held set).
			o := acquireOpts(time.Minute)
			o.MaxHeld = 2
			if res, err := s.Acquire(ctx, acct, "more", o); err != nil || !res.Acquired {
				t.Errorf("Acquire(more) with quota 2 and only take held: want acquired, got %+v, %v", res, err)
			}
			if ls, err := s.List(ctx, acct); err != nil || len(ls) != 2 || ls[0].Name != "more" || ls[1].Name != "take" {
				t.Errorf("List at ExpiresAt+%v: want [more take], got %+v, %v", past, ls, err)
			}
		})
	}
}

// TestLockKeyTTLs checks that a lock key carries the lease's TTL in Redis
// after an acquire, an idempotent re-acquire and a renew, so Redis drops it
// when the lease ends (the held set entry moves with it), and that an
// idempotent re-acquire or a renew that moved the expiry keeps the lock
// held and listed past the first expiry.
func TestLockKeyTTLs(t *testing.T) {
	c := newClockStore(t, "k:")
	s, ctx := c.s, t.Context()
	acct := account(t, s, "ttls")
	tag := "k:{a:" + acct + "}"
	advance := func(d time.Duration) {
		c.t0 = c.t0.Add(d)
		c.m.SetTime(c.t0)
		c.dropKeys(d)
	}
	wantTTL := func(what, name string, want time.Duration) {
		t.Helper()
		if got := c.m.TTL(tag + ":lock:" + name); got != want {
			t.Errorf("%s: want the TTL of lock key %s to be %v, got %v", what, name, want, got)
		}
		if got, err := c.m.ZScore(tag+":held", name); err != nil || int64(got) != c.t0.Add(want).UnixMilli() {
			t.Errorf("%s: want the held set score of %s to be %d (its expiry), got %v, %v", what, name, c.t0.Add(want).UnixMilli(), int64(got), err)
		}
	}
	retried := acquireOpts(time.Second)
	if _, err := s.Acquire(ctx, acct, "retried", retried); err != nil {
		t.Fatalf("Acquire(retried): %v", err)
	}
	wantTTL("Acquire with ttl 1s", "retried", time.Second)
	retried.TTL = time.Minute
	if res, err := s.Acquire(ctx, acct, "retried", retried); err != nil || !res.Acquired {
		t.Fatalf("idempotent re-acquire(retried): want acquired, got %+v, %v", res, err)
	}
	wantTTL("idempotent re-acquire with ttl 1m", "retried", time.Minute)
	renewed := acquireOpts(time.Second)
	if _, err := s.Acquire(ctx, acct, "renewed", renewed); err != nil {
		t.Fatalf("Acquire(renewed): %v", err)
	}
	if _, err := s.Renew(ctx, acct, "renewed", renewed.LeaseID, time.Minute); err != nil {
		t.Fatalf("Renew(renewed): %v", err)
	}
	wantTTL("Renew with ttl 1m", "renewed", time.Minute)

	advance(2 * time.Second)
	for _, n := range []string{"retried", "renewed"} {
		if st, err := s.Get(ctx, acct, n); err != nil || !st.Held {
			t.Errorf("Get(%s) 2s after a 1s lease was extended to 1m: want held, got %+v, %v", n, st, err)
		}
	}
	ls, err := s.List(ctx, acct)
	if err != nil || len(ls) != 2 || ls[0].Name != "renewed" || ls[1].Name != "retried" {
		t.Errorf("List 2s after: want [renewed retried], got %+v, %v", ls, err)
	}
	advance(time.Minute)
	if keys := c.m.Keys(); slices.Contains(keys, tag+":lock:retried") || slices.Contains(keys, tag+":lock:renewed") {
		t.Errorf("lock keys after their leases ended: want dropped by Redis, got keys %q", keys)
	}
}

// TestQuotaNameDroppedEarly checks that re-taking a name whose lock key
// Redis dropped while the held set entry still stands (a key evicted under
// maxmemory, or dropped a moment before the entry ends by the script's
// clock) does not count that name twice against the quota.
func TestQuotaNameDroppedEarly(t *testing.T) {
	c := newClockStore(t, "d:")
	s, ctx := c.s, t.Context()
	acct := account(t, s, "early")
	o := func() lockcore.AcquireOptions {
		o := acquireOpts(time.Second)
		o.MaxHeld = 2
		return o
	}
	for _, n := range []string{"a", "b"} {
		if res, err := s.Acquire(ctx, acct, n, o()); err != nil || !res.Acquired {
			t.Fatalf("Acquire(%s): want acquired, got %+v, %v", n, res, err)
		}
	}
	// Redis drops both lock keys, and only them (the held set lives as
	// long as its longest lease, so moving the key TTLs would drop it as
	// well and prove nothing); TIME has not moved.
	tag := "d:{a:" + acct + "}"
	for _, n := range []string{"a", "b"} {
		c.m.Del(tag + ":lock:" + n)
	}
	if n, err := c.m.ZMembers(tag + ":held"); err != nil || len(n) != 2 {
		t.Fatalf("held set after the lock keys were dropped: want a and b, got %q, %v", n, err)
	}
	res, err := s.Acquire(ctx, acct, "a", o())
	if err != nil || !res.Acquired {
		t.Errorf("Acquire(a) by a new lease with quota 2, a's key gone and b held: want acquired, got %+v, %v", res, err)
	}
	if st, err := s.Get(ctx, acct, "a"); err != nil || !st.Held || st.Lease.LeaseID != res.Lease.LeaseID {
		t.Errorf("Get(a) after the new lease: want held by %s, got %+v, %v", res.Lease.LeaseID, st, err)
	}
}
