//go:build unix

package redistest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

var shared struct {
	mu  sync.Mutex
	srv *Server
	dir string
	err error
}

// Shared returns one redis-server for the whole test binary, started on the
// first call, for tests that each use their own key prefix and never stop
// or restart the server. Like Start it skips (or fails, with
// OCTOSTORE_REQUIRE_REDIS=1) when redis-server is missing. The test
// binary's TestMain must call StopShared after m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.dir, shared.err = startShared(bin)
	}
	if shared.err != nil {
		t.Fatalf("redistest: start shared redis-server: %v", shared.err)
	}
	return shared.srv
}

func startShared(bin string) (*Server, string, error) {
	dir, err := os.MkdirTemp("", "redistest-shared-")
	if err != nil {
		return nil, "", err
	}
	s := &Server{bin: bin, dir: dir}
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = freePort(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			return s, dir, nil
		}
	}
	os.RemoveAll(dir)
	return nil, "", fmt.Errorf("after 5 attempts: %w", err)
}

// StopShared stops the server Shared started, if any, and removes its
// directory. It is safe to call when Shared was never called.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Stop()
		os.RemoveAll(shared.dir)
		shared.srv = nil
	}
}
