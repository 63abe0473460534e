package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/scripts"
)

// TestRotateRetrySafe checks that re-running the retirement step of a
// rotation (what a client retry after a lost reply does) still reports
// success, that a different rotation of the same old token loses, and that
// the tombstone is an unknown token which expires by itself.
func TestRotateRetrySafe(t *testing.T) {
	m := miniredis.RunT(t)
	s := New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), Options{})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	acct, _, err := s.EnsureAccount(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	_, old := lockcore.NewToken()
	_, next := lockcore.NewToken()
	_, other := lockcore.NewToken()
	if err := s.AddToken(ctx, acct.ID, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateToken(ctx, old, next); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	retire := func(newHash lockcore.TokenHash) int64 {
		n, err := rotateScript.Run(ctx, s.client, []string{s.tokenKey(old)}, acct.ID,
			scripts.TombstonePrefix+newHash.String(), tombstoneTTL.Milliseconds()).Int64()
		if err != nil {
			t.Fatalf("rotate.lua: %v", err)
		}
		return n
	}
	if n := retire(next); n != 1 {
		t.Errorf("rotate.lua retried by the winning rotation: want 1, got %d", n)
	}
	if n := retire(other); n != 0 {
		t.Errorf("rotate.lua of another rotation of the same old token: want 0, got %d", n)
	}
	if _, err := s.AccountByToken(ctx, old); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AccountByToken(rotated-out token): want ErrNotFound, got %v", err)
	}
	// revoke.lua itself (as a RevokeToken that read the token key just
	// before the rotation retired it runs it) leaves the tombstone alone
	// and reports no live token, so that a revocation racing the winning
	// rotation does not also succeed, and the retry above still works.
	if n, err := revokeScript.Run(ctx, s.client, []string{s.tokenKey(old)}).Int64(); err != nil || n != 0 {
		t.Errorf("revoke.lua on a rotation tombstone: want 0, got %d, %v", n, err)
	}
	if v, err := s.client.Get(ctx, s.tokenKey(old)).Result(); err != nil || v != scripts.TombstonePrefix+next.String() {
		t.Errorf("old token key after revoke.lua on its tombstone: want the tombstone %q kept, got %q, %v", scripts.TombstonePrefix+next.String(), v, err)
	}
	if err := s.RevokeToken(ctx, old); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("RevokeToken(rotated-out token): want ErrNotFound, got %v", err)
	}
	if _, err := s.RotateToken(ctx, old, other); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("RotateToken(rotated-out token): want ErrNotFound, got %v", err)
	}
	if got, err := s.AccountByToken(ctx, next); err != nil || got.ID != acct.ID {
		t.Errorf("AccountByToken(new token): want account %s, got %+v, %v", acct.ID, got, err)
	}
	m.FastForward(tombstoneTTL + time.Second)
	if m.Exists(s.tokenKey(old)) {
		t.Errorf("the tombstone of the rotated-out token did not expire")
	}
}
