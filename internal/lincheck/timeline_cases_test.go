package lincheck

import (
	"strings"
	"testing"
	"time"
)

// lostWrite adds an acquire or renew of lease whose answer was lost, sent
// at call with the given ttl (ms).
func (b *tl) lostWrite(kind OpKind, lease string, call, ret, ttl int64) *tl {
	b.add(kind, lease, call, ret, unknown)
	b.recs[len(b.recs)-1].Input.TTL = time.Duration(ttl) * time.Millisecond
	return b
}

// TestCheckTimelineMoreViolations: violations each of which a bug in the checker
// once (in a mutation review) let through, and legal twins of some.
func TestCheckTimelineMoreViolations(t *testing.T) {
	held := heldUntil
	checkTimelineCases(t, []timelineCase{
		{"renewal extends the holding", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			ok(OpRenew, "a", 1, 500, 1000).
			ok(OpAcquire, "b", 2, 1200, 1000), "two holders"},
		{"renewed lease expires, then a new holder", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			ok(OpRenew, "a", 1, 500, 1000).
			ok(OpAcquire, "b", 2, 1600, 1000), ""},
		{"release answered before the lease began cuts nothing", new(tl).
			add(OpRelease, "a", 0, 2, released).
			ok(OpAcquire, "a", 1, 100, 1000).
			ok(OpAcquire, "b", 2, 500, 1000), "two holders"},
		{"not-current release cuts nothing", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			add(OpRelease, "a", 300, 310, notCurrent).
			ok(OpAcquire, "b", 2, 400, 1000), "two holders"},
		{"overlap beyond the slack", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			ok(OpAcquire, "b", 2, 980, 1000), "two holders"},
		{"overlap within the slack", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			ok(OpAcquire, "b", 2, 996, 1000), ""},
		{"the first release answered ends the lease", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			add(OpRelease, "a", 300, 310, released).
			add(OpRelease, "a", 600, 610, released).
			ok(OpRenew, "a", 1, 400, 1000), "release lost"},
		{"read shows another lease for the holder's token", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			get(500, held("b", 1, 1000)), "token reused"},
		{"read shows a lost acquire's lease while another holds", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			add(OpAcquire, "z", 100, 105, unknown).
			get(500, held("z", 9, 1500)), "lease lost"},
		{"read as free, then released", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			get(500, free).
			add(OpRelease, "a", 800, 805, released), "lease lost"},
		{"lost renewal before the last one", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			lostWrite(OpRenew, "a", 100, 105, 100).
			ok(OpRenew, "a", 1, 500, 1000).
			get(700, held("a", 1, 1000)), "stale renewal"},
		{"lost renewal during the read sets at least its ttl", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			lostWrite(OpRenew, "a", 400, 405, 1000).
			get(600, held("a", 1, 900)), "stale renewal"},
		{"lost renewal during the read may shorten", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			lostWrite(OpRenew, "a", 400, 405, 300).
			get(600, held("a", 1, 702)), ""},
		{"lost renewal after expiry does not excuse a revival", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			lostWrite(OpRenew, "a", 1200, 1205, 1000).
			ok(OpRenew, "a", 1, 1500, 1000), "revived"},
		{"lease shown before its lost acquire was sent", new(tl).
			get(500, held("z", 9, 1000)).
			add(OpAcquire, "z", 600, 605, unknown), "phantom lease"},
		{"lost renewal creates no lease", new(tl).
			lostWrite(OpRenew, "z", 100, 105, 1000).
			get(500, held("z", 9, 1000)), "phantom lease"},
	})
}

// TestCheckTimelineLongestHolder: a new lease is compared with the earlier
// lease that holds longest, not just with the one before it.
func TestCheckTimelineLongestHolder(t *testing.T) {
	b := new(tl).
		ok(OpAcquire, "a", 1, 0, 1000).
		ok(OpAcquire, "b", 2, 10, 1000).
		add(OpRelease, "b", 20, 22, released).
		ok(OpAcquire, "c", 3, 500, 1000)
	vs, _ := CheckTimeline(b.history(), 5*time.Millisecond)
	var two []string
	for _, v := range vs {
		if v.Kind == "two holders" {
			two = append(two, v.Detail)
		}
	}
	if len(two) != 2 || !strings.Contains(two[0], "lease b ") || !strings.Contains(two[1], "lease c ") {
		t.Fatalf("two-holder violations %q, want one for b and one for c (both inside a's lease)", two)
	}

	// Held until 100, then b until 1200: c at 500 overlaps b only.
	b = new(tl).
		ok(OpAcquire, "a", 1, 0, 100).
		ok(OpAcquire, "b", 2, 200, 1000).
		ok(OpAcquire, "c", 3, 500, 1000)
	vs, _ = CheckTimeline(b.history(), 5*time.Millisecond)
	if len(vs) != 1 || vs[0].Kind != "two holders" || !strings.Contains(vs[0].Detail, "lease c ") {
		t.Fatalf("violations %v, want c overlapping b", vs)
	}
}

// TestCheckTimelineEveryLock: a violation on any lock is found, not only
// on the first in name order.
func TestCheckTimelineEveryLock(t *testing.T) {
	var h History
	for _, part := range []struct {
		lock string
		b    *tl
	}{
		{"x", new(tl).ok(OpAcquire, "a", 1, 0, 1000)},
		{"y", new(tl).ok(OpAcquire, "b", 1, 100, 1000)}, // y is not x: fine
		{"z", new(tl).ok(OpAcquire, "c", 2, 200, 1000).ok(OpAcquire, "d", 3, 300, 1000)},
	} {
		for _, r := range part.b.recs {
			r.Input.Lock = part.lock
			h.Records = append(h.Records, r)
		}
	}
	h.End = ms(1e6)
	vs, stats := CheckTimeline(h, 5*time.Millisecond)
	if len(vs) != 1 || vs[0].Lock != "z" || vs[0].Kind != "two holders" {
		t.Fatalf("violations %v, want two holders on z only", vs)
	}
	if stats.Leases != 4 || stats.Acks != 4 {
		t.Fatalf("stats %+v, want 4 leases and 4 acks over three locks", stats)
	}
}

// TestCheckTimelineCountsExpiry: Expired counts only leases followed by
// another after they expired unreleased, since it is what tells the expiry
// tests that expiry was exercised.
func TestCheckTimelineCountsExpiry(t *testing.T) {
	cases := []struct {
		name string
		b    *tl
		want int
	}{
		{"expired then a new holder", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			ok(OpAcquire, "b", 2, 1200, 1000), 1},
		{"released then a new holder", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000).
			add(OpRelease, "a", 300, 310, released).
			ok(OpAcquire, "b", 2, 400, 1000), 0},
		{"one lease", new(tl).
			ok(OpAcquire, "a", 1, 0, 1000), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs, stats := CheckTimeline(c.b.history(), 5*time.Millisecond)
			if len(vs) != 0 || stats.Expired != c.want {
				t.Fatalf("violations %v, expired %d; want none, %d", vs, stats.Expired, c.want)
			}
		})
	}
}
