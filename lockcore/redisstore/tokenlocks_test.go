package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/scripts"
)

// tlEnv is one Redis (miniredis, a real server or a real Cluster) for the
// TokenLocks tests: open makes a new Store, with its own client, over the
// same data; raw reads and plants keys behind the stores' backs.
type tlEnv struct {
	prefix string
	raw    redis.UniversalClient
	open   func(t *testing.T) *redisstore.Store
}

func (e *tlEnv) tag(acct string) string { return e.prefix + "{a:" + acct + "}" }

func (e *tlEnv) mirror(acct string, h lockcore.TokenHash) string {
	return e.tag(acct) + ":tok:" + h.String()
}

func (e *tlEnv) tokenKey(h lockcore.TokenHash) string { return e.prefix + "token:" + h.String() }

// exists reports whether key exists, failing t on a Redis error.
func (e *tlEnv) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := e.raw.Exists(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// fence returns the account's fence counter (0 when never incremented).
func (e *tlEnv) fence(t *testing.T, acct string) int64 {
	t.Helper()
	n, err := e.raw.Get(t.Context(), e.tag(acct)+":fence").Int64()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		t.Fatalf("GET fence: %v", err)
	}
	return n
}

// snapshot is the state of an account that a refused call must not change.
type snapshot struct {
	fence int64
	held  []redis.Z
	locks map[string]map[string]string
}

func (e *tlEnv) snap(t *testing.T, acct string, names ...string) snapshot {
	t.Helper()
	ctx := t.Context()
	sn := snapshot{fence: e.fence(t, acct), locks: map[string]map[string]string{}}
	var err error
	if sn.held, err = e.raw.ZRangeWithScores(ctx, e.tag(acct)+":held", 0, -1).Result(); err != nil {
		t.Fatalf("ZRANGE held: %v", err)
	}
	for _, n := range names {
		if sn.locks[n], err = e.raw.HGetAll(ctx, e.tag(acct)+":lock:"+n).Result(); err != nil {
			t.Fatalf("HGETALL lock %s: %v", n, err)
		}
	}
	return sn
}

func (sn snapshot) String() string {
	return fmt.Sprintf("fence %d, held %v, locks %v", sn.fence, sn.held, sn.locks)
}

func tlOpenReal(cfg redisstore.Config) func(t *testing.T) *redisstore.Store {
	return func(t *testing.T) *redisstore.Store {
		t.Helper()
		s, err := redisstore.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("redisstore.Open(%s): %v", cfg.URL, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// TestTokenLocksMiniredis runs the TokenLocks tests on miniredis.
func TestTokenLocksMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	raw := redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true})
	t.Cleanup(func() { raw.Close() })
	runTokenLocks(t, func(t *testing.T) *tlEnv {
		prefix := nextPrefix()
		return &tlEnv{prefix: prefix, raw: raw, open: func(t *testing.T) *redisstore.Store {
			s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: prefix, OpTimeout: slowOpTimeout})
			t.Cleanup(func() { s.Close() })
			return s
		}}
	})
}

// TestRetirementStandsWhenTheSecondMarkFails: a revocation or rotation
// whose token key is retired but whose second revocation mark cannot be
// set (Redis fails that one command) still succeeds: the rotated-in token
// works and the retired one does not, and a lock write with the retired
// token (without a mirror) that read the token key before the retirement
// is refused by the first mark. On miniredis, which can fail commands on
// demand.
func TestRetirementStandsWhenTheSecondMarkFails(t *testing.T) {
	m := miniredis.RunT(t)
	open := func() *redisstore.Store {
		s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: "sm:", OpTimeout: slowOpTimeout})
		t.Cleanup(func() { s.Close() })
		return s
	}
	raw := redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true})
	t.Cleanup(func() { raw.Close() })
	e := &tlEnv{prefix: "sm:", raw: raw}
	ctx := t.Context()
	for _, rotate := range []bool{false, true} {
		s, other := open(), open()
		acct := account(t, s, fmt.Sprintf("second-mark-%v", rotate))
		tok := e.plantLegacy(t, acct)
		_, next := lockcore.NewToken()
		var retireErr error
		redisstore.SetTestHooks(other, redisstore.TestHooks{Retire: func() { m.SetError("ERR injected: the second mark fails") }})
		redisstore.SetTestHooks(s, redisstore.TestHooks{Fallback: func() {
			if rotate {
				_, retireErr = other.RotateToken(ctx, tok, next)
			} else {
				retireErr = other.RevokeToken(ctx, tok)
			}
			m.SetError("")
		}})
		before := e.snap(t, acct, "l")
		if _, err := s.AcquireAs(ctx, tok, acct, "l", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("rotate %v: AcquireAs with a token retired between the fallback's steps: want ErrNotFound, got %v", rotate, err)
		}
		if after := e.snap(t, acct, "l"); after.String() != before.String() {
			t.Errorf("rotate %v: the refused write changed the account\n%v\n%v", rotate, before, after)
		}
		if retireErr != nil {
			t.Errorf("rotate %v: the retirement whose second mark failed: %v; want success", rotate, retireErr)
		}
		if _, err := s.AccountIDByToken(ctx, tok); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("rotate %v: the retired token: want ErrNotFound, got %v", rotate, err)
		}
		if rotate {
			if r, err := s.AcquireAs(ctx, next, acct, "l", acquireOpts(time.Minute)); err != nil || !r.Acquired {
				t.Errorf("AcquireAs with the token rotated in: %+v, %v", r, err)
			}
		}
	}
}

// TestTokenLocksRedis runs the TokenLocks tests on a real redis-server
// (whose Stores use the autopipeliner), and checks that a lock write with a
// token is one round trip.
func TestTokenLocksRedis(t *testing.T) {
	srv := redistest.Start(t)
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { raw.Close() })
	env := func(t *testing.T) *tlEnv {
		prefix := nextPrefix()
		return &tlEnv{prefix: prefix, raw: raw, open: tlOpenReal(redisstore.Config{URL: srv.URL(), Prefix: prefix, OpTimeout: slowOpTimeout})}
	}
	runTokenLocks(t, env)
	t.Run("OneRoundTrip", func(t *testing.T) { testOneRoundTrip(t, env(t)) })
}

// TestTokenLocksCluster runs the TokenLocks tests on a real three-master
// Redis Cluster, where the token key and the account's keys live in
// different slots.
func TestTokenLocksCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { raw.Close() })
	runTokenLocks(t, func(t *testing.T) *tlEnv {
		prefix := nextPrefix()
		return &tlEnv{prefix: prefix, raw: raw, open: tlOpenReal(redisstore.Config{URL: c.URL(), Cluster: true, Prefix: prefix, OpTimeout: slowOpTimeout})}
	})
}

func runTokenLocks(t *testing.T, env func(t *testing.T) *tlEnv) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e *tlEnv)
	}{
		{"RightToken", testAsRightToken},
		{"InputFirst", testAsInputFirst},
		{"RefusedTokens", testAsRefusedTokens},
		{"Mirrors", testAsMirrors},
		{"ConcurrentRotationMirrors", testAsConcurrentRotationMirrors},
		{"LegacyToken", testAsLegacyToken},
		{"LegacyTokenRetiredMeanwhile", testAsLegacyRetiredMeanwhile},
		{"LegacyTokenMarked", testAsLegacyMarked},
		{"VouchDeadline", testAsVouchDeadline},
		{"SweepFollowsRotation", testSweepFollowsRotation},
		{"SweepDropsOrphanMirrors", testSweepDropsOrphanMirrors},
		{"AcrossInstances", testAsAcrossInstances},
		{"LostSlot", testAsLostSlot},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, env(t)) })
	}
}

// newToken adds a fresh token to acct.
func newToken(t *testing.T, s *redisstore.Store, acct string) lockcore.TokenHash {
	t.Helper()
	_, h := lockcore.NewToken()
	if err := s.AddToken(t.Context(), acct, h); err != nil {
		t.Fatalf("AddToken: %v", err)
	}
	return h
}

// testAsRightToken: with the account's token, the As methods act as the
// plain ones: new lease, idempotent retry, held by another, quota, renew,
// release, and the lease checks.
func testAsRightToken(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "right")
	tok := newToken(t, s, acct)

	o := acquireOpts(time.Minute)
	meta := "m1"
	o.Metadata = &meta
	res, err := s.AcquireAs(ctx, tok, acct, "a", o)
	if err != nil || !res.Acquired || res.Lease.LeaseID != o.LeaseID || res.Lease.FencingToken <= 0 || res.Lease.FencingToken != e.fence(t, acct) || res.Lease.Metadata != "m1" || res.Lease.TTL != time.Minute {
		t.Fatalf("AcquireAs(a): want acquired with the account's counter as fence and metadata m1, got %+v, %v (counter %d)", res, err, e.fence(t, acct))
	}
	if got := res.Lease.ExpiresAt.Sub(res.Now); got != time.Minute {
		t.Errorf("AcquireAs(a): ExpiresAt-Now = %v, want 1m", got)
	}
	retry, err := s.AcquireAs(ctx, tok, acct, "a", o)
	if err != nil || !retry.Acquired || retry.Lease.FencingToken != res.Lease.FencingToken || retry.Lease.LeaseID != o.LeaseID {
		t.Errorf("AcquireAs(a) retried with the same lease: want the same lease and fence %d, got %+v, %v", res.Lease.FencingToken, retry, err)
	}
	other := acquireOpts(time.Minute)
	busy, err := s.AcquireAs(ctx, tok, acct, "a", other)
	if err != nil || busy.Acquired || busy.Lease.LeaseID != o.LeaseID || busy.Lease.Metadata != "m1" {
		t.Errorf("AcquireAs(a) by another lease: want not acquired, holder %s, got %+v, %v", o.LeaseID, busy, err)
	}
	plain, err := s.Acquire(ctx, acct, "a", other)
	if err != nil || plain.Acquired != busy.Acquired || plain.Lease != busy.Lease {
		t.Errorf("Acquire(a) by another lease: want the same answer as AcquireAs %+v, got %+v, %v", busy.Lease, plain, err)
	}
	// Tokens follow the clock, so a token spent by a refused acquire would
	// not show in the next one: the counter itself must not have moved.
	if n := e.fence(t, acct); n != res.Lease.FencingToken {
		t.Errorf("fence counter after the acquires refused for a held lock: want a's token %d (they spent none), got %d", res.Lease.FencingToken, n)
	}

	lease, err := s.RenewAs(ctx, tok, acct, "a", o.LeaseID, 2*time.Minute)
	if err != nil || lease.FencingToken != res.Lease.FencingToken || lease.TTL != 2*time.Minute || lease.Metadata != "m1" || !lease.ExpiresAt.After(res.Lease.ExpiresAt) {
		t.Errorf("RenewAs(a): want fence %d, ttl 2m, later expiry, got %+v, %v", res.Lease.FencingToken, lease, err)
	}
	if st, err := s.Get(ctx, acct, "a"); err != nil || !st.Held || st.Lease != lease {
		t.Errorf("Get(a) after RenewAs: want %+v, got %+v, %v", lease, st, err)
	}
	if _, err := s.RenewAs(ctx, tok, acct, "a", other.LeaseID, time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("RenewAs(a) with a lease that does not hold it: want ErrLeaseNotCurrent, got %v", err)
	}
	if err := s.ReleaseAs(ctx, tok, acct, "a", other.LeaseID); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("ReleaseAs(a) with a lease that does not hold it: want ErrLeaseNotCurrent, got %v", err)
	}
	if err := s.ReleaseAs(ctx, tok, acct, "a", o.LeaseID); err != nil {
		t.Fatalf("ReleaseAs(a): %v", err)
	}
	if st, err := s.Get(ctx, acct, "a"); err != nil || st.Held {
		t.Errorf("Get(a) after ReleaseAs: want free, got %+v, %v", st, err)
	}
	if err := s.ReleaseAs(ctx, tok, acct, "a", o.LeaseID); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("ReleaseAs(a) again: want ErrLeaseNotCurrent, got %v", err)
	}
	if _, err := s.RenewAs(ctx, tok, acct, "a", o.LeaseID, time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("RenewAs(a) after release: want ErrLeaseNotCurrent, got %v", err)
	}
	again, err := s.AcquireAs(ctx, tok, acct, "a", other)
	if err != nil || !again.Acquired || again.Lease.FencingToken <= res.Lease.FencingToken || again.Lease.FencingToken != e.fence(t, acct) || again.Lease.Metadata != "" {
		t.Errorf("AcquireAs(a) after release: want a new lease with a fence above %d, the account's counter (%d), and no metadata, got %+v, %v", res.Lease.FencingToken, e.fence(t, acct), again, err)
	}

	// Quota: with a and b held and MaxHeld 2, c is refused.
	q := acquireOpts(time.Minute)
	q.MaxHeld = 2
	bRes, err := s.AcquireAs(ctx, tok, acct, "b", q)
	if err != nil || !bRes.Acquired {
		t.Fatalf("AcquireAs(b): %+v, %v", bRes, err)
	}
	q2 := acquireOpts(time.Minute)
	q2.MaxHeld = 2
	if _, err := s.AcquireAs(ctx, tok, acct, "c", q2); !errors.Is(err, lockcore.ErrLockLimitExceeded) {
		t.Errorf("AcquireAs(c) at the quota: want ErrLockLimitExceeded, got %v", err)
	}
	if n := e.fence(t, acct); n != bRes.Lease.FencingToken {
		t.Errorf("fence counter: want b's token %d (the refused c spent none), got %d", bRes.Lease.FencingToken, n)
	}
	if leases, err := s.List(ctx, acct); err != nil || len(leases) != 2 {
		t.Errorf("List: want a and b, got %+v, %v", leases, err)
	}
}

// testAsInputFirst: input is validated before the token is looked at, with
// the plain methods' errors.
func testAsInputFirst(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "input")
	_, unknown := lockcore.NewToken()
	lease := lockcore.NewLeaseID()
	bad := acquireOpts(time.Minute)
	bad.LeaseID = "not a lease id"
	zero := acquireOpts(0)
	cases := []struct {
		what string
		want error
		err  error
	}{
		{"AcquireAs(bad name)", lockcore.ErrInvalidName, func() error { _, err := s.AcquireAs(ctx, unknown, acct, "", acquireOpts(time.Minute)); return err }()},
		{"AcquireAs(bad lease id)", lockcore.ErrInvalidLeaseID, func() error { _, err := s.AcquireAs(ctx, unknown, acct, "x", bad); return err }()},
		{"AcquireAs(zero ttl)", lockcore.ErrInvalidTTL, func() error { _, err := s.AcquireAs(ctx, unknown, acct, "x", zero); return err }()},
		{"RenewAs(bad name)", lockcore.ErrInvalidName, func() error { _, err := s.RenewAs(ctx, unknown, acct, "", lease, time.Minute); return err }()},
		{"RenewAs(bad lease id)", lockcore.ErrInvalidLeaseID, func() error { _, err := s.RenewAs(ctx, unknown, acct, "x", "not a lease", time.Minute); return err }()},
		{"RenewAs(zero ttl)", lockcore.ErrInvalidTTL, func() error { _, err := s.RenewAs(ctx, unknown, acct, "x", lease, 0); return err }()},
		{"ReleaseAs(bad name)", lockcore.ErrInvalidName, s.ReleaseAs(ctx, unknown, acct, "", lease)},
		{"ReleaseAs(bad lease id)", lockcore.ErrInvalidLeaseID, s.ReleaseAs(ctx, unknown, acct, "x", "not a lease")},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s with an unknown token: want %v (input first), got %v", c.what, c.want, c.err)
		}
	}
	// The same inputs get the same errors from the plain methods.
	if _, err := s.Acquire(ctx, acct, "x", zero); !errors.Is(err, lockcore.ErrInvalidTTL) {
		t.Errorf("Acquire(zero ttl): want ErrInvalidTTL, got %v", err)
	}
	noMax := acquireOpts(time.Minute)
	noMax.MaxHeld = 0
	_, errAs := s.AcquireAs(ctx, unknown, acct, "x", noMax)
	_, errPlain := s.Acquire(ctx, acct, "x", noMax)
	if errAs == nil || errPlain == nil || errors.Is(errAs, lockcore.ErrNotFound) || errAs.Error() != errPlain.Error() {
		t.Errorf("MaxHeld 0: want Acquire's error from AcquireAs, got %v and %v", errAs, errPlain)
	}
	if n := e.fence(t, acct); n != 0 {
		t.Errorf("fence counter after refused input: want 0, got %d", n)
	}
}

// testAsRefusedTokens: an unknown, revoked, rotated-away or other account's
// token is refused with ErrNotFound by all three methods, and nothing
// changes: the held lock keeps its lease and expiry, the free lock stays
// free, the fence counter and the held set are untouched.
func testAsRefusedTokens(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "owner")
	stranger := account(t, s, "stranger")
	good := newToken(t, s, acct)
	o := acquireOpts(time.Minute)
	held, err := s.AcquireAs(ctx, good, acct, "held", o)
	if err != nil || !held.Acquired {
		t.Fatalf("AcquireAs(held): %+v, %v", held, err)
	}

	_, unknown := lockcore.NewToken()
	revoked := newToken(t, s, acct)
	if err := s.RevokeToken(ctx, revoked); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	rotated := newToken(t, s, acct)
	_, next := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, rotated, next); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	others := newToken(t, s, stranger)

	before := e.snap(t, acct, "held", "free")
	for _, c := range []struct {
		what string
		tok  lockcore.TokenHash
	}{{"unknown", unknown}, {"revoked", revoked}, {"rotated-away", rotated}, {"other account's", others}} {
		if _, err := s.AcquireAs(ctx, c.tok, acct, "free", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("AcquireAs(free) with the %s token: want ErrNotFound, got %v", c.what, err)
		}
		if _, err := s.AcquireAs(ctx, c.tok, acct, "held", o); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("AcquireAs(held, the holder's lease) with the %s token: want ErrNotFound, got %v", c.what, err)
		}
		if _, err := s.RenewAs(ctx, c.tok, acct, "held", o.LeaseID, time.Hour); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("RenewAs(held) with the %s token: want ErrNotFound, got %v", c.what, err)
		}
		if err := s.ReleaseAs(ctx, c.tok, acct, "held", o.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("ReleaseAs(held) with the %s token: want ErrNotFound, got %v", c.what, err)
		}
		if after := e.snap(t, acct, "held", "free"); after.String() != before.String() {
			t.Errorf("after the calls with the %s token: want the account unchanged\n%v\ngot\n%v", c.what, before, after)
		}
	}
	if n := e.fence(t, stranger); n != 0 {
		t.Errorf("fence counter of the stranger: want 0, got %d", n)
	}
	// The right token still works after all that.
	if err := s.ReleaseAs(ctx, good, acct, "held", o.LeaseID); err != nil {
		t.Errorf("ReleaseAs(held) with the right token: %v", err)
	}
	if r, err := s.AcquireAs(ctx, next, acct, "free", acquireOpts(time.Minute)); err != nil || !r.Acquired || r.Lease.FencingToken <= held.Lease.FencingToken {
		t.Errorf("AcquireAs(free) with the token rotated in: want acquired with a fence above %d, got %+v, %v", held.Lease.FencingToken, r, err)
	}
}

// testAsMirrors: the mirror key is written by AddToken and by RotateToken
// for the new token, and is gone for the old token after RotateToken and
// after RevokeToken; it has no TTL.
func testAsMirrors(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "mirrors")
	tok := newToken(t, s, acct)
	if !e.exists(t, e.mirror(acct, tok)) {
		t.Fatalf("after AddToken: mirror %s missing", e.mirror(acct, tok))
	}
	if v, err := e.raw.Get(ctx, e.mirror(acct, tok)).Result(); err != nil || v != "1" {
		t.Errorf("mirror value: want 1, got %q, %v", v, err)
	}
	if d, err := e.raw.PTTL(ctx, e.mirror(acct, tok)).Result(); err != nil || d != -1 {
		t.Errorf("mirror PTTL: want -1 (none), got %v, %v", d, err)
	}
	// AddToken again (a retry) keeps one mirror and one token key.
	if err := s.AddToken(ctx, acct, tok); err != nil {
		t.Fatalf("AddToken again: %v", err)
	}
	if !e.exists(t, e.mirror(acct, tok)) {
		t.Errorf("after a retried AddToken: mirror missing")
	}

	_, next := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, tok, next); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	if e.exists(t, e.mirror(acct, tok)) {
		t.Errorf("after RotateToken: the old token's mirror still exists")
	}
	if !e.exists(t, e.mirror(acct, next)) {
		t.Errorf("after RotateToken: the new token's mirror is missing")
	}
	// A second rotation of the retired token loses and leaves no mirror.
	_, loser := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, tok, loser); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("RotateToken(retired token): want ErrNotFound, got %v", err)
	}
	if e.exists(t, e.mirror(acct, loser)) || e.exists(t, e.tokenKey(loser)) {
		t.Errorf("after a losing RotateToken: the losing token's mirror or key exists")
	}

	if err := s.RevokeToken(ctx, next); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if e.exists(t, e.mirror(acct, next)) {
		t.Errorf("after RevokeToken: the token's mirror still exists")
	}
	if err := s.RevokeToken(ctx, next); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("RevokeToken again: want ErrNotFound, got %v", err)
	}
	// The AddToken of an unknown account writes nothing.
	_, stray := lockcore.NewToken()
	if err := s.AddToken(ctx, "acct_nobody", stray); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AddToken(unknown account): want ErrNotFound, got %v", err)
	}
	if e.exists(t, e.mirror("acct_nobody", stray)) || e.exists(t, e.tokenKey(stray)) {
		t.Errorf("AddToken(unknown account) wrote the mirror or the token key")
	}
}

// testAsConcurrentRotationMirrors: of concurrent rotations of one token,
// only the winner's new token keeps a mirror (and a token key), and the
// old token's mirror is gone.
func testAsConcurrentRotationMirrors(t *testing.T, e *tlEnv) {
	s := e.open(t)
	s2 := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "race")
	old := newToken(t, s, acct)
	const n = 8
	news := make([]lockcore.TokenHash, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		_, news[i] = lockcore.NewToken()
		st := s
		if i%2 == 1 {
			st = s2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.RotateToken(ctx, old, news[i])
		}()
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		won := err == nil
		if won {
			winners++
		} else if !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("rotation %d: want nil or ErrNotFound, got %v", i, err)
		}
		if got := e.exists(t, e.mirror(acct, news[i])); got != won {
			t.Errorf("rotation %d (won: %v): mirror of its new token exists = %v", i, won, got)
		}
		if got := e.exists(t, e.tokenKey(news[i])); got != won {
			t.Errorf("rotation %d (won: %v): key of its new token exists = %v", i, won, got)
		}
		_, aerr := s.AcquireAs(ctx, news[i], acct, "x"+strconv.Itoa(i), acquireOpts(time.Minute))
		if won && aerr != nil || !won && !errors.Is(aerr, lockcore.ErrNotFound) {
			t.Errorf("rotation %d (won: %v): AcquireAs with its new token: %v", i, won, aerr)
		}
	}
	if winners != 1 {
		t.Errorf("concurrent rotations: want exactly one winner, got %d", winners)
	}
	if e.exists(t, e.mirror(acct, old)) {
		t.Errorf("after the rotations: the old token's mirror still exists")
	}
	if _, err := s.AcquireAs(ctx, old, acct, "y", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AcquireAs with the rotated-away token: want ErrNotFound, got %v", err)
	}
}

// testAsLegacyToken: a token added before mirrors existed (its token key
// only) works through the fallback, which does not create a mirror; once
// revoked (or rotated away) it is refused and nothing changes. A legacy
// token of another account is refused.
func testAsLegacyToken(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "legacy")
	stranger := account(t, s, "legacy-stranger")
	plant := func(owner string) lockcore.TokenHash {
		_, h := lockcore.NewToken()
		if err := e.raw.Set(ctx, e.tokenKey(h), owner, 0).Err(); err != nil {
			t.Fatalf("SET token key: %v", err)
		}
		return h
	}
	legacy := plant(acct)
	o := acquireOpts(time.Minute)
	first, err := s.AcquireAs(ctx, legacy, acct, "l", o)
	if err != nil || !first.Acquired || first.Lease.FencingToken <= 0 {
		t.Fatalf("AcquireAs with a legacy token: want acquired, got %+v, %v", first, err)
	}
	if l, err := s.RenewAs(ctx, legacy, acct, "l", o.LeaseID, 2*time.Minute); err != nil || l.TTL != 2*time.Minute {
		t.Errorf("RenewAs with a legacy token: want renewed for 2m, got %+v, %v", l, err)
	}
	if err := s.ReleaseAs(ctx, legacy, acct, "l", o.LeaseID); err != nil {
		t.Errorf("ReleaseAs with a legacy token: %v", err)
	}
	if e.exists(t, e.mirror(acct, legacy)) {
		t.Errorf("the fallback created a mirror for the legacy token")
	}
	o2 := acquireOpts(time.Minute)
	if r, err := s.AcquireAs(ctx, legacy, acct, "l", o2); err != nil || !r.Acquired || r.Lease.FencingToken <= first.Lease.FencingToken {
		t.Fatalf("AcquireAs(l) again with the legacy token: want a fence above %d, got %+v, %v", first.Lease.FencingToken, r, err)
	}

	// Another account's legacy token is refused.
	foreign := plant(stranger)
	before := e.snap(t, acct, "l", "free")
	if _, err := s.AcquireAs(ctx, foreign, acct, "free", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AcquireAs with another account's legacy token: want ErrNotFound, got %v", err)
	}
	if err := s.ReleaseAs(ctx, foreign, acct, "l", o2.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("ReleaseAs with another account's legacy token: want ErrNotFound, got %v", err)
	}

	// Revoked: refused, nothing changed.
	if err := s.RevokeToken(ctx, legacy); err != nil {
		t.Fatalf("RevokeToken(legacy): %v", err)
	}
	if _, err := s.AcquireAs(ctx, legacy, acct, "free", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AcquireAs with the revoked legacy token: want ErrNotFound, got %v", err)
	}
	if _, err := s.RenewAs(ctx, legacy, acct, "l", o2.LeaseID, time.Hour); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("RenewAs with the revoked legacy token: want ErrNotFound, got %v", err)
	}
	if err := s.ReleaseAs(ctx, legacy, acct, "l", o2.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("ReleaseAs with the revoked legacy token: want ErrNotFound, got %v", err)
	}
	if after := e.snap(t, acct, "l", "free"); after.String() != before.String() {
		t.Errorf("after the refused calls: want the account unchanged\n%v\ngot\n%v", before, after)
	}

	// Rotated away: the old one is refused, the new one has a mirror.
	legacy2 := plant(acct)
	_, next := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, legacy2, next); err != nil {
		t.Fatalf("RotateToken(legacy): %v", err)
	}
	if _, err := s.AcquireAs(ctx, legacy2, acct, "free", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AcquireAs with the rotated-away legacy token: want ErrNotFound, got %v", err)
	}
	if !e.exists(t, e.mirror(acct, next)) {
		t.Errorf("the token rotated in for a legacy token has no mirror")
	}
	if err := s.ReleaseAs(ctx, next, acct, "l", o2.LeaseID); err != nil {
		t.Errorf("ReleaseAs with the token rotated in: %v", err)
	}
}

// plantLegacy makes a token as a store written before mirrors existed
// had it: its token key, naming owner, and no mirror.
func (e *tlEnv) plantLegacy(t *testing.T, owner string) lockcore.TokenHash {
	t.Helper()
	_, h := lockcore.NewToken()
	if err := e.raw.Set(t.Context(), e.tokenKey(h), owner, 0).Err(); err != nil {
		t.Fatalf("SET token key: %v", err)
	}
	return h
}

// testAsLegacyRetiredMeanwhile: a lock write with a token that has no
// mirror reads the token key and then writes; a revocation or rotation of
// the token by another store that completes between the two is not
// overtaken: the write is refused and changes nothing. That holds too
// when the retirement's first revocation mark is gone by the time the
// token key is retired (as when the retirement stalls for longer than the
// mark lasts): the mark is set again after the key is retired.
func testAsLegacyRetiredMeanwhile(t *testing.T, e *tlEnv) {
	ctx := t.Context()
	for _, c := range []struct {
		what      string
		rotate    bool
		loseFirst bool
	}{
		{"revoked", false, false},
		{"rotated away", true, false},
		{"revoked, first mark lost", false, true},
		{"rotated away, first mark lost", true, true},
	} {
		t.Run(c.what, func(t *testing.T) {
			s, other := e.open(t), e.open(t)
			acct := account(t, s, "meanwhile")
			o := acquireOpts(time.Minute)
			holder := e.plantLegacy(t, acct)
			if r, err := s.AcquireAs(ctx, holder, acct, "held", o); err != nil || !r.Acquired {
				t.Fatalf("AcquireAs(held) with a legacy token: %+v, %v", r, err)
			}
			type call struct {
				name string
				do   func(h lockcore.TokenHash) error
			}
			for _, cl := range []call{
				{"AcquireAs(free)", func(h lockcore.TokenHash) error {
					_, err := s.AcquireAs(ctx, h, acct, "free", acquireOpts(time.Minute))
					return err
				}},
				{"AcquireAs(held, the holder's lease)", func(h lockcore.TokenHash) error {
					_, err := s.AcquireAs(ctx, h, acct, "held", o)
					return err
				}},
				{"RenewAs(held)", func(h lockcore.TokenHash) error {
					_, err := s.RenewAs(ctx, h, acct, "held", o.LeaseID, time.Hour)
					return err
				}},
				{"ReleaseAs(held)", func(h lockcore.TokenHash) error {
					return s.ReleaseAs(ctx, h, acct, "held", o.LeaseID)
				}},
			} {
				tok := e.plantLegacy(t, acct)
				retired := false
				redisstore.SetTestHooks(s, redisstore.TestHooks{Fallback: func() {
					if retired {
						return
					}
					retired = true
					if c.rotate {
						_, next := lockcore.NewToken()
						if _, err := other.RotateToken(ctx, tok, next); err != nil {
							t.Errorf("RotateToken between the fallback's steps: %v", err)
						}
					} else if err := other.RevokeToken(ctx, tok); err != nil {
						t.Errorf("RevokeToken between the fallback's steps: %v", err)
					}
				}})
				var lose func()
				if c.loseFirst {
					lose = func() {
						if n, err := e.raw.Del(ctx, e.tag(acct)+":revoked:"+tok.String()).Result(); err != nil || n != 1 {
							t.Errorf("DEL the first revocation mark: want 1 deleted (it is set before the token key is retired), got %d, %v", n, err)
						}
					}
				}
				redisstore.SetTestHooks(other, redisstore.TestHooks{Retire: lose})
				before := e.snap(t, acct, "held", "free")
				if err := cl.do(tok); !errors.Is(err, lockcore.ErrNotFound) {
					t.Errorf("%s with a legacy token %s between its steps: want ErrNotFound, got %v", cl.name, c.what, err)
				}
				if !retired {
					t.Errorf("%s: the fallback's hook did not run", cl.name)
				}
				if after := e.snap(t, acct, "held", "free"); after.String() != before.String() {
					t.Errorf("after %s with a token %s meanwhile: want the account unchanged\n%v\ngot\n%v", cl.name, c.what, before, after)
				}
				redisstore.SetTestHooks(s, redisstore.TestHooks{})
			}
			// Without a retirement the fallback writes: the holder's
			// legacy token still releases its lock.
			if err := s.ReleaseAs(ctx, holder, acct, "held", o.LeaseID); err != nil {
				t.Errorf("ReleaseAs(held) with the holder's legacy token: %v", err)
			}
		})
	}
}

// testAsLegacyMarked: a token without a mirror whose revocation mark
// exists (a revocation that stopped after setting it) is refused by the
// lock writes and nothing changes; once the mark is gone the fallback
// writes again.
func testAsLegacyMarked(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "marked")
	tok := e.plantLegacy(t, acct)
	mark := e.tag(acct) + ":revoked:" + tok.String()
	if err := e.raw.Set(ctx, mark, "1", time.Minute).Err(); err != nil {
		t.Fatalf("SET mark: %v", err)
	}
	o := acquireOpts(time.Minute)
	before := e.snap(t, acct, "l")
	if _, err := s.AcquireAs(ctx, tok, acct, "l", o); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("AcquireAs with a marked legacy token: want ErrNotFound, got %v", err)
	}
	if _, err := s.RenewAs(ctx, tok, acct, "l", o.LeaseID, time.Hour); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("RenewAs with a marked legacy token: want ErrNotFound, got %v", err)
	}
	if err := s.ReleaseAs(ctx, tok, acct, "l", o.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("ReleaseAs with a marked legacy token: want ErrNotFound, got %v", err)
	}
	if after := e.snap(t, acct, "l"); after.String() != before.String() {
		t.Errorf("after the refused calls: want the account unchanged\n%v\ngot\n%v", before, after)
	}
	if err := e.raw.Del(ctx, mark).Err(); err != nil {
		t.Fatalf("DEL mark: %v", err)
	}
	if r, err := s.AcquireAs(ctx, tok, acct, "l", o); err != nil || !r.Acquired || r.Lease.FencingToken <= 0 {
		t.Errorf("AcquireAs once the mark is gone: want acquired, got %+v, %v", r, err)
	}
	// A token with its mirror is not affected by a stray mark.
	live := newToken(t, s, acct)
	if err := e.raw.Set(ctx, e.tag(acct)+":revoked:"+live.String(), "1", time.Minute).Err(); err != nil {
		t.Fatalf("SET mark: %v", err)
	}
	if err := s.ReleaseAs(ctx, live, acct, "l", o.LeaseID); err != nil {
		t.Errorf("ReleaseAs with a token that has its mirror and a mark: %v", err)
	}
}

// testAsVouchDeadline: the lock scripts' fallback (mirror missing, mark
// and deadline given) writes only while the server clock is before the
// deadline; the mirror check alone (no mark) never writes without the
// mirror. Driven with EVAL on the scripts' text, as the store sends them.
func testAsVouchDeadline(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "deadline")
	_, tok := lockcore.NewToken()
	tag := e.tag(acct)
	mirror, mark := e.mirror(acct, tok), tag+":revoked:"+tok.String()
	acquire := func(extra []string, args ...any) []any {
		t.Helper()
		keys := append([]string{tag + ":lock:d", tag + ":fence", tag + ":held"}, extra...)
		argv := append([]any{"d", "lease-d", 60000, 100, "0", ""}, args...)
		v, err := e.raw.Eval(ctx, scripts.Acquire, keys, argv...).Slice()
		if err != nil {
			t.Fatalf("EVAL acquire.lua: %v", err)
		}
		return v
	}
	v := acquire([]string{mirror})
	if len(v) != 2 || v[0] != int64(scripts.NotProved) {
		t.Fatalf("acquire.lua without the mirror: want {-1, now}, got %v", v)
	}
	now, _ := v[1].(int64)
	if d := time.Since(time.UnixMilli(now)).Abs(); d > time.Minute {
		t.Errorf("the time in the not-proved reply is %v away from this clock", d)
	}
	if v := acquire([]string{mirror, mark}, now); len(v) != 2 || v[0] != int64(scripts.NotProved) {
		t.Errorf("acquire.lua vouched with a deadline already reached: want {-1, now}, got %v", v)
	}
	if e.fence(t, acct) != 0 || e.exists(t, tag+":lock:d") {
		t.Errorf("refused calls changed the account: fence %d", e.fence(t, acct))
	}
	if v := acquire([]string{mirror, mark}, now+redisstore.VouchWindow.Milliseconds()); len(v) < 3 || v[0] != int64(1) || v[2] != any(e.fence(t, acct)) || e.fence(t, acct) <= 0 {
		t.Errorf("acquire.lua vouched before its deadline: want acquired with the account's new token %d, got %v", e.fence(t, acct), v)
	}
	if e.exists(t, mirror) {
		t.Errorf("the vouched write created a mirror")
	}
	for _, f := range []struct {
		name, src string
		args      []any
	}{{"renew.lua", scripts.Renew, []any{"d", "lease-d", 60000}}, {"release.lua", scripts.Release, []any{"d", "lease-d"}}} {
		keys := []string{tag + ":lock:d", tag + ":held", mirror, mark}
		v, err := e.raw.Eval(ctx, f.src, keys, append(f.args, now)...).Slice()
		if err != nil || len(v) != 2 || v[0] != int64(scripts.NotProved) {
			t.Errorf("%s vouched with a deadline already reached: want {-1, now}, got %v, %v", f.name, v, err)
		}
		v, err = e.raw.Eval(ctx, f.src, keys[:3], f.args...).Slice()
		if err != nil || len(v) != 2 || v[0] != int64(scripts.NotProved) {
			t.Errorf("%s without the mirror: want {-1, now}, got %v, %v", f.name, v, err)
		}
	}
	if !e.exists(t, tag+":lock:d") {
		t.Errorf("a refused renew or release changed the lock")
	}
}

// testSweepFollowsRotation: a token rotated after RevokeAccountTokens'
// scan listed it, and before the sweep read its key, is followed from its
// tombstone to the token it was rotated to, which the scan did not list;
// that one is revoked too, in the same pass.
func testSweepFollowsRotation(t *testing.T, e *tlEnv) {
	s, other := e.open(t), e.open(t)
	ctx := t.Context()
	acct := account(t, s, "sweep")
	old := newToken(t, s, acct)
	_, next := lockcore.NewToken()
	var once sync.Once
	redisstore.SetTestHooks(s, redisstore.TestHooks{Scan: func() {
		once.Do(func() {
			if _, err := other.RotateToken(ctx, old, next); err != nil {
				t.Errorf("RotateToken after the scan: %v", err)
			}
		})
	}})
	n, err := s.RevokeAccountTokens(ctx, acct)
	if err != nil || n != 1 {
		t.Errorf("RevokeAccountTokens with its token rotated after the scan: want 1 revoked, got %d, %v", n, err)
	}
	for what, h := range map[string]lockcore.TokenHash{"rotated-away": old, "rotated-in": next} {
		if _, err := s.AccountIDByToken(ctx, h); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("the %s token after RevokeAccountTokens: want ErrNotFound, got %v", what, err)
		}
		if _, err := s.AcquireAs(ctx, h, acct, "x", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("AcquireAs with the %s token after RevokeAccountTokens: want ErrNotFound, got %v", what, err)
		}
	}
}

// testSweepDropsOrphanMirrors: builds from before mirrors (before
// 2026-11-28) revoke a token by deleting its token key and rotate it away
// by replacing its key with a tombstone, leaving the mirror that a later
// build made: AcquireAs still takes such a token. RevokeAccountTokens
// deletes those mirrors (counted as revoked), and the tokens are refused
// from then on.
func testSweepDropsOrphanMirrors(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "orphans")
	revoked, rotated := newToken(t, s, acct), newToken(t, s, acct)
	_, next := lockcore.NewToken()
	if err := e.raw.Del(ctx, e.tokenKey(revoked)).Err(); err != nil {
		t.Fatalf("DEL token key: %v", err)
	}
	if err := e.raw.Set(ctx, e.tokenKey(rotated), scripts.TombstonePrefix+next.String(), time.Minute).Err(); err != nil {
		t.Fatalf("SET tombstone: %v", err)
	}
	toks := map[string]lockcore.TokenHash{"revoked": revoked, "rotated-away": rotated}
	for what, h := range toks {
		if res, err := s.AcquireAs(ctx, h, acct, "before-"+what, acquireOpts(time.Minute)); err != nil || !res.Acquired {
			t.Fatalf("AcquireAs with the %s token whose mirror an old build left: want acquired (the gap this test closes), got %+v, %v", what, res, err)
		}
	}
	n, err := s.RevokeAccountTokens(ctx, acct)
	if err != nil || n != 2 {
		t.Errorf("RevokeAccountTokens with two orphan mirrors: want 2 revoked, got %d, %v", n, err)
	}
	for what, h := range toks {
		if e.exists(t, e.mirror(acct, h)) {
			t.Errorf("the %s token's mirror survived RevokeAccountTokens", what)
		}
		if _, err := s.AcquireAs(ctx, h, acct, "after-"+what, acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("AcquireAs with the %s token after RevokeAccountTokens: want ErrNotFound, got %v", what, err)
		}
	}
}

// testAsAcrossInstances: store B rotates or revokes a token and store A,
// which used it a moment before, refuses it on its very next call, on its
// own client.
func testAsAcrossInstances(t *testing.T, e *tlEnv) {
	a, b := e.open(t), e.open(t)
	ctx := t.Context()
	acct := account(t, a, "instances")
	tok := newToken(t, a, acct)
	o := acquireOpts(time.Minute)
	k, err := a.AcquireAs(ctx, tok, acct, "k", o)
	if err != nil || !k.Acquired {
		t.Fatalf("A.AcquireAs: %+v, %v", k, err)
	}
	before := e.snap(t, acct, "k", "free")

	_, next := lockcore.NewToken()
	if _, err := b.RotateToken(ctx, tok, next); err != nil {
		t.Fatalf("B.RotateToken: %v", err)
	}
	if _, err := a.AcquireAs(ctx, tok, acct, "free", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("A.AcquireAs with the token B rotated away: want ErrNotFound, got %v", err)
	}
	if _, err := a.RenewAs(ctx, tok, acct, "k", o.LeaseID, time.Hour); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("A.RenewAs with the token B rotated away: want ErrNotFound, got %v", err)
	}
	if err := a.ReleaseAs(ctx, tok, acct, "k", o.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("A.ReleaseAs with the token B rotated away: want ErrNotFound, got %v", err)
	}
	if after := e.snap(t, acct, "k", "free"); after.String() != before.String() {
		t.Errorf("after A's refused calls: want the account unchanged\n%v\ngot\n%v", before, after)
	}
	if l, err := a.RenewAs(ctx, next, acct, "k", o.LeaseID, time.Minute); err != nil || l.FencingToken != k.Lease.FencingToken {
		t.Errorf("A.RenewAs with the token B rotated in: want fence %d, got %+v, %v", k.Lease.FencingToken, l, err)
	}

	before = e.snap(t, acct, "k", "free")
	if err := b.RevokeToken(ctx, next); err != nil {
		t.Fatalf("B.RevokeToken: %v", err)
	}
	if _, err := a.AcquireAs(ctx, next, acct, "free", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("A.AcquireAs with the token B revoked: want ErrNotFound, got %v", err)
	}
	if _, err := a.RenewAs(ctx, next, acct, "k", o.LeaseID, time.Hour); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("A.RenewAs with the token B revoked: want ErrNotFound, got %v", err)
	}
	if err := a.ReleaseAs(ctx, next, acct, "k", o.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("A.ReleaseAs with the token B revoked: want ErrNotFound, got %v", err)
	}
	if after := e.snap(t, acct, "k", "free"); after.String() != before.String() {
		t.Errorf("after A's refused calls: want the account unchanged\n%v\ngot\n%v", before, after)
	}
}

// testOneRoundTrip checks with the server's command statistics that a lock
// write with a token that has a mirror is one EVALSHA and no GET, and that
// a legacy token costs the GET of the fallback and a second EVALSHA.
func testOneRoundTrip(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "rtt")
	tok := newToken(t, s, acct)
	_, legacy := lockcore.NewToken()
	if err := e.raw.Set(ctx, e.tokenKey(legacy), acct, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Load the scripts so that EVALSHA never falls back to EVAL below.
	for i := range 2 {
		o := acquireOpts(time.Minute)
		if _, err := s.AcquireAs(ctx, tok, acct, "warm"+strconv.Itoa(i), o); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RenewAs(ctx, tok, acct, "warm"+strconv.Itoa(i), o.LeaseID, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseAs(ctx, tok, acct, "warm"+strconv.Itoa(i), o.LeaseID); err != nil {
			t.Fatal(err)
		}
	}
	calls := func() (get, evalsha int) {
		info, err := e.raw.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatalf("INFO commandstats: %v", err)
		}
		n := func(cmd string) int {
			m := regexp.MustCompile(`cmdstat_` + cmd + `:calls=(\d+)`).FindStringSubmatch(info)
			if m == nil {
				return 0
			}
			v, _ := strconv.Atoi(m[1])
			return v
		}
		return n("get"), n("evalsha")
	}
	check := func(what string, wantGet, wantEval int, do func() error) {
		t.Helper()
		g0, e0 := calls()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		g1, e1 := calls()
		if g1-g0 != wantGet || e1-e0 != wantEval {
			t.Errorf("%s: want %d GET and %d EVALSHA, got %d and %d", what, wantGet, wantEval, g1-g0, e1-e0)
		}
	}
	o := acquireOpts(time.Minute)
	check("AcquireAs", 0, 1, func() error { _, err := s.AcquireAs(ctx, tok, acct, "n", o); return err })
	check("RenewAs", 0, 1, func() error { _, err := s.RenewAs(ctx, tok, acct, "n", o.LeaseID, time.Minute); return err })
	check("ReleaseAs", 0, 1, func() error { return s.ReleaseAs(ctx, tok, acct, "n", o.LeaseID) })
	check("AcquireAs with a legacy token", 1, 2, func() error { _, err := s.AcquireAs(ctx, legacy, acct, "n", o); return err })
	check("ReleaseAs with a legacy token", 1, 2, func() error { return s.ReleaseAs(ctx, legacy, acct, "n", o.LeaseID) })
	_, unknown := lockcore.NewToken()
	check("AcquireAs with an unknown token", 1, 1, func() error {
		if _, err := s.AcquireAs(ctx, unknown, acct, "n", o); !errors.Is(err, lockcore.ErrNotFound) {
			return fmt.Errorf("want ErrNotFound, got %v", err)
		}
		return nil
	})
}

// TestTokenLocksClosed: on a closed store the As methods fail with
// ErrUnavailable.
func TestTokenLocksClosed(t *testing.T) {
	m := miniredis.RunT(t)
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: "tlc:"})
	s.Close()
	ctx := context.Background()
	var tok lockcore.TokenHash
	lease := lockcore.NewLeaseID()
	if _, err := s.AcquireAs(ctx, tok, "acct_1", "x", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("AcquireAs on a closed store: want ErrUnavailable, got %v", err)
	}
	if _, err := s.RenewAs(ctx, tok, "acct_1", "x", lease, time.Minute); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("RenewAs on a closed store: want ErrUnavailable, got %v", err)
	}
	if err := s.ReleaseAs(ctx, tok, "acct_1", "x", lease); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("ReleaseAs on a closed store: want ErrUnavailable, got %v", err)
	}
}

// testAsLostSlot: when every key of an account's slot is lost (a Cluster
// master restarted empty, or a flushed slot) while the token key, in
// another slot, survives, the lock writes must not go on from a fencing
// counter of zero: the write is refused as unavailable (the account record
// is gone too), never a fencing token handed out again; once the account
// is made again, its counter goes on above every token issued.
func testAsLostSlot(t *testing.T, e *tlEnv) {
	s := e.open(t)
	ctx := t.Context()
	acct := account(t, s, "lostslot")
	tok := newToken(t, s, acct)
	for i := 0; i < 3; i++ {
		o := acquireOpts(time.Minute)
		if res, err := s.AcquireAs(ctx, tok, acct, "a", o); err != nil || !res.Acquired {
			t.Fatalf("AcquireAs(a) #%d: %+v, %v", i, res, err)
		}
		if err := s.ReleaseAs(ctx, tok, acct, "a", o.LeaseID); err != nil {
			t.Fatalf("ReleaseAs(a) #%d: %v", i, err)
		}
	}
	before := e.fence(t, acct)
	if again := account(t, s, "lostslot"); again != acct || e.fence(t, acct) != before {
		t.Fatalf("EnsureAccount of an existing account: %s with fencing counter %d, want %s and %d unchanged", again, e.fence(t, acct), acct, before)
	}
	// Lose the slot: every key with the account's hash tag (named, since
	// KEYS on a Cluster client asks one node only).
	tag := e.tag(acct)
	for _, k := range []string{tag + ":account", tag + ":fence", tag + ":held", tag + ":lock:a", e.mirror(acct, tok)} {
		if err := e.raw.Del(ctx, k).Err(); err != nil {
			t.Fatalf("DEL %s: %v", k, err)
		}
	}
	if !e.exists(t, e.tokenKey(tok)) {
		t.Fatalf("the token key must survive the slot's loss")
	}
	res, err := s.AcquireAs(ctx, tok, acct, "b", acquireOpts(time.Minute))
	if err == nil && res.Acquired && res.Lease.FencingToken <= before {
		t.Fatalf("AcquireAs after the account's slot was lost: acquired with fencing token %d, at most the %d already issued", res.Lease.FencingToken, before)
	}
	if !errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(fmt.Sprint(err), "has no record in its slot") {
		t.Errorf("AcquireAs after the account's slot was lost: want ErrUnavailable saying the record is gone, got %+v, %v", res, err)
	}
	// Making the account again (token create --login, a GitHub sign-in)
	// finds its id under the login index and writes its record; the
	// fencing counter lost with the record is not made again there: the
	// next acquire (acquire.lua) raises it to the Redis clock in µs.
	if again := account(t, s, "lostslot"); again != acct {
		t.Fatalf("EnsureAccount after the loss: account %s, want the same %s", again, acct)
	}
	res, err = s.AcquireAs(ctx, tok, acct, "b", acquireOpts(time.Minute))
	if err != nil || !res.Acquired {
		t.Fatalf("AcquireAs once the account was made again: %+v, %v", res, err)
	}
	if got := res.Lease.FencingToken; got <= before || got < 1_000_000_000_000_000 {
		t.Errorf("fencing token %d once the account was made again, want above %d and the clock in µs", got, before)
	}
}
