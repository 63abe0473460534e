package redisstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestDurabilityWarnings: each Redis setting short of the README's advice
// gives its warning, and a Redis set as advised gives none.
func TestDurabilityWarnings(t *testing.T) {
	srv := redistest.Start(t) // appendonly no, maxmemory-policy noeviction
	s := open(t, srv.URL(), "", slowOpTimeout)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	set := func(key, value string) {
		t.Helper()
		if err := admin.ConfigSet(t.Context(), key, value).Err(); err != nil {
			t.Fatalf("CONFIG SET %s %s: %v", key, value, err)
		}
	}
	want := func(what string, substrings ...string) {
		t.Helper()
		got, err := s.DurabilityWarnings(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(substrings) {
			t.Fatalf("%s: %d warnings %q, want %d", what, len(got), got, len(substrings))
		}
		for i, sub := range substrings {
			if !strings.Contains(got[i], sub) {
				t.Errorf("%s: warning %q lacks %q", what, got[i], sub)
			}
		}
	}
	want("appendonly no", `appendonly "no"`)
	set("maxmemory-policy", "allkeys-lru")
	want("appendonly no and allkeys-lru", `appendonly "no"`, `maxmemory-policy "allkeys-lru"`)
	set("maxmemory-policy", "noeviction")
	set("appendonly", "yes")
	want("appendfsync everysec", `appendfsync "everysec"`)
	set("appendfsync", "always")
	want("as the README advises")
}

// TestDurabilityWarningsCluster checks every master, and names it.
func TestDurabilityWarningsCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	s, err := redisstore.Open(t.Context(), redisstore.Config{URL: c.URL(), Cluster: true, OpTimeout: slowOpTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.DurabilityWarnings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.Addrs()
	if len(got) != len(addrs) {
		t.Fatalf("%d warnings %q, want one per master (%d)", len(got), got, len(addrs))
	}
	for _, a := range addrs {
		found := false
		for _, w := range got {
			found = found || strings.Contains(w, "master "+a+" has appendonly")
		}
		if !found {
			t.Errorf("no warning names master %s: %q", a, got)
		}
	}
}

// TestDurabilityWarningsRefused: a Redis that refuses CONFIG (as managed
// services often do; here a renamed command) is an error, not a warning.
func TestDurabilityWarningsRefused(t *testing.T) {
	srv := redistest.Start(t, "--rename-command", "CONFIG", "")
	s := open(t, srv.URL(), "", slowOpTimeout)
	got, err := s.DurabilityWarnings(context.Background())
	if err == nil {
		t.Fatalf("CONFIG refused: want an error, got warnings %q", got)
	}
}
