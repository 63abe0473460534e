package redisstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
)

// TestHeldSetOfAnEarlierBuildKeepsItsLeases: a held set written by a build
// before its PTTL followed its leases has no TTL, and may hold a lease
// taken before the upgrade that runs for long after it. The first short
// lease of this build must not give the set that lease's short life:
// the set would expire with the older lease still held, so List would
// miss it and the quota would not count it.
func TestHeldSetOfAnEarlierBuildKeepsItsLeases(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	s := open(t, srv.URL(), "hu:", slowOpTimeout)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	acct := account(t, s, "alice")
	held := "hu:{a:" + acct + "}:held"

	// A lease of an hour, as an earlier build left it: the set without a TTL.
	long := acquireOpts(time.Hour)
	long.MaxHeld = 2
	if r, err := s.Acquire(ctx, acct, "long", long); err != nil || !r.Acquired {
		t.Fatalf("Acquire(long): %+v, %v", r, err)
	}
	if err := rc.Persist(ctx, held).Err(); err != nil {
		t.Fatalf("PERSIST %s: %v", held, err)
	}

	// After the upgrade: a short lease, which then expires.
	short := acquireOpts(100 * time.Millisecond)
	short.MaxHeld = 2
	if r, err := s.Acquire(ctx, acct, "short", short); err != nil || !r.Acquired {
		t.Fatalf("Acquire(short): %+v, %v", r, err)
	}
	waitFree(t, s, acct, "short")

	if d := rc.PTTL(ctx, held).Val(); d != -1 && d < 50*time.Minute {
		t.Errorf("PTTL of the held set after a short lease beside an hour's one: %v, want none or about an hour", d)
	}
	l, err := s.List(ctx, acct)
	if err != nil || len(l) != 1 || l[0].Name != "long" {
		t.Fatalf("List after the short lease expired: %+v, %v; want the hour's lease", l, err)
	}
	// The quota (2) counts it: one more lock fits, a second does not.
	for i, name := range []string{"b", "c"} {
		o := acquireOpts(time.Minute)
		o.MaxHeld = 2
		_, err := s.Acquire(ctx, acct, name, o)
		if i == 0 && err != nil {
			t.Fatalf("Acquire(%s): %v", name, err)
		}
		if i == 1 && !errors.Is(err, lockcore.ErrLockLimitExceeded) {
			t.Fatalf("Acquire(%s) with the hour's lease and b held, quota 2: want ErrLockLimitExceeded, got %v", name, err)
		}
	}
}
