package redisstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestAccessRefusalsAreUnavailable: a Redis that refuses the store's
// credentials or ACL permissions while the server runs (a password
// changed, a user disabled, an ACL user without TIME or EVALSHA) cannot
// serve until an operator acts: the lock operations report
// ErrUnavailable (503 store_unavailable, as /health answers then), not a
// plain error (500 internal, "a bug"). A wrong password at Open stays a
// configuration error.
func TestAccessRefusalsAreUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	for _, args := range [][]any{
		{"ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all"},
		{"ACL", "SETUSER", "notime", "on", ">pw", "~*", "+@all", "-time"},
		{"ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-evalsha", "-eval"},
	} {
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	s := open(t, "redis://app:pw@"+srv.Addr(), "acl:", slowOpTimeout)
	id := account(t, s, "alice")

	for _, user := range []string{"notime", "noeval"} {
		u := open(t, "redis://"+user+":pw@"+srv.Addr(), "acl:", slowOpTimeout)
		if _, err := u.Acquire(ctx, id, "l", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
			t.Errorf("Acquire as ACL user %s: want an error wrapping ErrUnavailable, got %v", user, err)
		}
		if _, err := u.Renew(ctx, id, "l", "lease", time.Minute); !errors.Is(err, lockcore.ErrUnavailable) {
			t.Errorf("Renew as ACL user %s: want an error wrapping ErrUnavailable, got %v", user, err)
		}
	}

	// The password changes under a running store: its connections are
	// closed, and every new one is refused with WRONGPASS.
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "resetpass", ">other").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "app").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, id, "l", acquireOpts(time.Minute)); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Acquire after the password changed: want an error wrapping ErrUnavailable, got %v", err)
	}
	if err := s.Release(ctx, id, "l", "lease"); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Release after the password changed: want an error wrapping ErrUnavailable, got %v", err)
	}

	// The password is right again: the same store serves again.
	if err := admin.Do(ctx, "ACL", "SETUSER", "app", "resetpass", ">pw").Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Acquire(ctx, id, "l", acquireOpts(time.Minute)); err != nil || !res.Acquired {
		t.Errorf("Acquire after the password was restored: got %+v, %v", res, err)
	}

	// A password is required of a store that opened without one: its new
	// connections cannot authenticate, and a lock script (more than ten
	// arguments) gets "Protocol error: unauthenticated multibulk length".
	srv2 := redistest.Start(t)
	s2 := open(t, srv2.URL(), "acl:", slowOpTimeout)
	id2 := account(t, s2, "bob")
	admin2 := redis.NewClient(&redis.Options{Addr: srv2.Addr(), PoolSize: 1})
	defer admin2.Close()
	if err := admin2.Do(ctx, "CONFIG", "SET", "requirepass", "now").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin2.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	opts := acquireOpts(time.Minute)
	opts.Metadata = new(string)
	if _, err := s2.Acquire(ctx, id2, "l", opts); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Acquire after a password became required: want an error wrapping ErrUnavailable, got %v", err)
	}
	if _, err := s2.AccountIDByToken(ctx, lockcore.HashToken("os_x")); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("AccountIDByToken after a password became required: want an error wrapping ErrUnavailable, got %v", err)
	}

	// At Open, a wrong password is a configuration error.
	if _, err := redisstore.Open(ctx, redisstore.Config{URL: "redis://app:wrong@" + srv.Addr(), OpTimeout: slowOpTimeout}); err == nil || errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Open with a wrong password: want an error not wrapping ErrUnavailable, got %v", err)
	}
}

// TestServerStoreWithoutClientCommand: a store opened as a server names
// its connections for ServersConnected, but a Redis user that may not run
// CLIENT (an ACL user given only what the store needs) served before
// connections were named, and must go on serving: Open and the lock
// operations work, unnamed.
func TestServerStoreWithoutClientCommand(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "noclient", "on", ">pw", "~*", "+@all", "-client").Err(); err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.Open(ctx, redisstore.Config{URL: "redis://noclient:pw@" + srv.Addr(), Prefix: "nc:", OpTimeout: slowOpTimeout, Server: true})
	if err != nil {
		t.Fatalf("Open as a server with a Redis user that may not run CLIENT: %v; want it open (unnamed connections)", err)
	}
	defer s.Close()
	id := account(t, s, "alice")
	if res, err := s.Acquire(ctx, id, "l", acquireOpts(time.Minute)); err != nil || !res.Acquired {
		t.Fatalf("Acquire: %+v, %v", res, err)
	}
}
