package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
)

// serverErr is an error reply from Redis, as go-redis reports one.
type serverErr string

func (e serverErr) Error() string { return string(e) }
func (serverErr) RedisError()     {}

var _ redis.Error = serverErr("")

func TestFailTranslation(t *testing.T) {
	s := &Store{}
	cases := []struct {
		err         error
		unavailable bool
	}{
		{serverErr("LOADING Redis is loading the dataset in memory"), true},
		{serverErr("CLUSTERDOWN The cluster is down"), true},
		{serverErr("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{serverErr("MASTERDOWN Link with MASTER is down"), true},
		{serverErr("BUSY Redis is busy running a script"), true},
		{serverErr("READONLY You can't write against a read only replica."), true},
		{serverErr("NOREPLICAS Not enough good replicas to write."), true},
		{serverErr("MOVED 3999 127.0.0.1:6381"), true},
		{serverErr("ASK 3999 127.0.0.1:6381"), true},
		{serverErr("OOM command not allowed when used memory > 'maxmemory'. script: 32e2, on @user_script:73."), true},
		{serverErr("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk."), true},
		{serverErr("ERR max number of clients reached"), true},
		{serverErr("NOAUTH Authentication required."), true},
		{serverErr("WRONGPASS invalid username-password pair or user is disabled."), true},
		{serverErr("NOPERM this user has no permissions to run the 'evalsha' command"), true},
		{serverErr("ERR The user executing the script can't run this command or subcommand script: 0917, on @user_script:35."), true},
		{serverErr("ERR Protocol error: unauthenticated multibulk length"), true},
		{serverErr("ERR Script attempted to access a non local key in a cluster node script: 61697e72ab3f0a64441c9c913ad8a068b9f6879f, on @user_script:20."), true},
		{serverErr("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{serverErr("ERR Error running script (call to f_x): @user_script:1: boom"), false},
		{serverErr("NOSCRIPT No matching script. Please use EVAL."), false},
		{context.DeadlineExceeded, true},
		{context.Canceled, true},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{redis.ErrClosed, true},
		{redis.ErrPoolTimeout, true},
	}
	for _, c := range cases {
		got := s.fail("op", c.err)
		if errors.Is(got, lockcore.ErrUnavailable) != c.unavailable {
			t.Errorf("fail(%v): want wrapping ErrUnavailable = %v, got %v", c.err, c.unavailable, got)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("fail(%v): want the original error kept in the chain, got %v", c.err, got)
		}
	}
}

// TestNotProved: only an array starting with the not-proved status is a
// refusal, and one without its server time is an error, not a refusal
// with a deadline in 1970.
func TestNotProved(t *testing.T) {
	for _, c := range []struct {
		v       any
		now     int64
		refused bool
		bad     bool
	}{
		{[]any{int64(-1), int64(1796550000000)}, 1796550000000, true, false},
		{[]any{int64(1), "lease", int64(3)}, 0, false, false},
		{[]any{int64(0), int64(5)}, 0, false, false},
		{int64(1), 0, false, false},
		{int64(-1), 0, false, false},
		{[]any{}, 0, false, false},
		{[]any{int64(-1)}, 0, true, true},
		{[]any{int64(-1), "soon"}, 0, true, true},
	} {
		now, refused, err := notProved(c.v)
		if now != c.now || refused != c.refused || (err != nil) != c.bad {
			t.Errorf("notProved(%v) = %d, %v, %v; want %d, %v, error %v", c.v, now, refused, err, c.now, c.refused, c.bad)
		}
	}
}
