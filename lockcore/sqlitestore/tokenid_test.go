package sqlitestore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// TestAccountIDByToken checks that the one-lookup path answers as
// AccountByToken does: the id for a live token, ErrNotFound for unknown,
// revoked and rotated-away tokens, ErrUnavailable on a closed store.
func TestAccountIDByToken(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "tid.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	newAccount := func(login string) string {
		a, _, err := s.EnsureAccount(ctx, login)
		if err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	acct, other := newAccount("tokens"), newAccount("other")
	_, h1 := lockcore.NewToken()
	_, h2 := lockcore.NewToken()
	_, h3 := lockcore.NewToken()
	_, hOther := lockcore.NewToken()
	for _, x := range []struct {
		id string
		h  lockcore.TokenHash
	}{{acct, h1}, {acct, h2}, {other, hOther}} {
		if err := s.AddToken(ctx, x.id, x.h); err != nil {
			t.Fatal(err)
		}
	}
	same := func(what string, h lockcore.TokenHash, wantID string) {
		t.Helper()
		id, err := s.AccountIDByToken(ctx, h)
		a, err2 := s.AccountByToken(ctx, h)
		if wantID == "" {
			if !errors.Is(err, lockcore.ErrNotFound) || !errors.Is(err2, lockcore.ErrNotFound) {
				t.Fatalf("%s: AccountIDByToken %q, %v; AccountByToken %v: want ErrNotFound from both", what, id, err, err2)
			}
			return
		}
		if err != nil || err2 != nil || id != wantID || a.ID != wantID {
			t.Fatalf("%s: AccountIDByToken %q, %v; AccountByToken %q, %v; want %q", what, id, err, a.ID, err2, wantID)
		}
	}
	same("live token", h1, acct)
	same("second token of the account", h2, acct)
	same("other account's token", hOther, other)
	same("unknown token", h3, "")
	if err := s.RevokeToken(ctx, h2); err != nil {
		t.Fatal(err)
	}
	same("revoked token", h2, "")
	if _, err := s.RotateToken(ctx, h1, h3); err != nil {
		t.Fatal(err)
	}
	same("rotated-away token", h1, "")
	same("token rotated to", h3, acct)
	s.Close()
	if _, err := s.AccountIDByToken(ctx, h3); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("closed store: %v, want ErrUnavailable", err)
	}
}
