package main

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC checks that serve raises the GC target when GOGC is unset and
// leaves an operator's GOGC alone.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	unset := func(string) (string, bool) { return "", false }
	if got := tuneGC(unset); got != gcPercent {
		t.Errorf("GOGC unset: tuneGC = %d, want %d", got, gcPercent)
	}
	if now := debug.SetGCPercent(100); now != gcPercent {
		t.Errorf("GOGC unset: GC target is %d, want %d", now, gcPercent)
	}

	debug.SetGCPercent(150) // as the runtime would have set it from GOGC=150
	set := func(k string) (string, bool) { return "150", k == "GOGC" }
	if got := tuneGC(set); got != 150 {
		t.Errorf("GOGC=150: tuneGC = %d, want 150", got)
	}
	if now := debug.SetGCPercent(100); now != 150 {
		t.Errorf("GOGC=150: GC target is %d, want it left at 150", now)
	}
}
