package sqlitestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// oldBuildFile is the manifest of a database file that an earlier build's
// octostore binary wrote (testdata/build-*.db): the tokens it printed,
// those revoked or rotated away, the locks it listed as held just before
// it was stopped with SIGTERM, and the highest fencing token it gave
// each account.
type oldBuildFile struct {
	Build     string              `json:"build"`
	StoppedMS int64               `json:"stopped_ms"`
	Tokens    map[string][]string `json:"tokens"`
	Revoked   []string            `json:"revoked"`
	Held      map[string][]struct {
		Name         string `json:"name"`
		LeaseID      string `json:"lease_id"`
		FencingToken int64  `json:"fencing_token"`
		ExpiresMS    int64  `json:"expires_ms"`
	} `json:"held"`
	MaxFence map[string]int64 `json:"max_fence"`
}

// TestOpensOldBuildsFiles: a database file written by an earlier build
// (the first one, schema version 1 and fencing tokens counting from 1;
// and the last before tokens followed the clock, schema version 2) is
// what an upgrade hands the current one. Open migrates it; every token
// it printed still names its account and none it retired does; every
// lock held at the stop is held with its lease and fencing token, and
// keeps them on renew; and new leases get tokens above every one it gave.
// The files were made with each build's binary (serve, token create,
// token revoke, the HTTP API) and kept with their manifests.
func TestOpensOldBuildsFiles(t *testing.T) {
	manifests, err := filepath.Glob(filepath.Join("testdata", "build-*.json"))
	if err != nil || len(manifests) == 0 {
		t.Fatalf("no testdata/build-*.json: %v", err)
	}
	for _, mf := range manifests {
		t.Run(filepath.Base(mf), func(t *testing.T) {
			var m oldBuildFile
			b, err := os.ReadFile(mf)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", mf, err)
			}
			path := filepath.Join(t.TempDir(), "octostore.db")
			copyFile(t, strings.TrimSuffix(mf, ".json")+".db", path)
			clock := newFakeClock()
			clock.t = time.UnixMilli(m.StoppedMS).Add(5 * time.Second)
			s := openAt(t, path, clock, sqlitestore.Options{})
			ctx := context.Background()

			var version int
			if err := s.ReadDB().QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != 2 {
				t.Errorf("user_version after Open: %d, %v; want 2", version, err)
			}
			for _, tok := range m.Revoked {
				if _, err := s.AccountIDByToken(ctx, lockcore.HashToken(tok)); !errors.Is(err, lockcore.ErrNotFound) {
					t.Errorf("a token %s retired: want ErrNotFound, got %v", m.Build, err)
				}
			}
			for login, toks := range m.Tokens {
				var id string
				for i, tok := range toks {
					a, err := s.AccountByToken(ctx, lockcore.HashToken(tok))
					if err != nil || a.Login != login || (i > 0 && a.ID != id) {
						t.Fatalf("%s's token %d: %+v, %v; want the account of %s (%q)", login, i, a, err, login, id)
					}
					id = a.ID
				}
				var want []string
				for _, h := range m.Held[login] {
					if h.ExpiresMS <= clock.Now().UnixMilli() {
						continue // expired while stopped
					}
					want = append(want, h.Name)
					st, err := s.Get(ctx, id, h.Name)
					if err != nil || !st.Held || st.Lease.LeaseID != h.LeaseID || st.Lease.FencingToken != h.FencingToken {
						t.Errorf("%s's lock %s: %+v, %v; want held by %s with fencing token %d", login, h.Name, st, err, h.LeaseID, h.FencingToken)
					}
					l, err := s.Renew(ctx, id, h.Name, h.LeaseID, time.Hour)
					if err != nil || l.FencingToken != h.FencingToken {
						t.Errorf("renew %s's lock %s: %+v, %v; want fencing token %d", login, h.Name, l, err, h.FencingToken)
					}
					res, err := s.Acquire(ctx, id, h.Name, lockcore.AcquireOptions{LeaseID: "other", TTL: time.Minute, MaxHeld: 100})
					if err != nil || res.Acquired {
						t.Errorf("acquire of %s's held lock %s by another lease: %+v, %v; want held", login, h.Name, res, err)
					}
				}
				ls, err := s.List(ctx, id)
				var got []string
				for _, l := range ls {
					got = append(got, l.Name)
				}
				if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("List of %s: %v, %v; want %v", login, got, err, want)
				}
				last := m.MaxFence[login]
				for _, name := range []string{"e1", "e2", "r1", "new"} {
					res, err := s.Acquire(ctx, id, name, lockcore.AcquireOptions{LeaseID: "after-upgrade", TTL: time.Minute, MaxHeld: 100})
					if err != nil || !res.Acquired || res.Lease.FencingToken <= last {
						t.Errorf("acquire of %s's %s after the upgrade: %+v, %v; want acquired with a fencing token above %d", login, name, res, err, last)
						continue
					}
					last = res.Lease.FencingToken
				}
			}
		})
	}
}
