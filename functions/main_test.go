package functions_test

import (
	"os"
	"testing"

	"github.com/octostore/octostore/internal/leakcheck"
	"github.com/octostore/octostore/internal/redistest"
)

// TestMain stops the shared redis-server and fails the run if goroutines
// started by the tests outlive them.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m, redistest.StopShared)) }
