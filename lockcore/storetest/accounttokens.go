package storetest

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/octostore/octostore/lockcore"
)

// testRevokeAccountTokens checks the optional lockcore.AccountTokens of a
// store that has it: every live token of the account is retired (rotated-in
// ones included), through every lookup and the TokenLocks writes; other
// accounts' tokens stay; tokens added afterwards work; and a rotation loop
// racing with it ends with no token of the account left. A store without
// AccountTokens has nothing to check here (the backends of this repository
// all have it and say so with an interface guard).
func testRevokeAccountTokens(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	at, ok := s.(lockcore.AccountTokens)
	if !ok {
		t.Logf("%T has no lockcore.AccountTokens; nothing to check", s)
		return
	}
	alice := newAccount(t, s, "alice")
	bob := newAccount(t, s, "bob")
	var hs [4]lockcore.TokenHash
	for i := range 3 {
		_, hs[i] = lockcore.NewToken()
		if err := s.AddToken(ctx, alice, hs[i]); err != nil {
			t.Fatalf("AddToken(alice): %v", err)
		}
	}
	_, hb := lockcore.NewToken()
	if err := s.AddToken(ctx, bob, hb); err != nil {
		t.Fatalf("AddToken(bob): %v", err)
	}
	_, hs[3] = lockcore.NewToken()
	if _, err := s.RotateToken(ctx, hs[2], hs[3]); err != nil {
		t.Fatalf("RotateToken: %v", err)
	}

	n, err := at.RevokeAccountTokens(ctx, alice)
	if err != nil || n != 3 {
		t.Fatalf("RevokeAccountTokens(alice with 3 live tokens): want 3, nil; got %d, %v", n, err)
	}
	for i, h := range hs {
		wantNoToken(t, s, "alice's token "+string(rune('1'+i))+" after RevokeAccountTokens", h)
	}
	if tl, ok := s.(lockcore.TokenLocks); ok {
		_, err := tl.AcquireAs(ctx, hs[0], alice, "cut", opts(lockcore.NewLeaseID(), longTTL))
		wantErr(t, "AcquireAs with a token of the cut-off account", err, lockcore.ErrNotFound)
		wantFree(t, s, alice, "cut")
	}
	wantTokenAccount(t, s, "bob's token after alice's were revoked", hb, bob)

	if n, err := at.RevokeAccountTokens(ctx, alice); err != nil || n != 0 {
		t.Errorf("RevokeAccountTokens(alice again): want 0, nil; got %d, %v", n, err)
	}
	if n, err := at.RevokeAccountTokens(ctx, lockcore.NewAccountID()); err != nil || n != 0 {
		t.Errorf("RevokeAccountTokens(unknown account): want 0, nil; got %d, %v", n, err)
	}
	_, fresh := lockcore.NewToken()
	if err := s.AddToken(ctx, alice, fresh); err != nil {
		t.Fatalf("AddToken(alice) after the revocation: %v", err)
	}
	wantTokenAccount(t, s, "a token added after the revocation", fresh, alice)

	// A thief rotating alice's token over and over while the operator cuts
	// the account off: once both are done, no token of the chain works.
	// The thief rotates until it is cut off, however many rotations fit
	// before the revocation (a fixed count can all finish first when the
	// scheduler runs the loop alone, e.g. with GOMAXPROCS=1); a rotation
	// that starts after RevokeAccountTokens has returned must fail. stop
	// ends the loop if the test ends first.
	var (
		mu      sync.Mutex
		chain   = []lockcore.TokenHash{fresh}
		done    = make(chan error, 1)
		revoked atomic.Bool
		stop    = make(chan struct{})
	)
	defer close(stop)
	go func() {
		cur := fresh
		for {
			select {
			case <-stop:
				done <- errors.New("the test ended before the revocation")
				return
			default:
			}
			late := revoked.Load() // read before the rotation starts
			_, next := lockcore.NewToken()
			mu.Lock()
			chain = append(chain, next)
			mu.Unlock()
			if _, err := s.RotateToken(ctx, cur, next); err != nil {
				if errors.Is(err, lockcore.ErrNotFound) {
					done <- nil // cut off: the token it held was revoked
				} else {
					done <- err
				}
				return
			}
			if late {
				done <- errors.New("a rotation started after RevokeAccountTokens returned succeeded")
				return
			}
			cur = next
		}
	}()
	// Let the thief get going first, so that the revocation meets
	// rotations in flight.
	for rotated := 0; rotated < 10; {
		select {
		case err := <-done:
			t.Fatalf("the rotation loop ended before the revocation: %v", err)
		default:
		}
		mu.Lock()
		rotated = len(chain) - 2
		mu.Unlock()
		runtime.Gosched()
	}
	var revErr error
	for range 5 { // "a retry finishes the job"
		if _, revErr = at.RevokeAccountTokens(ctx, alice); revErr == nil {
			break
		}
	}
	if revErr != nil {
		t.Fatalf("RevokeAccountTokens during a rotation loop, 5 tries: %v", revErr)
	}
	revoked.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("rotation loop: %v", err)
	}
	for i, h := range chain {
		if _, err := s.AccountByToken(ctx, h); !errors.Is(err, lockcore.ErrNotFound) {
			t.Fatalf("token %d of %d of the rotation chain still authenticates (err %v)", i+1, len(chain), err)
		}
	}
	wantTokenAccount(t, s, "bob's token at the end", hb, bob)
}
