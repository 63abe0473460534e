package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

// storeFlags choose and configure the store; serve and token share them.
// Each flag's default comes from its environment variable, and a flag given
// on the command line wins: --db on the command line means SQLite even when
// REDIS_URL is set in the environment.
type storeFlags struct {
	fs           *flag.FlagSet
	db           string
	redisURL     string
	redisCluster bool
	redisPrefix  string
	redisWait    int
	opTimeout    time.Duration

	// existing: open refuses a SQLite file that does not exist instead of
	// creating a new, empty database (a token revocation has nothing to
	// revoke in one).
	existing bool
	// created: open made a new SQLite database file.
	created bool
	// redisLog receives go-redis' own lines (failed dials) from the first
	// dial on; nil drops them (the token commands: their error says the
	// same).
	redisLog *slog.Logger
	// server: the store serves the API, and its Redis connections say so
	// (redisstore.Config.Server), which restore looks for.
	server bool
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	s.fs = fs
	fs.StringVar(&s.db, "db", envString("OCTOSTORE_DB", "./octostore.db"), "SQLite database file (env OCTOSTORE_DB)")
	fs.StringVar(&s.redisURL, "redis-url", envString("REDIS_URL", ""), "use Redis at this redis:// or rediss:// URL instead of SQLite (env REDIS_URL, which keeps a password out of the process list)")
	// The usage text (-h, and every bad flag, on stderr) shows defaults:
	// never REDIS_URL's password.
	if f := fs.Lookup("redis-url"); f.DefValue != "" {
		f.DefValue = redactedURL(f.DefValue)
	}
	fs.BoolVar(&s.redisCluster, "redis-cluster", envBool("REDIS_CLUSTER"), "the Redis URL is a cluster URL redis://h1:p1?addr=h2:p2 (env REDIS_CLUSTER=true)")
	fs.StringVar(&s.redisPrefix, "redis-prefix", envString("OCTOSTORE_REDIS_PREFIX", ""), "key prefix in Redis (env OCTOSTORE_REDIS_PREFIX; default os:)")
	fs.DurationVar(&s.opTimeout, "op-timeout", envDuration("OCTOSTORE_OP_TIMEOUT", 3*time.Second), "timeout of one store operation (env OCTOSTORE_OP_TIMEOUT)")
	fs.IntVar(&s.redisWait, "redis-wait-replicas", envInt("OCTOSTORE_REDIS_WAIT_REPLICAS", 0), "Redis: acknowledge a lock write only once this many replicas of its master have it (WAIT), so that a failover keeps it; the lock writes and /health of serve wait, the token, backup and restore commands never do (env OCTOSTORE_REDIS_WAIT_REPLICAS; default 0, no waiting)")
}

// resolve checks the store settings and settles which store they name:
// afterwards s.redisURL is empty exactly when the store is SQLite. A store
// setting from the environment that does not parse is an error.
func (s *storeFlags) resolve() error {
	if err := checkStoreEnv(); err != nil {
		return err
	}
	if s.opTimeout <= 0 {
		return fmt.Errorf("--op-timeout (env OCTOSTORE_OP_TIMEOUT) must be positive (got %v)", s.opTimeout)
	}
	if s.redisWait < 0 {
		return fmt.Errorf("--redis-wait-replicas (env OCTOSTORE_REDIS_WAIT_REPLICAS) must be 0 or more (got %d)", s.redisWait)
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["db"] && given["redis-url"] {
		return fmt.Errorf("--db and --redis-url both given: choose one store")
	}
	if given["db"] {
		// The command line asks for SQLite: Redis settings that come only
		// from the environment do not apply.
		s.redisURL = ""
		if !given["redis-cluster"] {
			s.redisCluster = false
		}
	}
	if s.redisURL == "" && s.redisCluster {
		return fmt.Errorf("--redis-cluster (env REDIS_CLUSTER) needs --redis-url (env REDIS_URL)")
	}
	if s.redisURL == "" && given["redis-wait-replicas"] && s.redisWait > 0 {
		return fmt.Errorf("--redis-wait-replicas needs --redis-url (env REDIS_URL): SQLite has no replicas")
	}
	if s.redisURL == "" && s.db == "" {
		return errors.New("--db (env OCTOSTORE_DB) is empty: name the SQLite database file")
	}
	return nil
}

// open opens the configured store (see resolve) and returns it with its
// name for /health.
func (s *storeFlags) open(ctx context.Context) (lockcore.Store, string, error) {
	if err := s.resolve(); err != nil {
		return nil, "", err
	}
	if s.redisURL != "" {
		// Process-wide: the last store opened in a process wins.
		l := s.redisLog
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		redisstore.SetLogger(l, nil)
		st, err := redisstore.Open(ctx, redisstore.Config{URL: s.redisURL, Cluster: s.redisCluster, Prefix: s.redisPrefix, OpTimeout: s.opTimeout, WaitReplicas: s.redisWait, Server: s.server})
		if err != nil {
			return nil, "", fmt.Errorf("open redis store: %w", err)
		}
		return st, "redis", nil
	}
	_, err := os.Stat(s.db)
	missing := errors.Is(err, os.ErrNotExist)
	if missing && s.existing {
		return nil, "", fmt.Errorf("no SQLite database at %s: give the server's --db (or run this where its database is)", s.db)
	}
	// A write waiting for a lock that another process holds gives up with
	// the operation (a write run on its caller's goroutine does not see
	// its context while SQLite waits). An operator command waits longer:
	// a server under load takes the lock back after each commit, and a
	// command that gave up as soon as a request does would fail there.
	busy := s.opTimeout
	if !s.server {
		busy = max(busy, commandBusyTimeout)
	}
	st, err := sqlitestore.Open(ctx, s.db, sqlitestore.Options{BusyTimeout: busy})
	if err != nil {
		return nil, "", fmt.Errorf("open sqlite store %s: %w", s.db, err)
	}
	s.created = missing
	return st, "sqlite", nil
}

// commandBusyTimeout is how long an operator command (token create,
// token revoke) waits for the SQLite write lock while a server holds it,
// unless --op-timeout is longer.
const commandBusyTimeout = 30 * time.Second

// limitFlags are the configurable limits of the service.
type limitFlags struct {
	// maxTTL and defaultTTL are counts of seconds up to lockcore.MaxTTLSeconds,
	// which a 32-bit int cannot hold.
	maxTTL, defaultTTL    int64
	maxMetadata, maxLocks int
}

func (l *limitFlags) register(fs *flag.FlagSet) {
	d := lockcore.DefaultLimits
	fs.Int64Var(&l.maxTTL, "max-ttl", envInt64("OCTOSTORE_MAX_TTL_SECONDS", int64(d.MaxTTL/time.Second)), "longest ttl_seconds allowed (env OCTOSTORE_MAX_TTL_SECONDS)")
	fs.Int64Var(&l.defaultTTL, "default-ttl", envInt64("OCTOSTORE_DEFAULT_TTL_SECONDS", int64(d.DefaultTTL/time.Second)), "ttl_seconds when a request gives none (env OCTOSTORE_DEFAULT_TTL_SECONDS)")
	fs.IntVar(&l.maxMetadata, "max-metadata", envInt("OCTOSTORE_MAX_METADATA_BYTES", d.MaxMetadataBytes), "longest metadata in bytes (env OCTOSTORE_MAX_METADATA_BYTES)")
	fs.IntVar(&l.maxLocks, "max-locks", envInt("OCTOSTORE_MAX_LOCKS", d.MaxHeldLocks), "held locks allowed per account (env OCTOSTORE_MAX_LOCKS)")
}

func (l *limitFlags) limits() (lockcore.Limits, error) {
	for _, f := range []struct {
		flag, env string
		n         int64
	}{
		{"--max-ttl", "OCTOSTORE_MAX_TTL_SECONDS", l.maxTTL},
		{"--default-ttl", "OCTOSTORE_DEFAULT_TTL_SECONDS", l.defaultTTL},
	} {
		if f.n > lockcore.MaxTTLSeconds {
			return lockcore.Limits{}, fmt.Errorf("limits: %s (env %s) must be at most %d seconds (got %d)", f.flag, f.env, lockcore.MaxTTLSeconds, f.n)
		}
	}
	// Each flag named, as the environment's checks name theirs; Validate
	// below says the same without the names.
	switch {
	case l.maxTTL < 1:
		return lockcore.Limits{}, fmt.Errorf("limits: --max-ttl (env OCTOSTORE_MAX_TTL_SECONDS) must be at least 1 second (got %d)", l.maxTTL)
	case l.defaultTTL < 1 || l.defaultTTL > l.maxTTL:
		return lockcore.Limits{}, fmt.Errorf("limits: --default-ttl (env OCTOSTORE_DEFAULT_TTL_SECONDS) must be from 1 to --max-ttl (env OCTOSTORE_MAX_TTL_SECONDS), %d seconds (got %d)", l.maxTTL, l.defaultTTL)
	case l.maxMetadata < 0:
		return lockcore.Limits{}, fmt.Errorf("limits: --max-metadata (env OCTOSTORE_MAX_METADATA_BYTES) must not be negative (got %d)", l.maxMetadata)
	case l.maxLocks < 1:
		return lockcore.Limits{}, fmt.Errorf("limits: --max-locks (env OCTOSTORE_MAX_LOCKS) must be at least 1 (got %d)", l.maxLocks)
	}
	lim := lockcore.Limits{
		MaxTTL:           time.Duration(l.maxTTL) * time.Second,
		DefaultTTL:       time.Duration(l.defaultTTL) * time.Second,
		MaxMetadataBytes: l.maxMetadata,
		MaxHeldLocks:     l.maxLocks,
	}
	if err := lim.Validate(); err != nil {
		return lockcore.Limits{}, fmt.Errorf("limits: %w", err)
	}
	return lim, nil
}

// redactedURL is u with any password replaced by "xxxxx", or a
// placeholder when u does not parse or has a password cut short (it may
// still hold a password: redisstore.RedactedURL).
func redactedURL(u string) string {
	return redisstore.RedactedURL(u, "(set from REDIS_URL; not shown)")
}

// The env helpers give a flag its default from the environment; checkLimitEnv
// and checkStoreEnv report values that are set but do not parse.
func envString(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envBool(key string) bool {
	v, _ := strconv.ParseBool(os.Getenv(key))
	return v
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envInt64(key string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(key), 10, 64); err == nil {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// checkLimitEnv and checkStoreEnv report environment variables that are set
// but do not parse or are out of range, also when a flag overrides them,
// so a typo such as OCTOSTORE_MAX_LOCKS=1o0 is an error, not a silent
// default. serve checks both; the token commands, which have
// no limits, check the store's only (storeFlags.open does).
func checkLimitEnv() error {
	for _, c := range []struct {
		key string
		min int64
		max int64
	}{
		{"OCTOSTORE_MAX_TTL_SECONDS", 1, lockcore.MaxTTLSeconds},
		{"OCTOSTORE_DEFAULT_TTL_SECONDS", 1, lockcore.MaxTTLSeconds},
		{"OCTOSTORE_MAX_METADATA_BYTES", 0, math.MaxInt},
		{"OCTOSTORE_MAX_LOCKS", 1, math.MaxInt},
	} {
		if v, ok := os.LookupEnv(c.key); ok {
			// As int64, not int: lockcore.MaxTTLSeconds does not fit a 32-bit int.
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("environment %s=%q is not an integer", c.key, v)
			}
			if n < c.min {
				return fmt.Errorf("environment %s=%q must be at least %d", c.key, v, c.min)
			}
			if n > c.max {
				return fmt.Errorf("environment %s=%q must be at most %d", c.key, v, c.max)
			}
		}
	}
	if v, ok := os.LookupEnv("OCTOSTORE_LOG_FORMAT"); ok && v != "text" && v != "json" {
		return fmt.Errorf("--log-format (env OCTOSTORE_LOG_FORMAT) must be text or json: environment OCTOSTORE_LOG_FORMAT=%q", v)
	}
	if v, ok := os.LookupEnv("OCTOSTORE_ADDR"); ok {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("--addr (env OCTOSTORE_ADDR) must be host:port, such as 127.0.0.1:8080: environment OCTOSTORE_ADDR=%q", v)
		}
	}
	return nil
}

func checkStoreEnv() error {
	if v, ok := os.LookupEnv("REDIS_CLUSTER"); ok && v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("environment REDIS_CLUSTER=%q is not true or false", v)
		}
	}
	if v, ok := os.LookupEnv("OCTOSTORE_OP_TIMEOUT"); ok {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return fmt.Errorf("environment OCTOSTORE_OP_TIMEOUT=%q is not a positive duration such as 3s", v)
		}
	}
	if v, ok := os.LookupEnv("OCTOSTORE_REDIS_PREFIX"); ok && strings.ContainsAny(v, "{}") {
		return fmt.Errorf("environment OCTOSTORE_REDIS_PREFIX=%q must not contain '{' or '}' (they pick a Redis Cluster slot)", v)
	}
	if v, ok := os.LookupEnv("OCTOSTORE_REDIS_WAIT_REPLICAS"); ok {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Errorf("environment OCTOSTORE_REDIS_WAIT_REPLICAS=%q is not an integer of 0 or more", v)
		}
	}
	return nil
}
