// Command growth seeds an OctoStore store with held locks through the Store
// interface, for the growth measurement of BENCHMARKS.md (`make
// bench-growth`): accounts grow-<from> … grow-<accounts-1>, each holding
// -per locks (g-0 … g-<per-1>) for -ttl.
//
//	go run ./bench/growth -db octostore.db -from 0 -accounts 10 -per 100
//	go run ./bench/growth -redis-url redis://127.0.0.1:6379 -from 10 -accounts 10000
//
// It is safe to run against a store a server is using at the same time (it
// only adds accounts and locks of its own). It prints how many locks it
// took and how fast.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

func main() {
	db := flag.String("db", "", "SQLite database file")
	redisURL := flag.String("redis-url", "", "Redis URL (instead of -db)")
	prefix := flag.String("redis-prefix", "", "Redis key prefix (default: the store's, os:)")
	from := flag.Int("from", 0, "first account number")
	accounts := flag.Int("accounts", 10, "one past the last account number")
	per := flag.Int("per", 100, "locks per account")
	workers := flag.Int("workers", 64, "concurrent seeders")
	ttl := flag.Duration("ttl", time.Hour, "TTL of the seeded locks")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *db, *redisURL, *prefix, *from, *accounts, *per, *workers, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "growth:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, db, redisURL, prefix string, from, accounts, per, workers int, ttl time.Duration) error {
	if (db == "") == (redisURL == "") {
		return errors.New("give exactly one of -db and -redis-url")
	}
	if from < 0 || accounts <= from || per < 1 || per > lockcore.DefaultLimits.MaxHeldLocks || workers < 1 {
		return fmt.Errorf("want 0 <= from < accounts, 1 <= per <= %d, workers >= 1", lockcore.DefaultLimits.MaxHeldLocks)
	}
	var (
		st  lockcore.Store
		err error
	)
	if db != "" {
		st, err = sqlitestore.Open(ctx, db, sqlitestore.Options{})
	} else {
		st, err = redisstore.Open(ctx, redisstore.Config{URL: redisURL, Prefix: prefix, OpTimeout: 30 * time.Second})
	}
	if err != nil {
		return err
	}
	defer st.Close()

	start := time.Now()
	var (
		next   = int64(from)
		taken  atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		report = time.NewTicker(5 * time.Second)
	)
	defer report.Stop()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-report.C:
				n := taken.Load()
				fmt.Fprintf(os.Stderr, "\rseeded %d locks (%.0f/s)   ", n, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a := int(atomic.AddInt64(&next, 1) - 1)
				if a >= accounts {
					return
				}
				if err := seedAccount(ctx, st, a, per, ttl, &taken); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "\r")
	fmt.Printf("seeded %d locks in %d accounts in %.1fs (%.0f locks/s)\n", taken.Load(), accounts-from, el.Seconds(), float64(taken.Load())/el.Seconds())
	return nil
}

// seedAccount creates account grow-<a> and takes its per locks.
func seedAccount(ctx context.Context, st lockcore.Store, a, per int, ttl time.Duration, taken *atomic.Int64) error {
	acct, _, err := st.EnsureAccount(ctx, "grow-"+strconv.Itoa(a))
	if err != nil {
		return fmt.Errorf("account %d: %w", a, err)
	}
	for i := range per {
		name := "g-" + strconv.Itoa(i)
		res, err := st.Acquire(ctx, acct.ID, name, lockcore.AcquireOptions{
			LeaseID: lockcore.NewLeaseID(), TTL: ttl, MaxHeld: lockcore.DefaultLimits.MaxHeldLocks,
		})
		if err != nil {
			return fmt.Errorf("account %d lock %s: %w", a, name, err)
		}
		if res.Acquired {
			taken.Add(1)
		}
	}
	return nil
}
