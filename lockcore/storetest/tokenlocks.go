package storetest

import (
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// testTokenLocks checks the optional lockcore.TokenLocks of a store that has
// it: with the account's own token the As methods act as Acquire, Renew and
// Release; with any other token (unknown, another account's, rotated away,
// revoked) they change nothing and return ErrNotFound; input is validated
// before the token is looked at. A store without TokenLocks has nothing to
// check here (the backends of this repository all have it and say so with an
// interface guard).
func testTokenLocks(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	tl, ok := s.(lockcore.TokenLocks)
	if !ok {
		t.Logf("%T has no lockcore.TokenLocks; nothing to check", s)
		return
	}
	alice := newAccount(t, s, "alice")
	bob := newAccount(t, s, "bob")
	_, ha := lockcore.NewToken()
	_, hb := lockcore.NewToken()
	_, unknown := lockcore.NewToken()
	if err := s.AddToken(ctx, alice, ha); err != nil {
		t.Fatalf("AddToken(alice): %v", err)
	}
	if err := s.AddToken(ctx, bob, hb); err != nil {
		t.Fatalf("AddToken(bob): %v", err)
	}

	// Refused tokens change nothing.
	o1 := opts(lockcore.NewLeaseID(), longTTL)
	for _, tc := range []struct {
		what string
		h    lockcore.TokenHash
	}{{"bob's token", hb}, {"an unknown token", unknown}} {
		_, err := tl.AcquireAs(ctx, tc.h, alice, "t1", o1)
		wantErr(t, "AcquireAs(alice, "+tc.what+")", err, lockcore.ErrNotFound)
	}
	if st := mustGet(t, s, alice, "t1"); st.Held {
		t.Fatalf("after refused AcquireAs calls: want t1 free, got held by %s", fmtLease(st.Lease))
	}

	// The right token: as Acquire, and an idempotent retry keeps the fence.
	first, err := tl.AcquireAs(ctx, ha, alice, "t1", o1)
	if err != nil || !first.Acquired {
		t.Fatalf("AcquireAs(alice's token): want acquired, got %+v, %v", first, err)
	}
	checkAcquired(t, first, "t1", o1)
	sameLease(t, "Get after AcquireAs", mustGet(t, s, alice, "t1").Lease, first.Lease)
	again, err := tl.AcquireAs(ctx, ha, alice, "t1", o1)
	if err != nil || !again.Acquired || again.Lease.FencingToken != first.Lease.FencingToken {
		t.Errorf("AcquireAs retry with the same lease: want acquired with fence %d, got %+v, %v", first.Lease.FencingToken, again, err)
	}
	held, err := tl.AcquireAs(ctx, ha, alice, "t1", opts(lockcore.NewLeaseID(), longTTL))
	if err != nil || held.Acquired || held.Lease.LeaseID != o1.LeaseID {
		t.Errorf("AcquireAs of a held lock with another lease: want not acquired, holder %s; got %+v, %v", o1.LeaseID, held, err)
	}
	before := mustGet(t, s, alice, "t1").Lease

	// Renew and release with a wrong token change nothing.
	_, err = tl.RenewAs(ctx, hb, alice, "t1", o1.LeaseID, 2*longTTL)
	wantErr(t, "RenewAs(bob's token)", err, lockcore.ErrNotFound)
	wantErr(t, "ReleaseAs(bob's token)", tl.ReleaseAs(ctx, hb, alice, "t1", o1.LeaseID), lockcore.ErrNotFound)
	wantErr(t, "ReleaseAs(unknown token)", tl.ReleaseAs(ctx, unknown, alice, "t1", o1.LeaseID), lockcore.ErrNotFound)
	sameLease(t, "Get after refused RenewAs/ReleaseAs", mustGet(t, s, alice, "t1").Lease, before)

	// The right token with a lease that is not current: ErrLeaseNotCurrent.
	stranger := lockcore.NewLeaseID()
	_, err = tl.RenewAs(ctx, ha, alice, "t1", stranger, longTTL)
	wantErr(t, "RenewAs(alice's token, another lease)", err, lockcore.ErrLeaseNotCurrent)
	wantErr(t, "ReleaseAs(alice's token, another lease)", tl.ReleaseAs(ctx, ha, alice, "t1", stranger), lockcore.ErrLeaseNotCurrent)

	// Input is validated first, whatever the token.
	_, err = tl.AcquireAs(ctx, unknown, alice, "bad/name", o1)
	wantErr(t, "AcquireAs(invalid name, unknown token)", err, lockcore.ErrInvalidName)
	_, err = tl.RenewAs(ctx, unknown, alice, "t1", "not a lease id", longTTL)
	wantErr(t, "RenewAs(invalid lease id, unknown token)", err, lockcore.ErrInvalidLeaseID)
	wantErr(t, "ReleaseAs(invalid name, unknown token)", tl.ReleaseAs(ctx, unknown, alice, "", o1.LeaseID), lockcore.ErrInvalidName)

	// The right token renews (same fence, new expiry) ...
	renewed, err := tl.RenewAs(ctx, ha, alice, "t1", o1.LeaseID, 2*longTTL)
	if err != nil {
		t.Fatalf("RenewAs(alice's token): want nil error, got %v", err)
	}
	if renewed.FencingToken != first.Lease.FencingToken || renewed.TTL != 2*longTTL || !renewed.ExpiresAt.After(before.ExpiresAt) {
		t.Errorf("RenewAs: want fence %d, TTL %v, expiry after %s; got %s", first.Lease.FencingToken, 2*longTTL, lockcore.FormatTime(before.ExpiresAt), fmtLease(renewed))
	}

	// ... until it is rotated away: from then on the old token is refused
	// and the new one works.
	_, ha2 := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, ha, ha2); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	_, err = tl.RenewAs(ctx, ha, alice, "t1", o1.LeaseID, longTTL)
	wantErr(t, "RenewAs(rotated-away token)", err, lockcore.ErrNotFound)
	wantErr(t, "ReleaseAs(rotated-away token)", tl.ReleaseAs(ctx, ha, alice, "t1", o1.LeaseID), lockcore.ErrNotFound)
	_, err = tl.AcquireAs(ctx, ha, alice, "t2", opts(lockcore.NewLeaseID(), longTTL))
	wantErr(t, "AcquireAs(rotated-away token)", err, lockcore.ErrNotFound)
	if st := mustGet(t, s, alice, "t1"); !st.Held || st.Lease.LeaseID != o1.LeaseID {
		t.Fatalf("after refused calls with a rotated-away token: want t1 still held by %s, got %+v", o1.LeaseID, st)
	}
	if err := tl.ReleaseAs(ctx, ha2, alice, "t1", o1.LeaseID); err != nil {
		t.Fatalf("ReleaseAs(rotated-in token): want nil error, got %v", err)
	}
	if st := mustGet(t, s, alice, "t1"); st.Held {
		t.Errorf("after ReleaseAs: want t1 free, got held by %s", fmtLease(st.Lease))
	}
	o2 := opts(lockcore.NewLeaseID(), longTTL)
	next, err := tl.AcquireAs(ctx, ha2, alice, "t2", o2)
	if err != nil || !next.Acquired || next.Lease.FencingToken <= first.Lease.FencingToken {
		t.Errorf("AcquireAs(rotated-in token): want acquired with a fence above %d, got %+v, %v", first.Lease.FencingToken, next, err)
	}
	checkAcquired(t, next, "t2", o2)

	// A revoked token is refused at once.
	if err := s.RevokeToken(ctx, ha2); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	_, err = tl.AcquireAs(ctx, ha2, alice, "t3", opts(lockcore.NewLeaseID(), longTTL))
	wantErr(t, "AcquireAs(revoked token)", err, lockcore.ErrNotFound)
	_, err = tl.RenewAs(ctx, ha2, alice, "t2", o2.LeaseID, longTTL)
	wantErr(t, "RenewAs(revoked token)", err, lockcore.ErrNotFound)
	wantErr(t, "ReleaseAs(revoked token)", tl.ReleaseAs(ctx, ha2, alice, "t2", o2.LeaseID), lockcore.ErrNotFound)
	if st := mustGet(t, s, alice, "t3"); st.Held {
		t.Errorf("after AcquireAs with a revoked token: want t3 free, got held by %s", fmtLease(st.Lease))
	}
	if st := mustGet(t, s, alice, "t2"); !st.Held || st.Lease.LeaseID != o2.LeaseID {
		t.Errorf("after refused calls with a revoked token: want t2 still held by %s, got %+v", o2.LeaseID, st)
	}

	// Bob's own token works for bob, in bob's namespace only.
	ob := opts(lockcore.NewLeaseID(), time.Minute)
	res, err := tl.AcquireAs(ctx, hb, bob, "t1", ob)
	if err != nil || !res.Acquired {
		t.Fatalf("AcquireAs(bob's token, bob): want acquired, got %+v, %v", res, err)
	}
	checkAcquired(t, res, "t1", ob)
	sameLease(t, "Get(bob, t1) after AcquireAs", mustGet(t, s, bob, "t1").Lease, res.Lease)
}
