package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// open opens a Store on srv with the given op timeout and closes it at the
// end of the test. Tests whose calls must succeed use slowOpTimeout: a short
// one is a deadline a loaded machine can miss on a correct store.
func open(t *testing.T, url, prefix string, timeout time.Duration) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(t.Context(), redisstore.Config{URL: url, Prefix: prefix, OpTimeout: timeout})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func account(t *testing.T, s lockcore.Store, login string) string {
	t.Helper()
	a, _, err := s.EnsureAccount(t.Context(), login)
	if err != nil {
		t.Fatalf("EnsureAccount(%s): %v", login, err)
	}
	return a.ID
}

func acquireOpts(ttl time.Duration) lockcore.AcquireOptions {
	return lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: ttl, MaxHeld: 100}
}

func TestOpenErrors(t *testing.T) {
	for _, u := range []string{"http://nope", "nonsense", "redis://h:1/x"} {
		_, err := redisstore.Open(t.Context(), redisstore.Config{URL: u})
		if err == nil || errors.Is(err, lockcore.ErrUnavailable) || !strings.Contains(err.Error(), "want redis://[user:password@]host:port[/db]") {
			t.Errorf("Open(%q): want a configuration error naming the URL's form, not wrapping ErrUnavailable; got %v", u, err)
		}
	}
	if _, err := redisstore.Open(t.Context(), redisstore.Config{URL: "http://nope", Cluster: true}); err == nil || !strings.Contains(err.Error(), "?addr=host2:port2") {
		t.Errorf("Open(http cluster URL): want a configuration error naming the cluster URL's form; got %v", err)
	}
	if _, err := redisstore.Open(t.Context(), redisstore.Config{URL: "redis://127.0.0.1:1", Prefix: "a{b}:"}); err == nil || errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Open(prefix with braces): want a configuration error not wrapping ErrUnavailable, got %v", err)
	}
	for _, q := range []string{"read_only=true", "route_by_latency=true", "route_randomly=true"} {
		if _, err := redisstore.Open(t.Context(), redisstore.Config{URL: "redis://127.0.0.1:1?" + q, Cluster: true}); err == nil || errors.Is(err, lockcore.ErrUnavailable) {
			t.Errorf("Open(cluster URL with %s): want a configuration error not wrapping ErrUnavailable, got %v", q, err)
		}
	}
	if _, err := redisstore.Open(t.Context(), redisstore.Config{URL: "redis://127.0.0.1:1", Cluster: true, OpTimeout: 200 * time.Millisecond}); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Open(cluster at a closed port): want an error wrapping ErrUnavailable, got %v", err)
	}
	if _, err := redisstore.Open(t.Context(), redisstore.Config{URL: "redis://127.0.0.1:1", OpTimeout: 200 * time.Millisecond}); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Open(closed port): want an error wrapping ErrUnavailable, got %v", err)
	}
}

func TestClosedStoreFails(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), "closed:", slowOpTimeout)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Ping after Close: want an error wrapping ErrUnavailable, got %v", err)
	}
	if _, err := s.Get(t.Context(), "acct_1", "x"); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Get after Close: want an error wrapping ErrUnavailable, got %v", err)
	}
}

// TestPingNeedsWrites: Ping writes <prefix>health, so a Redis that still
// answers PING but refuses writes (full under noeviction: here a maxmemory
// of one byte) fails it with ErrUnavailable, while Open, which only needs
// Redis to answer, still succeeds. With the limit lifted, Ping works again.
func TestPingNeedsWrites(t *testing.T) {
	srv := redistest.Start(t) // maxmemory-policy noeviction
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := t.Context()
	s := open(t, srv.URL(), "hp:", slowOpTimeout)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if ttl, err := admin.PTTL(ctx, "hp:health").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL hp:health after Ping: %v, %v; want a TTL of at most a minute", ttl, err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Ping while Redis refuses writes: want ErrUnavailable, got %v", err)
	}
	if err := admin.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis itself must still answer PING: %v", err)
	}
	other, err := redisstore.Open(ctx, redisstore.Config{URL: srv.URL(), Prefix: "hp:", OpTimeout: slowOpTimeout})
	if err != nil {
		t.Errorf("Open while Redis refuses writes: %v; want it open (Ping reports the state)", err)
	} else {
		other.Close()
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping once Redis takes writes again: %v", err)
	}
}

// ops are the store calls the outage test checks, each on fixed inputs.
func outageOps(acct, held string, lease string, tok lockcore.TokenHash) map[string]func(ctx context.Context, s lockcore.Store) error {
	return map[string]func(ctx context.Context, s lockcore.Store) error{
		"Ping": func(ctx context.Context, s lockcore.Store) error { return s.Ping(ctx) },
		"Acquire": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.Acquire(ctx, acct, "other", acquireOpts(time.Minute))
			return err
		},
		"Renew": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.Renew(ctx, acct, held, lease, time.Minute)
			return err
		},
		"AcquireAs": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.(lockcore.TokenLocks).AcquireAs(ctx, tok, acct, "other", acquireOpts(time.Minute))
			return err
		},
		"RenewAs": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.(lockcore.TokenLocks).RenewAs(ctx, tok, acct, held, lease, time.Minute)
			return err
		},
		"Get": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.Get(ctx, acct, held)
			return err
		},
		"List": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.List(ctx, acct)
			return err
		},
		"AccountByToken": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.AccountByToken(ctx, tok)
			return err
		},
		"CountAccounts": func(ctx context.Context, s lockcore.Store) error {
			_, err := s.CountAccounts(ctx)
			return err
		},
	}
}

// TestOutage kills, pauses and restarts Redis under one Store: calls fail
// with ErrUnavailable within a bound of the op timeout and work again once
// Redis is back, without a new Store.
//
// The op timeout is also what a call against the live server must beat, and
// the bound leaves 2×opTimeout for the scheduler beyond the timeout itself:
// at 500 ms (1 s of slack) a descheduled test goroutine on two busy cores
// under -race could exceed either on a correct store.
func TestOutage(t *testing.T) {
	const opTimeout = time.Second
	const bound = 3 * opTimeout
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := open(t, srv.URL(), "outage:", opTimeout)
	ctx := t.Context()
	acct := account(t, s, "outage")
	_, tok := lockcore.NewToken()
	if err := s.AddToken(ctx, acct, tok); err != nil {
		t.Fatalf("AddToken: %v", err)
	}
	o := acquireOpts(time.Hour)
	if res, err := s.Acquire(ctx, acct, "held", o); err != nil || !res.Acquired {
		t.Fatalf("Acquire(held): %+v, %v", res, err)
	}
	ops := outageOps(acct, "held", o.LeaseID, tok)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range ops {
			if !yield(k) {
				return
			}
		}
	})

	wantUp := func(phase string) {
		t.Helper()
		for _, n := range names {
			if err := ops[n](ctx, s); err != nil {
				t.Errorf("%s: %s: want nil error, got %v", phase, n, err)
			}
		}
	}
	wantDown := func(phase string) {
		t.Helper()
		for _, n := range names {
			start := time.Now()
			err := ops[n](ctx, s)
			took := time.Since(start)
			if !errors.Is(err, lockcore.ErrUnavailable) {
				t.Errorf("%s: %s: want an error wrapping ErrUnavailable, got %v", phase, n, err)
			}
			if took > bound {
				t.Errorf("%s: %s took %v, want at most 3×OpTimeout = %v", phase, n, took, bound)
			}
		}
	}

	// waitBack gives the client up to 30s (go-redis probes a dead server
	// about once a second; the rest is for a loaded machine) to answer a
	// Ping again. It returns as soon as it does.
	waitBack := func(phase string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for s.Ping(ctx) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the store did not recover within 30s: %v", phase, s.Ping(ctx))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	wantUp("before the outage")
	srv.Kill()
	wantDown("after SIGKILL")
	srv.Restart()
	waitBack("after restart")
	wantUp("after restart")

	srv.Pause()
	wantDown("while paused (hung server)")
	// A caller's deadline later than OpTimeout does not replace it: the
	// call ends at OpTimeout, long before the caller's deadline. (The
	// clients Open builds time out reads at OpTimeout themselves, so this
	// uses a Store from New over a client whose own timeouts are long.)
	func() {
		ls := redisstore.New(redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true,
			DialTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute}), redisstore.Options{Prefix: "outage:", OpTimeout: opTimeout})
		defer ls.Close()
		long, cancel := context.WithTimeout(ctx, 20*opTimeout)
		defer cancel()
		if _, err := ls.Get(long, acct, "held"); !errors.Is(err, lockcore.ErrUnavailable) || long.Err() != nil {
			t.Errorf("Get with a caller deadline of 20×OpTimeout while paused: want ErrUnavailable at OpTimeout, before the caller's deadline; got %v (caller's context: %v)", err, long.Err())
		}
	}()
	srv.Resume()
	waitBack("after resume")
	wantUp("after resume")

	// The lock taken before the crash survived it (appendfsync always).
	st, err := s.Get(ctx, acct, "held")
	if err != nil || !st.Held || st.Lease.LeaseID != o.LeaseID {
		t.Errorf("Get(held) after the outages: want held by %s, got %+v, %v", o.LeaseID, st, err)
	}
}

// TestCrashDurability hammers acquire+release while Redis (appendfsync
// always) is SIGKILLed and restarted: no fencing token is ever issued twice
// and every token acknowledged after the restart is above every token
// acknowledged before the crash.
func TestCrashDurability(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := open(t, srv.URL(), "crash:", 500*time.Millisecond)
	acct := account(t, s, "crash")
	ctx := t.Context()

	// phase: 0 running before the crash, 1 crashed/restarting, 2 restarted.
	var phase atomic.Int32
	var stop atomic.Bool
	type ack struct {
		token      int64
		startPhase int32
		endPhase   int32
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d", w%3)
			for !stop.Load() {
				p0 := phase.Load()
				o := acquireOpts(300 * time.Millisecond)
				res, err := s.Acquire(ctx, acct, name, o)
				p1 := phase.Load()
				if err != nil {
					if !errors.Is(err, lockcore.ErrUnavailable) {
						t.Errorf("Acquire(%s): want nil or ErrUnavailable, got %v", name, err)
						return
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if !res.Acquired {
					time.Sleep(time.Millisecond)
					continue
				}
				mu.Lock()
				acks = append(acks, ack{token: res.Lease.FencingToken, startPhase: p0, endPhase: p1})
				mu.Unlock()
				if err := s.Release(ctx, acct, name, o.LeaseID); err != nil &&
					!errors.Is(err, lockcore.ErrUnavailable) && !errors.Is(err, lockcore.ErrLeaseNotCurrent) {
					t.Errorf("Release(%s): %v", name, err)
					return
				}
			}
		}()
	}
	// runPhase lets the workers run for at least 700 ms and until an
	// acquire that counts for phase p has been acknowledged (at most 30 s):
	// how many acquires fit in a fixed time depends on the scheduler, and
	// the checks below need at least one on each side of the crash.
	runPhase := func(p int32) {
		deadline := time.Now().Add(30 * time.Second)
		time.Sleep(700 * time.Millisecond)
		for time.Now().Before(deadline) {
			mu.Lock()
			seen := slices.ContainsFunc(acks, func(a ack) bool { return p == 0 && a.endPhase == 0 || p == 2 && a.startPhase == 2 })
			mu.Unlock()
			if seen {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	runPhase(0)
	phase.Store(1)
	srv.Kill()
	time.Sleep(100 * time.Millisecond)
	srv.Restart()
	// go-redis probes a dead server about once a second; wait until the
	// store answers again before timing the second phase.
	deadline := time.Now().Add(30 * time.Second)
	for s.Ping(ctx) != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	phase.Store(2)
	runPhase(2)
	stop.Store(true)
	wg.Wait()

	seen := map[int64]bool{}
	var maxBefore, minAfter int64 = 0, -1
	var nBefore, nAfter int
	for _, a := range acks {
		if seen[a.token] {
			t.Errorf("fencing token %d was issued twice", a.token)
		}
		seen[a.token] = true
		if a.endPhase == 0 {
			nBefore++
			maxBefore = max(maxBefore, a.token)
		}
		if a.startPhase == 2 {
			nAfter++
			if minAfter < 0 || a.token < minAfter {
				minAfter = a.token
			}
		}
	}
	if nBefore == 0 || nAfter == 0 {
		t.Fatalf("want acknowledged acquires before the crash and after the restart, got %d and %d", nBefore, nAfter)
	}
	if minAfter <= maxBefore {
		t.Errorf("fencing went backwards over the crash: lowest token after restart %d <= highest acknowledged before %d", minAfter, maxBefore)
	}
	t.Logf("%d acquires before the crash (max token %d), %d after the restart (min token %d)", nBefore, maxBefore, nAfter, minAfter)
}

// TestKeyLayout checks on a real server that all keys of an account share
// one hash slot, that no unexpected keys are written, that lock keys carry a
// TTL and that the fence counter never does.
func TestKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	const prefix = "kl:"
	s := open(t, srv.URL(), prefix, slowOpTimeout)
	ctx := t.Context()
	acct := account(t, s, "layout")
	if _, err := s.UpsertGitHubAccount(ctx, 7, "gh-user"); err != nil {
		t.Fatalf("UpsertGitHubAccount: %v", err)
	}
	_, tok := lockcore.NewToken()
	if err := s.AddToken(ctx, acct, tok); err != nil {
		t.Fatalf("AddToken: %v", err)
	}
	_, tok2 := lockcore.NewToken()
	if _, err := s.RotateToken(ctx, tok, tok2); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}
	keep := acquireOpts(time.Minute)
	if _, err := s.Acquire(ctx, acct, "keep", keep); err != nil {
		t.Fatalf("Acquire(keep): %v", err)
	}
	gone := acquireOpts(time.Minute)
	goneRes, err := s.Acquire(ctx, acct, "gone", gone)
	if err != nil {
		t.Fatalf("Acquire(gone): %v", err)
	}
	if _, err := s.RenewAs(ctx, tok2, acct, "keep", keep.LeaseID, 2*time.Minute); err != nil {
		t.Fatalf("RenewAs(keep): %v", err)
	}
	if err := s.Release(ctx, acct, "gone", gone.LeaseID); err != nil {
		t.Fatalf("Release(gone): %v", err)
	}
	if _, err := s.List(ctx, acct); err != nil {
		t.Fatalf("List: %v", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	slices.Sort(keys)
	tag := prefix + "{a:" + acct + "}"
	// The live token tok2 has its mirror in the account's slot; the
	// rotated-out tok has none, and its revocation mark for a while.
	wantAcct := []string{tag + ":account", tag + ":fence", tag + ":held", tag + ":lock:keep", tag + ":revoked:" + tok.String(), tag + ":tok:" + tok2.String()}
	var acctKeys []string
	for _, k := range keys {
		if strings.HasPrefix(k, tag) {
			acctKeys = append(acctKeys, k)
		}
	}
	if !slices.Equal(acctKeys, wantAcct) {
		t.Errorf("keys of account %s: want %q, got %q", acct, wantAcct, acctKeys)
	}
	// Every key is either an account key (hash tag) or one of the global
	// index keys; there are 2 accounts, 1 token, 1 login, 1 GitHub id.
	var other []string
	for _, k := range keys {
		if !strings.Contains(k, "{a:") {
			other = append(other, k)
		}
	}
	wantOther := []string{prefix + "accounts", prefix + "gh:7", prefix + "login:layout", prefix + "token:" + tok.String(), prefix + "token:" + tok2.String()}
	slices.Sort(wantOther)
	if !slices.Equal(other, wantOther) {
		t.Errorf("global keys: want %q, got %q", wantOther, other)
	}
	// The rotated-out token is a tombstone that expires by itself.
	if v, err := rdb.Get(ctx, prefix+"token:"+tok.String()).Result(); err != nil || v != "rotated:"+tok2.String() {
		t.Errorf("old token key after rotation: want the tombstone rotated:<new hash>, got %q, %v", v, err)
	}
	if pttl, err := rdb.PTTL(ctx, prefix+"token:"+tok.String()).Result(); err != nil || pttl <= 0 || pttl > time.Minute {
		t.Errorf("PTTL of the tombstone: want in (0, 1m], got %v, %v", pttl, err)
	}
	if pttl, err := rdb.PTTL(ctx, prefix+"token:"+tok2.String()).Result(); err != nil || pttl != -1 {
		t.Errorf("PTTL of a live token: want -1, got %v, %v", pttl, err)
	}
	if got := keySlot("123456789"); got != 0x31C3%16384 {
		t.Fatalf("keySlot self-check: want %d, got %d", 0x31C3%16384, got)
	}
	want := keySlot(wantAcct[0])
	for _, k := range acctKeys {
		if got := keySlot(k); got != want {
			t.Errorf("key %s is in slot %d, want the account's slot %d", k, got, want)
		}
	}
	if pttl, err := rdb.PTTL(ctx, tag+":tok:"+tok2.String()).Result(); err != nil || pttl != -1 {
		t.Errorf("PTTL of a live token's mirror: want -1, got %v, %v", pttl, err)
	}
	if pttl, err := rdb.PTTL(ctx, tag+":revoked:"+tok.String()).Result(); err != nil || pttl <= time.Minute || pttl > 2*time.Minute {
		t.Errorf("PTTL of the rotated-out token's revocation mark: want in (1m, 2m], got %v, %v", pttl, err)
	}
	if pttl, err := rdb.PTTL(ctx, tag+":fence").Result(); err != nil || pttl != -1 {
		t.Errorf("PTTL of the fence key after a release: want -1 (no expiry), got %v, %v", pttl, err)
	}
	if pttl, err := rdb.PTTL(ctx, tag+":lock:keep").Result(); err != nil || pttl <= time.Minute || pttl > 2*time.Minute {
		t.Errorf("PTTL of a lock renewed for 2m: want in (1m, 2m], got %v, %v", pttl, err)
	}
	if n, err := rdb.Get(ctx, tag+":fence").Int64(); err != nil || n != goneRes.Lease.FencingToken {
		t.Errorf("fence counter after two new leases: want the second's token %d, got %d, %v", goneRes.Lease.FencingToken, n, err)
	}
}

// keySlot is Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, if
// the key has a non-empty one, else of the whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// TestFullRedisIsUnavailable: a Redis at its maxmemory under noeviction
// refuses writes with OOM; the store reports that as ErrUnavailable (a 503
// with Retry-After over HTTP), not as an internal error, and the lock held
// before is still held by its lease.
func TestFullRedisIsUnavailable(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	s := open(t, srv.URL(), "oom:", slowOpTimeout)
	ctx := t.Context()
	acct := account(t, s, "oom")
	held := acquireOpts(time.Hour)
	if _, err := s.Acquire(ctx, acct, "held", held); err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	_, hash := lockcore.NewToken()
	for name, call := range map[string]func() error{
		"Acquire":       func() error { _, err := s.Acquire(ctx, acct, "new", acquireOpts(time.Minute)); return err },
		"Renew":         func() error { _, err := s.Renew(ctx, acct, "held", held.LeaseID, time.Hour); return err },
		"EnsureAccount": func() error { _, _, err := s.EnsureAccount(ctx, "someone-new"); return err },
		"AddToken":      func() error { return s.AddToken(ctx, acct, hash) },
	} {
		if err := call(); !errors.Is(err, lockcore.ErrUnavailable) {
			t.Errorf("%s on a full Redis: %v, want an error wrapping ErrUnavailable", name, err)
		}
	}
	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Get(ctx, acct, "held"); err != nil || !l.Held || l.Lease.LeaseID != held.LeaseID {
		t.Fatalf("the lock held before: %+v, %v", l, err)
	}
}

// replyDropper is a TCP proxy to a Redis server that, once armed, lets the
// next EVALSHA through to Redis but, instead of passing Redis' reply back,
// closes the client's connection: the script ran, and the reply was lost.
type replyDropper struct {
	ln     net.Listener
	target string
	arm    atomic.Bool
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &replyDropper{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			var drop atomic.Bool
			go func() { // client to Redis
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && p.arm.CompareAndSwap(true, false) {
							drop.Store(true)
						}
						if _, werr := u.Write(buf[:n]); werr != nil {
							err = werr
						}
					}
					if err != nil {
						u.Close()
						return
					}
				}
			}()
			go func() { // Redis to client
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && drop.Load() {
						c.Close()
						u.Close()
						return
					}
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							err = werr
						}
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestReleaseNotRetried checks that the standalone client does not retry a
// command whose reply was lost: a retried release.lua would find its own
// release done and misreport it as ErrLeaseNotCurrent. The caller must get
// ErrUnavailable (the outcome is unknown), and the release did happen.
func TestReleaseNotRetried(t *testing.T) {
	srv := redistest.Start(t)
	p := newReplyDropper(t, srv.Addr())
	s := open(t, "redis://"+p.ln.Addr().String(), "noretry:", slowOpTimeout)
	ctx := t.Context()
	acct := account(t, s, "noretry")
	acquire := func(name string) lockcore.AcquireOptions {
		t.Helper()
		o := acquireOpts(time.Minute)
		if res, err := s.Acquire(ctx, acct, name, o); err != nil || !res.Acquired {
			t.Fatalf("Acquire(%s): want acquired, got %+v, %v", name, res, err)
		}
		return o
	}
	// One release first, so that Redis knows release.lua and the armed
	// EVALSHA runs it (rather than answering NOSCRIPT).
	if err := s.Release(ctx, acct, "warm", acquire("warm").LeaseID); err != nil {
		t.Fatalf("Release(warm): %v", err)
	}
	o := acquire("job")
	p.arm.Store(true)
	err := s.Release(ctx, acct, "job", o.LeaseID)
	if p.arm.Load() {
		t.Fatal("the proxy saw no EVALSHA for the release")
	}
	if !errors.Is(err, lockcore.ErrUnavailable) || errors.Is(err, lockcore.ErrLeaseNotCurrent) {
		t.Errorf("Release whose reply was lost: want an error wrapping ErrUnavailable (not retried), got %v", err)
	}
	if st, err := s.Get(ctx, acct, "job"); err != nil || st.Held {
		t.Errorf("Get(job) after the release whose reply was lost: want free (the script ran), got %+v, %v", st, err)
	}
}
