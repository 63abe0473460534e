package redisstore_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestClusterFailover: when the master of an account's slot is gone for
// good (killed, not restarted) and its replica has taken over, the store
// finds the new master by itself. A gone master answers nothing, so it
// never redirects the client (MOVED); the store must make go-redis read
// the slot map again on the failed calls rather than wait for its
// periodic reload (60 s by default, far longer than this test). The lease
// taken before the failover, which the replica had received, is still
// there, and fencing tokens go on rising.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t)
	s := tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: nextPrefix(), OpTimeout: 2 * time.Second})(t)
	ctx := t.Context()
	acct := account(t, s, "failover")
	o := acquireOpts(time.Hour)
	first, err := s.Acquire(ctx, acct, "a", o)
	if err != nil || !first.Acquired {
		t.Fatalf("Acquire: %+v, %v", first, err)
	}

	// The account's master gets a replica, which receives the lease.
	raw := redis.NewClient(&redis.Options{Addr: c.Addrs()[0]})
	t.Cleanup(func() { raw.Close() })
	slot, err := raw.ClusterKeySlot(ctx, "{a:"+acct+"}").Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	master := slotOwner(t, raw, slot)
	replica := c.AddReplica(t, master)
	mc := redis.NewClient(&redis.Options{Addr: master})
	t.Cleanup(func() { mc.Close() })
	if n, err := mc.Do(ctx, "wait", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT on %s: %d replicas have the writes, %v", master, n, err)
	}

	// The master dies; its replica takes over at once, as after a
	// failover (TAKEOVER needs no vote, so no waiting for the cluster to
	// notice the death).
	c.Node(master).Kill()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { rc.Close() })
	if err := rc.Do(ctx, "cluster", "failover", "takeover").Err(); err != nil {
		t.Fatalf("CLUSTER FAILOVER TAKEOVER on %s: %v", replica.Addr(), err)
	}
	// Wait until every live master routes the slot to the new master.
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range c.Addrs() {
		if a == master {
			continue
		}
		n := redis.NewClient(&redis.Options{Addr: a})
		t.Cleanup(func() { n.Close() })
		for slotOwner(t, n, slot) != replica.Addr() {
			if time.Now().After(deadline) {
				t.Fatalf("%s still does not route slot %d to %s", a, slot, replica.Addr())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The store may fail (503) while it learns the new map, and must
	// then work: well within go-redis' 60 s.
	deadline = time.Now().Add(15 * time.Second)
	failed := 0
	for {
		st, err := s.Get(ctx, acct, "a")
		if err == nil {
			if !st.Held || st.Lease.LeaseID != o.LeaseID || st.Lease.FencingToken != first.Lease.FencingToken {
				t.Fatalf("Get after the failover: want the lease %s (token %d), got %+v", o.LeaseID, first.Lease.FencingToken, st)
			}
			break
		}
		if !errors.Is(err, lockcore.ErrUnavailable) {
			t.Fatalf("Get after the failover: want success or ErrUnavailable, got %v", err)
		}
		failed++
		if time.Now().After(deadline) {
			t.Fatalf("Get still unavailable 15 s after the replica took over (%d calls failed), last: %v", failed, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d calls failed before the store found the new master", failed)
	next, err := s.Acquire(ctx, acct, "b", acquireOpts(time.Minute))
	if err != nil || !next.Acquired || next.Lease.FencingToken <= first.Lease.FencingToken {
		t.Fatalf("Acquire after the failover: want a fencing token above %d, got %+v, %v", first.Lease.FencingToken, next, err)
	}
}

// slotOwner returns the address of the master that n says serves slot.
func slotOwner(t *testing.T, n *redis.Client, slot int64) string {
	t.Helper()
	shards, err := n.ClusterShards(t.Context()).Result()
	if err != nil {
		t.Fatalf("CLUSTER SHARDS on %s: %v", n.Options().Addr, err)
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if int64(r.Start) > slot || slot > int64(r.End) {
				continue
			}
			for _, node := range sh.Nodes {
				if node.Role == "master" {
					return node.IP + ":" + strconv.FormatInt(node.Port, 10)
				}
			}
		}
	}
	t.Fatalf("CLUSTER SHARDS on %s: no master for slot %d", n.Options().Addr, slot)
	return ""
}
