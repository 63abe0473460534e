package redisstore_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
)

// TestHeldSetExpiresWithItsLeases: an account's held-locks index (the
// zset behind the quota and List) lives as long as its longest lease, and
// no longer than the latest expiry a lease in it was given (a shortening
// renewal does not bring that forward), so an account that stops taking
// locks leaves no key behind
// once its leases have expired (before, the index kept up to a quota's
// worth of expired entries, with no TTL, until the account came back). A
// renewal that lengthens a lease lengthens the index's life too, and a
// renewal that shortens one never cuts it below another lease's.
func TestHeldSetExpiresWithItsLeases(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	s := open(t, srv.URL(), "ht:", slowOpTimeout)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	acct := account(t, s, "alice")
	held := "ht:{a:" + acct + "}:held"
	pttl := func() time.Duration {
		t.Helper()
		d, err := rc.PTTL(ctx, held).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", held, err)
		}
		return d
	}

	short := acquireOpts(5 * time.Second)
	if r, err := s.Acquire(ctx, acct, "short", short); err != nil || !r.Acquired {
		t.Fatalf("Acquire(short): %+v, %v", r, err)
	}
	if d := pttl(); d <= 0 || d > 5*time.Second {
		t.Fatalf("PTTL of the held set after a 5 s lease: %v, want in (0, 5s]", d)
	}
	long := acquireOpts(time.Minute)
	if r, err := s.Acquire(ctx, acct, "long", long); err != nil || !r.Acquired {
		t.Fatalf("Acquire(long): %+v, %v", r, err)
	}
	if d := pttl(); d <= 50*time.Second {
		t.Fatalf("PTTL of the held set after a 1 min lease: %v, want about 1 min", d)
	}
	// Shortening a lease never shortens the set's life (another lease in
	// it may need it).
	if _, err := s.Renew(ctx, acct, "long", long.LeaseID, 2*time.Second); err != nil {
		t.Fatalf("Renew(long, 2s): %v", err)
	}
	if d := pttl(); d <= 50*time.Second {
		t.Fatalf("PTTL of the held set after a lease was shortened: %v, want still about 1 min", d)
	}
	// Lengthened by a renewal.
	if _, err := s.Renew(ctx, acct, "long", long.LeaseID, 2*time.Minute); err != nil {
		t.Fatalf("Renew(long, 2m): %v", err)
	}
	if d := pttl(); d <= 110*time.Second {
		t.Fatalf("PTTL of the held set after a renewal for 2 min: %v, want about 2 min", d)
	}
	if l, err := s.List(ctx, acct); err != nil || len(l) != 2 {
		t.Fatalf("List: %+v, %v; want both leases", l, err)
	}

	// An account whose leases have all expired leaves no index behind.
	bob := account(t, s, "bob")
	for _, name := range []string{"a", "b", "c"} {
		if r, err := s.Acquire(ctx, bob, name, acquireOpts(100*time.Millisecond)); err != nil || !r.Acquired {
			t.Fatalf("Acquire(bob, %s): %+v, %v", name, r, err)
		}
	}
	bobHeld := "ht:{a:" + bob + "}:held"
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rc.Exists(ctx, bobHeld).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 10 s after its last lease expired (PTTL %v)", bobHeld, rc.PTTL(ctx, bobHeld).Val())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l, err := s.List(ctx, bob); err != nil || len(l) != 0 {
		t.Fatalf("List(bob) after every lease expired: %+v, %v; want none", l, err)
	}
}
