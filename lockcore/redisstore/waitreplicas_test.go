package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// replicate makes replica a replica of master and waits until it has
// every write master has.
func replicate(t testing.TB, master, replica *redistest.Server) {
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
// a failover to that replica would lose), and Ping (/health) is
// ErrUnavailable too; the acquire retried with its
// lease id once the replica runs again succeeds with the same lease.
// Waiting for more replicas than there are is ErrUnavailable too.
//
// The store's own op timeout is slowOpTimeout, as for every call that must
// succeed (Open, the writes with the replica running): a loaded machine
// misses a 1 s deadline on a correct store. Only the calls the stopped
// replica holds up get a shorter deadline of their own (stalledCtx).
func TestWaitReplicas(t *testing.T) {
	master, replica := redistest.Start(t), redistest.Start(t)
	replicate(t, master, replica)
	ctx := t.Context()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()

	waiting, err := redisstore.Open(ctx, redisstore.Config{URL: master.URL(), Prefix: "wr:", OpTimeout: slowOpTimeout, WaitReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiting.Close() })
	plain := open(t, master.URL(), "wr:", slowOpTimeout)
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
	if err := waiting.Ping(ctx); err != nil {
		t.Fatalf("Ping with the replica running: %v", err)
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
	stalledUnavailable(t, "Acquire with the replica stopped", "0 of the 1 replicas to wait for acknowledged the write", func(ctx context.Context) error {
		_, err := waiting.Acquire(ctx, acct, "b", b)
		return err
	})
	// /health says what the lock writes would meet.
	stalledUnavailable(t, "Ping with the replica stopped", "acknowledged the health write", waiting.Ping)
	if err := plain.Ping(ctx); err != nil {
		t.Fatalf("Ping of a store that does not wait, with the replica stopped: %v", err)
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

	two, err := redisstore.Open(ctx, redisstore.Config{URL: master.URL(), Prefix: "wr:", OpTimeout: slowOpTimeout, WaitReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { two.Close() })
	if _, err := two.Acquire(stalledCtx(t), acct, "d", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
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
	s := tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: nextPrefix(), OpTimeout: slowOpTimeout, WaitReplicas: 1})(t)
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
	if _, err := s.Acquire(stalledCtx(t), unserved, "x", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("Acquire for an account whose master has no replica: want ErrUnavailable, got %v", err)
	}
}

// TestWaitReplicasScriptNotLoaded: a lock write waited for that Redis
// answers NOSCRIPT (after a restart or SCRIPT FLUSH) is sent again with
// the script's text and its WAIT on one connection, as runScript sends
// EVAL: it is served also for an ACL user who may not run SCRIPT LOAD,
// as without WaitReplicas, and the replica has it.
func TestWaitReplicasScriptNotLoaded(t *testing.T) {
	master, replica := redistest.Start(t), redistest.Start(t)
	replicate(t, master, replica)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-script|load").Err(); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	for _, n := range []int{0, 1} {
		s, err := redisstore.Open(ctx, redisstore.Config{URL: "redis://app:pw@" + master.Addr(), Prefix: "ns:", OpTimeout: slowOpTimeout, WaitReplicas: n})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		acct := account(t, s, "alice")
		for i, name := range []string{"a", "b"} {
			if err := admin.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			o := acquireOpts(time.Minute)
			if r, err := s.Acquire(ctx, acct, name, o); err != nil || !r.Acquired {
				t.Fatalf("WaitReplicas %d, acquire %d after SCRIPT FLUSH, as a user without SCRIPT LOAD: %+v, %v", n, i, r, err)
			}
			if n == 1 {
				if got, err := rc.HGet(ctx, "ns:{a:"+acct+"}:lock:"+name, "lease").Result(); err != nil || got != o.LeaseID {
					t.Fatalf("the replica's lease of %s right after the acquire: %q, %v; want %q", name, got, err, o.LeaseID)
				}
			}
			if err := s.Release(ctx, acct, name, o.LeaseID); err != nil {
				t.Fatalf("WaitReplicas %d, release of %s: %v", n, name, err)
			}
		}
	}
}

// TestWaitReplicasClusterRedirects: a lock write waited for follows a
// Cluster's redirects, as one not waited for does (go-redis follows them),
// with its WAIT on the connection that wrote: while the account's slot is
// being migrated, its keys already moved (ASK), and right after the slot
// was given to the other master, before the store read the slot map again
// (MOVED), lock writes succeed at once. Also for a store made with New on
// a ClusterClient that already ran commands (its nodes made before New
// could watch for them).
func TestWaitReplicasClusterRedirects(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, c *redistest.Cluster, prefix string) *redisstore.Store
	}{
		{"Open", func(t *testing.T, c *redistest.Cluster, prefix string) *redisstore.Store {
			return tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: prefix, OpTimeout: slowOpTimeout, WaitReplicas: 1})(t)
		}},
		{"NewOnAUsedClient", func(t *testing.T, c *redistest.Cluster, prefix string) *redisstore.Store {
			cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
			if err := cc.ForEachShard(t.Context(), func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }); err != nil {
				t.Fatal(err)
			}
			s := redisstore.New(cc, redisstore.Options{Prefix: prefix, OpTimeout: slowOpTimeout, WaitReplicas: 1})
			t.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testClusterRedirects(t, tc.open) })
	}
}

func testClusterRedirects(t *testing.T, open func(t *testing.T, c *redistest.Cluster, prefix string) *redisstore.Store) {
	c := redistest.StartCluster(t)
	ctx := t.Context()
	prefix := nextPrefix()
	s := open(t, c, prefix)
	acct := account(t, s, "mover")
	nodes := map[string]*redis.Client{}
	for _, a := range c.Addrs() {
		n := redis.NewClient(&redis.Options{Addr: a})
		t.Cleanup(func() { n.Close() })
		nodes[a] = n
	}
	slot, err := nodes[c.Addrs()[0]].ClusterKeySlot(ctx, prefix+"{a:"+acct+"}").Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	owner := slotOwner(t, nodes[c.Addrs()[0]], slot)
	var dstAddr string
	for _, a := range c.Addrs() {
		if a != owner {
			dstAddr = a
			break
		}
	}
	c.AddReplica(t, owner)
	c.AddReplica(t, dstAddr)

	held := acquireOpts(time.Hour)
	if r, err := s.Acquire(ctx, acct, "held", held); err != nil || !r.Acquired {
		t.Fatalf("Acquire before the migration: %+v, %v", r, err)
	}

	src, dst := nodes[owner], nodes[dstAddr]
	dstID := startMigration(t, src, dst, slot)
	keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	migrate := []any{"migrate", "127.0.0.1", dstAddr[len("127.0.0.1:"):], "", 0, 5000, "keys"}
	for _, k := range keys {
		migrate = append(migrate, k)
	}
	if err := src.Do(ctx, migrate...).Err(); err != nil {
		t.Fatalf("MIGRATE %v: %v", keys, err)
	}

	// Every key of the write has moved: the old master answers ASK.
	if r, err := s.Acquire(ctx, acct, "held", held); err != nil || !r.Acquired {
		t.Fatalf("Acquire (a retry of the held lease) while the slot is being migrated: %+v, %v", r, err)
	}

	for _, n := range nodes {
		if err := n.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err(); err != nil {
			t.Fatalf("SETSLOT NODE: %v", err)
		}
	}
	// The store's slot map still names the old master: MOVED.
	o := acquireOpts(time.Minute)
	if r, err := s.Acquire(ctx, acct, "held", o); err != nil || r.Acquired {
		t.Fatalf("Acquire of the held lock by another lease right after the slot moved: %+v, %v (want held)", r, err)
	}
	if err := s.Release(ctx, acct, "held", held.LeaseID); err != nil {
		t.Fatalf("Release right after the slot moved: %v", err)
	}
}

// TestWaitRefusedIsUnavailable: a server that refuses WAIT (here renamed
// away; a proxy without it, a writable replica) makes a waited lock write
// ErrUnavailable (503) saying so, not an internal error (500): the script
// ran, its outcome is unknown, and no request of a client was at fault.
func TestWaitRefusedIsUnavailable(t *testing.T) {
	srv := redistest.Start(t, "--rename-command", "WAIT", "WAIT_RENAMED")
	s, err := redisstore.Open(t.Context(), redisstore.Config{URL: srv.URL(), Prefix: "wr:", OpTimeout: slowOpTimeout, WaitReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	acct := account(t, s, "alice")
	if _, err := s.Acquire(t.Context(), acct, "a", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(err.Error(), "WAIT for 1 replicas") {
		t.Fatalf("Acquire on a server that refuses WAIT: want ErrUnavailable naming WAIT, got %v", err)
	}
}

// TestWaitReplicasLeavesReadsAConnection: while the replica is stalled,
// lock writes that wait for it hold their connections until their WAIT
// times out. At most half the pool may do so, so that reads (Get, List,
// token lookups, /health) still find a connection: with a pool of 4 and
// 24 writers waiting on a stopped replica, a Get is answered while they
// all still wait (with every connection held by a writer, it would wait
// for the first writer's WAIT to time out and free one).
func TestWaitReplicasLeavesReadsAConnection(t *testing.T) {
	master, replica := redistest.Start(t), redistest.Start(t)
	replicate(t, master, replica)
	ctx := t.Context()
	s, err := redisstore.Open(ctx, redisstore.Config{URL: master.URL() + "?pool_size=4", Prefix: "ws:", OpTimeout: slowOpTimeout, WaitReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	acct := account(t, s, "alice")
	if r, err := s.Acquire(ctx, acct, "held", acquireOpts(time.Minute)); err != nil || !r.Acquired {
		t.Fatalf("Acquire(held) with the replica running: %+v, %v", r, err)
	}

	replica.Pause()
	defer replica.Resume()
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	t.Cleanup(func() { mc.Close() })
	finished, wait := stalledWriters(t, s, mc, acct, 24)
	st, err := s.Get(ctx, acct, "held")
	if n := finished.Load(); n != 0 {
		t.Errorf("Get while 24 writers wait for a stopped replica returned only after %d of them ended: it waited for a connection", n)
	}
	if err != nil || !st.Held {
		t.Errorf("Get while 24 writers wait for a stopped replica: %+v, %v; want it answered", st, err)
	}
	wait()
}

// stalledCtx is the context of a call that the stopped replica holds up,
// which ends in ErrUnavailable once its WAIT has timed out: 3 s, so that
// the test does not wait out the store's slowOpTimeout, and so that the
// reply to the WAIT (sent when 80% of it has passed) has 600 ms to be read.
func stalledCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stalledUnavailable checks that call, held up by a stopped replica, is
// ErrUnavailable saying why (want). A call on a starved machine may read
// the WAIT's reply only after its own deadline: that is ErrUnavailable too
// (an i/o timeout), and the call is made again, up to 5 times, for the
// reply that says why.
func stalledUnavailable(t *testing.T, what, want string, call func(context.Context) error) {
	t.Helper()
	var err error
	for range 5 {
		if err = call(stalledCtx(t)); !errors.Is(err, lockcore.ErrUnavailable) || strings.Contains(err.Error(), want) {
			break
		}
	}
	if !errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: want ErrUnavailable saying %q, got %v", what, want, err)
	}
}

// stalledWriters starts n acquires of acct's locks on s, whose replica is
// stopped, waits until they hold as many of master's connections as they
// may (half the pool of 4: two clients blocked in WAIT there), and returns
// how many have ended so far, and a function that checks that no more
// than two are blocked in WAIT there, ends them and checks that each was
// ErrUnavailable. With s's op timeout of slowOpTimeout no
// writer ends by itself before that: the function cancels their context
// (the writers waiting for a slot) and has master close the connections
// of those in WAIT (a read in flight does not see a cancelled context).
func stalledWriters(t *testing.T, s *redisstore.Store, master *redis.Client, acct string, n int) (*atomic.Int64, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan error, n)
	finished := new(atomic.Int64)
	for i := range n {
		go func() {
			_, err := s.Acquire(ctx, acct, "w"+strings.Repeat("x", i), acquireOpts(time.Minute))
			finished.Add(1)
			done <- err
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := master.Info(t.Context(), "clients").Result()
		if err != nil {
			t.Fatalf("INFO clients on %s: %v", master.Options().Addr, err)
		}
		if blocked := infoField(info, "blocked_clients"); blocked >= 2 {
			break
		}
		if n := finished.Load(); n != 0 {
			t.Fatalf("%d writers ended before two of them waited in WAIT on %s", n, master.Options().Addr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("two writers never waited in WAIT on %s; INFO clients:\n%s", master.Options().Addr, info)
		}
	}
	return finished, func() {
		t.Helper()
		// By now the others have had the time of the caller's checks to
		// take a connection too, had the store let them: no more than
		// half the pool may be in WAIT at once.
		info, err := master.Info(context.Background(), "clients").Result()
		if err != nil {
			t.Fatalf("INFO clients on %s: %v", master.Options().Addr, err)
		}
		if blocked := infoField(info, "blocked_clients"); blocked > 2 {
			t.Errorf("%d writers waited in WAIT on %s at once; at most half the pool of 4 (2) may", blocked, master.Options().Addr)
		}
		cancel()
		for deadline := time.Now().Add(30 * time.Second); finished.Load() < int64(n); time.Sleep(10 * time.Millisecond) {
			list, err := master.ClientList(context.Background()).Result()
			if err != nil {
				t.Fatalf("CLIENT LIST on %s: %v", master.Options().Addr, err)
			}
			for _, line := range strings.Split(list, "\n") {
				if f := strings.Fields(line); len(f) > 0 && slices.Contains(f, "cmd=wait") {
					master.Do(context.Background(), "client", "kill", "id", strings.TrimPrefix(f[0], "id="))
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d writers still running 30 s after they were cancelled", int64(n)-finished.Load(), n)
			}
		}
		for range n {
			if err := <-done; !errors.Is(err, lockcore.ErrUnavailable) {
				t.Errorf("a write waiting for the stopped replica: want ErrUnavailable, got %v", err)
			}
		}
	}
}

// infoField returns the integer field name of an INFO reply, or -1.
func infoField(info, name string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return -1
}
