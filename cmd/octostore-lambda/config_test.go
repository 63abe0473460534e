package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	const secretURL = "redis://default:hunter2-very-secret@10.0.0.7:6379/0"
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{envRedisURL: "redis://127.0.0.1:6379"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string // substrings of the error; nil means no error
		check   func(t *testing.T, c config)
	}{
		{
			name: "defaults",
			env:  base(nil),
			check: func(t *testing.T, c config) {
				if c.Limits != lockcore.DefaultLimits {
					t.Errorf("limits = %+v, want defaults", c.Limits)
				}
				if c.Redis.Cluster || c.Redis.Prefix != "" || c.OAuth.Enabled() || c.Redis.OpTimeout != 3*time.Second {
					t.Errorf("config = %+v, want no cluster, default prefix, no OAuth", c)
				}
			},
		},
		{
			name: "everything set",
			env: base(map[string]string{
				envRedisURL: secretURL, envRedisCluster: "true", envRedisPrefix: "prod:",
				envMaxTTL: "600", envDefaultTTL: "30", envMaxMetadata: "0", envMaxLocks: "7", envOpTimeout: "750ms",
				envGitHubClientID: "Iv1.abc", envGitHubSecret: "gh-secret", envStateSecret: strings.Repeat("s", 32),
				envPublicURL: "https://locks.example.com", envGitHubBaseURL: "https://ghe.example.com", envGitHubAPIURL: "https://ghe.example.com/api/v3",
			}),
			check: func(t *testing.T, c config) {
				want := lockcore.Limits{MaxTTL: 600 * time.Second, DefaultTTL: 30 * time.Second, MaxMetadataBytes: 0, MaxHeldLocks: 7}
				if c.Limits != want {
					t.Errorf("limits = %+v, want %+v", c.Limits, want)
				}
				if !c.Redis.Cluster || c.Redis.Prefix != "prod:" || c.Redis.URL != secretURL || c.Redis.OpTimeout != 750*time.Millisecond {
					t.Errorf("redis = %+v", c.Redis)
				}
				o := c.OAuth
				if !o.Enabled() || o.ClientID != "Iv1.abc" || o.ClientSecret != "gh-secret" || string(o.StateSecret) != strings.Repeat("s", 32) ||
					o.PublicURL != "https://locks.example.com" || o.BaseURL != "https://ghe.example.com" || o.APIURL != "https://ghe.example.com/api/v3" {
					t.Errorf("oauth = %+v", o)
				}
			},
		},
		{name: "no redis url", env: map[string]string{}, wantErr: []string{"REDIS_URL is required"}},
		{name: "redis url wrong scheme", env: base(map[string]string{envRedisURL: "http://x:6379"}), wantErr: []string{"REDIS_URL must start with redis://"}},
		{name: "redis url unparsable", env: base(map[string]string{envRedisURL: "redis://:pa%zzss@h:1"}), wantErr: []string{"REDIS_URL is not a valid URL"}},
		// A password with an unescaped '/', '?' or '#' cuts the URL's
		// authority short: the rest of the password must not reach go-redis
		// (which quotes it) or the log.
		{name: "password with an unescaped '#'", env: base(map[string]string{envRedisURL: "redis://default:2024#hunter2-very-secret@10.0.0.7:6379"}), wantErr: []string{"REDIS_URL has an '@' or a '#'"}},
		{name: "password with an unescaped '?'", env: base(map[string]string{envRedisURL: "redis://default:2024?hunter2-very-secret@10.0.0.7:6379"}), wantErr: []string{"REDIS_URL has an '@' or a '#'"}},
		{name: "password with an unescaped '/'", env: base(map[string]string{envRedisURL: "redis://default:/hunter2-very-secret@10.0.0.7:6379"}), wantErr: []string{"REDIS_URL has an '@' or a '#'"}},
		{name: "cluster URL with a fragment", env: base(map[string]string{envRedisURL: "redis://10.0.0.7:6379?addr=10.0.0.8:6379#x", envRedisCluster: "true"}), wantErr: []string{"REDIS_URL has an '@' or a '#'"}},
		{
			name: "escaped password, database and cluster addresses",
			env:  base(map[string]string{envRedisURL: "rediss://default:2024%23a%2Fb%3Fc@10.0.0.7:6379/0?addr=10.0.0.8:6379"}),
			check: func(t *testing.T, c config) {
				if c.Redis.URL != "rediss://default:2024%23a%2Fb%3Fc@10.0.0.7:6379/0?addr=10.0.0.8:6379" {
					t.Errorf("REDIS_URL = %q", c.Redis.URL)
				}
			},
		},
		{name: "redis url no host", env: base(map[string]string{envRedisURL: "redis://"}), wantErr: []string{"REDIS_URL has no host"}},
		{name: "cluster not bool", env: base(map[string]string{envRedisCluster: "yes"}), wantErr: []string{"REDIS_CLUSTER must be true or false"}},
		{name: "prefix with brace", env: base(map[string]string{envRedisPrefix: "a{b"}), wantErr: []string{"OCTOSTORE_REDIS_PREFIX"}},
		{name: "prefix with closing brace", env: base(map[string]string{envRedisPrefix: "a}b"}), wantErr: []string{"OCTOSTORE_REDIS_PREFIX"}},
		{
			// A secret pasted with a newline still names the same Redis.
			name: "redis url with surrounding space",
			env:  base(map[string]string{envRedisURL: " redis://127.0.0.1:6379\n"}),
			check: func(t *testing.T, c config) {
				if c.Redis.URL != "redis://127.0.0.1:6379" {
					t.Errorf("REDIS_URL = %q, want it without the surrounding space", c.Redis.URL)
				}
			},
		},
		{name: "ttl not a number", env: base(map[string]string{envMaxTTL: "1h"}), wantErr: []string{"OCTOSTORE_MAX_TTL_SECONDS must be a non-negative integer"}},
		{name: "max ttl overflowing a duration", env: base(map[string]string{envMaxTTL: "36028797018967568"}), wantErr: []string{"OCTOSTORE_MAX_TTL_SECONDS must be at most 9223372036 seconds"}},
		{name: "default ttl overflowing a duration", env: base(map[string]string{envMaxTTL: "36028797018967568", envDefaultTTL: "36028797018963998"}), wantErr: []string{"OCTOSTORE_MAX_TTL_SECONDS must be at most", "OCTOSTORE_DEFAULT_TTL_SECONDS must be at most"}},
		{
			name: "longest max ttl",
			env:  base(map[string]string{envMaxTTL: "9223372036"}),
			check: func(t *testing.T, c config) {
				if c.Limits.MaxTTL != 9223372036*time.Second {
					t.Errorf("MaxTTL = %v, want 9223372036s", c.Limits.MaxTTL)
				}
			},
		},
		{name: "op timeout not a duration", env: base(map[string]string{envOpTimeout: "3"}), wantErr: []string{"OCTOSTORE_OP_TIMEOUT must be a positive duration"}},
		{name: "op timeout zero", env: base(map[string]string{envOpTimeout: "0s"}), wantErr: []string{"OCTOSTORE_OP_TIMEOUT must be a positive duration"}},
		{name: "negative locks", env: base(map[string]string{envMaxLocks: "-1"}), wantErr: []string{"OCTOSTORE_MAX_LOCKS must be a non-negative integer"}},
		{name: "wait replicas not a number", env: base(map[string]string{envWaitReplicas: "one"}), wantErr: []string{"OCTOSTORE_REDIS_WAIT_REPLICAS must be a non-negative integer"}},
		{
			name: "wait replicas",
			env:  base(map[string]string{envWaitReplicas: "1"}),
			check: func(t *testing.T, c config) {
				if c.Redis.WaitReplicas != 1 {
					t.Errorf("WaitReplicas = %d, want 1", c.Redis.WaitReplicas)
				}
			},
		},
		{name: "default above max", env: base(map[string]string{envMaxTTL: "10", envDefaultTTL: "60"}), wantErr: []string{"limits", "default TTL"}},
		{name: "zero locks", env: base(map[string]string{envMaxLocks: "0"}), wantErr: []string{"max held locks"}},
		{name: "oauth half configured", env: base(map[string]string{envGitHubClientID: "id", envStateSecret: strings.Repeat("s", 32), envPublicURL: "https://x"}), wantErr: []string{"needs both GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET"}},
		{name: "oauth short secret, no public url", env: base(map[string]string{envGitHubClientID: "id", envGitHubSecret: "sec", envStateSecret: "short"}), wantErr: []string{"OCTOSTORE_STATE_SECRET must be at least 32 bytes", "OCTOSTORE_PUBLIC_URL is required"}},
		{name: "several problems at once", env: map[string]string{envRedisCluster: "maybe", envMaxMetadata: "x"}, wantErr: []string{"REDIS_URL", "REDIS_CLUSTER", "OCTOSTORE_MAX_METADATA_BYTES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(envOf(tt.env))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("loadConfig succeeded, want an error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if u := tt.env[envRedisURL]; u != "" && strings.Contains(err.Error(), u) {
				t.Errorf("error %q quotes REDIS_URL", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes a part of the password", err)
			}
		})
	}
}

// TestEnvVarsComplete checks that envVars lists exactly the variables
// loadConfig reads, so the template test over envVars covers them all.
func TestEnvVarsComplete(t *testing.T) {
	read := map[string]bool{}
	_, _ = loadConfig(func(k string) string { read[k] = true; return "" })
	// With GitHub sign-in configured every OAuth variable is read too.
	_, _ = loadConfig(func(k string) string {
		read[k] = true
		if k == envGitHubClientID {
			return "x"
		}
		return ""
	})
	listed := map[string]bool{}
	for _, v := range envVars {
		if listed[v] {
			t.Errorf("envVars lists %s twice", v)
		}
		listed[v] = true
		if !read[v] {
			t.Errorf("envVars lists %s but loadConfig does not read it", v)
		}
	}
	for v := range read {
		if !listed[v] {
			t.Errorf("loadConfig reads %s but envVars does not list it", v)
		}
	}
}

func TestScrubAndRedact(t *testing.T) {
	const pw = "p@ss/word+with spaces"
	raw := (&url.URL{Scheme: "redis", User: url.UserPassword("default", pw), Host: "cache.example.com:6379"}).String()
	escaped := strings.TrimPrefix(url.UserPassword("default", pw).String(), "default:")
	c, err := loadConfig(envOf(map[string]string{envRedisURL: raw, envGitHubSecret: "gh-client-secret", envGitHubClientID: "id", envStateSecret: "state-secret-state-secret-state-secret", envPublicURL: "https://x"}))
	if err != nil {
		t.Fatal(err)
	}
	msg := "dial " + raw + " failed; password " + pw + "; " + url.QueryEscape(pw) + "; " + url.PathEscape(pw) + "; " + escaped + "; secret gh-client-secret; state state-secret-state-secret-state-secret"
	got := c.scrub(msg)
	for _, s := range []string{raw, pw, url.QueryEscape(pw), url.PathEscape(pw), escaped, "gh-client-secret", "state-secret-state-secret-state-secret"} {
		if strings.Contains(got, s) {
			t.Errorf("scrub left %q in %q", s, got)
		}
	}
	if !strings.Contains(got, "[redacted]") {
		t.Errorf("scrub(%q) = %q, want [redacted] markers", msg, got)
	}
	red := redactedRedisURL(raw)
	if strings.Contains(red, escaped) || strings.Contains(red, pw) || !strings.Contains(red, "cache.example.com:6379") {
		t.Errorf("redactedRedisURL = %q, want host kept and password hidden", red)
	}
}

// TestScrubShortPassword: a short Redis password (4 bytes and up) is
// scrubbed too; only strings too short to be a secret are left alone.
func TestScrubShortPassword(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{envRedisURL: "redis://default:pw5x@cache.example.com:6379"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.scrub("auth with pw5x failed"); got != "auth with [redacted] failed" {
		t.Errorf("scrub = %q, want the 4-byte password redacted", got)
	}
}

func TestStripStage(t *testing.T) {
	tests := []struct{ path, stage, want string }{
		{"/locks/a", "$default", "/locks/a"},
		{"/locks/a", "", "/locks/a"},
		{"/$default/locks/a", "$default", "/$default/locks/a"},
		{"/prod/locks/a", "prod", "/locks/a"},
		{"/prod", "prod", "/"},
		{"/prod/", "prod", "/"},
		{"/production/locks", "prod", "/production/locks"},
		{"/locks/prod", "prod", "/locks/prod"},
	}
	for _, tt := range tests {
		if got := stripStage(tt.path, tt.stage); got != tt.want {
			t.Errorf("stripStage(%q, %q) = %q, want %q", tt.path, tt.stage, got, tt.want)
		}
	}
}

func TestCleanRawPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/locks/a.b-c/acquire", "/locks/a.b-c/acquire"},
		{"/locks/%41", "/locks/%41"},
		{"/locks/%zz", "/locks/%25zz"},
		{"/locks/%4", "/locks/%254"},
		{"/locks/a b", "/locks/a%20b"},
		{"/locks/é", "/locks/%C3%A9"},
		{"/locks/a?b#c", "/locks/a%3Fb%23c"},
	}
	for _, tt := range tests {
		got := cleanRawPath(tt.in)
		if got != tt.want {
			t.Errorf("cleanRawPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if _, err := url.Parse("https://h" + got); err != nil {
			t.Errorf("cleanRawPath(%q) = %q does not parse: %v", tt.in, got, err)
		}
	}
}

// fakeStore is a lockcore.Store whose every method succeeds trivially; it
// counts Ping and Close calls.
type fakeStore struct {
	lockcore.Store // nil: methods other than the overridden ones are not used
	pings, closes  atomic.Int32
}

func (f *fakeStore) Ping(context.Context) error { f.pings.Add(1); return nil }
func (f *fakeStore) Close() error               { f.closes.Add(1); return nil }
func (f *fakeStore) CountAccounts(context.Context) (int64, error) {
	return 42, nil
}

func TestLazyStore(t *testing.T) {
	var up atomic.Bool
	var opens atomic.Int32
	backend := &fakeStore{}
	l := newLazyStore(func(ctx context.Context) (lockcore.Store, error) {
		opens.Add(1)
		if !up.Load() {
			return nil, errors.New("dial tcp: connection refused")
		}
		return backend, nil
	})
	ctx := context.Background()

	for i := 0; i < 2; i++ {
		if err := l.Ping(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
			t.Fatalf("Ping while down = %v, want ErrUnavailable", err)
		}
		if _, err := l.CountAccounts(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
			t.Fatalf("CountAccounts while down = %v, want ErrUnavailable", err)
		}
	}
	if n := opens.Load(); n != 4 {
		t.Errorf("opens while down = %d, want one per call (4)", n)
	}

	up.Store(true)
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Ping once up: %v", err)
	}
	if n, err := l.CountAccounts(ctx); err != nil || n != 42 {
		t.Fatalf("CountAccounts once up = %d, %v; want 42 from the backend", n, err)
	}
	if n := opens.Load(); n != 5 {
		t.Errorf("opens after success = %d, want 5 (no reopen once open)", n)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	fresh := newLazyStore(nil)
	fresh.mu <- struct{}{} // as if another caller's open were under way
	if err := fresh.Ping(cctx); !errors.Is(err, lockcore.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with cancelled context while another open runs = %v, want ErrUnavailable and context.Canceled", err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if backend.closes.Load() != 1 {
		t.Errorf("backend closed %d times, want 1", backend.closes.Load())
	}
	if err := l.Ping(ctx); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
}

// idStore is a backend with the one-round-trip token lookup.
type idStore struct{ fakeStore }

func (*idStore) AccountIDByToken(context.Context, lockcore.TokenHash) (string, error) {
	return "acct_from_id_lookup", nil
}

// plainStore answers only AccountByToken.
type plainStore struct{ fakeStore }

func (*plainStore) AccountByToken(context.Context, lockcore.TokenHash) (lockcore.Account, error) {
	return lockcore.Account{ID: "acct_from_full_lookup"}, nil
}

// TestLazyStoreKeepsTheTokenIDLookup checks that wrapping the store does
// not hide its AccountIDByToken from the handlers, and that a store
// without it still answers.
func TestLazyStoreKeepsTheTokenIDLookup(t *testing.T) {
	ctx := context.Background()
	var h lockcore.TokenHash
	for _, tt := range []struct {
		backend lockcore.Store
		want    string
	}{
		{&idStore{}, "acct_from_id_lookup"},
		{&plainStore{}, "acct_from_full_lookup"},
	} {
		l := newLazyStore(func(context.Context) (lockcore.Store, error) { return tt.backend, nil })
		if id, err := l.AccountIDByToken(ctx, h); err != nil || id != tt.want {
			t.Errorf("AccountIDByToken = %q, %v; want %q", id, err, tt.want)
		}
	}
	down := newLazyStore(func(context.Context) (lockcore.Store, error) { return nil, errors.New("refused") })
	if _, err := down.AccountIDByToken(ctx, h); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Errorf("AccountIDByToken while down = %v, want ErrUnavailable", err)
	}
}

// TestLazyStoreForwardsEveryMethod runs every Store method through the
// lazy wrapper over a real store once it is reachable, and checks each
// answers as the store does; while the store is unreachable each one
// answers ErrUnavailable.
func TestLazyStoreForwardsEveryMethod(t *testing.T) {
	ctx := context.Background()
	down := newLazyStore(func(context.Context) (lockcore.Store, error) { return nil, errors.New("refused") })
	backend, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "lazy.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newLazyStore(func(context.Context) (lockcore.Store, error) { return backend, nil })
	t.Cleanup(func() { up.Close() })

	_, h1 := lockcore.NewToken()
	_, h2 := lockcore.NewToken()
	opts := lockcore.AcquireOptions{LeaseID: "L1", TTL: time.Minute, MaxHeld: 10}
	var acct lockcore.Account
	steps := []struct {
		name string
		call func(s *lazyStore) error
	}{
		{"EnsureAccount", func(s *lazyStore) (err error) { acct, _, err = s.EnsureAccount(ctx, "lazy"); return }},
		{"UpsertGitHubAccount", func(s *lazyStore) error { _, err := s.UpsertGitHubAccount(ctx, 7, "gh"); return err }},
		{"AccountByID", func(s *lazyStore) error { _, err := s.AccountByID(ctx, acct.ID); return err }},
		{"AddToken", func(s *lazyStore) error { return s.AddToken(ctx, acct.ID, h1) }},
		{"AccountByToken", func(s *lazyStore) error {
			a, err := s.AccountByToken(ctx, h1)
			if err == nil && a.ID != acct.ID {
				return fmt.Errorf("account %q, want %q", a.ID, acct.ID)
			}
			return err
		}},
		{"RotateToken", func(s *lazyStore) error { _, err := s.RotateToken(ctx, h1, h2); return err }},
		{"Acquire", func(s *lazyStore) error {
			r, err := s.Acquire(ctx, acct.ID, "job", opts)
			if err == nil && !r.Acquired {
				return errors.New("not acquired")
			}
			return err
		}},
		{"Renew", func(s *lazyStore) error { _, err := s.Renew(ctx, acct.ID, "job", "L1", time.Minute); return err }},
		{"Get", func(s *lazyStore) error {
			st, err := s.Get(ctx, acct.ID, "job")
			if err == nil && !st.Held {
				return errors.New("not held")
			}
			return err
		}},
		{"List", func(s *lazyStore) error {
			l, err := s.List(ctx, acct.ID)
			if err == nil && len(l) != 1 {
				return fmt.Errorf("%d locks, want 1", len(l))
			}
			return err
		}},
		{"Release", func(s *lazyStore) error { return s.Release(ctx, acct.ID, "job", "L1") }},
		{"AcquireAs", func(s *lazyStore) error {
			r, err := s.AcquireAs(ctx, h2, acct.ID, "job2", lockcore.AcquireOptions{LeaseID: "L2", TTL: time.Minute, MaxHeld: 10})
			if err == nil && !r.Acquired {
				return errors.New("not acquired")
			}
			return err
		}},
		{"RenewAs", func(s *lazyStore) error { _, err := s.RenewAs(ctx, h2, acct.ID, "job2", "L2", time.Minute); return err }},
		{"ReleaseAs", func(s *lazyStore) error { return s.ReleaseAs(ctx, h2, acct.ID, "job2", "L2") }},
		{"RevokeToken", func(s *lazyStore) error { return s.RevokeToken(ctx, h2) }},
	}
	for _, st := range steps {
		if err := st.call(down); !errors.Is(err, lockcore.ErrUnavailable) {
			t.Errorf("%s while down = %v, want ErrUnavailable", st.name, err)
		}
		if err := st.call(up); err != nil {
			t.Errorf("%s through the wrapper: %v", st.name, err)
		}
	}
}

// TestLazyStoreKeepsTokenLocks: the lazy wrapper is a lockcore.TokenLocks
// (the handlers look for the capability once, when built, so without it an
// instance that started while Redis was away would pay a token lookup per
// lock write for its whole life). Over a backend with the capability and
// over one without it, a lock write with the account's token works and one
// with a retired or another account's token is refused with ErrNotFound.
func TestLazyStoreKeepsTokenLocks(t *testing.T) {
	ctx := context.Background()
	backend, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "lazy.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	if _, ok := any(newLazyStore(nil)).(lockcore.TokenLocks); !ok {
		t.Fatal("*lazyStore is not a lockcore.TokenLocks")
	}
	for _, b := range []struct {
		name  string
		store lockcore.Store
	}{
		{"backend with TokenLocks", backend},
		{"backend without", struct{ lockcore.Store }{backend}},
	} {
		t.Run(b.name, func(t *testing.T) {
			l := newLazyStore(func(context.Context) (lockcore.Store, error) { return b.store, nil })
			alice, _, err := backend.EnsureAccount(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			bob, _, err := backend.EnsureAccount(ctx, "bob")
			if err != nil {
				t.Fatal(err)
			}
			_, ha := lockcore.NewToken()
			_, hb := lockcore.NewToken()
			if err := backend.AddToken(ctx, alice.ID, ha); err != nil {
				t.Fatal(err)
			}
			if err := backend.AddToken(ctx, bob.ID, hb); err != nil {
				t.Fatal(err)
			}
			name := "tl-" + strings.ReplaceAll(b.name, " ", "-")
			o := lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 10}
			if r, err := l.AcquireAs(ctx, hb, alice.ID, name, o); !errors.Is(err, lockcore.ErrNotFound) || r.Acquired {
				t.Fatalf("AcquireAs with bob's token for alice: %+v, %v; want ErrNotFound", r, err)
			}
			if r, err := l.AcquireAs(ctx, ha, alice.ID, name, o); err != nil || !r.Acquired {
				t.Fatalf("AcquireAs: %+v, %v", r, err)
			}
			if _, err := l.RenewAs(ctx, ha, alice.ID, name, o.LeaseID, time.Minute); err != nil {
				t.Fatalf("RenewAs: %v", err)
			}
			if err := backend.RevokeToken(ctx, ha); err != nil {
				t.Fatal(err)
			}
			if err := l.ReleaseAs(ctx, ha, alice.ID, name, o.LeaseID); !errors.Is(err, lockcore.ErrNotFound) {
				t.Fatalf("ReleaseAs with a revoked token: %v, want ErrNotFound", err)
			}
			if st, err := backend.Get(ctx, alice.ID, name); err != nil || !st.Held {
				t.Fatalf("the lock after a refused release: %+v, %v", st, err)
			}
		})
	}
}
