package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestWaitReplicasClusterShardsWaitApart: on a Cluster each master has its
// own connection pool, so writes waiting on one master's stalled replica
// must not hold back the waited writes of another master: with a pool of 4
// and 8 writers waiting on a stopped replica of one master, a lock write
// to another master is answered while they all still wait.
func TestWaitReplicasClusterShardsWaitApart(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx := t.Context()
	prefix := nextPrefix()
	s := tlOpenReal(redisstore.Config{URL: c.URL() + "&pool_size=4", Cluster: true, Prefix: prefix, OpTimeout: slowOpTimeout, WaitReplicas: 1})(t)
	probe := redis.NewClient(&redis.Options{Addr: c.Addrs()[0]})
	t.Cleanup(func() { probe.Close() })
	owners := map[string]string{} // master address -> account
	for i := 0; len(owners) < 2 && i < 100; i++ {
		acct := account(t, s, "shard"+strings.Repeat("x", i))
		slot, err := probe.ClusterKeySlot(ctx, prefix+"{a:"+acct+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if o := slotOwner(t, probe, slot); owners[o] == "" {
			owners[o] = acct
		}
	}
	if len(owners) < 2 {
		t.Fatal("no two accounts on different masters")
	}
	var stalled, healthy string
	var stalledReplica *redistest.Server
	var stalledMaster *redis.Client
	for addr, acct := range owners {
		r := c.AddReplica(t, addr)
		if stalled == "" {
			stalled, stalledReplica = acct, r
			stalledMaster = redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { stalledMaster.Close() })
		} else {
			healthy = acct
		}
	}
	stalledReplica.Pause()
	defer stalledReplica.Resume()
	finished, wait := stalledWriters(t, s, stalledMaster, stalled, 8)
	r, err := s.Acquire(ctx, healthy, "h", acquireOpts(time.Minute))
	if n := finished.Load(); n != 0 {
		t.Errorf("a write to a healthy master returned only after %d writers waiting on another master's stopped replica ended", n)
	}
	if err != nil || !r.Acquired {
		t.Errorf("Acquire on a healthy master: %+v, %v", r, err)
	}
	wait()
}
