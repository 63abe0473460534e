package sqlitestore_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// BenchmarkAcquireContended measures durable lock cycles when 32
// goroutines compete for ONE lock name: each acquires (retrying at once on
// a "held" answer) and releases. One op is one completed cycle; attempts/op
// is acquires per cycle ("held" answers included), commits/cycle the
// fsync'd commits per cycle.
func BenchmarkAcquireContended(b *testing.B) {
	s, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	acct, _, err := s.EnsureAccount(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var next, attempts atomic.Int64
	commits0 := s.Commits()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				o := lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100}
				for {
					attempts.Add(1)
					r, err := s.Acquire(ctx, acct.ID, "shared", o)
					if err != nil {
						b.Errorf("Acquire: %v", err)
						return
					}
					if r.Acquired {
						break
					}
				}
				if err := s.Release(ctx, acct.ID, "shared", o.LeaseID); err != nil {
					b.Errorf("Release: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cycles/s")
	b.ReportMetric(float64(attempts.Load())/float64(b.N), "attempts/op")
	b.ReportMetric(float64(s.Commits()-commits0)/float64(b.N), "commits/cycle")
}
