package loadgen

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// BenchmarkHTTPRedis runs the load generator's HTTP client against the
// real handler over a real redis-server, all in this process, 32 clients on
// distinct names: one op is one acquire+release cycle over HTTP. Its CPU
// profile shows client, server and store together.
func BenchmarkHTTPRedis(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	st, err := redisstore.Open(ctx, redisstore.Config{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	acct, _, err := st.EnsureAccount(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	tok, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(functions.New(functions.Deps{Store: st, StoreName: "redis"}))
	b.Cleanup(hs.Close)
	target, err := NewHTTPTarget(hs.URL, tok, time.Minute, 32, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { target.Close() })
	b.ResetTimer()
	res, err := Run(ctx, target, Config{Clients: 32, Cycles: int64(b.N)})
	b.StopTimer()
	if err != nil || res.Errors != 0 {
		b.Fatalf("run: %v %+v", err, res)
	}
	b.ReportMetric(res.CyclesPerSec, "cycles/s")
}
