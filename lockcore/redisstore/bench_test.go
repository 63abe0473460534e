package redisstore_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// BenchmarkAcquireRelease measures acquire+release cycles against a real
// redis-server (default persistence of redistest.Start: none), with 1 or 32
// goroutines each cycling its own lock name in one shared account. One
// cycle is two script round trips. Besides cycles/s it reports
// redis-us/cycle, the server's own time in EVALSHA per cycle (from INFO
// commandstats), which depends much less on other load on the machine.
func BenchmarkAcquireRelease(b *testing.B) {
	srv := redistest.Start(b)
	s, acct := benchStore(b, redisstore.Config{URL: srv.URL(), Prefix: "bench:"})
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { admin.Close() })
	for _, g := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			if err := admin.ConfigResetStat(b.Context()).Err(); err != nil {
				b.Fatalf("CONFIG RESETSTAT: %v", err)
			}
			cycles(b, s, acct, g)
			b.ReportMetric(float64(evalshaMicros(b, admin))/float64(b.N), "redis-us/cycle")
		})
	}
}

// BenchmarkAcquireReleaseWaitReplicas measures what Options.WaitReplicas
// costs: the same acquire+release cycles as BenchmarkAcquireRelease, on a
// real redis-server with one real replica on loopback, by a store that
// waits for that replica (wait=1: every lock write is EVALSHA + WAIT 1 on
// the master's connection, outside the autopipeliner) and by one that
// does not (wait=0), with 1 and 32 goroutines.
func BenchmarkAcquireReleaseWaitReplicas(b *testing.B) {
	master, replica := redistest.Start(b), redistest.Start(b)
	replicate(b, master, replica)
	for _, wait := range []int{0, 1} {
		s, acct := benchStore(b, redisstore.Config{URL: master.URL(), Prefix: fmt.Sprintf("bench%d:", wait), WaitReplicas: wait})
		for _, g := range []int{1, 32} {
			b.Run(fmt.Sprintf("wait=%d/goroutines=%d", wait, g), func(b *testing.B) {
				cycles(b, s, acct, g)
			})
		}
	}
}

// benchStore opens a store with cfg, closed when b ends, and returns it
// with the id of its account "bench".
func benchStore(b *testing.B, cfg redisstore.Config) (*redisstore.Store, string) {
	s, err := redisstore.Open(b.Context(), cfg)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	acct, _, err := s.EnsureAccount(b.Context(), "bench")
	if err != nil {
		b.Fatalf("EnsureAccount: %v", err)
	}
	return s, acct.ID
}

// cycles runs b.N acquire+release cycles on s, spread over g goroutines
// each cycling its own lock name in account acct, and reports cycles/s. A
// failed or refused acquire, or a failed release, fails the benchmark.
func cycles(b *testing.B, s *redisstore.Store, acct string, g int) {
	ctx := b.Context()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("bench-%d", w)
			for next.Add(1) <= int64(b.N) {
				o := lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100}
				res, err := s.Acquire(ctx, acct, name, o)
				if err == nil && !res.Acquired {
					err = fmt.Errorf("acquire %s: not acquired, held by %+v", name, res.Lease)
				}
				if err == nil {
					err = s.Release(ctx, acct, name, o.LeaseID)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cycles/s")
}

// evalshaMicros returns the total server time spent in EVALSHA since the
// last CONFIG RESETSTAT, from INFO commandstats.
func evalshaMicros(b *testing.B, admin *redis.Client) int64 {
	info, err := admin.Info(b.Context(), "commandstats").Result()
	if err != nil {
		b.Fatalf("INFO commandstats: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") {
			continue
		}
		for _, f := range strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "cmdstat_evalsha:")), ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					b.Fatalf("INFO commandstats: %q: %v", line, err)
				}
				return n
			}
		}
	}
	b.Fatalf("INFO commandstats: no cmdstat_evalsha line in %q", info)
	return 0
}
