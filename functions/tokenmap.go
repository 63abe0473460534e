package functions

import (
	"sync"

	"github.com/octostore/octostore/lockcore"
)

// defaultTokenMapSize bounds the token map: about 100 bytes an entry, so at
// most a few MiB however many tokens call.
const defaultTokenMapSize = 1 << 16

// tokenMap remembers which account each recently seen token hash belongs
// to, so that a lock write can skip the store's token lookup and have the
// store check the token in the write itself (lockcore.TokenLocks).
//
// An entry never goes stale in the way that matters: a token hash names at
// most one account, ever (tokens are 256 random bits), so a remembered
// account is the only one the token could still belong to. Whether the
// token still belongs to it right now (not rotated away, not revoked) is
// never taken from the map; the store checks it in the same atomic step as
// the write, which is what keeps a rotation effective at once on every
// instance. The map is only a hint of which account to ask about.
//
// It holds at most max entries, in two generations of at most max/2 each:
// new entries go to cur; when cur is full it becomes old and the previous
// old is dropped whole. Evicting by dropping a whole map, rather than by
// deleting entries from one long-lived map, keeps its memory bounded too:
// a Go map never shrinks, and one whose entries are deleted a slice at a
// time while uniformly spread new ones arrive keeps splitting tables that
// are never merged again (measured: about ten times the memory of a
// freshly filled map of the same size, after some 40 million distinct
// tokens). It is safe for concurrent use.
type tokenMap struct {
	mu       sync.RWMutex
	cur, old map[lockcore.TokenHash]string
	gen      int // entries per generation
}

func newTokenMap(limit int) *tokenMap {
	gen := max(limit/2, 1)
	return &tokenMap{cur: make(map[lockcore.TokenHash]string), old: make(map[lockcore.TokenHash]string), gen: gen}
}

// account returns the account remembered for h, if any.
func (m *tokenMap) account(h lockcore.TokenHash) (string, bool) {
	m.mu.RLock()
	id, ok := m.cur[h]
	if !ok {
		id, ok = m.old[h]
	}
	m.mu.RUnlock()
	return id, ok
}

// remember records that h belongs to account id.
func (m *tokenMap) remember(h lockcore.TokenHash, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.cur[h]; !ok && len(m.cur) >= m.gen {
		m.old, m.cur = m.cur, make(map[lockcore.TokenHash]string, m.gen)
	}
	delete(m.old, h)
	m.cur[h] = id
}

// forget drops h (a token the store refused, or one this instance rotated
// away), so the next request with it takes the full lookup.
func (m *tokenMap) forget(h lockcore.TokenHash) {
	m.mu.Lock()
	delete(m.cur, h)
	delete(m.old, h)
	m.mu.Unlock()
}
