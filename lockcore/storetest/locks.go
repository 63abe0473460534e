package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

func testAcquireHappyPath(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")

	wantFree(t, s, acct, "db.primary")
	wantList(t, s, acct)

	o := opts(lockcore.NewLeaseID(), 10*time.Second)
	o.Metadata = ptr("host-7")
	first := mustAcquire(t, s, acct, "db.primary", o)
	if !first.Lease.ExpiresAt.After(first.Now) {
		t.Errorf("Acquire: want ExpiresAt after Now, got ExpiresAt %s, Now %s", lockcore.FormatTime(first.Lease.ExpiresAt), lockcore.FormatTime(first.Now))
	}
	wantHeld(t, s, acct, first.Lease)

	// A second lease is refused and told who holds the lock.
	second, err := s.Acquire(ctx, acct, "db.primary", opts(lockcore.NewLeaseID(), 20*time.Second))
	if err != nil {
		t.Fatalf("Acquire of a held lock: want nil error, got %v", err)
	}
	if second.Acquired {
		t.Fatalf("Acquire of a held lock by another lease: want Acquired=false, got true with %s", fmtLease(second.Lease))
	}
	sameLease(t, "Acquire of a held lock (holder's lease)", second.Lease, first.Lease)
	if second.Now.IsZero() || second.Now.Before(first.Now) {
		t.Errorf("Acquire of a held lock: want Now at or after the first acquire's %s, got %s", lockcore.FormatTime(first.Now), lockcore.FormatTime(second.Now))
	}
	wantHeld(t, s, acct, first.Lease)

	// List: only held locks, sorted by name in byte order.
	for _, name := range []string{"b", "a.x", "C", "a", "z-released"} {
		mustAcquire(t, s, acct, name, opts(lockcore.NewLeaseID(), longTTL))
	}
	zs := mustGet(t, s, acct, "z-released")
	if err := s.Release(ctx, acct, "z-released", zs.Lease.LeaseID); err != nil {
		t.Fatalf("Release(z-released): want nil error, got %v", err)
	}
	wantList(t, s, acct, "C", "a", "a.x", "b", "db.primary")
	ls, err := s.List(ctx, acct)
	if err != nil {
		t.Fatalf("List: want nil error, got %v", err)
	}
	for _, l := range ls {
		if l.Name == "db.primary" {
			sameLease(t, "List entry db.primary", l, first.Lease)
		}
	}

	// Renew moves the expiry and keeps the token and metadata.
	before := storeNow(t, s, acct)
	renewed, err := s.Renew(ctx, acct, "db.primary", first.Lease.LeaseID, 20*time.Second)
	if err != nil {
		t.Fatalf("Renew of the current lease: want nil error, got %v", err)
	}
	after := storeNow(t, s, acct)
	want := first.Lease
	want.TTL = 20 * time.Second
	want.ExpiresAt = renewed.ExpiresAt
	sameLease(t, "Renew (all but expiry)", renewed, want)
	lo, hi := before.Add(20*time.Second).UnixMilli(), after.Add(20*time.Second).UnixMilli()
	if e := renewed.ExpiresAt.UnixMilli(); e < lo || e > hi {
		t.Errorf("Renew(ttl 20s): want ExpiresAt = store now + 20s, between %s and %s, got %s",
			lockcore.FormatTime(time.UnixMilli(lo)), lockcore.FormatTime(time.UnixMilli(hi)), lockcore.FormatTime(renewed.ExpiresAt))
	}
	if d := renewed.ExpiresAt.Sub(first.Lease.ExpiresAt); d < 10*time.Second {
		t.Errorf("Renew(ttl 20s) of a 10s lease: want expiry moved by at least 10s, got %v", d)
	}
	wantHeld(t, s, acct, renewed)

	// Release frees the lock; the next lease gets a greater token.
	if err := s.Release(ctx, acct, "db.primary", first.Lease.LeaseID); err != nil {
		t.Fatalf("Release of the current lease: want nil error, got %v", err)
	}
	wantFree(t, s, acct, "db.primary")
	wantList(t, s, acct, "C", "a", "a.x", "b")
	next := mustAcquire(t, s, acct, "db.primary", opts(lockcore.NewLeaseID(), longTTL))
	if next.Lease.FencingToken <= first.Lease.FencingToken {
		t.Errorf("Acquire after Release: want a fencing token > %d, got %d", first.Lease.FencingToken, next.Lease.FencingToken)
	}
	if next.Lease.Metadata != "" {
		t.Errorf("Acquire after Release with no metadata: want Metadata \"\", got %q", next.Lease.Metadata)
	}
}

func testMetadata(t *testing.T, inst *Instance) {
	s := inst.Store
	acct := newAccount(t, s, "alice")

	none := mustAcquire(t, s, acct, "no-meta", opts(lockcore.NewLeaseID(), longTTL))
	if none.Lease.Metadata != "" {
		t.Errorf("Acquire with nil metadata: want Metadata \"\", got %q", none.Lease.Metadata)
	}
	wantHeld(t, s, acct, none.Lease)

	for i, meta := range []string{
		"host-7",
		"héllo ✓ \"quoted\" \\ back\nnew line\ttab {json:1} %s 'single' \x00nul",
		strings.Repeat("é", 512), // 1024 bytes, the API maximum.
		"",
	} {
		name := fmt.Sprintf("meta-%d", i)
		o := opts(lockcore.NewLeaseID(), longTTL)
		o.Metadata = ptr(meta)
		res := mustAcquire(t, s, acct, name, o)
		wantHeld(t, s, acct, res.Lease)
	}

	// Idempotent retries: nil keeps, a value replaces.
	o := opts(lockcore.NewLeaseID(), longTTL)
	o.Metadata = ptr("v1")
	first := mustAcquire(t, s, acct, "retry", o)
	o.Metadata = nil
	kept := mustAcquire(t, s, acct, "retry", o)
	if kept.Lease.Metadata != "v1" {
		t.Errorf("idempotent re-acquire with nil metadata: want Metadata kept as \"v1\", got %q", kept.Lease.Metadata)
	}
	o.Metadata = ptr("v2")
	replaced := mustAcquire(t, s, acct, "retry", o)
	if replaced.Lease.Metadata != "v2" {
		t.Errorf("idempotent re-acquire with metadata \"v2\": want Metadata \"v2\", got %q", replaced.Lease.Metadata)
	}
	if replaced.Lease.FencingToken != first.Lease.FencingToken {
		t.Errorf("idempotent re-acquire: want fencing token %d kept, got %d", first.Lease.FencingToken, replaced.Lease.FencingToken)
	}
	wantHeld(t, s, acct, replaced.Lease)

	// Renew keeps the metadata.
	renewed, err := s.Renew(t.Context(), acct, "retry", o.LeaseID, 2*longTTL)
	if err != nil {
		t.Fatalf("Renew: want nil error, got %v", err)
	}
	if renewed.Metadata != "v2" {
		t.Errorf("Renew: want Metadata kept as \"v2\", got %q", renewed.Metadata)
	}
}

func testExpiry(t *testing.T, inst *Instance) {
	if inst.Advance == nil {
		t.Fatal("storetest: Instance.Advance is nil; the harness must be able to move the store's clock")
	}
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")

	// Two short leases extended to longTTL before they end, one by an
	// idempotent re-acquire and one by Renew: both outlive their first
	// expiry (Redis must not drop them at it either).
	ro := opts(lockcore.NewLeaseID(), shortTTL)
	mustAcquire(t, s, acct, "short.retried", ro)
	ro.TTL = longTTL
	retried := mustAcquire(t, s, acct, "short.retried", ro)
	renewedLease := mustAcquire(t, s, acct, "short.renewed", opts(lockcore.NewLeaseID(), shortTTL)).Lease
	renewed, err := s.Renew(ctx, acct, "short.renewed", renewedLease.LeaseID, longTTL)
	if err != nil {
		t.Fatalf("Renew(short.renewed): want nil error, got %v", err)
	}

	keep := mustAcquire(t, s, acct, "keep", opts(lockcore.NewLeaseID(), longTTL))
	short := mustAcquire(t, s, acct, "short", opts(lockcore.NewLeaseID(), shortTTL))
	releasable := mustAcquire(t, s, acct, "short.release", opts(lockcore.NewLeaseID(), shortTTL))
	wantList(t, s, acct, "keep", "short", "short.release", "short.renewed", "short.retried")

	inst.Advance(pastShort)

	_, err = s.Renew(ctx, acct, "short", short.Lease.LeaseID, longTTL)
	wantErr(t, "Renew of an expired lease", err, lockcore.ErrLeaseNotCurrent)
	wantErr(t, "Release of an expired lease", s.Release(ctx, acct, "short.release", releasable.Lease.LeaseID), lockcore.ErrLeaseNotCurrent)
	wantFree(t, s, acct, "short")
	wantFree(t, s, acct, "short.release")
	wantHeld(t, s, acct, keep.Lease)
	wantHeld(t, s, acct, retried.Lease)
	wantHeld(t, s, acct, renewed)
	wantList(t, s, acct, "keep", "short.renewed", "short.retried")

	// Expired locks do not count against the quota: with three held and
	// two expired, a quota of 4 still admits one more.
	o := opts(lockcore.NewLeaseID(), longTTL)
	o.MaxHeld = 4
	mustAcquire(t, s, acct, "after-expiry", o)

	// Acquiring again with the expired lease's own id makes a new lease
	// with a strictly greater token: the expired lease is not revived.
	o = opts(short.Lease.LeaseID, longTTL)
	o.MaxHeld = 5
	again := mustAcquire(t, s, acct, "short", o)
	if again.Lease.FencingToken <= short.Lease.FencingToken {
		t.Errorf("Acquire with the expired lease's id: want a fencing token > %d (a new lease), got %d", short.Lease.FencingToken, again.Lease.FencingToken)
	}
	wantHeld(t, s, acct, again.Lease)

	// Another lease takes the other expired lock, with a greater token.
	o = opts(lockcore.NewLeaseID(), longTTL)
	o.MaxHeld = 6
	taken := mustAcquire(t, s, acct, "short.release", o)
	if taken.Lease.FencingToken <= releasable.Lease.FencingToken {
		t.Errorf("Acquire by a new lease of an expired lock: want a fencing token > %d, got %d", releasable.Lease.FencingToken, taken.Lease.FencingToken)
	}
	wantList(t, s, acct, "after-expiry", "keep", "short", "short.release", "short.renewed", "short.retried")
}

func testLeaseChecks(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	held := mustAcquire(t, s, acct, "held", opts(lockcore.NewLeaseID(), longTTL)).Lease

	wrong := lockcore.NewLeaseID()
	_, err := s.Renew(ctx, acct, "held", wrong, 2*longTTL)
	wantErr(t, "Renew with a wrong lease id", err, lockcore.ErrLeaseNotCurrent)
	wantErr(t, "Release with a wrong lease id", s.Release(ctx, acct, "held", wrong), lockcore.ErrLeaseNotCurrent)
	wantHeld(t, s, acct, held)

	_, err = s.Renew(ctx, acct, "never.taken", wrong, longTTL)
	wantErr(t, "Renew of a never-taken lock", err, lockcore.ErrLeaseNotCurrent)
	wantErr(t, "Release of a never-taken lock", s.Release(ctx, acct, "never.taken", wrong), lockcore.ErrLeaseNotCurrent)
	wantFree(t, s, acct, "never.taken")
	wantList(t, s, acct, "held")

	// A lease of one lock does not hold another lock.
	_, err = s.Renew(ctx, acct, "never.taken", held.LeaseID, longTTL)
	wantErr(t, "Renew of another lock with a held lease's id", err, lockcore.ErrLeaseNotCurrent)
	wantFree(t, s, acct, "never.taken")

	if err := s.Release(ctx, acct, "held", held.LeaseID); err != nil {
		t.Fatalf("Release of the current lease: want nil error, got %v", err)
	}
	wantErr(t, "second Release of the same lease", s.Release(ctx, acct, "held", held.LeaseID), lockcore.ErrLeaseNotCurrent)
	_, err = s.Renew(ctx, acct, "held", held.LeaseID, longTTL)
	wantErr(t, "Renew of a released lease", err, lockcore.ErrLeaseNotCurrent)
	wantFree(t, s, acct, "held")
	wantList(t, s, acct)
}

func testIdempotentReacquire(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	o := opts(lockcore.NewLeaseID(), 10*time.Second)
	first := mustAcquire(t, s, acct, "job", o)

	o.TTL = 25 * time.Second
	retry := mustAcquire(t, s, acct, "job", o)
	if retry.Lease.FencingToken != first.Lease.FencingToken {
		t.Errorf("idempotent re-acquire: want the same fencing token %d, got %d", first.Lease.FencingToken, retry.Lease.FencingToken)
	}
	if d := retry.Lease.ExpiresAt.Sub(first.Lease.ExpiresAt); d < 15*time.Second {
		t.Errorf("idempotent re-acquire with ttl 25s of a 10s lease: want expiry moved by at least 15s, got %v", d)
	}
	wantHeld(t, s, acct, retry.Lease)

	// The retried lease is the current one: renew and release work with it.
	if _, err := s.Renew(ctx, acct, "job", o.LeaseID, longTTL); err != nil {
		t.Errorf("Renew after an idempotent re-acquire: want nil error, got %v", err)
	}
	if err := s.Release(ctx, acct, "job", o.LeaseID); err != nil {
		t.Errorf("Release after an idempotent re-acquire: want nil error, got %v", err)
	}
	wantFree(t, s, acct, "job")
	wantList(t, s, acct)
}

func testFencing(t *testing.T, inst *Instance) {
	if inst.Reopen == nil {
		t.Fatal("storetest: Instance.Reopen is nil; the harness must be able to reopen the store")
	}
	acct := newAccount(t, inst.Store, "alice")
	names := []string{"x", "y", "z"}
	last := map[string]int64{}
	round := func(phase string) {
		for range 4 {
			for _, name := range names {
				s := inst.Store
				res := mustAcquire(t, s, acct, name, opts(lockcore.NewLeaseID(), longTTL))
				if tok := res.Lease.FencingToken; tok <= last[name] {
					t.Errorf("%s: Acquire(%q): want a fencing token > %d (the previous one), got %d", phase, name, last[name], tok)
				}
				last[name] = res.Lease.FencingToken
				if err := s.Release(t.Context(), acct, name, res.Lease.LeaseID); err != nil {
					t.Fatalf("Release(%q): want nil error, got %v", name, err)
				}
			}
		}
	}
	round("before reopen")
	inst.Store = inst.Reopen()
	round("after reopen")
}

func testAccountIsolation(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	a := newAccount(t, s, "alice")
	b := newAccount(t, s, "bob")
	if a == b {
		t.Fatalf("EnsureAccount of two logins: want two account ids, got %q twice", a)
	}
	la := mustAcquire(t, s, a, "leader", opts(lockcore.NewLeaseID(), longTTL)).Lease

	wantFree(t, s, b, "leader")
	wantList(t, s, b)
	_, err := s.Renew(ctx, b, "leader", la.LeaseID, 2*longTTL)
	wantErr(t, "Renew of A's lock by B with A's lease id", err, lockcore.ErrLeaseNotCurrent)
	wantErr(t, "Release of A's lock by B with A's lease id", s.Release(ctx, b, "leader", la.LeaseID), lockcore.ErrLeaseNotCurrent)
	wantHeld(t, s, a, la)

	lb := mustAcquire(t, s, b, "leader", opts(lockcore.NewLeaseID(), longTTL)).Lease
	wantHeld(t, s, a, la)
	wantHeld(t, s, b, lb)
	wantList(t, s, a, "leader")
	wantList(t, s, b, "leader")

	// Even the same lease id in another account is another lease.
	res, err := s.Acquire(ctx, b, "leader", opts(la.LeaseID, longTTL))
	if err != nil || res.Acquired {
		t.Errorf("Acquire by B with A's lease id of a lock B holds: want Acquired=false, nil; got Acquired=%v, %v", res.Acquired, err)
	}
	if err := s.Release(ctx, b, "leader", lb.LeaseID); err != nil {
		t.Fatalf("Release by B of its own lock: want nil error, got %v", err)
	}
	wantHeld(t, s, a, la)
	wantFree(t, s, b, "leader")
}

func testInvalidInput(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	held := mustAcquire(t, s, acct, "held", opts(lockcore.NewLeaseID(), longTTL)).Lease

	badNames := []string{"", "has space", "a/b", "a:b", "{tag}", "ünï", "a*", strings.Repeat("n", lockcore.MaxNameLen+1), "new\nline"}
	for _, name := range badNames {
		if lockcore.ValidateName(name) == nil {
			t.Fatalf("storetest bug: %q is a valid name", name)
		}
		_, err := s.Acquire(ctx, acct, name, opts(lockcore.NewLeaseID(), longTTL))
		wantErr(t, fmt.Sprintf("Acquire(name %q)", name), err, lockcore.ErrInvalidName)
		_, err = s.Renew(ctx, acct, name, held.LeaseID, longTTL)
		wantErr(t, fmt.Sprintf("Renew(name %q)", name), err, lockcore.ErrInvalidName)
		wantErr(t, fmt.Sprintf("Release(name %q)", name), s.Release(ctx, acct, name, held.LeaseID), lockcore.ErrInvalidName)
		_, err = s.Get(ctx, acct, name)
		wantErr(t, fmt.Sprintf("Get(name %q)", name), err, lockcore.ErrInvalidName)
	}

	badLeases := []string{"", "has space", "dot.ted", "{tag}", "ünï", strings.Repeat("l", lockcore.MaxLeaseIDLen+1), "new\nline"}
	for _, id := range badLeases {
		if lockcore.ValidateLeaseID(id) == nil {
			t.Fatalf("storetest bug: %q is a valid lease id", id)
		}
		_, err := s.Acquire(ctx, acct, "fresh", opts(id, longTTL))
		wantErr(t, fmt.Sprintf("Acquire(lease id %q)", id), err, lockcore.ErrInvalidLeaseID)
		_, err = s.Renew(ctx, acct, "held", id, 2*longTTL)
		wantErr(t, fmt.Sprintf("Renew(lease id %q)", id), err, lockcore.ErrInvalidLeaseID)
		wantErr(t, fmt.Sprintf("Release(lease id %q)", id), s.Release(ctx, acct, "held", id), lockcore.ErrInvalidLeaseID)
	}

	wantFree(t, s, acct, "fresh")
	wantHeld(t, s, acct, held)
	wantList(t, s, acct, "held")

	// The longest valid name and lease id work.
	long := mustAcquire(t, s, acct, strings.Repeat("n", lockcore.MaxNameLen), opts(strings.Repeat("l", lockcore.MaxLeaseIDLen), longTTL)).Lease
	wantHeld(t, s, acct, long)
}

func testReopen(t *testing.T, inst *Instance) {
	if inst.Reopen == nil {
		t.Fatal("storetest: Instance.Reopen is nil; the harness must be able to reopen the store")
	}
	s, ctx := inst.Store, t.Context()
	acct, _, err := s.EnsureAccount(ctx, "alice")
	if err != nil {
		t.Fatalf("EnsureAccount: want nil error, got %v", err)
	}
	gh, err := s.UpsertGitHubAccount(ctx, 7, "octocat")
	if err != nil {
		t.Fatalf("UpsertGitHubAccount: want nil error, got %v", err)
	}
	_, tok := lockcore.NewToken()
	if err := s.AddToken(ctx, acct.ID, tok); err != nil {
		t.Fatalf("AddToken: want nil error, got %v", err)
	}
	_, revoked := lockcore.NewToken()
	if err := s.AddToken(ctx, acct.ID, revoked); err != nil {
		t.Fatalf("AddToken: want nil error, got %v", err)
	}
	if err := s.RevokeToken(ctx, revoked); err != nil {
		t.Fatalf("RevokeToken: want nil error, got %v", err)
	}
	o := opts(lockcore.NewLeaseID(), longTTL)
	o.Metadata = ptr("before reopen")
	held := mustAcquire(t, s, acct.ID, "held", o).Lease
	gone := mustAcquire(t, s, acct.ID, "gone", opts(lockcore.NewLeaseID(), longTTL)).Lease
	if err := s.Release(ctx, acct.ID, "gone", gone.LeaseID); err != nil {
		t.Fatalf("Release: want nil error, got %v", err)
	}

	closed := s
	s = inst.Reopen()
	inst.Store = s
	if err := closed.Ping(ctx); err == nil {
		t.Errorf("Ping on the store Reopen closed: want an error (calls after Close fail), got nil")
	}

	wantHeld(t, s, acct.ID, held)
	wantFree(t, s, acct.ID, "gone")
	wantList(t, s, acct.ID, "held")
	wantTokenAccount(t, s, "token added before reopen", tok, acct.ID)
	_, err = s.AccountByToken(ctx, revoked)
	wantErr(t, "AccountByToken(token revoked before reopen)", err, lockcore.ErrNotFound)
	if got, err := s.AccountByID(ctx, gh.ID); err != nil || got.Login != "octocat" || got.GitHubID != 7 {
		t.Errorf("AccountByID(GitHub account) after reopen: want {Login:octocat GitHubID:7}, nil; got %+v, %v", got, err)
	}
	if got, created, err := s.EnsureAccount(ctx, "alice"); err != nil || created || got.ID != acct.ID {
		t.Errorf("EnsureAccount(alice) after reopen: want the existing account %s, created=false; got %+v, created=%v, %v", acct.ID, got, created, err)
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 2 {
		t.Errorf("CountAccounts after reopen: want 2, nil; got %d, %v", n, err)
	}

	// The lease still works, and fencing continues strictly above.
	retry := mustAcquire(t, s, acct.ID, "held", opts(held.LeaseID, longTTL))
	if retry.Lease.FencingToken != held.FencingToken || retry.Lease.Metadata != "before reopen" {
		t.Errorf("idempotent re-acquire after reopen: want token %d and metadata kept, got %s", held.FencingToken, fmtLease(retry.Lease))
	}
	if err := s.Release(ctx, acct.ID, "held", held.LeaseID); err != nil {
		t.Fatalf("Release after reopen: want nil error, got %v", err)
	}
	for _, prev := range []lockcore.Lease{held, gone} {
		next := mustAcquire(t, s, acct.ID, prev.Name, opts(lockcore.NewLeaseID(), longTTL)).Lease
		if next.FencingToken <= prev.FencingToken {
			t.Errorf("Acquire(%q) after reopen: want a fencing token > %d, got %d", prev.Name, prev.FencingToken, next.FencingToken)
		}
	}
}

func testCancelledContext(t *testing.T, inst *Instance) {
	s := inst.Store
	acct := newAccount(t, s, "alice")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := s.Acquire(ctx, acct, "cancelled", opts(lockcore.NewLeaseID(), longTTL))
	if err == nil {
		t.Errorf("Acquire with a cancelled context: want an error, got nil (Acquired=%v)", res.Acquired)
	}
	wantFree(t, s, acct, "cancelled")
	wantList(t, s, acct)
}

// testSubMillisecondTTL: a positive TTL that is not a whole number of
// milliseconds is rounded up to one, the same on every store: never to
// zero or an error (the TTL only has to be positive), and never shorter
// than asked. Renew rounds the same way.
func testSubMillisecondTTL(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Nanosecond, time.Millisecond},
		{500 * time.Microsecond, time.Millisecond},
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{longTTL + time.Microsecond, longTTL + time.Millisecond},
	} {
		name := fmt.Sprintf("ttl-%d", c.ttl)
		res, err := s.Acquire(ctx, acct, name, opts(lockcore.NewLeaseID(), c.ttl))
		if err != nil || !res.Acquired {
			t.Errorf("Acquire(ttl %v): want acquired, got %+v, %v", c.ttl, res, err)
			continue
		}
		if res.Lease.TTL != c.want {
			t.Errorf("Acquire(ttl %v): want Lease.TTL %v (rounded up to a millisecond), got %v", c.ttl, c.want, res.Lease.TTL)
		}
		if got, want := res.Lease.ExpiresAt.UnixMilli(), res.Now.UnixMilli()+c.want.Milliseconds(); got != want {
			t.Errorf("Acquire(ttl %v): want ExpiresAt = Now + %v = %s, got %s", c.ttl, c.want, lockcore.FormatTime(time.UnixMilli(want)), lockcore.FormatTime(res.Lease.ExpiresAt))
		}
	}
	// Renew, on the long lease only (a short one may have expired by now
	// on a real clock).
	name := fmt.Sprintf("ttl-%d", longTTL+time.Microsecond)
	st := mustGet(t, s, acct, name)
	l, err := s.Renew(ctx, acct, name, st.Lease.LeaseID, longTTL+1500*time.Microsecond)
	if err != nil {
		t.Fatalf("Renew(ttl %v): want nil error, got %v", longTTL+1500*time.Microsecond, err)
	}
	if want := longTTL + 2*time.Millisecond; l.TTL != want {
		t.Errorf("Renew(ttl %v): want Lease.TTL %v, got %v", longTTL+1500*time.Microsecond, want, l.TTL)
	}
}
