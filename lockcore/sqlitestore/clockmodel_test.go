package sqlitestore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// TestClockStepsModel: random sequences of writes through three stores on
// one file sharing a clock that runs forward and is set back now and then
// (by 0.9 to 3.4 s), with stores restarted, commands opening the file, and
// a store that only polls (held answers, refused renews) for a while. A
// lease acknowledged for TTL t must never be given to another lease before
// t has passed in the model's elapsed time, unless released. Seeds 2 and
// 52 found the bugs that TestClockSetBackBeforeAStoresFirstBatch and
// TestClockSetBackAfterUnrecordedBatches pin.
func TestClockStepsModel(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{2, 3, 52} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			path := filepath.Join(t.TempDir(), "octostore.db")
			clock := newFakeClock()
			var elapsed time.Duration
			stores := []*sqlitestore.Store{}
			open := func() *sqlitestore.Store {
				s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Now: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			for range 3 {
				stores = append(stores, open())
			}
			defer func() {
				for _, s := range stores {
					_ = s.Close()
				}
			}()
			acct, _, err := stores[0].EnsureAccount(ctx, "acct")
			if err != nil {
				t.Fatal(err)
			}
			type holder struct {
				id       string
				deadline time.Duration
				released bool
			}
			cur := map[string]*holder{}
			n := 0
			for step := range 300 {
				switch r := rng.IntN(100); {
				case r < 45:
					d := time.Duration(rng.IntN(400)) * time.Millisecond
					clock.Advance(d)
					elapsed += d
					t.Logf("advance %v", d)
				case r < 50:
					back := time.Duration(900+rng.IntN(2500)) * time.Millisecond
					clock.Advance(-back)
					t.Logf("back %v", back)
				case r < 52:
					i := rng.IntN(len(stores))
					_ = stores[i].Close()
					stores[i] = open()
					t.Logf("restart %d", i)
				case r < 54:
					_ = open().Close() // a command
					t.Logf("command")
				case r < 65:
					// One store polls (held answers, refused renews)
					// for a while, committing nothing.
					p := stores[rng.IntN(len(stores))]
					for range 1 + rng.IntN(8) {
						d := time.Duration(100+rng.IntN(200)) * time.Millisecond
						clock.Advance(d)
						elapsed += d
						for _, name := range []string{"x", "y"} {
							if h := cur[name]; h != nil && !h.released && h.deadline > elapsed {
								if res, err := p.Acquire(ctx, acct.ID, name, opts("poller")); err == nil && res.Acquired {
									t.Fatalf("step %d: %s acquired by a poller at elapsed %v while %s holds it until elapsed %v", step, name, elapsed, h.id, h.deadline)
								}
							}
						}
						_, _ = p.Renew(ctx, acct.ID, "x", "never", time.Second)
					}
					t.Logf("polled")
				}
				si := rng.IntN(len(stores))
				s := stores[si]
				name := []string{"x", "y"}[rng.IntN(2)]
				ttl := []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}[rng.IntN(3)]
				h := cur[name]
				switch r := rng.IntN(10); {
				case r < 5:
					n++
					id := fmt.Sprintf("l%d", n)
					o := opts(id)
					o.TTL = ttl
					res, err := s.Acquire(ctx, acct.ID, name, o)
					t.Logf("store %d acquire %s %s ttl %v at elapsed %v clock %v: %v until %v", si, name, id, ttl, elapsed, clock.Now().Format("05.000"), res.Acquired, res.Lease.ExpiresAt.Format("05.000"))
					if err != nil {
						t.Fatal(err)
					}
					if res.Acquired {
						if h != nil && !h.released && h.deadline > elapsed {
							t.Fatalf("step %d: %s acquired by %s at elapsed %v while %s holds it until elapsed %v", step, name, id, elapsed, h.id, h.deadline)
						}
						cur[name] = &holder{id: id, deadline: elapsed + ttl}
					}
				case r < 8 && h != nil:
					l, err := s.Renew(ctx, acct.ID, name, h.id, ttl)
					t.Logf("store %d renew %s %s ttl %v at elapsed %v clock %v: %v until %v", si, name, h.id, ttl, elapsed, clock.Now().Format("05.000"), err, l.ExpiresAt.Format("05.000"))
					if err == nil {
						if h.released {
							t.Fatalf("step %d: released lease %s renewed", step, h.id)
						}
						h.deadline = elapsed + ttl
					}
				case r < 9 && h != nil:
					err := s.Release(ctx, acct.ID, name, h.id)
					t.Logf("store %d release %s %s: %v", si, name, h.id, err)
					if err == nil {
						h.released = true
					}
				default:
					if err := s.Ping(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}
