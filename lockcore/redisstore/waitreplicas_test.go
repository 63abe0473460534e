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

// replicate makes replica a replica of master and waits until it has
// every write master has.
func replicate(t *testing.T, master, replica *redistest.Server) {
	t.Helper()
	ctx := t.Context()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer mc.Close()
	if err := rc.Do(ctx, "replicaof", "127.0.0.1", master.Addr()[len("127.0.0.1:"):]).Err(); err != nil {
		t.Fatalf("REPLICAOF: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if n, err := mc.Do(ctx, "wait", 1, 1000).Int(); err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica %s never caught up with %s", replica.Addr(), master.Addr())
		}
	}
}

// TestWaitReplicas: with Options.WaitReplicas a lock write succeeds only
// once that many replicas have it, so a replica promoted after the write
// was acknowledged holds it. Two real redis-servers: with the replica
// running, acquire, renew and release succeed and the replica has each at
// once; with it stopped (SIGSTOP), an acquire is ErrUnavailable, saying
// why, while a store that does not wait acknowledges the same write (which
// a failover to that replica would lose); the acquire retried with its
// lease id once the replica runs again succeeds with the same lease.
// Waiting for more replicas than there are is ErrUnavailable too.
func TestWaitReplicas(t *testing.T) {
	master, replica := redistest.Start(t), redistest.Start(t)
	replicate(t, master, replica)
	ctx := t.Context()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()

	waiting, err := redisstore.Open(ctx, redisstore.Config{URL: master.URL(), Prefix: "wr:", OpTimeout: time.Second, WaitReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiting.Close() })
	plain := open(t, master.URL(), "wr:", time.Second)
	acct := account(t, waiting, "alice")
	lockKey := "wr:{a:" + acct + "}:lock:"
	onReplica := func(name string) string {
		t.Helper()
		v, err := rc.HGet(ctx, lockKey+name, "lease").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("HGET on the replica: %v", err)
		}
		return v
	}

	o := acquireOpts(time.Minute)
	if r, err := waiting.Acquire(ctx, acct, "a", o); err != nil || !r.Acquired {
		t.Fatalf("Acquire with the replica running: %+v, %v", r, err)
	}
	if got := onReplica("a"); got != o.LeaseID {
		t.Fatalf("the replica's lease of a right after the acquire: %q, want %q", got, o.LeaseID)
	}
	if l, err := waiting.Renew(ctx, acct, "a", o.LeaseID, 2*time.Minute); err != nil || l.TTL != 2*time.Minute {
		t.Fatalf("Renew with the replica running: %+v, %v", l, err)
	}
	if err := waiting.Release(ctx, acct, "a", o.LeaseID); err != nil {
		t.Fatalf("Release with the replica running: %v", err)
	}
	if got := onReplica("a"); got != "" {
		t.Fatalf("the replica's lease of a right after the release: %q, want none", got)
	}

	replica.Pause()
	resumed := false
	defer func() {
		if !resumed {
			replica.Resume()
		}
	}()
	b := acquireOpts(time.Minute)
	_, err = waiting.Acquire(ctx, acct, "b", b)
	if !errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(err.Error(), "0 of the 1 replicas to wait for acknowledged the write") {
		t.Fatalf("Acquire with the replica stopped: want ErrUnavailable saying the replica did not acknowledge it, got %v", err)
	}
	if r, err := plain.Acquire(ctx, acct, "c", acquireOpts(time.Minute)); err != nil || !r.Acquired {
		t.Fatalf("Acquire by a store that does not wait, with the replica stopped: %+v, %v (the write a failover would lose)", r, err)
	}
	replica.Resume()
	resumed = true
	var r lockcore.AcquireResult
	deadline := time.Now().Add(15 * time.Second)
	for {
		if r, err = waiting.Acquire(ctx, acct, "b", b); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !r.Acquired || r.Lease.LeaseID != b.LeaseID {
		t.Fatalf("Acquire retried with its lease id once the replica runs again: %+v, %v", r, err)
	}
	if got := onReplica("b"); got != b.LeaseID {
		t.Fatalf("the replica's lease of b after the retry: %q, want %q", got, b.LeaseID)
	}

	two, err := redisstore.Open(ctx, redisstore.Config{URL: master.URL(), Prefix: "wr:", OpTimeout: 300 * time.Millisecond, WaitReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { two.Close() })
	if _, err := two.Acquire(ctx, acct, "d", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Acquire waiting for 2 replicas of a master that has 1: want ErrUnavailable, got %v", err)
	}

	if _, err := redisstore.Open(ctx, redisstore.Config{URL: master.URL(), WaitReplicas: -1}); err == nil {
		t.Fatal("Open with WaitReplicas -1: want an error")
	}
}

// TestWaitReplicasCluster: on a Redis Cluster the WAIT goes to the master
// of the account's slot, on the connection that wrote: an account whose
// master has a replica is served, and an account whose master has none is
// ErrUnavailable (a WAIT sent to any other node would answer at once).
func TestWaitReplicasCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx := t.Context()
	s := tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: nextPrefix(), OpTimeout: time.Second, WaitReplicas: 1})(t)
	raw := redis.NewClient(&redis.Options{Addr: c.Addrs()[0]})
	t.Cleanup(func() { raw.Close() })
	masterOf := func(acct string) string {
		slot, err := raw.ClusterKeySlot(ctx, "{a:"+acct+"}").Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		return slotOwner(t, raw, slot)
	}
	var served, unserved string
	for i := 0; served == "" || unserved == "" || masterOf(served) == masterOf(unserved); i++ {
		if i == 50 {
			t.Fatal("50 accounts, all on one master")
		}
		a := account(t, s, "waiter-"+string(rune('a'+i%26))+strings.Repeat("x", i/26))
		switch {
		case served == "":
			served = a
		case masterOf(a) != masterOf(served):
			unserved = a
		}
	}
	c.AddReplica(t, masterOf(served))

	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := s.Acquire(ctx, served, "x", acquireOpts(time.Minute))
		if err == nil && r.Acquired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Acquire for an account whose master has a replica: %+v, %v", r, err)
		}
	}
	if _, err := s.Acquire(ctx, unserved, "x", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Acquire for an account whose master has no replica: want ErrUnavailable, got %v", err)
	}
}
