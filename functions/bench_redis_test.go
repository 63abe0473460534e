package functions_test

import (
	"fmt"
	"testing"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// BenchmarkAcquireReleaseRedis is BenchmarkAcquireRelease over a real
// redis-server (redistest defaults: no persistence): the whole handler
// (middleware, auth, codec, store) with no HTTP network, each goroutine
// cycling its own lock. It reports cycles/s.
func BenchmarkAcquireReleaseRedis(b *testing.B) {
	srv := redistest.Start(b)
	for _, g := range []int{1, 32} {
		b.Run(fmt.Sprintf("redis/goroutines=%d", g), func(b *testing.B) {
			st, err := redisstore.Open(b.Context(), redisstore.Config{URL: srv.URL(), Prefix: fmt.Sprintf("bench%d:", g)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			benchCycles(b, st, g)
		})
	}
}
