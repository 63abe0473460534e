package redisstore_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/freeport"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestClusterRemovedMaster: a master is added to the Cluster, an
// account's slot moves to it and the store learns so; the slot then moves
// on to another master while the store is idle, and the emptied master is
// removed with redis-cli --cluster del-node, which resets it but leaves it
// running. The store's slot map still names the removed master, which
// answers "CLUSTERDOWN Hash slot not served", a reply and not a network
// error, and never a MOVED. The store must read the slot map again after
// such a reply, as after a connection refused, and serve the account well
// within go-redis' periodic reload (60 s), instead of answering 503 until
// then.
func TestClusterRemovedMaster(t *testing.T) {
	c := redistest.StartCluster(t)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli: %v", err) // StartCluster has required it
	}
	// New rather than Open, with the client of the fresh stores that
	// removeMasterAfterMove opens.
	s := redisstore.New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), MaxRetries: -1}),
		redisstore.Options{Prefix: nextPrefix(), OpTimeout: slowOpTimeout})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	acct := account(t, s, "removed")
	o := acquireOpts(time.Hour)
	if r, err := s.Acquire(ctx, acct, "a", o); err != nil || !r.Acquired {
		t.Fatalf("Acquire: %+v, %v", r, err)
	}
	masters := c.Addrs()
	first := redis.NewClient(&redis.Options{Addr: masters[0]})
	t.Cleanup(func() { first.Close() })
	slot, err := first.ClusterKeySlot(ctx, "{a:"+acct+"}").Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	owner := slotOwner(t, first, slot)

	key := s.Prefix() + "{a:" + acct + "}"

	// The scenario needs the store's slot map to be stale when the master
	// is removed. Something outside the test (go-redis reloading the map
	// on its own, on a machine slow enough to stretch the steps) can
	// refresh it first; then the scenario is run again with a new master,
	// rather than the test passing on a case it did not set up.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		why, fresh := removeMasterAfterMove(t, cli, s, masters, owner, acct, o.LeaseID, key, slot)
		if why == "" {
			waitServed(t, fresh, acct, o.LeaseID)
			return
		}
		if attempt == attempts {
			t.Fatalf("%d attempts: %s, so this test proves nothing", attempts, why)
		}
		t.Logf("attempt %d: %s; again with a new master", attempt, why)
	}
}

// removeMasterAfterMove adds a fourth master to the Cluster whose
// masters are masters, moves slot (which holds key, the account acct's
// slot, owned by owner) to it and waits until s serves the account
// there. It then opens a fresh store on the same prefix, whose client
// reads the slot map once, naming the new master, and has never reloaded
// it; moves the slot back to owner while that store is idle, and removes
// the emptied master with redis-cli --cluster del-node, which resets it
// but leaves it running. It returns "" and the fresh store when that
// store still maps the slot to the removed master and a Get of the
// account's lock "a" is refused as unavailable, the case
// TestClusterRemovedMaster is about; otherwise why not.
//
// The fresh store is what makes the case: s got MOVED replies while the
// slot moved, and go-redis may still be reloading its map after them
// (LazyReload runs again 200 ms after each reload while more were asked
// for), so a reload already under way could serve s again after the
// removal whether or not the store reloads after CLUSTERDOWN.
func removeMasterAfterMove(t *testing.T, cli string, s *redisstore.Store, masters []string, owner, acct, lease, key string, slot int64) (string, *redisstore.Store) {
	t.Helper()
	ctx := t.Context()
	// A fourth master joins, empty.
	bus, err := freeport.Pick()
	if err != nil {
		t.Fatalf("free port for the cluster bus: %v", err)
	}
	extra := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
		"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
	redisCLI(t, cli, "--cluster", "add-node", extra.Addr(), masters[0])
	all := append(masters[:len(masters):len(masters)], extra.Addr())
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range all {
		n := redis.NewClient(&redis.Options{Addr: a})
		t.Cleanup(func() { n.Close() })
		for {
			nodes, err := n.ClusterNodes(ctx).Result()
			info, ierr := n.ClusterInfo(ctx).Result()
			if err == nil && ierr == nil && strings.Contains(info, "cluster_state:ok") && strings.Count(nodes, "master") == 4 && !strings.Contains(nodes, "handshake") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the Cluster with the new master %s is not ok after 30 s: %q %q %v %v", a, extra.Addr(), info, nodes, err, ierr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The account's slot moves to it, and the store finds it there.
	moveSlot(t, all, owner, extra.Addr(), slot)
	waitServed(t, s, acct, lease)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: masters, MaxRetries: -1})
	fresh := redisstore.New(cc, redisstore.Options{Prefix: s.Prefix(), OpTimeout: slowOpTimeout})
	t.Cleanup(func() { fresh.Close() })
	if m := mapped(t, cc, key); m != extra.Addr() {
		t.Fatalf("a fresh store's slot map names %s for slot %d, not %s, where every master has moved it", m, slot, extra.Addr())
	}
	waitServed(t, fresh, acct, lease)

	// The slot moves on while the store is idle, the emptied master is
	// removed (reset, still running), and the store still maps the slot
	// to it.
	moveSlot(t, all, extra.Addr(), owner, slot)
	redisCLI(t, cli, "--cluster", "del-node", masters[0], clusterID(t, extra.Addr()))
	if m := mapped(t, cc, key); m != extra.Addr() {
		return "the store's slot map named " + m + " for slot " + strconv.FormatInt(slot, 10) + ", not the removed " + extra.Addr() + ", before a Get", nil
	}
	if _, err := fresh.Get(ctx, acct, "a"); err == nil {
		return "a Get right after the removal succeeded: the store had already read the new slot map", nil
	} else if !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Get right after the removal: want ErrUnavailable, got %v", err)
	}
	return "", fresh
}

// mapped returns the address of the master that cc's slot map names for
// key.
func mapped(t *testing.T, cc *redis.ClusterClient, key string) string {
	t.Helper()
	n, err := cc.MasterForKey(t.Context(), key)
	if err != nil {
		t.Fatalf("MasterForKey(%s): %v", key, err)
	}
	return n.Options().Addr
}

// waitServed retries Get of acct's lock "a" until it answers (at most
// 20 s, a third of go-redis' periodic slot-map reload) and checks that the
// lease is still there.
func waitServed(t *testing.T, s *redisstore.Store, acct, lease string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	failed := 0
	for {
		st, err := s.Get(t.Context(), acct, "a")
		if err == nil {
			if !st.Held || st.Lease.LeaseID != lease {
				t.Fatalf("Get: want the lease %s, got %+v", lease, st)
			}
			return
		}
		if !errors.Is(err, lockcore.ErrUnavailable) {
			t.Fatalf("Get: want success or ErrUnavailable, got %v", err)
		}
		failed++
		if time.Now().After(deadline) {
			t.Fatalf("Get still unavailable after 20 s (%d calls failed), last: %v", failed, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// moveSlot migrates slot from the master src to the master dst as
// redis-cli --cluster reshard does: IMPORTING on dst, MIGRATING on src,
// every key MIGRATEd, then SETSLOT NODE on dst, src and every other master.
func moveSlot(t *testing.T, masters []string, src, dst string, slot int64) {
	t.Helper()
	ctx := t.Context()
	from := redis.NewClient(&redis.Options{Addr: src})
	defer from.Close()
	to := redis.NewClient(&redis.Options{Addr: dst})
	defer to.Close()
	dstID := startMigration(t, from, to, slot)
	host, port, _ := strings.Cut(dst, ":")
	for {
		keys, err := from.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		if err != nil {
			t.Fatalf("CLUSTER GETKEYSINSLOT %d on %s: %v", slot, src, err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"migrate", host, port, "", 0, 10000, "keys"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := from.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("MIGRATE from %s to %s: %v", src, dst, err)
		}
	}
	order := []string{dst, src}
	for _, a := range masters {
		if a != dst && a != src {
			order = append(order, a)
		}
	}
	for _, a := range order {
		n := redis.NewClient(&redis.Options{Addr: a})
		err := n.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err()
		n.Close()
		// A master that gave away its last slot has become a replica of
		// dst (as redis-cli, take it as done).
		if err != nil && !(a == src && strings.Contains(err.Error(), "only with masters")) {
			t.Fatalf("CLUSTER SETSLOT %d NODE on %s: %v", slot, a, err)
		}
	}
}

// clusterID returns the node id of the Cluster node at addr.
func clusterID(t *testing.T, addr string) string {
	t.Helper()
	n := redis.NewClient(&redis.Options{Addr: addr})
	defer n.Close()
	id, err := n.ClusterMyID(t.Context()).Result()
	if err != nil {
		t.Fatalf("CLUSTER MYID on %s: %v", addr, err)
	}
	return id
}

// redisCLI runs redis-cli with args (60 s at most) and fails t if it fails.
func redisCLI(t *testing.T, cli string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
