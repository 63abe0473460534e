package redisstore_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
)

// TestLostFenceCounterDoesNotRepeatTokens: an account's fencing counter
// that Redis loses while the rest of the account stays (an allkeys-*
// maxmemory-policy evicts keys one at a time, the counter included; here
// the eviction is done with DEL, which is what an eviction does to the
// key) must not start again at 1: AcquireAs goes on above every token the
// lost counter gave.
func TestLostFenceCounterDoesNotRepeatTokens(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	s := open(t, srv.URL(), "ev:", slowOpTimeout)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()

	id := account(t, s, "alice")
	_, tok := lockcore.NewToken()
	if err := s.AddToken(ctx, id, tok); err != nil {
		t.Fatal(err)
	}
	take := func(name string) int64 {
		t.Helper()
		res, err := s.AcquireAs(ctx, tok, id, name, acquireOpts(time.Minute))
		if err != nil || !res.Acquired {
			t.Fatalf("AcquireAs(%s): %+v, %v", name, res, err)
		}
		return res.Lease.FencingToken
	}
	var last int64
	for _, name := range []string{"a", "b", "c"} {
		got := take(name)
		if got <= last {
			t.Fatalf("AcquireAs(%s) of a new account: fencing token %d, not above %d", name, got, last)
		}
		last = got
	}

	if err := rc.Del(ctx, "ev:{a:"+id+"}:fence").Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d", "a"} {
		got := take(name + "2")
		if got <= last {
			t.Fatalf("AcquireAs(%s2) after the fencing counter was lost: fencing token %d, not above %d that was already handed out", name, got, last)
		}
		last = got
	}
}
