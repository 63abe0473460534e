package functions_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// BenchmarkAcquireRelease measures acquire+release cycles through the whole
// handler (middleware, auth, codec, store) over SQLite on disk, with no
// network: each goroutine cycles its own lock. It reports cycles/s.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, g := range []int{1, 32} {
		b.Run(fmt.Sprintf("sqlite/goroutines=%d", g), func(b *testing.B) {
			st, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlitestore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			benchCycles(b, st, g)
		})
	}
}

func benchCycles(b *testing.B, st lockcore.Store, goroutines int) {
	ctx := context.Background()
	acct, _, err := st.EnsureAccount(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	tok, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		b.Fatal(err)
	}
	h := functions.New(functions.Deps{Store: st, StoreName: "bench"})
	auth := "Bearer " + tok
	call := func(path, body string) int {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range goroutines {
		n := b.N / goroutines
		if i < b.N%goroutines {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			acq, rel := fmt.Sprintf("/locks/bench-%d/acquire", i), fmt.Sprintf("/locks/bench-%d/release", i)
			body := fmt.Sprintf(`{"lease_id":"g%d","ttl_seconds":30}`, i)
			for range n {
				if c := call(acq, body); c != http.StatusOK {
					b.Errorf("acquire: %d", c)
					return
				}
				if c := call(rel, body[:strings.Index(body, ",")]+"}"); c != http.StatusOK {
					b.Errorf("release: %d", c)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "cycles/s")
}
