package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
)

// TestFailoverToAStaleReplicaDoesNotRepeatTokens: Redis replication is
// asynchronous, so a replica promoted after its master failed can lack the
// last acquires the master acknowledged. Here that is made on two real
// redis-servers: the replica has the account, its token and two leases,
// then it is promoted (REPLICAOF NO ONE) before the old master hands out
// more leases, which it so never receives. A store on the promoted replica
// finds those locks free (the lost acquires) and gives them to new leases,
// whose fencing tokens must be above every token the old master issued:
// that is what lets a resource refuse the old holders' writes. With a
// plain INCR counter the promoted replica would hand the same tokens out
// again.
func TestFailoverToAStaleReplicaDoesNotRepeatTokens(t *testing.T) {
	master, replica := redistest.Start(t), redistest.Start(t)
	ctx := t.Context()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer mc.Close()
	host, port := "127.0.0.1", master.Addr()[len("127.0.0.1:"):]
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatalf("REPLICAOF: %v", err)
	}

	old := open(t, master.URL(), "fo:", slowOpTimeout)
	acct := account(t, old, "alice")
	tok := newToken(t, old, acct)
	var highest int64
	take := func(s lockcore.Store, name string) int64 {
		t.Helper()
		r, err := s.Acquire(ctx, acct, name, acquireOpts(time.Minute))
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire(%s): %+v, %v", name, r, err)
		}
		return r.Lease.FencingToken
	}
	for i := range 2 {
		highest = max(highest, take(old, fmt.Sprintf("before-%d", i)))
	}
	// Wait until the replica has all of that.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := mc.Do(ctx, "WAIT", 1, 1000).Int64()
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAIT for the replica: %d, %v", n, err)
		}
	}

	// The failover: the replica is promoted, and the old master goes on
	// acknowledging acquires that the new one never sees.
	if err := rc.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatalf("REPLICAOF NO ONE: %v", err)
	}
	for i := range 5 {
		f := take(old, fmt.Sprintf("lost-%d", i))
		if f <= highest {
			t.Fatalf("the old master's token %d is not above %d", f, highest)
		}
		highest = f
	}

	promoted := open(t, replica.URL(), "fo:", slowOpTimeout)
	if got, err := promoted.AccountByToken(ctx, tok); err != nil || got.ID != acct {
		t.Fatalf("the token on the promoted replica: %+v, %v", got, err)
	}
	for i := range 5 {
		name := fmt.Sprintf("lost-%d", i)
		if st, err := promoted.Get(ctx, acct, name); err != nil || st.Held {
			t.Fatalf("%s on the promoted replica: %+v, %v; want free (its acquire was lost)", name, st, err)
		}
		if f := take(promoted, name); f <= highest {
			t.Errorf("the promoted replica gave %s fencing token %d, not above %d that the old master had already handed out", name, f, highest)
		} else {
			highest = f
		}
	}
}
