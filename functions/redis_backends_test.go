package functions_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// redisOpTimeout is generous: the race detector and a busy 2-core machine
// make miniredis' Lua slow, and these tests are about answers, not speed.
const redisOpTimeout = 30 * time.Second

// openMiniredis is the Redis store over an in-process miniredis whose clock
// (TIME in the scripts, and key TTLs) moves only when told.
func openMiniredis(t testing.TB) (lockcore.Store, func(time.Duration)) {
	t.Helper()
	m := miniredis.RunT(t)
	now := testEpoch
	m.SetTime(now)
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr()}), redisstore.Options{OpTimeout: redisOpTimeout})
	t.Cleanup(func() { st.Close() })
	return st, func(d time.Duration) {
		now = now.Add(d)
		m.SetTime(now)
		m.FastForward(d)
	}
}

// realRedisPrefixes numbers the key prefixes of the envs sharing one
// real redis-server.
var realRedisPrefixes atomic.Int64

// openRealRedis is the Redis store over the test binary's shared real
// redis-server, under a key prefix of its own, so every env starts empty;
// its clock is the real one, so advancing it sleeps.
func openRealRedis(t testing.TB) (lockcore.Store, func(time.Duration)) {
	t.Helper()
	srv := redistest.Shared(t)
	prefix := fmt.Sprintf("t%d:", realRedisPrefixes.Add(1))
	st, err := redisstore.Open(context.Background(), redisstore.Config{URL: srv.URL(), Prefix: prefix, OpTimeout: redisOpTimeout})
	if err != nil {
		t.Fatalf("open redis store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, time.Sleep
}
