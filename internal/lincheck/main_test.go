package lincheck_test

import (
	"flag"
	"os"
	"testing"

	"github.com/octostore/octostore/internal/leakcheck"
)

// TestMain fails the run if goroutines started by the tests outlive them.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(leakcheck.Run(m))
}
