package redisstore_test

import (
	"errors"
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
	for _, n := range []string{"a", "b"} {
		if err := acq(n, time.Second); err != nil {
			t.Fatalf("Acquire(%s): %v", n, err)
		}
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
