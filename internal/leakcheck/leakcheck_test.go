package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestLeakedFindsALiveGoroutine(t *testing.T) {
	before := Snapshot()
	stop := make(chan struct{})
	go func() { <-stop }()
	leaked := Leaked(before, 50*time.Millisecond)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "TestLeakedFindsALiveGoroutine") {
		t.Fatalf("Leaked = %q, want the one goroutine started here", leaked)
	}
	close(stop)
	// Leaked returns as soon as the goroutine is gone; the full Grace only
	// matters when a loaded machine is slow to schedule its exit.
	if leaked := Leaked(before, Grace); len(leaked) != 0 {
		t.Fatalf("after it ended, Leaked = %q", leaked)
	}
}

func TestLeakedWaitsForEndingGoroutines(t *testing.T) {
	before := Snapshot()
	go time.Sleep(100 * time.Millisecond)
	if leaked := Leaked(before, 5*time.Second); len(leaked) != 0 {
		t.Fatalf("a goroutine ending within the grace counted as leaked: %q", leaked)
	}
}
