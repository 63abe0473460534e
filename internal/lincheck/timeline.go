package lincheck

import (
	"fmt"
	"sort"
	"time"
)

// Violation is one broken safety property found by CheckTimeline.
type Violation struct {
	Lock string
	// Kind is a short name of the property: "two holders", "token order",
	// "token reused", "revived", "release lost", "lease lost",
	// "stale renewal", "phantom lease".
	Kind   string
	Detail string
}

// String describes the violation.
func (v Violation) String() string { return fmt.Sprintf("%s: %s: %s", v.Lock, v.Kind, v.Detail) }

// TimelineStats are the figures of one CheckTimeline run.
type TimelineStats struct {
	// Leases is how many distinct leases (fencing tokens) were acknowledged.
	Leases int
	// Acks is how many acquired/renewed answers placed a lease in time.
	Acks int
	// Reads is how many get answers were compared with the timeline.
	Reads int
	// Expired is how many leases were followed by another lease of the
	// same lock after they expired, with no release attempted: evidence
	// that the history exercised expiry.
	Expired int
}

// ack is an acknowledged acquired or renewed answer: the lease held from
// at (store time of the operation) to end (its expires_at).
type ack struct {
	at, end time.Time
	rec     *Record
}

// lease is what the history says about one fencing token of one lock.
type lease struct {
	token int64
	id    string
	acks  []ack // sorted by at
	start time.Time
	end   time.Time // expiry after the last acknowledgement
	// cut is the earliest moment a release of this lease may have taken
	// effect, or the zero time if none was attempted.
	cut time.Time
	// cutAck is the return time of the first acknowledged release that
	// ended this lease, or the zero time.
	cutAck time.Time
}

// until is the latest moment the lease can have held the lock.
func (l *lease) until() time.Time {
	if !l.cut.IsZero() && l.cut.Before(l.end) {
		return l.cut
	}
	return l.end
}

// CheckTimeline checks, lock by lock, the safety properties that the
// store's clock can prove, on a history with any TTLs and any number of
// lost answers and crashes. It assumes the store's clock and the clock that
// stamped the records' Call and Return are the same (one machine), with
// slack covering millisecond rounding (a few ms is plenty). Every
// acknowledged acquire or renew answer says the lease held the lock from
// expires_at − ttl_seconds (the store time of the operation) to expires_at,
// so:
//
//   - two holders: the holding intervals of two leases of one lock, each cut
//     short by the earliest release of it that may have taken effect
//     (acknowledged or lost), never overlap;
//   - token order / reused: in order of holding, fencing tokens strictly
//     increase, and one token never names two lease ids;
//   - revived: no acknowledgement of a lease comes after it had expired;
//   - release lost: no answer after an acknowledged release shows that
//     lease holding;
//   - lease lost / stale renewal: a get answered after an acknowledged
//     acquire or renew, within its interval and with no release attempted,
//     shows that lease, with at least the acknowledged expiry;
//   - phantom lease: a get shows only leases some acquire (answered or
//     lost) could have created.
//
// CheckTimeline is pure and safe for concurrent use.
func CheckTimeline(h History, slack time.Duration) ([]Violation, TimelineStats) {
	byLock := map[string][]*Record{}
	var names []string
	for i := range h.Records {
		r := &h.Records[i]
		if _, ok := byLock[r.Input.Lock]; !ok {
			names = append(names, r.Input.Lock)
		}
		byLock[r.Input.Lock] = append(byLock[r.Input.Lock], r)
	}
	sort.Strings(names)
	var (
		vs    []Violation
		stats TimelineStats
	)
	for _, name := range names {
		v, s := checkLock(name, byLock[name], slack)
		vs = append(vs, v...)
		stats.Leases += s.Leases
		stats.Acks += s.Acks
		stats.Reads += s.Reads
		stats.Expired += s.Expired
	}
	return vs, stats
}

func checkLock(name string, recs []*Record, slack time.Duration) ([]Violation, TimelineStats) {
	var vs []Violation
	bad := func(kind, format string, args ...any) {
		vs = append(vs, Violation{Lock: name, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	var stats TimelineStats
	leases := map[int64]*lease{}
	lostAcquires := map[string][]*Record{} // lease id -> acquires whose answer was lost
	writes := map[string][]*Record{}       // lease id -> its acquires and renews, any outcome
	var releases, reads []*Record
	for _, r := range recs {
		o := r.Output
		if r.Input.Kind == OpAcquire || r.Input.Kind == OpRenew {
			writes[r.Input.LeaseID] = append(writes[r.Input.LeaseID], r)
		}
		switch {
		case o.Outcome == Acquired || o.Outcome == Renewed:
			a := ack{at: o.ExpiresAt.Add(-o.TTL), end: o.ExpiresAt, rec: r}
			l := leases[o.Token]
			if l == nil {
				l = &lease{token: o.Token, id: o.LeaseID}
				leases[o.Token] = l
			} else if l.id != o.LeaseID {
				bad("token reused", "token %d names leases %s and %s", o.Token, l.id, o.LeaseID)
			}
			l.acks = append(l.acks, a)
			stats.Acks++
		case r.Input.Kind == OpAcquire && o.Outcome == Unknown:
			lostAcquires[r.Input.LeaseID] = append(lostAcquires[r.Input.LeaseID], r)
		case r.Input.Kind == OpRelease && (o.Outcome == Released || o.Outcome == Unknown):
			releases = append(releases, r)
		case r.Input.Kind == OpGet && (o.Outcome == Held || o.Outcome == Free):
			reads = append(reads, r)
		}
	}
	order := make([]*lease, 0, len(leases))
	for _, l := range leases {
		sort.Slice(l.acks, func(i, j int) bool { return l.acks[i].at.Before(l.acks[j].at) })
		l.start, l.end = l.acks[0].at, l.acks[0].end
		for _, a := range l.acks[1:] {
			if a.at.After(l.end.Add(slack)) && !lostExtension(writes[l.id], l.start, l.end, slack) {
				bad("revived", "lease %s (token %d) acknowledged by %s at %s after it expired at %s",
					l.id, l.token, a.rec.Input.Kind, stamp(a.at), stamp(l.end))
			}
			l.end = a.end
		}
		for _, rel := range releases {
			if rel.Input.LeaseID != l.id {
				continue
			}
			// The release may have taken effect from its call until its
			// answer (or, if lost, any time later).
			if rel.Call.After(l.end.Add(slack)) {
				continue
			}
			// A release that was answered, or lost but bounded (its server
			// died by Return), before this lease began cannot end it: it
			// ended an earlier lease with the same id, if any.
			if (rel.Output.Outcome == Released || rel.Bounded) && rel.Return.Before(l.start.Add(-slack)) {
				continue
			}
			at := rel.Call
			if at.Before(l.start) {
				at = l.start
			}
			if l.cut.IsZero() || at.Before(l.cut) {
				l.cut = at
			}
			if rel.Output.Outcome == Released && rel.Call.After(l.start) && (l.cutAck.IsZero() || rel.Return.Before(l.cutAck)) {
				l.cutAck = rel.Return
			}
		}
		order = append(order, l)
	}
	stats.Leases = len(order)
	// In order of holding. Two leases can start in the same millisecond of
	// the store's clock (a release and the next acquire in one commit): the
	// clock cannot tell their order, so the one with the lower token is
	// taken to be first, rather than whichever the map gave first, which
	// reported a "token order" violation at random.
	sort.Slice(order, func(i, j int) bool {
		if !order[i].start.Equal(order[j].start) {
			return order[i].start.Before(order[j].start)
		}
		return order[i].token < order[j].token
	})
	var prev *lease // the earlier lease that holds longest
	for i, l := range order {
		if i > 0 {
			p := order[i-1]
			if p.cut.IsZero() && !l.start.Before(p.end) {
				stats.Expired++
			}
			if l.token <= p.token {
				bad("token order", "lease %s got token %d at %s after lease %s got token %d at %s",
					l.id, l.token, stamp(l.start), p.id, p.token, stamp(p.start))
			}
		}
		if prev != nil && l.start.Add(slack).Before(prev.until()) {
			bad("two holders", "lease %s (token %d) acquired at %s while lease %s (token %d) held it until %s",
				l.id, l.token, stamp(l.start), prev.id, prev.token, stamp(prev.until()))
		}
		if prev == nil || l.until().After(prev.until()) {
			prev = l
		}
		if !l.cutAck.IsZero() {
			for _, a := range l.acks {
				if a.rec.Call.After(l.cutAck.Add(slack)) {
					bad("release lost", "lease %s (token %d) released (answered %s) but %s at %s still shows it",
						l.id, l.token, stamp(l.cutAck), a.rec.Input.Kind, stamp(a.at))
				}
			}
		}
	}
	for _, g := range reads {
		stats.Reads++
		o := g.Output
		if o.Outcome == Held {
			l := leases[o.Token]
			switch {
			case l == nil:
				if !couldCreate(lostAcquires[o.LeaseID], g) {
					bad("phantom lease", "get at %s shows lease %s token %d that no acquire created", stamp(g.Call), o.LeaseID, o.Token)
				}
			case l.id != o.LeaseID:
				bad("token reused", "get shows token %d for lease %s, acknowledged for lease %s", o.Token, o.LeaseID, l.id)
			default:
				if !l.cutAck.IsZero() && g.Call.After(l.cutAck.Add(slack)) {
					bad("release lost", "lease %s (token %d) released (answered %s) but get at %s shows it",
						l.id, l.token, stamp(l.cutAck), stamp(g.Call))
				}
				if a, least, ok := leastExpiry(l, writes[l.id], g); ok && o.ExpiresAt.Add(slack).Before(least) {
					bad("stale renewal", "get at %s shows lease %s expiring %s, but %s answered at %s set %s",
						stamp(g.Call), l.id, stamp(o.ExpiresAt), a.rec.Input.Kind, stamp(a.rec.Return), stamp(a.end))
				}
			}
			if o.ExpiresAt.Add(slack).Before(g.Call) {
				bad("revived", "get at %s shows lease %s expired at %s as held", stamp(g.Call), o.LeaseID, stamp(o.ExpiresAt))
			}
		}
		// Every lease that certainly held the lock throughout the read
		// must be what it shows.
		for _, l := range order {
			if o.Outcome == Held && o.Token == l.token {
				continue
			}
			a, least, ok := leastExpiry(l, writes[l.id], g)
			if !ok || !least.After(g.Return.Add(slack)) {
				continue
			}
			if !l.cut.IsZero() && !l.cut.After(g.Return) {
				continue
			}
			shown := "free"
			if o.Outcome == Held {
				shown = fmt.Sprintf("lease %s token %d", o.LeaseID, o.Token)
			}
			bad("lease lost", "get at %s..%s shows %s, but lease %s (token %d) was acknowledged by %s until %s and never released",
				stamp(g.Call), stamp(g.Return), shown, l.id, l.token, a.rec.Input.Kind, stamp(least))
		}
	}
	return vs, stats
}

// lostExtension reports whether an acquire or renew of the lease whose
// answer was lost was sent while the lease held (from start to end), so
// that it may have extended the lease unseen.
func lostExtension(writes []*Record, start, end time.Time, slack time.Duration) bool {
	for _, w := range writes {
		if w.Output.Outcome == Unknown && !w.Call.Before(start.Add(-slack)) && !w.Call.After(end.Add(slack)) {
			return true
		}
	}
	return false
}

// leastExpiry returns the latest acknowledgement of l answered before the
// read g was sent, and the earliest expiry l can have had when g read it:
// that acknowledgement's, unless another acquire or renew of the same
// lease that may have come after it (lost, or acknowledged later) set a
// shorter one. ok is false when no acknowledgement preceded the read.
func leastExpiry(l *lease, writes []*Record, g *Record) (latest ack, least time.Time, ok bool) {
	for _, a := range l.acks {
		if a.rec.Return.Before(g.Call) && (!ok || a.at.After(latest.at)) {
			latest, ok = a, true
		}
	}
	if !ok {
		return latest, least, false
	}
	least = latest.end
	for _, w := range writes {
		if w == latest.rec || !w.Call.Before(g.Return) || w.Return.Before(latest.rec.Call) {
			continue
		}
		if w.Output.Outcome != Unknown && (w.Output.Token != l.token || !w.Output.ExpiresAt.Add(-w.Output.TTL).After(latest.at)) {
			continue
		}
		if e := w.Call.Add(w.Input.TTL); e.Before(least) {
			least = e
		}
	}
	return latest, least, true
}

// couldCreate reports whether one of the lost acquires was sent before the
// read answered.
func couldCreate(lost []*Record, read *Record) bool {
	for _, a := range lost {
		if a.Call.Before(read.Return) {
			return true
		}
	}
	return false
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }
