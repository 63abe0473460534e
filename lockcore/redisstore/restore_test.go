package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestPrepareRestoredMiniredis runs the restore tests on miniredis.
func TestPrepareRestoredMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	open := func(t *testing.T, prefix string) *redisstore.Store {
		s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: prefix, OpTimeout: slowOpTimeout})
		t.Cleanup(func() { s.Close() })
		return s
	}
	testPrepareRestored(t, open)
}

// TestPrepareRestoredRedis runs the restore tests on a real redis-server.
func TestPrepareRestoredRedis(t *testing.T) {
	srv := redistest.Start(t)
	testPrepareRestored(t, func(t *testing.T, prefix string) *redisstore.Store {
		return tlOpenReal(redisstore.Config{URL: srv.URL(), Prefix: prefix, OpTimeout: slowOpTimeout})(t)
	})
}

// TestPrepareRestoredCluster runs the restore tests on a real three-master
// Redis Cluster, whose accounts' keys are spread over the masters that the
// scan must each visit.
func TestPrepareRestoredCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	testPrepareRestored(t, func(t *testing.T, prefix string) *redisstore.Store {
		return tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: prefix, OpTimeout: slowOpTimeout})(t)
	})
}

func testPrepareRestored(t *testing.T, open func(t *testing.T, prefix string) *redisstore.Store) {
	t.Run("FencingGoesOnAboveTheFloor", func(t *testing.T) { testRestoredFencing(t, open) })
	t.Run("ManyLocks", func(t *testing.T) { testRestoredManyLocks(t, open) })
	t.Run("LostSlot", func(t *testing.T) { testRestoredLostSlot(t, open) })
	t.Run("HighestFloor", func(t *testing.T) { testRestoredHighestFloor(t, open) })
	t.Run("BadFloor", func(t *testing.T) {
		s := open(t, nextPrefix())
		for _, f := range []int64{0, -1, lockcore.MaxFenceFloor + 1} {
			if _, err := s.PrepareRestored(t.Context(), f); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("fencing floor must be from 1 to %d (got %d)", lockcore.MaxFenceFloor, f)) {
				t.Errorf("PrepareRestored(%d): %v; want the floor refused", f, err)
			}
		}
	})
}

// acquireFenceRedis acquires name for acct and returns the fencing token.
func acquireFenceRedis(t *testing.T, s lockcore.Store, acct, name string) int64 {
	t.Helper()
	r, err := s.Acquire(t.Context(), acct, name, acquireOpts(time.Minute))
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire(%s, %s): %+v, %v", acct, name, r, err)
	}
	return r.Lease.FencingToken
}

// testRestoredFencing: after PrepareRestored every account's next token
// is above the floor (also an account that had no counter, and one whose
// locks were all released), no lock is held, tokens still work, another
// prefix's data is untouched, and a second run with a lower floor lowers
// nothing.
func testRestoredFencing(t *testing.T, open func(t *testing.T, prefix string) *redisstore.Store) {
	ctx := t.Context()
	s := open(t, nextPrefix())
	other := open(t, nextPrefix())
	a, b, c := account(t, s, "alice"), account(t, s, "bob"), account(t, s, "carol")
	tok := newToken(t, s, a)
	acquireFenceRedis(t, s, a, "x")
	acquireFenceRedis(t, s, a, "y")
	lease := lockcore.NewLeaseID()
	if r, err := s.Acquire(ctx, c, "z", lockcore.AcquireOptions{LeaseID: lease, TTL: time.Minute, MaxHeld: 100}); err != nil || !r.Acquired {
		t.Fatalf("Acquire z: %+v, %v", r, err)
	}
	if err := s.Release(ctx, c, "z", lease); err != nil {
		t.Fatal(err)
	}
	o := account(t, other, "olga")
	oFence := acquireFenceRedis(t, other, o, "x")

	// A floor an hour ahead of the clock: tokens are never below the Redis
	// clock in microseconds, so only a floor above it shows in them.
	floor := time.Now().Add(time.Hour).UnixMicro()
	res, err := s.PrepareRestored(ctx, floor)
	if err != nil {
		t.Fatalf("PrepareRestored: %v", err)
	}
	if want := (lockcore.RestoreResult{LocksDropped: 2, Accounts: 3, Floor: floor}); res != want {
		t.Errorf("PrepareRestored: %+v; want %+v", res, want)
	}
	if l, err := s.List(ctx, a); err != nil || len(l) != 0 {
		t.Errorf("List after PrepareRestored: %+v, %v; want none", l, err)
	}
	if st, err := s.Get(ctx, a, "x"); err != nil || st.Held {
		t.Errorf("x after PrepareRestored: %+v, %v; want free", st, err)
	}
	if got, err := s.AccountByToken(ctx, tok); err != nil || got.ID != a {
		t.Errorf("the token after PrepareRestored: %+v, %v", got, err)
	}
	for _, acct := range []string{a, b, c} {
		if f := acquireFenceRedis(t, s, acct, "x"); f != floor+1 {
			t.Errorf("first token of %s after PrepareRestored: %d; want %d", acct, f, floor+1)
		}
	}
	if st, err := other.Get(ctx, o, "x"); err != nil || !st.Held || st.Lease.FencingToken != oFence {
		t.Errorf("another prefix's lock: %+v, %v; want it untouched", st, err)
	}
	if f := acquireFenceRedis(t, other, o, "y"); f <= oFence || f >= floor {
		t.Errorf("another prefix's next token: %d; want above %d and below the floor %d", f, oFence, floor)
	}

	// Again, with floors below the counters (each floor+1 now, alice's
	// floor+2): refused, naming alice, and nothing changes.
	acquireFenceRedis(t, s, a, "y")
	for _, low := range []int64{3, floor + 1} {
		_, err = s.PrepareRestored(ctx, low)
		var fe *lockcore.FloorBelowCounterError
		if !errors.As(err, &fe) || *fe != (lockcore.FloorBelowCounterError{Floor: low, Counter: floor + 2, AccountID: a}) {
			t.Errorf("PrepareRestored(%d) below alice's counter %d: %v; want a FloorBelowCounterError naming alice", low, floor+2, err)
		}
	}
	for _, name := range []string{"x", "y"} {
		if st, err := s.Get(ctx, a, name); err != nil || !st.Held {
			t.Errorf("%s after a refused PrepareRestored: %+v, %v; want still held", name, st, err)
		}
	}
	// Then with the floor at the highest counter (running it again): the
	// four locks are dropped, and alice goes on from her counter.
	res, err = s.PrepareRestored(ctx, floor+2)
	if err != nil || res.LocksDropped != 4 || res.Accounts != 3 {
		t.Fatalf("PrepareRestored at the highest counter: %+v, %v; want 4 locks of 3 accounts", res, err)
	}
	if f := acquireFenceRedis(t, s, a, "x"); f != floor+3 {
		t.Errorf("alice's token after a run at her counter: %d; want %d", f, floor+3)
	}
	if f := acquireFenceRedis(t, s, b, "y"); f != floor+3 {
		t.Errorf("bob's token after a run at alice's counter: %d; want %d", f, floor+3)
	}
}

// testRestoredManyLocks drops more locks of one account than one run of
// restore.lua deletes.
func testRestoredManyLocks(t *testing.T, open func(t *testing.T, prefix string) *redisstore.Store) {
	ctx := t.Context()
	s := open(t, nextPrefix())
	a := account(t, s, "alice")
	const n = 1203
	for i := 0; i < n; i++ {
		r, err := s.Acquire(ctx, a, fmt.Sprintf("l%d", i), lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: n})
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire l%d: %+v, %v", i, r, err)
		}
	}
	floor := time.Now().Add(time.Hour).UnixMicro() // above the clock, which tokens follow
	res, err := s.PrepareRestored(ctx, floor)
	if err != nil || res.LocksDropped != n || res.Accounts != 1 {
		t.Fatalf("PrepareRestored: %+v, %v; want %d locks of 1 account", res, err, n)
	}
	if l, err := s.List(ctx, a); err != nil || len(l) != 0 {
		t.Errorf("List after PrepareRestored: %d locks, %v; want none", len(l), err)
	}
	if f := acquireFenceRedis(t, s, a, "l0"); f != floor+1 {
		t.Errorf("first token after PrepareRestored: %d; want %d", f, floor+1)
	}
}

// TestPrepareRestoredUnavailable: a Redis that is gone gives an error
// wrapping lockcore.ErrUnavailable.
func TestPrepareRestoredUnavailable(t *testing.T) {
	m := miniredis.RunT(t)
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true, MaxRetries: -1}), redisstore.Options{OpTimeout: time.Second})
	t.Cleanup(func() { s.Close() })
	m.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.PrepareRestored(ctx, 10); err == nil || !strings.Contains(err.Error(), lockcore.ErrUnavailable.Error()) {
		t.Fatalf("PrepareRestored on a stopped Redis: %v; want ErrUnavailable", err)
	}
}

// testRestoredLostSlot: an account whose slot lost every key (a Cluster
// master restarted empty) has no key under its tag left; restore must
// still find it (through its index keys) and raise its fencing counter to
// the floor, so that the account's next acquire (once it is made again)
// is above the floor. The floor is an hour ahead of the clock: tokens
// never fall below the Redis clock in microseconds, so a floor below it
// would not show whether the counter was raised.
func testRestoredLostSlot(t *testing.T, open func(t *testing.T, prefix string) *redisstore.Store) {
	prefix := nextPrefix()
	s := open(t, prefix)
	ctx := t.Context()
	acct := account(t, s, "lost")
	for i := 0; i < 3; i++ {
		acquireFenceRedis(t, s, acct, fmt.Sprintf("l%d", i))
	}
	tag := prefix + "{a:" + acct + "}"
	raw := redisstore.ClientOf(s)
	for _, k := range []string{prefix + "accounts", tag + ":account", tag + ":fence", tag + ":held", tag + ":lock:l0", tag + ":lock:l1", tag + ":lock:l2"} {
		if err := raw.Del(ctx, k).Err(); err != nil {
			t.Fatalf("DEL %s: %v", k, err)
		}
	}
	floor := time.Now().Add(time.Hour).UnixMicro()
	res, err := s.PrepareRestored(ctx, floor)
	if err != nil {
		t.Fatalf("PrepareRestored: %v", err)
	}
	if res.Accounts != 1 {
		t.Errorf("PrepareRestored: %d accounts, want 1 (the one whose slot was lost)", res.Accounts)
	}
	if _, _, err := s.EnsureAccount(ctx, "lost"); err != nil {
		t.Fatalf("EnsureAccount: %v", err)
	}
	if got := acquireFenceRedis(t, s, acct, "again"); got != floor+1 {
		t.Errorf("acquire after restore: fencing token %d, want %d (the floor + 1)", got, floor+1)
	}
}

// testRestoredHighestFloor: the highest floor a restore accepts
// (lockcore.MaxFenceFloor) is kept exactly, and so are the tokens counted
// on from it, as Acquire, Get, Renew and List report them. A Lua number is
// a double: were the floor above 2^53, the scripts would round the counter
// and hand one token out again and again, below the floor. A floor above
// MaxFenceFloor, or below the counter, is refused.
func testRestoredHighestFloor(t *testing.T, open func(t *testing.T, prefix string) *redisstore.Store) {
	ctx := t.Context()
	s := open(t, nextPrefix())
	a, _, err := s.EnsureAccount(ctx, "high")
	if err != nil {
		t.Fatal(err)
	}
	acquireFenceRedis(t, s, a.ID, "before")
	floor := lockcore.MaxFenceFloor
	if _, err := s.PrepareRestored(ctx, floor); err != nil {
		t.Fatalf("PrepareRestored(%d): %v", floor, err)
	}
	names := []string{"x", "y", "z"}
	for i, name := range names {
		want := floor + 1 + int64(i)
		if got := acquireFenceRedis(t, s, a.ID, name); got != want {
			t.Errorf("Acquire(%s) after a floor of %d: fencing token %d, want %d", name, floor, got, want)
		}
		st, err := s.Get(ctx, a.ID, name)
		if err != nil || !st.Held || st.Lease.FencingToken != want {
			t.Errorf("Get(%s): %+v, %v; want held with fencing token %d", name, st, err, want)
			continue
		}
		if l, err := s.Renew(ctx, a.ID, name, st.Lease.LeaseID, time.Minute); err != nil || l.FencingToken != want {
			t.Errorf("Renew(%s): %+v, %v; want fencing token %d", name, l, err, want)
		}
	}
	ls, err := s.List(ctx, a.ID)
	if err != nil || len(ls) != len(names) {
		t.Fatalf("List: %+v, %v; want %d locks", ls, err, len(names))
	}
	for i, l := range ls {
		if want := floor + 1 + int64(i); l.FencingToken != want {
			t.Errorf("List: %s has fencing token %d, want %d", l.Name, l.FencingToken, want)
		}
	}
	if _, err := s.PrepareRestored(ctx, floor+10); err == nil {
		t.Fatalf("PrepareRestored(%d) above MaxFenceFloor: accepted", floor+10)
	}
	if _, err := s.PrepareRestored(ctx, floor-1); err == nil {
		t.Errorf("PrepareRestored(%d) below the counter (%d): accepted", floor-1, floor+3)
	}
}

// TestServersConnected: the connections of a store opened as a server
// are found by ServersConnected, on a redis-server and on every master of
// a Cluster, and those of other stores (the operator's commands) are not;
// closing the server's store ends them.
func TestServersConnected(t *testing.T) {
	srv := redistest.Start(t)
	cl := redistest.StartCluster(t)
	for _, tc := range []struct {
		name string
		cfg  redisstore.Config
	}{
		{"redis", redisstore.Config{URL: srv.URL(), Prefix: "sc:"}},
		{"cluster", redisstore.Config{URL: cl.URL(), Cluster: true, Prefix: "sc:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cmd, err := redisstore.Open(ctx, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cmd.Close()
			if got, err := cmd.ServersConnected(ctx); err != nil || len(got) != 0 {
				t.Fatalf("ServersConnected with no server: %v, %v; want none", got, err)
			}
			scfg := tc.cfg
			scfg.Server = true
			server, err := redisstore.Open(ctx, scfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := server.EnsureAccount(ctx, "sc"); err != nil { // a write too, on a Cluster's master of that slot
				t.Fatal(err)
			}
			if got, err := cmd.ServersConnected(ctx); err != nil || len(got) == 0 || !strings.HasPrefix(got[0], "127.0.0.1:") {
				t.Errorf("ServersConnected with a server's store open: %v, %v; want its connections", got, err)
			}
			server.Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := cmd.ServersConnected(ctx)
				if err == nil && len(got) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ServersConnected after the server's store closed: %v, %v; want none", got, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
