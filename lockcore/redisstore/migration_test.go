package redisstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// migratingSlot puts the slot of account acct of a Cluster in the middle of
// a migration to another master (CLUSTER SETSLOT IMPORTING on that master,
// MIGRATING on the owner), moving no key, as redis-cli --cluster reshard
// does before it moves the slot's keys. It returns a client of the owner,
// which keeps every key of the slot meanwhile, and a function that ends
// the migration where it is (CLUSTER SETSLOT STABLE on both masters: the
// owner keeps the slot).
// startMigration marks slot as moving from the master src to the master
// dst (CLUSTER SETSLOT IMPORTING on dst, then MIGRATING on src), moving no
// key, and returns dst's node id.
func startMigration(t *testing.T, src, dst *redis.Client, slot int64) string {
	t.Helper()
	ctx := t.Context()
	srcID, err := src.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER MYID: %v", err)
	}
	dstID, err := dst.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER MYID: %v", err)
	}
	if err := dst.Do(ctx, "cluster", "setslot", slot, "importing", srcID).Err(); err != nil {
		t.Fatalf("CLUSTER SETSLOT %d IMPORTING: %v", slot, err)
	}
	if err := src.Do(ctx, "cluster", "setslot", slot, "migrating", dstID).Err(); err != nil {
		t.Fatalf("CLUSTER SETSLOT %d MIGRATING: %v", slot, err)
	}
	return dstID
}

func migratingSlot(t *testing.T, c *redistest.Cluster, acct string) (*redis.Client, func()) {
	t.Helper()
	ctx := t.Context()
	nodes := make(map[string]*redis.Client)
	for _, a := range c.Addrs() {
		n := redis.NewClient(&redis.Options{Addr: a})
		t.Cleanup(func() { n.Close() })
		nodes[a] = n
	}
	first := nodes[c.Addrs()[0]]
	slot, err := first.ClusterKeySlot(ctx, "{a:"+acct+"}").Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	owner := slotOwner(t, first, slot)
	src, ok := nodes[owner]
	if !ok {
		t.Fatalf("slot %d: owner %q is none of the cluster's masters %v", slot, owner, c.Addrs())
	}
	var dst *redis.Client
	for a, n := range nodes {
		if a != owner {
			dst = n
			break
		}
	}
	startMigration(t, src, dst, slot)
	return src, func() {
		t.Helper()
		for _, n := range []*redis.Client{src, dst} {
			if err := n.Do(ctx, "cluster", "setslot", slot, "stable").Err(); err != nil {
				t.Fatalf("CLUSTER SETSLOT %d STABLE: %v", slot, err)
			}
		}
	}
}

// TestSlotMigration: while an account's Cluster slot is being migrated
// (its keys still on the old master), lock calls either work or fail as
// unavailable (503), never as an internal error (500). A script that
// deletes a key and then touches it again is refused by the old master at
// that command ("Script attempted to access a non local key in a cluster
// node"), as if the key had moved.
func TestSlotMigration(t *testing.T) {
	c := redistest.StartCluster(t)
	open := func(t *testing.T) (*redisstore.Store, string) {
		prefix := nextPrefix()
		s := tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: prefix, OpTimeout: slowOpTimeout})(t)
		return s, prefix
	}

	// A lease that expires unreleased leaves its entry in the held set;
	// list.lua's lazy cleanup then deletes the set. It used to read the
	// set again after that, which the old master refused.
	t.Run("ListExpiredHeldSet", func(t *testing.T) {
		s, prefix := open(t)
		ctx := t.Context()
		acct := account(t, s, "migrate-list")
		// A minute's lease, released once a is in the held set, keeps the
		// set alive for a minute (its PTTL follows its longest lease),
		// with only a's entry, soon expired, in it.
		keep := acquireOpts(time.Minute)
		if _, err := s.Acquire(ctx, acct, "keep", keep); err != nil {
			t.Fatalf("Acquire(keep): %v", err)
		}
		if _, err := s.Acquire(ctx, acct, "a", acquireOpts(20*time.Millisecond)); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		if err := s.Release(ctx, acct, "keep", keep.LeaseID); err != nil {
			t.Fatalf("Release(keep): %v", err)
		}
		waitFree(t, s, acct, "a")
		src, _ := migratingSlot(t, c, acct)
		held := prefix + "{a:" + acct + "}:held"
		if n, err := src.ZCard(ctx, held).Result(); err != nil || n != 1 {
			t.Fatalf("the old master should hold the held set with the expired entry: ZCARD = %d, %v", n, err)
		}
		leases, err := s.List(ctx, acct)
		if err != nil || len(leases) != 0 {
			t.Fatalf("List during the slot's migration: want no lease and no error, got %v, %v", leases, err)
		}
		// Listed again, now with the held set gone from the old master
		// (so asked of the new one).
		if leases, err := s.List(ctx, acct); err != nil || len(leases) != 0 {
			t.Fatalf("List again: want no lease and no error, got %v, %v", leases, err)
		}
	})

	// acquire.lua deletes a lock hash whose lease has expired by the
	// Redis clock and writes the new lease into the same key. Redis
	// expires the key itself at the same moment, so the hash is found
	// that way only within a millisecond or so; a hash written here
	// without a TTL stands in for it. The old master refuses the write
	// after the delete: the caller must get ErrUnavailable, and the lock
	// must be acquirable with a new fencing token once the migration is
	// over.
	t.Run("AcquireOverExpiredHash", func(t *testing.T) {
		s, prefix := open(t)
		ctx := t.Context()
		acct := account(t, s, "migrate-acquire")
		first, err := s.Acquire(ctx, acct, "a", acquireOpts(time.Minute))
		if err != nil || !first.Acquired {
			t.Fatalf("Acquire: %+v, %v", first, err)
		}
		src, stable := migratingSlot(t, c, acct)
		lock := prefix + "{a:" + acct + "}:lock:a"
		if err := src.HSet(ctx, lock, "expires", 1).Err(); err != nil {
			t.Fatalf("HSET: %v", err)
		}
		if err := src.Persist(ctx, lock).Err(); err != nil {
			t.Fatalf("PERSIST: %v", err)
		}
		res, err := s.Acquire(ctx, acct, "a", acquireOpts(time.Minute))
		if !errors.Is(err, lockcore.ErrUnavailable) {
			t.Fatalf("Acquire over an expired lease during the slot's migration: want ErrUnavailable, got %+v, %v", res, err)
		}
		if !strings.Contains(err.Error(), "non local key") {
			t.Errorf("Acquire: the error should keep Redis' reply, got %v", err)
		}
		// What the refused script did leaves the lock free, with tokens
		// still rising, once the migration has ended.
		stable()
		res, err = s.Acquire(ctx, acct, "a", acquireOpts(time.Minute))
		if err != nil || !res.Acquired || res.Lease.FencingToken <= first.Lease.FencingToken {
			t.Fatalf("Acquire after the migration: want acquired with a fencing token above %d, got %+v, %v", first.Lease.FencingToken, res, err)
		}
	})
}

// waitFree waits until Get reports name free (its lease expired).
func waitFree(t *testing.T, s lockcore.Store, acct, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Get(t.Context(), acct, name)
		if err != nil {
			t.Fatalf("Get(%s): %v", name, err)
		}
		if !st.Held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get(%s): still held 10 s after a 20 ms lease", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
