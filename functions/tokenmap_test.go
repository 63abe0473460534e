package functions

import (
	"sync"
	"testing"

	"github.com/octostore/octostore/lockcore"
)

// TestTokenMapBounded checks the token map's promises: it answers what it
// was told, forgets on demand, and never holds more than its bound.
func TestTokenMapBounded(t *testing.T) {
	m := newTokenMap(64)
	_, h := lockcore.NewToken()
	if _, ok := m.account(h); ok {
		t.Fatal("empty map: want no entry")
	}
	m.remember(h, "acct-1")
	if id, ok := m.account(h); !ok || id != "acct-1" {
		t.Fatalf("after remember: want acct-1, got %q, %v", id, ok)
	}
	m.forget(h)
	if _, ok := m.account(h); ok {
		t.Fatal("after forget: want no entry")
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				_, h := lockcore.NewToken()
				m.remember(h, "acct")
				if n := size(m); n > 64 {
					t.Errorf("goroutine %d: map holds %d entries, bound 64", g, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := size(m); n == 0 || n > 64 {
		t.Fatalf("after 4000 remembers: want 1..64 entries, got %d", n)
	}
	_, lh := lockcore.NewToken()
	m.remember(lh, "last")
	if id, ok := m.account(lh); !ok || id != "last" {
		t.Fatalf("the newest entry must survive the eviction it caused: got %q, %v", id, ok)
	}
}

// size returns the number of entries of m.
func size(m *tokenMap) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.ids)
}
