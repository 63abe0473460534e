package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// held counts the locks each seeded account holds in st.
func held(t *testing.T, st lockcore.Store, from, accounts int) int {
	t.Helper()
	ctx := context.Background()
	total := 0
	for a := from; a < accounts; a++ {
		acct, created, err := st.EnsureAccount(ctx, fmt.Sprintf("grow-%d", a))
		if err != nil {
			t.Fatal(err)
		}
		if created {
			t.Fatalf("account grow-%d was not seeded", a)
		}
		locks, err := st.List(ctx, acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		total += len(locks)
	}
	return total
}

func TestSeedSQLite(t *testing.T) {
	db := filepath.Join(t.TempDir(), "grow.db")
	if err := run(context.Background(), db, "", "", 2, 6, 7, 3, time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(context.Background(), db, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := held(t, st, 2, 6); got != 4*7 {
		t.Fatalf("held locks = %d, want %d (4 accounts × 7)", got, 4*7)
	}
	if n, err := st.CountAccounts(context.Background()); err != nil || n != 4 {
		t.Fatalf("CountAccounts = %d, %v; want 4 (accounts 2..5 only)", n, err)
	}
}

func TestSeedRedis(t *testing.T) {
	m := miniredis.RunT(t)
	if err := run(context.Background(), "", "redis://"+m.Addr(), "g:", 0, 3, 5, 2, time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := redisstore.Open(context.Background(), redisstore.Config{URL: "redis://" + m.Addr(), Prefix: "g:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := held(t, st, 0, 3); got != 15 {
		t.Fatalf("held locks = %d, want 15", got)
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name                         string
		db, url                      string
		from, accounts, per, workers int
	}{
		{"no store", "", "", 0, 1, 1, 1},
		{"both stores", "x.db", "redis://127.0.0.1:1", 0, 1, 1, 1},
		{"empty range", "x.db", "", 3, 3, 1, 1},
		{"over the quota", "x.db", "", 0, 1, 101, 1},
		{"no workers", "x.db", "", 0, 1, 1, 0},
	} {
		if err := run(ctx, tt.db, tt.url, "", tt.from, tt.accounts, tt.per, tt.workers, time.Hour); err == nil {
			t.Errorf("%s: run succeeded", tt.name)
		}
	}
}
