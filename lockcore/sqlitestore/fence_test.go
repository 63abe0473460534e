package sqlitestore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// TestFencingTokensFollowTheClockInMicroseconds checks the floor of a new
// fencing token at a clock that is not on a whole millisecond: a token is
// max(the account's last + 1, the clock in microseconds), never the clock
// cut to its millisecond. The stale-copy guarantee (a database put back
// without restore still issues tokens above every one the lost database
// issued) rests on tokens never falling below the microsecond clock; the
// other tests hold the clock on whole milliseconds, where the two floors
// agree.
func TestFencingTokensFollowTheClockInMicroseconds(t *testing.T) {
	clock := newFakeClock()
	s := openAt(t, filepath.Join(t.TempDir(), "fence.db"), clock, sqlitestore.Options{})
	a := mustAccount(t, s, "alice")

	clock.Advance(1500 * time.Microsecond)
	want := clock.Now().UnixMicro()
	if got := acquireFence(t, s, a.ID, "x"); got != want {
		t.Fatalf("first token at clock %d µs: want %d (the clock in µs), got %d", want, want, got)
	}
	clock.Advance(300 * time.Microsecond) // 300 µs later, in the same millisecond
	want = clock.Now().UnixMicro()
	if got := acquireFence(t, s, a.ID, "y"); got != want {
		t.Errorf("second token 300 µs later: want %d (the clock in µs), got %d", want, got)
	}
	if got := acquireFence(t, s, a.ID, "z"); got != want+1 {
		t.Errorf("third token at the same clock: want %d (the last + 1), got %d", want+1, got)
	}
}
