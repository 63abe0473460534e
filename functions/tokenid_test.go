package functions_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// idStore is a Store that also offers the optional AccountIDByToken, and
// counts which of the two lookups the handler uses.
type idStore struct {
	lockcore.Store
	full, idOnly atomic.Int64
}

func (s *idStore) AccountByToken(ctx context.Context, h lockcore.TokenHash) (lockcore.Account, error) {
	s.full.Add(1)
	return s.Store.AccountByToken(ctx, h)
}

func (s *idStore) AccountIDByToken(ctx context.Context, h lockcore.TokenHash) (string, error) {
	s.idOnly.Add(1)
	a, err := s.Store.AccountByToken(ctx, h)
	return a.ID, err
}

// TestAuthUsesAccountIDByToken checks that authentication takes the
// one-step id lookup when the store has it, and that revocation and
// rotation still take effect at once through it.
func TestAuthUsesAccountIDByToken(t *testing.T) {
	ctx := context.Background()
	inner, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "id.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	st := &idStore{Store: inner}
	acct, _, err := st.EnsureAccount(ctx, "idonly")
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		t.Fatal(err)
	}
	h := functions.New(functions.Deps{Store: st, StoreName: "sqlite", OpTimeout: testOpTimeout})
	call := func(path, token, body string) (int, map[string]any) {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var v map[string]any
		json.Unmarshal(w.Body.Bytes(), &v)
		return w.Code, v
	}

	code, v := call("/locks/a/acquire", tok, `{"lease_id":"l1"}`)
	if code != http.StatusOK || v["lease_id"] != "l1" {
		t.Fatalf("acquire: %d %v", code, v)
	}
	// The lock lives in the account the id lookup named.
	if st2, err := inner.Get(ctx, acct.ID, "a"); err != nil || !st2.Held {
		t.Fatalf("lock not in the token's account: %+v %v", st2, err)
	}
	code, v = call("/auth/token/rotate", tok, ``)
	if code != http.StatusOK || v["login"] != "idonly" || v["account_id"] != acct.ID {
		t.Fatalf("rotate: %d %v", code, v)
	}
	if code, _ := call("/locks/a/release", tok, `{"lease_id":"l1"}`); code != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %d, want 401", code)
	}
	newTok, _ := v["token"].(string)
	if code, v := call("/locks/a/release", newTok, `{"lease_id":"l1"}`); code != http.StatusOK {
		t.Fatalf("release with the new token: %d %v", code, v)
	}
	newHash, err := lockcore.ParseToken(newTok)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, newHash); err != nil {
		t.Fatal(err)
	}
	if code, _ := call("/locks/a/acquire", newTok, ``); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", code)
	}
	if st.full.Load() != 0 || st.idOnly.Load() != 5 {
		t.Fatalf("lookups: %d full, %d id-only; want 0 and 5", st.full.Load(), st.idOnly.Load())
	}
}
