package functions_test

import (
	"context"
	"testing"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestRedisOutage stops the real Redis under a running handler: while it
// is down (killed, or hung) every request is answered 503 store_unavailable
// with Retry-After, never a 500 and never later than the operation timeout
// allows; once Redis is back the same handler serves again by itself.
//
// The handler's opTimeout bounds every request; the store's own is the
// generous redisOpTimeout, as in the other Redis suites, because the
// setup's direct store calls (the accounts and tokens newEnv makes) must
// succeed, and 500 ms is a deadline a loaded machine misses on a healthy
// Redis. For the same reason the acquire before the outage is retried
// while it is 503.
func TestRedisOutage(t *testing.T) {
	const opTimeout = 500 * time.Millisecond
	srv := redistest.Start(t)
	st, err := redisstore.Open(context.Background(), redisstore.Config{URL: srv.URL(), OpTimeout: redisOpTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, backend{name: "redis", open: func(testing.TB) (lockcore.Store, func(time.Duration)) {
		return st, time.Sleep
	}}, func(d *functions.Deps) { d.OpTimeout = opTimeout })

	w := e.do(t, post("/locks/job/acquire", `{"lease_id":"before","ttl_seconds":3600}`))
	for deadline := time.Now().Add(10 * time.Second); w.Code == 503 && decode(t, w)["code"] == "store_unavailable" && time.Now().Before(deadline); {
		w = e.do(t, post("/locks/job/acquire", `{"lease_id":"before","ttl_seconds":3600}`))
	}
	if w.Code != 200 {
		t.Fatalf("acquire before the outage: %d %s", w.Code, w.Body.String())
	}
	fence := decode(t, w)["fencing_token"].(float64)

	requests := []req{
		post("/locks/other/acquire", ""),
		post("/locks/job/renew", `{"lease_id":"before"}`),
		post("/locks/job/release", `{"lease_id":"before"}`),
		get("/locks/job"),
		get("/locks"),
		post("/auth/token/rotate", ""),
	}
	outage := func(what string) {
		for _, q := range requests {
			start := time.Now()
			w := e.do(t, q)
			took := time.Since(start)
			if w.Code != 503 || decode(t, w)["code"] != "store_unavailable" || w.Header().Get("Retry-After") == "" {
				t.Errorf("%s: %s %s: %d %s (Retry-After %q), want 503 store_unavailable with Retry-After",
					what, q.method, q.path, w.Code, w.Body.String(), w.Header().Get("Retry-After"))
			}
			// Authentication and the operation each have opTimeout; a
			// hang would be far past this bound.
			if limit := 3*opTimeout + 2*time.Second; took > limit {
				t.Errorf("%s: %s %s took %v, beyond %v", what, q.method, q.path, took, limit)
			}
		}
		w := e.do(t, get("/health"))
		if w.Code != 503 || decode(t, w)["status"] != "unavailable" {
			t.Errorf("%s: /health: %d %s, want 503 unavailable", what, w.Code, w.Body.String())
		}
	}
	recovered := func(what string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			w := e.do(t, get("/locks/job"))
			if w.Code == 200 {
				body := decode(t, w)
				if body["status"] != "held" || body["fencing_token"].(float64) != fence {
					t.Fatalf("%s: the lock after recovery: %s", what, w.Body.String())
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the handler did not recover: %d %s", what, w.Code, w.Body.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Redis keeps its data across a Stop/Restart only with persistence;
	// SIGSTOP keeps the process (and its memory) while it hangs.
	srv.Pause()
	outage("hung Redis")
	srv.Resume()
	recovered("after resume")

	srv.Kill()
	outage("killed Redis")
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := e.do(t, get("/health"))
		if w.Code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart /health is still %d %s", w.Code, w.Body.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The killed server kept nothing (no persistence in this test), but the
	// same handler and store serve again: the token is gone with the data,
	// so a new account proves the path end to end.
	acct, _, err := st.EnsureAccount(context.Background(), "carol")
	if err != nil {
		t.Fatalf("EnsureAccount after restart: %v", err)
	}
	tok, hash := lockcore.NewToken()
	if err := st.AddToken(context.Background(), acct.ID, hash); err != nil {
		t.Fatal(err)
	}
	e.tokens["carol"] = tok
	q := post("/locks/job/acquire", "")
	q.auth = "carol"
	if w := e.do(t, q); w.Code != 200 {
		t.Fatalf("acquire after restart: %d %s", w.Code, w.Body.String())
	}
}
