package sqlitestore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// BenchmarkAcquireRelease measures durable lock cycles on a file-backed
// store (real fsync): one op is one Acquire and one Release of a lock name
// private to the goroutine. cycles/s is the whole store's rate, and
// commits/cycle shows how many cycles share an fsync'd commit.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, g := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
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
			var next atomic.Int64
			commits0 := s.Commits()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < g; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("bench-%d", w)
					lease := lockcore.NewLeaseID()
					o := lockcore.AcquireOptions{LeaseID: lease, TTL: time.Minute, MaxHeld: 1 << 20}
					for next.Add(1) <= int64(b.N) {
						r, err := s.Acquire(ctx, acct.ID, name, o)
						if err != nil || !r.Acquired {
							b.Errorf("Acquire: %+v, %v", r, err)
							return
						}
						if err := s.Release(ctx, acct.ID, name, lease); err != nil {
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
			b.ReportMetric(float64(s.Commits()-commits0)/float64(b.N), "commits/cycle")
		})
	}
}
