package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestRestoreRedisDefaultFloorFollowsRedisClock: fencing tokens on Redis
// follow the Redis clock (TIME), so the default floor of a Redis restore
// is taken from that clock too (or this machine's, when higher). A Redis
// whose clock is a minute ahead of the machine that runs restore (its
// tokens a minute ahead too) is restored with the default floor, not
// refused as "the clock is behind".
func TestRestoreRedisDefaultFloorFollowsRedisClock(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	ahead := time.Now().Add(time.Minute)
	mr.SetTime(ahead)
	url := "redis://" + mr.Addr()
	t.Setenv("REDIS_URL", url)
	st, err := redisstore.Open(ctx, redisstore.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, _, err := st.EnsureAccount(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Acquire(ctx, acct.ID, "x", lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100})
	if err != nil || !r.Acquired || r.Lease.FencingToken < ahead.UnixMicro() {
		t.Fatalf("Acquire: %+v, %v; want a token at Redis' clock (%d) or above", r, err, ahead.UnixMicro())
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"restore", "--force"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("restore with the default floor, Redis' clock a minute ahead of this machine's: %v", err)
	}
	if !strings.Contains(out.String(), "1 locks dropped") {
		t.Errorf("restore: stdout %q", out.String())
	}
	mr.SetTime(ahead.Add(time.Second))
	if r2, err := st.Acquire(ctx, acct.ID, "x", lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100}); err != nil || !r2.Acquired || r2.Lease.FencingToken <= r.Lease.FencingToken {
		t.Errorf("Acquire after restore: %+v, %v; want a token above %d", r2, err, r.Lease.FencingToken)
	}
}
