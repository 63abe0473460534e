package redisstore_test

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
	"github.com/octostore/octostore/lockcore/storetest"
)

// slowOpTimeout is the operation timeout of the conformance harnesses: the
// suite runs up to 200 concurrent operations and miniredis interprets Lua
// slowly under -race, so the default 2s could time out while queued.
const slowOpTimeout = 30 * time.Second

// TestConformanceMiniredis runs the suite on miniredis; Advance moves the
// clock seen by TIME (SetTime) and the key TTLs (FastForward) together.
func TestConformanceMiniredis(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: func(t *testing.T) *storetest.Instance {
		m := miniredis.RunT(t)
		now := time.Now()
		m.SetTime(now)
		open := func() lockcore.Store {
			return redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{OpTimeout: slowOpTimeout})
		}
		inst := &storetest.Instance{Store: open()}
		t.Cleanup(func() { inst.Store.Close() })
		inst.Advance = func(d time.Duration) {
			now = now.Add(d)
			m.SetTime(now)
			m.FastForward(d)
		}
		inst.Reopen = func() lockcore.Store {
			inst.Store.Close()
			inst.Store = open()
			return inst.Store
		}
		return inst
	}})
}

// prefixSeq makes a fresh key prefix for each Open, so one server serves
// every subtest.
var prefixSeq atomic.Int64

func nextPrefix() string { return fmt.Sprintf("t%d:", prefixSeq.Add(1)) }

// realHarness is the harness over a real Redis (standalone or Cluster)
// reached with cfg; Advance sleeps.
func realHarness(cfg redisstore.Config) storetest.Harness {
	return storetest.Harness{Open: func(t *testing.T) *storetest.Instance {
		c := cfg
		c.Prefix = nextPrefix()
		c.OpTimeout = slowOpTimeout
		open := func() lockcore.Store {
			s, err := redisstore.Open(context.Background(), c)
			if err != nil {
				t.Fatalf("redisstore.Open(%s): %v", c.URL, err)
			}
			return s
		}
		inst := &storetest.Instance{Store: open(), Advance: time.Sleep}
		t.Cleanup(func() { inst.Store.Close() })
		inst.Reopen = func() lockcore.Store {
			inst.Store.Close()
			inst.Store = open()
			return inst.Store
		}
		return inst
	}}
}

// TestConformanceRedis runs the suite on a real redis-server.
func TestConformanceRedis(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, realHarness(redisstore.Config{URL: srv.URL()}))
}

// TestConformanceCluster runs the suite on a real three-master Redis
// Cluster.
func TestConformanceCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	storetest.Run(t, realHarness(redisstore.Config{URL: c.URL(), Cluster: true}))
}
