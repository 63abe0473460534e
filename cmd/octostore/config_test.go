package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// TestSQLiteWaitIsBoundedByOpTimeout: while another process holds the
// database's write lock, a server's lock write gives up after
// --op-timeout, not after SQLite's default busy wait of 5 s (the caller's
// own context here is far longer, as the handler's is not seen by a write
// SQLite is waiting in). Operator commands wait longer
// (TestTokenCommandsWaitForTheWriteLock).
func TestSQLiteWaitIsBoundedByOpTimeout(t *testing.T) {
	const opTimeout = 300 * time.Millisecond
	path := filepath.Join(t.TempDir(), "busy.db")
	var sf storeFlags
	sf.register(flag.NewFlagSet("t", flag.ContinueOnError))
	sf.db, sf.redisURL, sf.opTimeout = path, "", opTimeout
	sf.server = true
	ctx := context.Background()
	st, _, err := sf.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, _, err := st.EnsureAccount(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}

	release := holdWriteLock(t, path)

	long, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = st.Acquire(long, acct.ID, "job", lockcore.AcquireOptions{LeaseID: "l1", TTL: time.Minute, MaxHeld: 10})
	took := time.Since(start)
	if !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("acquire under another process's write lock: %v, want ErrUnavailable", err)
	}
	if took > 3*time.Second {
		t.Fatalf("acquire gave up after %v; the op timeout is %v and SQLite's default wait 5s", took, opTimeout)
	}

	release()
	if res, err := st.Acquire(long, acct.ID, "job", lockcore.AcquireOptions{LeaseID: "l1", TTL: time.Minute, MaxHeld: 10}); err != nil || !res.Acquired {
		t.Fatalf("acquire once the lock is free: %+v %v", res, err)
	}
}

// holdWriteLock takes the write lock of the SQLite database at path from
// another connection, as another process would, and returns a function
// that gives it back (also called at the end of the test).
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := other.Conn(ctx)
	if err != nil {
		other.Close()
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		conn.Close()
		other.Close()
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
			conn.Close()
			other.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// TestFlagsFromTheEnvironment: every store and limit flag takes its default
// from its environment variable, a flag on the command line wins over it,
// and with no flag REDIS_URL wins over OCTOSTORE_DB (README "Configuration").
func TestFlagsFromTheEnvironment(t *testing.T) {
	for k, v := range map[string]string{
		"OCTOSTORE_DB":                  "/env/o.db",
		"REDIS_URL":                     "redis://env.example:6379",
		"REDIS_CLUSTER":                 "true",
		"OCTOSTORE_REDIS_PREFIX":        "env:",
		"OCTOSTORE_OP_TIMEOUT":          "750ms",
		"OCTOSTORE_REDIS_WAIT_REPLICAS": "2",
		"OCTOSTORE_MAX_TTL_SECONDS":     "600",
		"OCTOSTORE_DEFAULT_TTL_SECONDS": "30",
		"OCTOSTORE_MAX_METADATA_BYTES":  "10",
		"OCTOSTORE_MAX_LOCKS":           "7",
	} {
		t.Setenv(k, v)
	}
	parse := func(args ...string) (storeFlags, lockcore.Limits) {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var sf storeFlags
		sf.register(fs)
		var lf limitFlags
		lf.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := sf.resolve(); err != nil {
			t.Fatalf("resolve %q: %v", args, err)
		}
		lim, err := lf.limits()
		if err != nil {
			t.Fatalf("limits %q: %v", args, err)
		}
		return sf, lim
	}

	sf, lim := parse()
	if sf.redisURL != "redis://env.example:6379" || !sf.redisCluster || sf.redisPrefix != "env:" || sf.opTimeout != 750*time.Millisecond || sf.redisWait != 2 {
		t.Errorf("from the environment: redis %q cluster %v prefix %q op timeout %v wait replicas %d", sf.redisURL, sf.redisCluster, sf.redisPrefix, sf.opTimeout, sf.redisWait)
	}
	if want := (lockcore.Limits{MaxTTL: 600 * time.Second, DefaultTTL: 30 * time.Second, MaxMetadataBytes: 10, MaxHeldLocks: 7}); lim != want {
		t.Errorf("limits from the environment: %+v, want %+v", lim, want)
	}

	sf, lim = parse("--redis-url", "redis://flag.example:6379", "--redis-cluster=false", "--redis-prefix", "flag:", "--op-timeout", "2s",
		"--redis-wait-replicas", "1", "--max-ttl", "900", "--default-ttl", "45", "--max-metadata", "20", "--max-locks", "9")
	if sf.redisURL != "redis://flag.example:6379" || sf.redisCluster || sf.redisPrefix != "flag:" || sf.opTimeout != 2*time.Second || sf.redisWait != 1 {
		t.Errorf("flags over the environment: redis %q cluster %v prefix %q op timeout %v wait replicas %d", sf.redisURL, sf.redisCluster, sf.redisPrefix, sf.opTimeout, sf.redisWait)
	}
	if want := (lockcore.Limits{MaxTTL: 900 * time.Second, DefaultTTL: 45 * time.Second, MaxMetadataBytes: 20, MaxHeldLocks: 9}); lim != want {
		t.Errorf("limits from flags: %+v, want %+v", lim, want)
	}

	// --db on the command line means SQLite, whatever the environment says.
	sf, _ = parse("--db", "/flag/o.db")
	if sf.redisURL != "" || sf.redisCluster || sf.db != "/flag/o.db" {
		t.Errorf("--db with REDIS_URL set: redis %q cluster %v db %q, want SQLite at /flag/o.db", sf.redisURL, sf.redisCluster, sf.db)
	}
}

// TestLimitsRefuseATTLThatOverflows: a --max-ttl or --default-ttl whose
// seconds do not fit a time.Duration is refused, naming the flag, instead of
// wrapping around to another TTL (2^55 + 3600 seconds became 3600).
func TestLimitsRefuseATTLThatOverflows(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--max-ttl", "36028797018967568"}, "--max-ttl"},
		{[]string{"--max-ttl", "36028797018967568", "--default-ttl", "36028797018963998"}, "--max-ttl"},
		{[]string{"--default-ttl", "36028797018963998"}, "--default-ttl"},
		{[]string{"--max-ttl", "9223372037"}, "--max-ttl"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var lf limitFlags
		lf.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		lim, err := lf.limits()
		if err == nil {
			t.Errorf("limits %q = %+v, want an error naming %s", tc.args, lim, tc.flag)
			continue
		}
		if !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("limits %q: error %q does not name %s", tc.args, err, tc.flag)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var lf limitFlags
	lf.register(fs)
	if err := fs.Parse([]string{"--max-ttl", "9223372036"}); err != nil {
		t.Fatal(err)
	}
	if lim, err := lf.limits(); err != nil || lim.MaxTTL != 9223372036*time.Second {
		t.Errorf("limits --max-ttl 9223372036 = %+v, %v; want that max TTL", lim, err)
	}
}
