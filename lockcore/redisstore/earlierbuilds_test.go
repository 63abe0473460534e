package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// earlierBuild is the set of lock scripts a build before this one ran:
// each file in testdata/earlier is scripts/<name>.lua as of the commit
// in its name (git show <commit>:scripts/<name>.lua), the first commit
// that changed that script's code. Each build below is one whose lock
// scripts differ in code from the build before it (b890a97 and 1b4997c
// changed comments only; from 5fbb9bf on the code is this build's).
type earlierBuild struct {
	commit                  string
	acquire, renew, release string // commits of the files in testdata/earlier
	mirror                  bool   // its scripts take the token mirror as an optional last key
	keepsIndex              bool   // its acquire and renew give the held set a TTL (from 92713f9)
}

var earlierBuilds = []earlierBuild{
	{commit: "0e0cb34", acquire: "0e0cb34", renew: "0e0cb34", release: "0e0cb34"},
	{commit: "d60c934", acquire: "d60c934", renew: "0e0cb34", release: "0e0cb34"},
	{commit: "f2b5ebd", acquire: "f2b5ebd", renew: "f2b5ebd", release: "f2b5ebd", mirror: true},
	{commit: "049c5c2", acquire: "049c5c2", renew: "049c5c2", release: "049c5c2", mirror: true},
	{commit: "258a6da", acquire: "258a6da", renew: "049c5c2", release: "049c5c2", mirror: true},
	{commit: "dd68b20", acquire: "dd68b20", renew: "049c5c2", release: "049c5c2", mirror: true},
	{commit: "92713f9", acquire: "92713f9", renew: "92713f9", release: "049c5c2", mirror: true, keepsIndex: true},
}

// oldServer runs an earlier build's lock scripts on one account's keys, with
// the keys and arguments that build's Store passed for a lock write made
// with a bearer token (the token's mirror key when the build had mirrors).
type oldServer struct {
	t                       *testing.T
	rc                      *redis.Client
	b                       earlierBuild
	acquire, renew, release *redis.Script
	tag, mirror             string
}

func newOldServer(t *testing.T, rc *redis.Client, b earlierBuild, prefix, acct string, tok lockcore.TokenHash) *oldServer {
	t.Helper()
	load := func(name, commit string) *redis.Script {
		src, err := os.ReadFile(filepath.Join("testdata", "earlier", name+"-"+commit+".lua"))
		if err != nil {
			t.Fatalf("script of build %s: %v", b.commit, err)
		}
		return redis.NewScript(string(src))
	}
	tag := prefix + "{a:" + acct + "}"
	return &oldServer{t: t, rc: rc, b: b, tag: tag, mirror: tag + ":tok:" + tok.String(),
		acquire: load("acquire", b.acquire), renew: load("renew", b.renew), release: load("release", b.release)}
}

func (o *oldServer) keys(keys ...string) []string {
	if o.b.mirror {
		keys = append(keys, o.mirror)
	}
	return keys
}

func (o *oldServer) run(sc *redis.Script, keys []string, args ...any) any {
	o.t.Helper()
	v, err := sc.Run(o.t.Context(), o.rc, keys, args...).Result()
	if err != nil {
		o.t.Fatalf("script of build %s: %v", o.b.commit, err)
	}
	return v
}

// Acquire returns the script's status (1 acquired, 0 held by another
// lease, 2 over the quota, -1 token not proved), the lease id and the
// fencing token of the lease that holds the lock (none for 2 and -1).
func (o *oldServer) Acquire(name, lease string, ttl time.Duration, maxHeld int) (status int64, holder string, fence int64) {
	o.t.Helper()
	v := o.run(o.acquire, o.keys(o.tag+":lock:"+name, o.tag+":fence", o.tag+":held"),
		name, lease, ttl.Milliseconds(), maxHeld, "0", "")
	r, _ := v.([]any)
	if len(r) > 0 && (r[0] == int64(2) || r[0] == int64(-1)) {
		return r[0].(int64), "", 0
	}
	if len(r) < 3 {
		o.t.Fatalf("acquire script of build %s: reply %v", o.b.commit, v)
	}
	status, ok1 := r[0].(int64)
	holder, ok2 := r[1].(string)
	fence, ok3 := r[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		o.t.Fatalf("acquire script of build %s: reply %v", o.b.commit, v)
	}
	return status, holder, fence
}

// Renew returns the script's status (1 renewed, 0 the lease does not
// hold the lock, -1 token not proved) and the lease's fencing token.
func (o *oldServer) Renew(name, lease string, ttl time.Duration) (status, fence int64) {
	o.t.Helper()
	v := o.run(o.renew, o.keys(o.tag+":lock:"+name, o.tag+":held"), name, lease, ttl.Milliseconds())
	r, _ := v.([]any)
	if len(r) > 0 && (r[0] == int64(0) || r[0] == int64(-1)) {
		return r[0].(int64), 0
	}
	ok := len(r) > 1 && r[0] == int64(1)
	if ok {
		fence, ok = r[1].(int64)
	}
	if !ok {
		o.t.Fatalf("renew script of build %s: reply %v", o.b.commit, v)
	}
	return 1, fence
}

// Release returns the script's status (1 released, 0 the lease does not
// hold the lock, -1 token not proved: from 049c5c2 on, {-1, now}).
func (o *oldServer) Release(name, lease string) int64 {
	o.t.Helper()
	v := o.run(o.release, o.keys(o.tag+":lock:"+name, o.tag+":held"), name, lease)
	if r, _ := v.([]any); len(r) == 2 && r[0] == int64(-1) {
		return -1
	}
	st, ok := v.(int64)
	if !ok || st < -1 || st > 1 {
		o.t.Fatalf("release script of build %s: reply %v", o.b.commit, v)
	}
	return st
}

// TestScriptsOfEarlierBuilds checks what the README's Upgrading section
// promises of servers of different builds sharing one Redis and key prefix
// (mutual exclusion, rising fencing tokens, renewals, releases and reads
// hold across builds), with the lock scripts of each earlier build run on
// the same keys as this build's Store, on a real redis-server: an old build
// and this one take the same names in turn, renew and release each
// other's leases, retry each other's acquires, fill the account's quota
// together, and take over each other's expired leases. It also checks that
// a held set an earlier build left without a TTL is kept alive whole by
// this build, and that a build that keeps the set alive (92713f9 on) keeps
// it at least as long as its leases.
func TestScriptsOfEarlierBuilds(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	for _, b := range earlierBuilds {
		t.Run(b.commit, func(t *testing.T) {
			prefix := "eb" + b.commit + ":"
			s := open(t, srv.URL(), prefix, slowOpTimeout)
			acct := account(t, s, "alice")
			tok := newToken(t, s, acct)
			old := newOldServer(t, rc, b, prefix, acct, tok)
			testEarlierExclusionAndFences(t, s, old, acct, tok)
			testEarlierQuotaAndList(t, s, old, acct, tok)
			testEarlierExpiry(t, s, old, acct, tok)
			if b.mirror {
				testEarlierRetiredTokens(t, s, old, acct, tok)
			}
			if !b.keepsIndex {
				acct2 := account(t, s, "bob")
				tok2 := newToken(t, s, acct2)
				testEarlierIndexTakenOver(t, s, newOldServer(t, rc, b, prefix, acct2, tok2), rc, acct2, tok2)
			}
		})
	}
}

// testEarlierExclusionAndFences: the two builds take names in turn, each
// refused by the lock the other holds, with fencing tokens rising across
// them; each renews, retries and releases the other's leases.
func testEarlierExclusionAndFences(t *testing.T, s *redisstore.Store, old *oldServer, acct string, tok lockcore.TokenHash) {
	ctx := t.Context()
	var last int64
	rising := func(who string, f int64) {
		t.Helper()
		if f <= last {
			t.Errorf("fencing token of %s: %d, not above the last one %d", who, f, last)
		}
		last = f
	}
	for i := range 3 {
		// The old build takes a name; this build is refused it, then
		// renews, retries and releases the old build's lease.
		name, lease := fmt.Sprintf("o%d", i), lockcore.NewLeaseID()
		st, _, fence := old.Acquire(name, lease, time.Minute, 100)
		if st != 1 {
			t.Fatalf("old acquire %s: status %d", name, st)
		}
		rising("old build's acquire", fence)
		r, err := s.AcquireAs(ctx, tok, acct, name, acquireOpts(time.Minute))
		if err != nil || r.Acquired || r.Lease.LeaseID != lease || r.Lease.FencingToken != fence {
			t.Errorf("AcquireAs of %s held by the old build: %+v, %v; want refused, holder %s token %d", name, r, err, lease, fence)
		}
		if l, err := s.RenewAs(ctx, tok, acct, name, lease, 2*time.Minute); err != nil || l.FencingToken != fence || l.TTL != 2*time.Minute {
			t.Errorf("RenewAs of the old build's lease: %+v, %v; want token %d, 2m", l, err, fence)
		}
		o := acquireOpts(time.Minute)
		o.LeaseID = lease
		if r, err := s.AcquireAs(ctx, tok, acct, name, o); err != nil || !r.Acquired || r.Lease.FencingToken != fence {
			t.Errorf("AcquireAs retrying the old build's lease: %+v, %v; want acquired, token %d", r, err, fence)
		}
		if st, err := s.Get(ctx, acct, name); err != nil || !st.Held || st.Lease.LeaseID != lease || st.Lease.FencingToken != fence {
			t.Errorf("Get of the old build's lease: %+v, %v", st, err)
		}
		if err := s.ReleaseAs(ctx, tok, acct, name, lease); err != nil {
			t.Errorf("ReleaseAs of the old build's lease: %v", err)
		}
		if st, _ := old.Renew(name, lease, time.Minute); st != 0 {
			t.Errorf("old renew of %s after this build released it: renewed", name)
		}

		// This build takes a name; the old build is refused it, then
		// renews, retries and releases this build's lease.
		name = fmt.Sprintf("n%d", i)
		r, err = s.AcquireAs(ctx, tok, acct, name, acquireOpts(time.Minute))
		if err != nil || !r.Acquired {
			t.Fatalf("AcquireAs(%s): %+v, %v", name, r, err)
		}
		lease, fence = r.Lease.LeaseID, r.Lease.FencingToken
		rising("this build's acquire", fence)
		if st, holder, f := old.Acquire(name, lockcore.NewLeaseID(), time.Minute, 100); st != 0 || holder != lease || f != fence {
			t.Errorf("old acquire of %s held by this build: status %d holder %s token %d; want 0, %s, %d", name, st, holder, f, lease, fence)
		}
		if st, f := old.Renew(name, lease, 2*time.Minute); st != 1 || f != fence {
			t.Errorf("old renew of this build's lease: status %d, token %d; want 1, %d", st, f, fence)
		}
		if st, _, f := old.Acquire(name, lease, time.Minute, 100); st != 1 || f != fence {
			t.Errorf("old retry of this build's lease: status %d token %d; want 1, %d", st, f, fence)
		}
		if st := old.Release(name, lease); st != 1 {
			t.Errorf("old release of this build's lease: status %d, want 1", st)
		}
		if _, err := s.RenewAs(ctx, tok, acct, name, lease, time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
			t.Errorf("RenewAs after the old build released the lease: %v, want ErrLeaseNotCurrent", err)
		}
		if st, err := s.Get(ctx, acct, name); err != nil || st.Held {
			t.Errorf("Get after the old build released the lease: %+v, %v; want free", st, err)
		}
	}
}

// testEarlierQuotaAndList: leases of both builds fill the account's quota
// of 4 together; both builds refuse a fifth and List shows all four.
func testEarlierQuotaAndList(t *testing.T, s *redisstore.Store, old *oldServer, acct string, tok lockcore.TokenHash) {
	ctx := t.Context()
	leases := map[string]string{}
	// This build's first lease is the longest, so the held set outlives
	// the old build's leases also with builds before 92713f9 (whose longer
	// leases may outlive it: see the README's Upgrading).
	for i, ttl := range []time.Duration{3 * time.Minute, time.Minute, time.Minute, time.Minute} {
		name := fmt.Sprintf("q%d", i)
		if i%2 == 0 {
			o := acquireOpts(ttl)
			o.MaxHeld = 4
			r, err := s.AcquireAs(ctx, tok, acct, name, o)
			if err != nil || !r.Acquired {
				t.Fatalf("AcquireAs(%s): %+v, %v", name, r, err)
			}
			leases[name] = r.Lease.LeaseID
			continue
		}
		lease := lockcore.NewLeaseID()
		if st, _, _ := old.Acquire(name, lease, ttl, 4); st != 1 {
			t.Fatalf("old acquire %s: status %d", name, st)
		}
		leases[name] = lease
	}
	o := acquireOpts(time.Minute)
	o.MaxHeld = 4
	if _, err := s.AcquireAs(ctx, tok, acct, "q4", o); !errors.Is(err, lockcore.ErrLockLimitExceeded) {
		t.Errorf("AcquireAs of a fifth lock, quota 4: %v, want ErrLockLimitExceeded", err)
	}
	if st, _, _ := old.Acquire("q4", lockcore.NewLeaseID(), time.Minute, 4); st != 2 {
		t.Errorf("old acquire of a fifth lock, quota 4: status %d, want 2", st)
	}
	l, err := s.List(ctx, acct)
	if err != nil || len(l) != 4 {
		t.Fatalf("List: %+v, %v; want the 4 leases", l, err)
	}
	for _, x := range l {
		if leases[x.Name] != x.LeaseID {
			t.Errorf("List: %s held by %s, want %s", x.Name, x.LeaseID, leases[x.Name])
		}
	}
	checkHeldOutlivesLeases(t, old.rc, old.tag+":held", old.b.keepsIndex)
	for i := range 4 {
		name := fmt.Sprintf("q%d", i)
		if i%2 == 0 && old.Release(name, leases[name]) != 1 {
			t.Errorf("old release of %s: not released", name)
		}
		if i%2 == 1 {
			if err := s.ReleaseAs(ctx, tok, acct, name, leases[name]); err != nil {
				t.Errorf("ReleaseAs(%s): %v", name, err)
			}
		}
	}
	if l, err := s.List(ctx, acct); err != nil || len(l) != 0 {
		t.Errorf("List after releasing all: %+v, %v; want none", l, err)
	}
}

// checkHeldOutlivesLeases fails t when the held set expires before its
// last lease (its highest score). A build before 92713f9 gives it no TTL,
// which is allowed only when keeps is false.
func checkHeldOutlivesLeases(t *testing.T, rc *redis.Client, held string, keeps bool) {
	t.Helper()
	ctx := t.Context()
	top, err := rc.ZRangeWithScores(ctx, held, -1, -1).Result()
	if err != nil || len(top) != 1 {
		t.Fatalf("ZRANGE %s: %v, %v", held, top, err)
	}
	at, err := rc.Do(ctx, "PEXPIRETIME", held).Int64()
	if err != nil {
		t.Fatalf("PEXPIRETIME %s: %v", held, err)
	}
	if (at == -1 && keeps) || (at != -1 && at < int64(top[0].Score)) {
		t.Errorf("held set expires at %d (ms; -1 none), before its last lease's expiry %d", at, int64(top[0].Score))
	}
}

// testEarlierExpiry: a lease of either build that expired is taken by the
// other with a higher fencing token, and is not renewed.
func testEarlierExpiry(t *testing.T, s *redisstore.Store, old *oldServer, acct string, tok lockcore.TokenHash) {
	ctx := t.Context()
	lease := lockcore.NewLeaseID()
	st, _, fence := old.Acquire("e", lease, 20*time.Millisecond, 100)
	if st != 1 {
		t.Fatalf("old acquire e: status %d", st)
	}
	waitFree(t, s, acct, "e")
	r, err := s.AcquireAs(ctx, tok, acct, "e", acquireOpts(20*time.Millisecond))
	if err != nil || !r.Acquired || r.Lease.FencingToken <= fence {
		t.Fatalf("AcquireAs of the old build's expired lease: %+v, %v; want acquired above %d", r, err, fence)
	}
	if st, _ := old.Renew("e", lease, time.Minute); st != 0 {
		t.Errorf("old renew of its expired lease: status %d, want 0", st)
	}
	waitFree(t, s, acct, "e")
	st, _, f := old.Acquire("e", lockcore.NewLeaseID(), time.Minute, 100)
	if st != 1 || f <= r.Lease.FencingToken {
		t.Errorf("old acquire of this build's expired lease: status %d token %d; want 1 above %d", st, f, r.Lease.FencingToken)
	}
	if _, err := s.RenewAs(ctx, tok, acct, "e", r.Lease.LeaseID, time.Minute); !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("RenewAs of this build's expired lease: %v, want ErrLeaseNotCurrent", err)
	}
}

// testEarlierRetiredTokens: a token this build rotated away or revoked is
// refused by the lock scripts of a build with token mirrors, as the
// servers of that build call them for a token in their token map; the
// rotation's new token is accepted.
func testEarlierRetiredTokens(t *testing.T, s *redisstore.Store, old *oldServer, acct string, tok lockcore.TokenHash) {
	ctx := t.Context()
	_, next := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, tok, next); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	if st, _, _ := old.Acquire("r", lockcore.NewLeaseID(), time.Minute, 100); st != -1 {
		t.Errorf("old acquire with a token this build rotated away: status %d, want -1 (not proved)", st)
	}
	old.mirror = old.tag + ":tok:" + next.String()
	lease := lockcore.NewLeaseID()
	if st, _, _ := old.Acquire("r", lease, time.Minute, 100); st != 1 {
		t.Errorf("old acquire with the rotation's new token: status %d, want 1", st)
	}
	if err := s.RevokeToken(ctx, next); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if st, _ := old.Renew("r", lease, time.Minute); st != -1 {
		t.Errorf("old renew with a token this build revoked: status %d, want -1 (not proved)", st)
	}
	if st := old.Release("r", lease); st != -1 {
		t.Errorf("old release with a token this build revoked: status %d, want -1 (not proved)", st)
	}
}

// testEarlierIndexTakenOver: a held set a build before 92713f9 left
// without a TTL, holding a long lease, is kept alive whole by this build's
// first short lease (the README: "its leases keep it alive").
func testEarlierIndexTakenOver(t *testing.T, s *redisstore.Store, old *oldServer, rc *redis.Client, acct string, tok lockcore.TokenHash) {
	ctx := context.WithoutCancel(t.Context())
	if st, _, _ := old.Acquire("long", lockcore.NewLeaseID(), time.Hour, 100); st != 1 {
		t.Fatalf("old acquire long: status %d", st)
	}
	if d := rc.PTTL(ctx, old.tag+":held").Val(); d != -1 {
		t.Fatalf("PTTL of the held set of a build before 92713f9: %v, want none", d)
	}
	if r, err := s.AcquireAs(ctx, tok, acct, "short", acquireOpts(time.Second)); err != nil || !r.Acquired {
		t.Fatalf("AcquireAs(short): %+v, %v", r, err)
	}
	checkHeldOutlivesLeases(t, rc, old.tag+":held", true)
}
