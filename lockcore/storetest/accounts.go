package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/octostore/octostore/lockcore"
)

func testAccounts(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()

	n, err := s.CountAccounts(ctx)
	if err != nil || n != 0 {
		t.Fatalf("CountAccounts on a fresh store: want 0, nil; got %d, %v", n, err)
	}

	a, created, err := s.EnsureAccount(ctx, "ops-team")
	if err != nil {
		t.Fatalf("EnsureAccount(ops-team): want nil error, got %v", err)
	}
	if !created {
		t.Errorf("EnsureAccount(ops-team) first call: want created=true, got false")
	}
	if a.ID == "" || a.Login != "ops-team" || a.GitHubID != 0 || a.CreatedAt.IsZero() {
		t.Errorf("EnsureAccount(ops-team): want {ID:non-empty Login:ops-team GitHubID:0 CreatedAt:set}, got %+v", a)
	}
	a2, created, err := s.EnsureAccount(ctx, "ops-team")
	if err != nil {
		t.Fatalf("EnsureAccount(ops-team) again: want nil error, got %v", err)
	}
	if created {
		t.Errorf("EnsureAccount(ops-team) second call: want created=false, got true")
	}
	if a2.ID != a.ID || a2.Login != a.Login {
		t.Errorf("EnsureAccount(ops-team) second call: want the same account %+v, got %+v", a, a2)
	}

	for _, bad := range []string{"", "has space", "slash/y", strings.Repeat("a", 65), "ünï", "{x}"} {
		_, _, err := s.EnsureAccount(ctx, bad)
		wantErr(t, fmt.Sprintf("EnsureAccount(%q)", bad), err, lockcore.ErrInvalidLogin)
	}

	g, err := s.UpsertGitHubAccount(ctx, 42, "octocat")
	if err != nil {
		t.Fatalf("UpsertGitHubAccount(42, octocat): want nil error, got %v", err)
	}
	if g.ID == "" || g.Login != "octocat" || g.GitHubID != 42 || g.CreatedAt.IsZero() {
		t.Errorf("UpsertGitHubAccount(42, octocat): want {ID:non-empty Login:octocat GitHubID:42 CreatedAt:set}, got %+v", g)
	}
	if g.ID == a.ID {
		t.Errorf("UpsertGitHubAccount(42, octocat): want an id distinct from the operator account %q, got the same", a.ID)
	}
	g2, err := s.UpsertGitHubAccount(ctx, 42, "octocat")
	if err != nil {
		t.Fatalf("UpsertGitHubAccount(42, octocat) again: want nil error, got %v", err)
	}
	if g2.ID != g.ID {
		t.Errorf("UpsertGitHubAccount(42) twice: want the same account id %q, got %q", g.ID, g2.ID)
	}
	g3, err := s.UpsertGitHubAccount(ctx, 42, "octocat-renamed")
	if err != nil {
		t.Fatalf("UpsertGitHubAccount(42, octocat-renamed): want nil error, got %v", err)
	}
	if g3.ID != g.ID || g3.Login != "octocat-renamed" || g3.GitHubID != 42 {
		t.Errorf("UpsertGitHubAccount(42) after a rename: want {ID:%s Login:octocat-renamed GitHubID:42}, got %+v", g.ID, g3)
	}
	byID, err := s.AccountByID(ctx, g.ID)
	if err != nil {
		t.Fatalf("AccountByID(%q): want nil error, got %v", g.ID, err)
	}
	if byID.ID != g.ID || byID.Login != "octocat-renamed" || byID.GitHubID != 42 {
		t.Errorf("AccountByID after a rename: want {ID:%s Login:octocat-renamed GitHubID:42}, got %+v", g.ID, byID)
	}
	other, err := s.UpsertGitHubAccount(ctx, 43, "octocat")
	if err != nil {
		t.Fatalf("UpsertGitHubAccount(43, octocat): want nil error, got %v", err)
	}
	if other.ID == g.ID || other.GitHubID != 43 {
		t.Errorf("UpsertGitHubAccount(43): want a new account with GitHubID 43 distinct from %q, got %+v", g.ID, other)
	}

	// An operator-made account is distinct from a GitHub account with the
	// same login.
	op, created, err := s.EnsureAccount(ctx, "octocat")
	if err != nil {
		t.Fatalf("EnsureAccount(octocat): want nil error, got %v", err)
	}
	if !created || op.GitHubID != 0 || op.ID == other.ID || op.ID == g.ID {
		t.Errorf("EnsureAccount(octocat) beside GitHub user octocat: want a new operator account (created, GitHubID 0), got created=%v %+v", created, op)
	}

	byID, err = s.AccountByID(ctx, a.ID)
	if err != nil || byID.ID != a.ID || byID.Login != "ops-team" || byID.GitHubID != 0 {
		t.Errorf("AccountByID(%q): want {ID:%s Login:ops-team GitHubID:0}, nil; got %+v, %v", a.ID, a.ID, byID, err)
	}
	_, err = s.AccountByID(ctx, lockcore.NewAccountID())
	wantErr(t, "AccountByID(unknown)", err, lockcore.ErrNotFound)

	n, err = s.CountAccounts(ctx)
	if err != nil || n != 4 {
		t.Errorf("CountAccounts after creating 4 accounts: want 4, nil; got %d, %v", n, err)
	}
}

func testTokens(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "alice")
	other := newAccount(t, s, "bob")

	_, h1 := lockcore.NewToken()
	_, h2 := lockcore.NewToken()
	_, hb := lockcore.NewToken()
	for _, tc := range []struct {
		acct string
		h    lockcore.TokenHash
	}{{acct, h1}, {acct, h2}, {other, hb}} {
		if err := s.AddToken(ctx, tc.acct, tc.h); err != nil {
			t.Fatalf("AddToken(%s): want nil error, got %v", tc.acct, err)
		}
	}
	wantTokenAccount(t, s, "first token of alice", h1, acct)
	wantTokenAccount(t, s, "second token of alice", h2, acct)
	wantTokenAccount(t, s, "token of bob", hb, other)

	tok, h := lockcore.NewToken()
	if h != lockcore.HashToken(tok) {
		t.Fatalf("NewToken: want hash = HashToken(token), got a different hash")
	}
	wantNoToken(t, s, "unknown hash", h)
	wantErr(t, "AddToken(unknown account)", s.AddToken(ctx, lockcore.NewAccountID(), h), lockcore.ErrNotFound)
	wantNoToken(t, s, "hash added to an unknown account", h)

	// Rotate h1 to h3.
	_, h3 := lockcore.NewToken()
	got, err := s.RotateToken(ctx, h1, h3)
	if err != nil {
		t.Fatalf("RotateToken(alice's first token): want nil error, got %v", err)
	}
	if got.ID != acct || got.Login != "alice" {
		t.Errorf("RotateToken: want alice's account %s, got %+v", acct, got)
	}
	wantNoToken(t, s, "rotated-away token", h1)
	wantTokenAccount(t, s, "rotated-in token", h3, acct)
	wantTokenAccount(t, s, "alice's other token after a rotation", h2, acct)

	_, h4 := lockcore.NewToken()
	_, err = s.RotateToken(ctx, h1, h4)
	wantErr(t, "RotateToken(already rotated token)", err, lockcore.ErrNotFound)
	_, h5 := lockcore.NewToken()
	_, err = s.RotateToken(ctx, h5, h4)
	wantErr(t, "RotateToken(unknown token)", err, lockcore.ErrNotFound)
	wantNoToken(t, s, "new hash of a failed rotation", h4)

	if err := s.RevokeToken(ctx, h3); err != nil {
		t.Fatalf("RevokeToken: want nil error, got %v", err)
	}
	wantNoToken(t, s, "revoked token", h3)
	wantTokenAccount(t, s, "alice's other token after a revoke", h2, acct)
	wantErr(t, "RevokeToken(revoked token)", s.RevokeToken(ctx, h3), lockcore.ErrNotFound)
	wantErr(t, "RevokeToken(unknown token)", s.RevokeToken(ctx, h5), lockcore.ErrNotFound)
	wantTokenAccount(t, s, "token of bob after alice's changes", hb, other)
}

// AccountIDByToken is the optional one-step token lookup a store may offer
// (the HTTP handlers use it when present). A store that has it must answer
// it exactly as AccountByToken, which every token check of the suite
// verifies.
type AccountIDByToken interface {
	AccountIDByToken(ctx context.Context, hash lockcore.TokenHash) (string, error)
}

// wantTokenAccount checks that hash authenticates as account id, through
// AccountByToken and, when the store has it, AccountIDByToken.
func wantTokenAccount(t *testing.T, s lockcore.Store, what string, h lockcore.TokenHash, id string) {
	t.Helper()
	a, err := s.AccountByToken(t.Context(), h)
	if err != nil {
		t.Errorf("AccountByToken(%s): want account %s, got error %v", what, id, err)
	} else if a.ID != id {
		t.Errorf("AccountByToken(%s): want account %s, got %+v", what, id, a)
	}
	if ids, ok := s.(AccountIDByToken); ok {
		got, err := ids.AccountIDByToken(t.Context(), h)
		if err != nil || got != id {
			t.Errorf("AccountIDByToken(%s): want %s, nil; got %q, %v", what, id, got, err)
		}
	}
}

// wantNoToken checks that hash authenticates no one: ErrNotFound from
// AccountByToken and, when the store has it, AccountIDByToken.
func wantNoToken(t *testing.T, s lockcore.Store, what string, h lockcore.TokenHash) {
	t.Helper()
	_, err := s.AccountByToken(t.Context(), h)
	wantErr(t, "AccountByToken("+what+")", err, lockcore.ErrNotFound)
	if ids, ok := s.(AccountIDByToken); ok {
		_, err := ids.AccountIDByToken(t.Context(), h)
		wantErr(t, "AccountIDByToken("+what+")", err, lockcore.ErrNotFound)
	}
}

func testRotateTokenConcurrent(t *testing.T, inst *Instance) {
	s, ctx := inst.Store, t.Context()
	acct := newAccount(t, s, "carol")
	_, old := lockcore.NewToken()
	if err := s.AddToken(ctx, acct, old); err != nil {
		t.Fatalf("AddToken: want nil error, got %v", err)
	}

	const n = 20
	news := make([]lockcore.TokenHash, n)
	errs := make([]error, n)
	accts := make([]lockcore.Account, n)
	for i := range news {
		_, news[i] = lockcore.NewToken()
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			accts[i], errs[i] = s.RotateToken(ctx, old, news[i])
		}()
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("concurrent RotateToken: want exactly one success, got rotations %d and %d both succeeding", winner, i)
			}
			winner = i
			if accts[i].ID != acct {
				t.Errorf("concurrent RotateToken %d: want account %s, got %+v", i, acct, accts[i])
			}
		case errors.Is(err, lockcore.ErrNotFound):
		default:
			t.Errorf("concurrent RotateToken %d: want nil or an error wrapping %q, got %v", i, lockcore.ErrNotFound, err)
		}
	}
	if winner < 0 {
		t.Fatalf("concurrent RotateToken: want exactly one success, got none")
	}
	wantNoToken(t, s, "old token after concurrent rotations", old)
	for i, h := range news {
		if i == winner {
			wantTokenAccount(t, s, "winning rotation's new token", h, acct)
			continue
		}
		_, err := s.AccountByToken(ctx, h)
		wantErr(t, "AccountByToken(losing rotation's new token)", err, lockcore.ErrNotFound)
	}
}
