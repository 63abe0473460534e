package redisstore_test

import (
	"os"
	"testing"

	"github.com/octostore/octostore/internal/leakcheck"
)

// TestMain fails the package's test binary when its tests leave goroutines
// running (go-redis pools, pipeliners and the store's own helpers must end
// with Close).
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
