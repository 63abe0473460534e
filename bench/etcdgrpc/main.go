// Command etcdgrpc measures etcd's lock service over its native gRPC API,
// as a check on `octostore bench --target etcd`, which (as issue 8 asks)
// reaches the same service through etcd's v3 JSON gateway.
//
// It runs the same load as that target: N closed-loop clients, one lease
// each (granted before the clock starts, revoked at the end), each locking
// and unlocking a name of its own (v3lockpb Lock, then Unlock of the key
// Lock returned) for a duration. It prints one line: cycles, errors,
// cycles/s and the Lock call's p50 and p99. It is a module of its own so
// that etcd's client and gRPC stay out of OctoStore's dependencies:
//
//	cd bench/etcdgrpc && go run . -endpoint 127.0.0.1:2379 -clients 32 -duration 5s
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd client endpoint (host:port)")
	clients := flag.Int("clients", 32, "concurrent clients, each on a lock name of its own")
	dur := flag.Duration("duration", 5*time.Second, "how long to run")
	flag.Parse()
	if *clients < 1 || *dur <= 0 {
		log.Fatal("etcdgrpc: -clients must be at least 1 and -duration positive")
	}
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	locks := v3lockpb.NewLockClient(cli.ActiveConnection())

	// The leases outlast the run by two minutes, as bench's etcd target's do.
	// An etcd that does not answer fails here, not by hanging.
	leases := make([]clientv3.LeaseID, *clients)
	for i := range leases {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		g, err := cli.Grant(gctx, int64(dur.Seconds())+120)
		cancel()
		if err != nil {
			log.Fatalf("etcdgrpc: lease grant at %s: %v", *endpoint, err)
		}
		leases[i] = g.ID
	}
	defer func() {
		for _, l := range leases {
			cli.Revoke(ctx, l)
		}
	}()

	var (
		cycles, errs atomic.Int64
		wg           sync.WaitGroup
		mu           sync.Mutex
		lat          []time.Duration // of every Lock call that succeeded
	)
	tag := time.Now().UnixNano()
	start := time.Now()
	end := start.Add(*dur)
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Appendf(nil, "etcdgrpc-%d-%d", tag, i)
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for time.Now().Before(end) {
				t0 := time.Now()
				r, err := locks.Lock(ctx, &v3lockpb.LockRequest{Name: name, Lease: int64(leases[i])})
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
				if _, err := locks.Unlock(ctx, &v3lockpb.UnlockRequest{Key: r.Key}); err != nil {
					errs.Add(1)
					continue
				}
				cycles.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if len(lat) == 0 {
		log.Fatalf("etcdgrpc: no lock succeeded (%d errors)", errs.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	fmt.Printf("etcd-grpc clients=%d cycles=%d errors=%d seconds=%.2f cycles_per_sec=%.0f lock_p50_ms=%.3f lock_p99_ms=%.3f\n",
		*clients, cycles.Load(), errs.Load(), secs, float64(cycles.Load())/secs, pct(0.5), pct(0.99))
}
