package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// TestHooks are the test hooks of a Store (see Store.fallbackHook,
// retireHook and scanHook); nil for none.
type TestHooks struct {
	Fallback, Retire, Scan func()
}

// SetTestHooks sets the test hooks of s for the external tests. Set them
// before s is used concurrently.
func SetTestHooks(s *Store, h TestHooks) {
	s.fallbackHook, s.retireHook, s.scanHook = h.Fallback, h.Retire, h.Scan
}

// VouchWindow is vouchWindow, for the external tests.
const VouchWindow = vouchWindow

// ClientOf returns the client of s, for the external tests.
func ClientOf(s *Store) interface {
	Del(ctx context.Context, keys ...string) *redis.IntCmd
} {
	return s.client
}
