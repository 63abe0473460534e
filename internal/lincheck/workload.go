package lincheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"time"
)

// Workload describes the random clients of one history.
type Workload struct {
	// Clients is how many clients run at once; 0 means 8.
	Clients int
	// OpsPerClient bounds each client's operations; 0 means 50. A client
	// also stops when the context passed to Run ends.
	OpsPerClient int
	// Locks are the lock names the clients compete for; empty means
	// "lin-a" and "lin-b".
	Locks []string
	// TTLs are the ttl values acquire and renew pick from; empty means
	// 3600 s only (no lease can expire during a short history, as the
	// porcupine model requires).
	TTLs []time.Duration
	// Abandon is the probability that a client forgets a lease it holds
	// without releasing it (so that it expires); 0 means never.
	Abandon float64
	// Think bounds a random pause between a client's operations; 0 means
	// none.
	Think time.Duration
	// Seed makes the clients' choices reproducible.
	Seed int64
	// LeasePrefix starts every lease id, so that histories sharing an
	// account never reuse one; "" means "l".
	LeasePrefix string
}

// Stats counts what Run saw.
type Stats struct {
	Ops, Unknown, NotSent int
	// Breaches are answers the contract forbids (each also recorded as an
	// Unknown operation).
	Breaches []error
}

// Run drives w's clients against c until each has done its operations or
// ctx ends, recording every operation that reached (or may have reached)
// the server in rec. Requests that could not be sent are not recorded.
// Run returns when every client has stopped; it is safe to call Run
// concurrently on distinct recorders.
func Run(ctx context.Context, c *Client, w Workload, rec *Recorder) Stats {
	if w.Clients == 0 {
		w.Clients = 8
	}
	if w.OpsPerClient == 0 {
		w.OpsPerClient = 50
	}
	if len(w.Locks) == 0 {
		w.Locks = []string{"lin-a", "lin-b"}
	}
	if len(w.TTLs) == 0 {
		w.TTLs = []time.Duration{3600 * time.Second}
	}
	if w.LeasePrefix == "" {
		w.LeasePrefix = "l"
	}
	var (
		mu    sync.Mutex
		stats Stats
		wg    sync.WaitGroup
	)
	for i := 0; i < w.Clients; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			s := runClient(ctx, c, w, id, rec)
			mu.Lock()
			stats.Ops += s.Ops
			stats.Unknown += s.Unknown
			stats.NotSent += s.NotSent
			stats.Breaches = append(stats.Breaches, s.Breaches...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	return stats
}

// runClient is one client: for every lock it keeps the lease id it is
// using, which it keeps while it may hold the lock (so that a lost acquire
// is retried with the same id, as the contract recommends) and replaces
// once it knows it does not.
func runClient(ctx context.Context, c *Client, w Workload, id int, rec *Recorder) Stats {
	rng := rand.New(rand.NewSource(w.Seed*1000003 + int64(id)))
	var st Stats
	next := 0
	lease := map[string]string{}
	fresh := func(lock string) {
		next++
		lease[lock] = fmt.Sprintf("%s-c%d-%d", w.LeasePrefix, id, next)
	}
	for _, l := range w.Locks {
		fresh(l)
	}
	for n := 0; n < w.OpsPerClient && ctx.Err() == nil; n++ {
		if w.Think > 0 && !sleep(ctx, time.Duration(rng.Int63n(int64(w.Think)))) {
			return st
		}
		lock := w.Locks[rng.Intn(len(w.Locks))]
		in := Input{Lock: lock, LeaseID: lease[lock]}
		ttl := w.TTLs[rng.Intn(len(w.TTLs))]
		switch p := rng.Intn(100); {
		case p < 35:
			in.Kind, in.TTL = OpAcquire, ttl
		case p < 55:
			in.Kind, in.TTL = OpRenew, ttl
		case p < 80:
			in.Kind = OpRelease
		default:
			in.Kind, in.LeaseID = OpGet, ""
		}
		call := time.Now()
		out, err := c.Do(ctx, in)
		ret := time.Now()
		if errors.Is(err, ErrNotSent) {
			// The server is down (a crash run): wait a little rather
			// than spin.
			st.NotSent++
			if !sleep(ctx, 20*time.Millisecond) {
				return st
			}
			continue
		}
		if err != nil {
			st.Breaches = append(st.Breaches, err)
		}
		rec.Add(Record{Client: id, Input: in, Output: out, Call: call, Return: ret})
		st.Ops++
		switch out.Outcome {
		case Unknown:
			// The store or server is failing: back off a little, as a
			// real client would, rather than pile up lost answers.
			st.Unknown++
			if !sleep(ctx, 100*time.Millisecond) {
				return st
			}
		case Held:
			if in.Kind == OpAcquire {
				fresh(lock)
			}
		case Released, NotCurrent:
			fresh(lock)
		case Acquired, Renewed:
			if w.Abandon > 0 && rng.Float64() < w.Abandon {
				fresh(lock)
			}
		}
	}
	return st
}

// sleep waits d or until ctx ends, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
