package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/scripts"
)

// RedisTarget runs the project's own acquire.lua and release.lua (package
// scripts) directly on a Redis server with go-redis: no HTTP, no handler,
// no token lookup. It is the ceiling of what OctoStore on Redis can do. The
// keys are laid out exactly as lockcore/redisstore lays them out (see
// RedisKeys), so a store opened with the same prefix sees these locks in
// the account AccountID.
type RedisTarget struct {
	client  redis.UniversalClient
	keys    RedisKeys
	ttlMs   int64
	maxHeld int
}

// RedisKeys builds the keys of one account the way lockcore/redisstore
// does: every key carries the hash tag {a:<account-id>} after the prefix.
type RedisKeys struct {
	// Prefix starts every key (redisstore's default is "os:").
	Prefix string
	// AccountID is the account whose namespace the locks live in.
	AccountID string
}

// Tag is <prefix>{a:<account-id>}.
func (k RedisKeys) Tag() string { return k.Prefix + "{a:" + k.AccountID + "}" }

// Lock is the lock hash <tag>:lock:<name>.
func (k RedisKeys) Lock(name string) string { return k.Tag() + ":lock:" + name }

// Fence is the account's fencing counter <tag>:fence.
func (k RedisKeys) Fence() string { return k.Tag() + ":fence" }

// Held is the account's held-lock sorted set <tag>:held.
func (k RedisKeys) Held() string { return k.Tag() + ":held" }

var (
	acquireScript = redis.NewScript(scripts.Acquire)
	releaseScript = redis.NewScript(scripts.Release)
)

// NewRedisTarget connects to the Redis at redisURL (redis://host:port/db)
// with a pool of conns connections and returns a target whose locks live
// under keys, with lease TTL ttl and quota maxHeld (acquire.lua's ARGV).
func NewRedisTarget(ctx context.Context, redisURL string, keys RedisKeys, ttl time.Duration, maxHeld, conns int) (*RedisTarget, error) {
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: redis URL: %w", err)
	}
	if keys.AccountID == "" || strings.ContainsAny(keys.AccountID, "{}") {
		return nil, fmt.Errorf("loadgen: redis account id %q must be non-empty and without braces", keys.AccountID)
	}
	o.PoolSize = conns + 4
	o.MinIdleConns = conns
	o.MaxRetries = -1
	client := redis.NewClient(o)
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("loadgen: redis %s: %w", o.Addr, err)
	}
	ms := ttl.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if maxHeld < 1 {
		maxHeld = 1
	}
	return &RedisTarget{client: client, keys: keys, ttlMs: ms, maxHeld: maxHeld}, nil
}

// Name implements Target.
func (t *RedisTarget) Name() string { return "redis-lua" }

// Close implements Target: it closes the pool.
func (t *RedisTarget) Close() error { return t.client.Close() }

// NewClient implements Target.
func (t *RedisTarget) NewClient(ctx context.Context, id int) (Client, error) {
	return &redisClient{t: t, prefix: "raw" + strconv.Itoa(id) + "-"}, nil
}

type redisClient struct {
	t      *RedisTarget
	prefix string
	n      int64
}

// Acquire implements Client with one run of acquire.lua; the handle is the
// lease id (made up by the client, as the HTTP handler would).
func (c *redisClient) Acquire(ctx context.Context, name string) (string, bool, error) {
	c.n++
	lease := c.prefix + strconv.FormatInt(c.n, 10)
	k := c.t.keys
	res, err := acquireScript.Run(ctx, c.t.client, []string{k.Lock(name), k.Fence(), k.Held()},
		name, lease, c.t.ttlMs, c.t.maxHeld, "0", "").Slice()
	if err != nil {
		return "", false, err
	}
	if len(res) == 0 {
		return "", false, fmt.Errorf("acquire.lua: empty reply")
	}
	status, _ := res[0].(int64)
	switch status {
	case 1:
		return lease, true, nil
	case 0:
		return "", false, nil
	case 2:
		return "", false, fmt.Errorf("acquire.lua: account at its quota of %d locks", c.t.maxHeld)
	}
	return "", false, fmt.Errorf("acquire.lua: unexpected reply %v", res)
}

// Release implements Client with one run of release.lua.
func (c *redisClient) Release(ctx context.Context, name, lease string) error {
	k := c.t.keys
	n, err := releaseScript.Run(ctx, c.t.client, []string{k.Lock(name), k.Held()}, name, lease).Int64()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("release.lua: lease %s does not hold %s", lease, name)
	}
	return nil
}

// Close implements Client.
func (c *redisClient) Close() error { return nil }
