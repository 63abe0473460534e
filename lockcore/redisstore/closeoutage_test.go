package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
)

// TestCloseDoesNotWaitForAHungRedis: with Redis hung (SIGSTOP), calls
// that gave up leave commands in the autopipeliner, and Close must return
// while Redis is still paused, with an error saying why, instead of
// waiting for Redis to answer them (until go-redis' 30 s backstop, the
// read timeout being OpTimeout, here a minute): a server stopped during an
// outage must stop within its drain time. (20 s is far above Close's own
// bound of a second, for a loaded machine, and below the backstop.)
func TestCloseDoesNotWaitForAHungRedis(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), "closehung:", time.Minute)
	acct := account(t, s, "closehung")
	srv.Pause()
	defer srv.Resume()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if _, err := s.Acquire(ctx, acct, "x", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
				t.Errorf("Acquire on a paused Redis: want ErrUnavailable, got %v", err)
			}
		}()
	}
	wg.Wait()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, lockcore.ErrUnavailable) {
			t.Errorf("Close with Redis paused: want an error wrapping ErrUnavailable, got %v", err)
		}
		t.Logf("Close returned after %v: %v", time.Since(start), err)
	case <-time.After(20 * time.Second):
		t.Fatalf("Close has not returned 20 s after it was called, with Redis paused")
	}
}
