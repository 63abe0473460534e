package functions

import (
	"encoding/binary"
	"runtime"
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
	return len(m.cur) + len(m.old)
}

// mapBytes returns about how many heap bytes m holds: the live heap with m
// minus the live heap without it.
func mapBytes(t *testing.T, m **tokenMap) int64 {
	t.Helper()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	with := int64(ms.HeapAlloc)
	*m = nil
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return with - int64(ms.HeapAlloc)
}

// TestTokenMapMemoryStaysBounded checks that the token map's memory, not
// only its entry count, stays bounded when far more distinct tokens call
// than it holds (many valid tokens, or tokens rotated on other
// instances): evicting a slice of one long-lived Go map at a time while
// new tokens arrive made the map about ten times the size of a freshly
// filled one (a Go map never shrinks, and keeps splitting its tables).
func TestTokenMapMemoryStaysBounded(t *testing.T) {
	const limit = 1 << 14
	key := func(i uint64) (h lockcore.TokenHash) {
		binary.LittleEndian.PutUint64(h[:], i)
		return h
	}
	fresh := newTokenMap(limit)
	for i := range uint64(limit) {
		fresh.remember(key(i), "acct")
	}
	freshBytes := mapBytes(t, &fresh)

	churned := newTokenMap(limit)
	for i := range uint64(128 * limit) {
		churned.remember(key(i), "acct")
	}
	if n := size(churned); n > limit {
		t.Fatalf("map holds %d entries, bound %d", n, limit)
	}
	churnedBytes := mapBytes(t, &churned)
	t.Logf("freshly filled: %d KiB; after %d distinct tokens: %d KiB", freshBytes>>10, 128*limit, churnedBytes>>10)
	if churnedBytes > 3*freshBytes+256<<10 {
		t.Fatalf("after %d distinct tokens the map holds %d KiB, over 3x the %d KiB of a freshly filled one", 128*limit, churnedBytes>>10, freshBytes>>10)
	}
}
