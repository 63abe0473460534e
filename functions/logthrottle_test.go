package functions

import (
	"fmt"
	"testing"
	"time"
)

// TestLogThrottle: the first line of a cause is let through, lines within
// the interval are counted and refused, and the next one let through after
// the interval says how many were refused; causes that differ only in
// digits are one cause, other causes have their own allowance, and more
// than maxThrottledCauses causes at once share one.
func TestLogThrottle(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	lt := newLogThrottle(10 * time.Second)
	lt.now = func() time.Time { return now }
	step := func(d time.Duration, cause string, wantOK bool, wantSkipped int64) {
		t.Helper()
		now = now.Add(d)
		if ok, n := lt.allow(cause); ok != wantOK || n != wantSkipped {
			t.Errorf("allow(%q) at +%v = %v, %d; want %v, %d", cause, d, ok, n, wantOK, wantSkipped)
		}
	}
	const refused = "dial tcp 127.0.0.1:6379: connect: connection refused"
	step(0, refused, true, 0)
	step(time.Second, "dial tcp 127.0.0.1:6380: connect: connection refused", false, 0)
	step(0, "disk full", true, 0) // another cause
	step(time.Second, refused, false, 0)
	step(0, "disk full", false, 0)
	step(7*time.Second, refused, false, 0)
	step(time.Second, refused, true, 3) // 10 s after its first line
	step(0, refused, false, 0)
	step(time.Hour, refused, true, 1)
	step(time.Hour, refused, true, 0) // a new outage starts without a count

	now = now.Add(time.Hour)
	for i := range maxThrottledCauses {
		step(0, fmt.Sprintf("account %c lost", 'a'+i), true, 0)
	}
	step(0, "account z lost", true, 0) // the overflow allowance
	step(0, "account y lost", false, 0)
	step(0, "account a lost", false, 0)
	step(10*time.Second, "account y lost", true, 0) // room again: its own
}

// TestLogThrottleKeepsACauseStillFailing: when a new cause needs room, only
// causes not seen for an interval are forgotten, not those whose last line
// is an interval old but which still fail: their next line must count the
// failures not logged since the last one, not start again from none.
func TestLogThrottleKeepsACauseStillFailing(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	lt := newLogThrottle(10 * time.Second)
	lt.now = func() time.Time { return now }
	for i := range maxThrottledCauses {
		if ok, _ := lt.allow(fmt.Sprintf("account %c lost", 'a'+i)); !ok {
			t.Fatalf("first line of cause %d refused", i)
		}
	}
	const failing = "account a lost"
	for range 9 {
		now = now.Add(time.Second)
		if ok, _ := lt.allow(failing); ok {
			t.Fatalf("a line of %q let through %v after its first", failing, now)
		}
	}
	now = now.Add(time.Second) // the other causes were last seen 10 s ago
	if ok, n := lt.allow("disk full"); !ok || n != 0 {
		t.Fatalf("allow(a new cause, with room from the causes gone) = %v, %d; want true, 0", ok, n)
	}
	if ok, n := lt.allow(failing); !ok || n != 9 {
		t.Fatalf("allow(%q) 10 s after its last line, failing every second = %v, %d; want true, 9 (its refused lines)", failing, ok, n)
	}
}
