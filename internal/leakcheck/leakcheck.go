// Package leakcheck fails a test binary whose tests leave goroutines
// running. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
//
// It is for tests only; it is safe to call once per test binary.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Grace is how long Run waits for goroutines to end after the tests.
const Grace = 5 * time.Second

// Run runs the tests, then the cleanups (for what the tests shared, such
// as a server started once), and returns m.Run's exit code, or 1 when every
// test passed but goroutines started during the run are still alive Grace
// later; their stacks are printed to stderr. Goroutines the runtime or
// os/signal keep for the life of the process are not counted.
func Run(m *testing.M, cleanups ...func()) int {
	before := ids(stacks())
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if code != 0 {
		return code
	}
	if leaked := Leaked(before, Grace); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "leakcheck: %d goroutines started by the tests outlived them:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
		return 1
	}
	return 0
}

// Leaked waits up to d for every goroutine not in before (and not a
// process-lifetime one) to end, and returns the stacks of those that did
// not.
func Leaked(before map[string]bool, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		var leaked []string
		for i, g := range stacks() {
			if i == 0 || before[id(g)] || lifetime(g) {
				continue // i == 0 is the calling goroutine
			}
			leaked = append(leaked, g)
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Snapshot returns the ids of the goroutines running now, for Leaked.
func Snapshot() map[string]bool { return ids(stacks()) }

// stacks returns one stack per goroutine, the caller's first.
func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func ids(gs []string) map[string]bool {
	m := make(map[string]bool, len(gs))
	for _, g := range gs {
		m[id(g)] = true
	}
	return m
}

// id is the "goroutine N" header of a stack.
func id(g string) string {
	if i := strings.Index(g, " ["); i > 0 {
		return g[:i]
	}
	return g
}

// lifetime reports goroutines that live as long as the process by design.
func lifetime(g string) bool {
	for _, s := range []string{"os/signal.signal_recv", "os/signal.loop", "runtime.ensureSigM", "created by runtime.gc", "runtime.goexit0"} {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}
