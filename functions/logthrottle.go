package functions

import (
	"strings"
	"sync"
	"time"
)

// outageLogInterval is how often at most one cause of 503 answers (the
// store's own error) is logged, for requests and for health checks each:
// while the store is away every request fails, often within a millisecond
// (a refused connection, a full disk), and a line for each would double
// the log and repeat the same cause thousands of times a second. Every
// answer still has its access line, with code=store_unavailable.
const outageLogInterval = 10 * time.Second

// maxThrottledCauses bounds the causes a logThrottle tells apart within an
// interval; beyond it, further causes share one allowance, so that errors
// naming many accounts cannot make a line each. A cause not seen for an
// interval is forgotten when room is needed (with the count of its lines
// not logged).
const maxThrottledCauses = 16

// logThrottle lets a line about a cause through at most once per interval:
// the first failure of an outage at once, then one line per interval while
// failures of that cause go on, each saying how many were not logged since
// the line before. Causes are told apart by their text without digits (so
// that a port or a byte count does not make a new cause). Safe for
// concurrent use.
type logThrottle struct {
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	causes map[string]*throttled
}

// throttled is the state of one cause of a logThrottle.
type throttled struct {
	last    time.Time // when the last line was let through
	seen    time.Time // when the cause was last asked about
	skipped int64     // lines refused since then
}

func newLogThrottle(interval time.Duration) *logThrottle {
	return &logThrottle{interval: interval, now: time.Now, causes: map[string]*throttled{}}
}

// allow reports whether a line about cause may be written now and, when it
// may, how many lines about it were refused since the last one let through.
func (t *logThrottle) allow(cause string) (bool, int64) {
	key := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, cause)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.causes[key]
	if c == nil {
		if len(t.causes) >= maxThrottledCauses {
			for k, old := range t.causes {
				if now.Sub(old.seen) >= t.interval {
					delete(t.causes, k)
				}
			}
		}
		if len(t.causes) >= maxThrottledCauses {
			key = "" // the overflow allowance
			c = t.causes[key]
		}
		if c == nil {
			t.causes[key] = &throttled{last: now, seen: now}
			return true, 0
		}
	}
	c.seen = now
	if now.Sub(c.last) < t.interval {
		c.skipped++
		return false, 0
	}
	n := c.skipped
	c.last, c.skipped = now, 0
	return true, n
}
