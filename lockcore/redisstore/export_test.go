package redisstore

// SetTestHooks sets the test hooks of s (Store.fallbackHook and
// Store.retireHook; nil for none) for the external tests. Set them before
// s is used concurrently.
func SetTestHooks(s *Store, fallback, retire func()) {
	s.fallbackHook, s.retireHook = fallback, retire
}

// VouchWindow is vouchWindow, for the external tests.
const VouchWindow = vouchWindow
