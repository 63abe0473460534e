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
// It holds at most max entries; when full, an arbitrary eighth of them is
// dropped. It is safe for concurrent use.
type tokenMap struct {
	mu  sync.RWMutex
	ids map[lockcore.TokenHash]string
	max int
}

func newTokenMap(max int) *tokenMap {
	return &tokenMap{ids: make(map[lockcore.TokenHash]string), max: max}
}

// account returns the account remembered for h, if any.
func (m *tokenMap) account(h lockcore.TokenHash) (string, bool) {
	m.mu.RLock()
	id, ok := m.ids[h]
	m.mu.RUnlock()
	return id, ok
}

// remember records that h belongs to account id.
func (m *tokenMap) remember(h lockcore.TokenHash, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ids[h]; !ok && len(m.ids) >= m.max {
		drop := max(m.max/8, 1)
		for k := range m.ids {
			delete(m.ids, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	m.ids[h] = id
}

// forget drops h (a token the store refused, or one this instance rotated
// away), so the next request with it takes the full lookup.
func (m *tokenMap) forget(h lockcore.TokenHash) {
	m.mu.Lock()
	delete(m.ids, h)
	m.mu.Unlock()
}
