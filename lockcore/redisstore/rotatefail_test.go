package redisstore

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore"
)

// cancelAfterSet is a go-redis hook that cancels a context once a SET of
// one key has been answered: a rotation whose caller goes away (the HTTP
// client disconnects, or its deadline passes) right after that step. With
// cmd set, it waits for that command instead of "set".
type cancelAfterSet struct {
	passHooks
	key    string
	cancel context.CancelFunc
	cmd    string
}

// passHooks gives a go-redis hook that only wraps single commands the
// dial and pipeline hooks, which pass through.
type passHooks struct{}

func (passHooks) DialHook(next redis.DialHook) redis.DialHook { return next }
func (passHooks) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h cancelAfterSet) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		name := h.cmd
		if name == "" {
			name = "set"
		}
		if a := cmd.Args(); len(a) > 1 && cmd.Name() == name && a[1] == h.key {
			h.cancel()
		}
		return err
	}
}

// TestRotateFailureTakesNewTokenBack checks that a rotation that fails
// before it retires the old token leaves no trace of the new one: no
// token key and no mirror (keys without a TTL, for a token nobody was
// given, so every such failure would add two keys for ever), while the
// old token still names its account.
func TestRotateFailureTakesNewTokenBack(t *testing.T) {
	// The caller goes away after the new token key is set, and after the
	// old token's mirror is deleted: the last step before rotate.lua,
	// which go-redis then does not send.
	for _, step := range []string{"set new token key", "del old mirror"} {
		t.Run(step, func(t *testing.T) { testRotateFailureTakesNewTokenBack(t, step) })
	}
}

func testRotateFailureTakesNewTokenBack(t *testing.T, step string) {
	s, client, acct, old := rotateEnv(t)
	ctx := t.Context()
	_, next := lockcore.NewToken()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hook := cancelAfterSet{key: s.tokenKey(next), cancel: cancel}
	if step == "del old mirror" {
		hook = cancelAfterSet{key: s.mirrorKey(s.tag(acct.ID), old), cancel: cancel, cmd: "del"}
	}
	client.AddHook(hook)

	if _, err := s.RotateToken(rctx, old, next); err == nil {
		t.Fatal("RotateToken with its context cancelled half-way: want an error, got success")
	}
	for _, k := range []string{s.tokenKey(next), s.mirrorKey(s.tag(acct.ID), next)} {
		if n, err := client.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("after a failed rotation the new token's key %s exists (%d, %v): a live token nobody was given, kept for ever", k, n, err)
		}
	}
	if id, err := s.AccountIDByToken(ctx, old); err != nil || id != acct.ID {
		t.Errorf("after a failed rotation the old token must still name its account: got %q, %v", id, err)
	}
	if _, err := s.AccountIDByToken(ctx, next); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("the new token of a failed rotation: want ErrNotFound, got %v", err)
	}
}

// loseScriptReply is a go-redis hook that loses the reply to a script
// call whose first key is key, as a deadline or a client that went away
// does: it ends the caller's context (cancel) and fails the call with
// context.Canceled. With ran, the script is sent and runs first; without,
// it is never sent.
type loseScriptReply struct {
	passHooks
	key    string
	ran    bool
	cancel context.CancelFunc
}

func (h loseScriptReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		a := cmd.Args()
		if n := cmd.Name(); (n != "evalsha" && n != "eval") || len(a) < 4 || a[3] != h.key {
			return next(ctx, cmd)
		}
		if h.ran {
			if err := next(ctx, cmd); err != nil {
				return err // NOSCRIPT: go-redis sends EVAL next
			}
		}
		h.cancel()
		cmd.SetErr(context.Canceled)
		return context.Canceled
	}
}

// TestRotateWithALostReply: a rotation whose rotate.lua ran but whose
// reply was lost, with the caller's context ended, succeeds, with the new
// token naming the account, the old one retired and its revocation mark
// set again after the retirement, rather than failing with old retired and
// new unknown to the caller; one whose script never ran still fails,
// leaving old live and no trace of new (a token nobody was given).
func TestRotateWithALostReply(t *testing.T) {
	for _, ran := range []bool{true, false} {
		t.Run(map[bool]string{true: "ran", false: "never sent"}[ran], func(t *testing.T) {
			s, client, acct, old := rotateEnv(t)
			ctx := t.Context()
			_, next := lockcore.NewToken()
			mark := s.markKey(s.tag(acct.ID), old)
			// The second setting of old's mark is seen only if the first
			// is gone when it comes.
			remarked := false
			s.retireHook = func() {
				remarked = true
				if err := client.Del(context.Background(), mark).Err(); err != nil {
					t.Error(err)
				}
			}
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			client.AddHook(loseScriptReply{key: s.tokenKey(old), ran: ran, cancel: cancel})

			got, err := s.RotateToken(rctx, old, next)
			if !ran {
				if err == nil {
					t.Fatal("RotateToken whose script was never sent: want an error, got success")
				}
				if id, err := s.AccountIDByToken(ctx, old); err != nil || id != acct.ID {
					t.Errorf("the old token after a rotation that never ran: %q, %v; want it to name %s", id, err, acct.ID)
				}
				for _, k := range []string{s.tokenKey(next), s.mirrorKey(s.tag(acct.ID), next)} {
					if n, err := client.Exists(ctx, k).Result(); err != nil || n != 0 {
						t.Errorf("after a rotation that never ran the new token's key %s exists (%d, %v): a live token nobody was given, kept for ever", k, n, err)
					}
				}
				return
			}
			if err != nil || got.ID != acct.ID {
				t.Fatalf("RotateToken whose script ran but whose reply was lost: %+v, %v; want success for %s", got, err, acct.ID)
			}
			if id, err := s.AccountIDByToken(ctx, next); err != nil || id != acct.ID {
				t.Errorf("the new token: %q, %v; want it to name %s", id, err, acct.ID)
			}
			if _, err := s.AccountIDByToken(ctx, old); !errors.Is(err, lockcore.ErrNotFound) {
				t.Errorf("the old token after the rotation: want ErrNotFound, got %v", err)
			}
			if !remarked {
				t.Error("old's revocation mark was not set again after the retirement")
			}
			if n, err := client.Exists(ctx, mark).Result(); err != nil || n != 1 {
				t.Errorf("old's revocation mark after the rotation: exists %d, %v; want it set again", n, err)
			}
		})
	}
}

// rotateEnv starts a redis-server and returns a Store over a client of
// it (hooks can be added to the client), an account and a token of it.
func rotateEnv(t *testing.T) (*Store, *redis.Client, lockcore.Account, lockcore.TokenHash) {
	t.Helper()
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	s := New(client, Options{})
	t.Cleanup(func() { s.Close() })
	acct, _, err := s.EnsureAccount(t.Context(), "rotfail")
	if err != nil {
		t.Fatal(err)
	}
	_, old := lockcore.NewToken()
	if err := s.AddToken(t.Context(), acct.ID, old); err != nil {
		t.Fatal(err)
	}
	return s, client, acct, old
}
