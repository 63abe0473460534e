package redisstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// DurabilityWarnings reads the Redis settings that decide whether fencing
// tokens and held locks survive a crash of Redis (CONFIG GET appendonly,
// appendfsync, maxmemory-policy, on every master of a Cluster) and returns
// one sentence for each that falls short of the README's advice
// (appendonly yes, appendfsync always, maxmemory-policy noeviction); none
// when all hold. A Redis that refuses CONFIG (managed services often do)
// gives an error and no warnings. It changes nothing on the server.
func (s *Store) DurabilityWarnings(ctx context.Context) ([]string, error) {
	var (
		mu       sync.Mutex
		warnings []string
	)
	check := func(ctx context.Context, c redis.Cmdable, node string) error {
		octx, cancel, err := s.op(ctx)
		if err != nil {
			return err
		}
		defer cancel()
		got := map[string]string{}
		for _, key := range []string{"appendonly", "appendfsync", "maxmemory-policy"} {
			m, err := c.ConfigGet(octx, key).Result()
			if err != nil {
				return s.fail("read settings", err)
			}
			got[key] = m[key]
		}
		var w []string
		switch {
		case got["appendonly"] != "yes":
			w = append(w, fmt.Sprintf("Redis%s has appendonly %q: a crash of Redis loses the writes since its last snapshot, and a lock acquired since can then be given to a second lease (set appendonly yes and appendfsync always)", node, got["appendonly"]))
		case got["appendfsync"] != "always":
			w = append(w, fmt.Sprintf("Redis%s has appendfsync %q: a crash of the machine can lose the last writes, and a lock acquired just before can then be given to a second lease (set appendfsync always)", node, got["appendfsync"]))
		}
		if p := got["maxmemory-policy"]; p != "noeviction" {
			w = append(w, fmt.Sprintf("Redis%s has maxmemory-policy %q: when full it may evict a held lock, a token or an account (set maxmemory-policy noeviction)", node, p))
		}
		mu.Lock()
		warnings = append(warnings, w...)
		mu.Unlock()
		return nil
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return check(ctx, c, " master "+c.Options().Addr)
		})
	} else {
		err = check(ctx, s.client, "")
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(warnings)
	return warnings, nil
}
