package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/scripts"
)

var restoreScript = redis.NewScript(scripts.Restore)

// restoreBatch is how many lock keys one run of restore.lua deletes at
// most, so that an account with many expired lock hashes still left does
// not make one long script.
const restoreBatch = 1000

// PrepareRestored makes a Redis that was restored from a snapshot (an RDB
// file or an AOF older than the last write) safe to serve again: a server
// started on it as it is would show the snapshot's locks as held, and the
// locks taken after it as free, and only the Redis clock (which tokens
// follow) would keep its fencing tokens above those issued after the
// snapshot was taken. For every account under the store's prefix
// (every account has at least its account key, which the scan finds) it
// raises the fencing counter to at least floor, never lowering it, and it
// deletes every lock, so that no holder from before the snapshot keeps
// one; clients acquire again and get tokens above the floor. Accounts and
// tokens are kept.
//
// floor must be from 1 to lockcore.MaxFenceFloor and greater than every
// fencing token issued since the snapshot. The command line's default, the
// later of its machine's clock and the Redis clock (Clock) in
// microseconds, is, unless the Redis clock has gone back past those
// tokens or an earlier restore was given a floor above the clock: tokens
// are max(the account's last + 1, the Redis clock in µs). A floor below a counter the
// store holds cannot be, and is refused with a
// *lockcore.FloorBelowCounterError before anything changes; a floor equal
// to the highest counter is taken. Run it while no server uses the
// store: it scans every key of the prefix (on every master of a Cluster)
// and handles one account at a time, so a lock taken meanwhile may or may
// not survive it. Each account's step is atomic, so running it again
// after an error (with a floor at least as high) is safe. Errors wrap
// lockcore.ErrUnavailable when Redis cannot be reached.
func (s *Store) PrepareRestored(ctx context.Context, floor int64) (lockcore.RestoreResult, error) {
	if floor < 1 || floor > lockcore.MaxFenceFloor {
		return lockcore.RestoreResult{}, fmt.Errorf("redisstore: restore: fencing floor must be from 1 to %d (got %d)", lockcore.MaxFenceFloor, floor)
	}
	locks, err := s.scanAccounts(ctx)
	if err != nil {
		return lockcore.RestoreResult{}, err
	}
	res := lockcore.RestoreResult{Floor: floor}
	order := make([]string, 0, len(locks))
	for id := range locks {
		order = append(order, id)
	}
	sort.Strings(order)
	if err := s.checkFloor(ctx, order, floor); err != nil {
		return res, err
	}
	arg := strconv.FormatInt(floor, 10)
	for _, id := range order {
		tag := s.tag(id)
		keys := locks[id]
		for first := true; first || len(keys) > 0; first = false {
			n := min(len(keys), restoreBatch)
			octx, cancel, err := s.op(ctx)
			if err != nil {
				return res, err
			}
			dropped, err := restoreScript.Run(octx, s.client, append([]string{tag + ":fence", tag + ":held"}, keys[:n]...), arg).Int64()
			cancel()
			if err != nil {
				return res, s.fail("restore", err)
			}
			res.LocksDropped += dropped
			keys = keys[n:]
		}
		res.Accounts++
	}
	return res, nil
}

// Clock returns the Redis clock (TIME): the latest of the clocks of every
// master of a Cluster. Fencing tokens follow this clock (acquire.lua), so
// it, not the clock of the machine that runs a restore, is the default
// floor's measure of "above every token issued". Errors wrap
// lockcore.ErrUnavailable when Redis cannot be reached.
func (s *Store) Clock(ctx context.Context) (time.Time, error) {
	var (
		mu     sync.Mutex
		latest time.Time
	)
	err := s.eachNode(ctx, func(ctx context.Context, c redis.Cmdable) error {
		ctx, cancel, err := s.op(ctx)
		if err != nil {
			return err
		}
		defer cancel()
		t, err := c.Time(ctx).Result()
		if err != nil {
			return s.fail("time", err)
		}
		mu.Lock()
		if t.After(latest) {
			latest = t
		}
		mu.Unlock()
		return nil
	})
	return latest, err
}

// ServersConnected returns the addresses of the clients connected to the
// store's Redis (every master of a Cluster) under ServerClientName:
// servers that use it (octostore serve, instances of the Lambda function,
// idle ones included), whose held locks PrepareRestored would drop under
// them. An error (wrapping lockcore.ErrUnavailable when Redis cannot be
// reached) means CLIENT LIST could not be read: a managed Redis may
// refuse it.
func (s *Store) ServersConnected(ctx context.Context) ([]string, error) {
	var (
		mu    sync.Mutex
		addrs []string
	)
	err := s.eachNode(ctx, func(ctx context.Context, c redis.Cmdable) error {
		ctx, cancel, err := s.op(ctx)
		if err != nil {
			return err
		}
		defer cancel()
		list, err := c.ClientList(ctx).Result()
		if err != nil {
			return s.fail("client list", err)
		}
		for _, line := range strings.Split(list, "\n") {
			var addr, name string
			for _, field := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(field, "addr="); ok {
					addr = v
				} else if v, ok := strings.CutPrefix(field, "name="); ok {
					name = v
				}
			}
			if name == ServerClientName {
				mu.Lock()
				addrs = append(addrs, addr)
				mu.Unlock()
			}
		}
		return nil
	})
	sort.Strings(addrs)
	return addrs, err
}

// restoreCheckBatch is how many fencing counters checkFloor reads in one
// pipeline.
const restoreCheckBatch = 1000

// checkFloor returns a *lockcore.FloorBelowCounterError, before anything
// is changed, when the fencing counter of one of the accounts ids is above
// floor (the highest such counter, the first such account in ids' order).
func (s *Store) checkFloor(ctx context.Context, ids []string, floor int64) error {
	var top *lockcore.FloorBelowCounterError
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.tag(id) + ":fence"
	}
	err := s.getEach(ctx, keys, func(i int, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s.fail("restore", fmt.Errorf("fencing counter %s: %w", keys[i], err))
		}
		if n > floor && (top == nil || n > top.Counter) {
			top = &lockcore.FloorBelowCounterError{Floor: floor, Counter: n, AccountID: ids[i]}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if top != nil {
		return fmt.Errorf("redisstore: restore: %w", top)
	}
	return nil
}

// scanAccounts scans every key of the prefix that belongs to an account
// (on every master of a Cluster) and returns the account ids found, each
// with the lock hash keys found for it.
func (s *Store) scanAccounts(ctx context.Context) (map[string][]string, error) {
	head := s.prefix + "{a:"
	// Every key of the prefix: the account keys, and the index keys
	// (token, login, GitHub id) whose values are account ids. An account
	// whose slot lost every key (a Cluster master restarted empty) has no
	// key under its tag left, while its tokens, in other slots, may still
	// be accepted; its id is found through them, so that its fencing
	// counter is raised as well.
	pattern := globEscape(s.prefix) + "*"
	indexes := []string{s.prefix + "token:", s.prefix + "login:", s.prefix + "gh:"}
	var mu sync.Mutex
	found := map[string][]string{}
	var indexKeys []string
	err := s.scanEach(ctx, "restore", pattern, func(_ context.Context, _ redis.Cmdable, keys []string) error {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if !strings.HasPrefix(k, head) {
				for _, p := range indexes {
					if strings.HasPrefix(k, p) {
						indexKeys = append(indexKeys, k)
						break
					}
				}
				continue
			}
			id, rest, ok := strings.Cut(strings.TrimPrefix(k, head), "}")
			if !ok || checkAccountID(id) != nil {
				continue
			}
			if strings.HasPrefix(rest, ":lock:") {
				found[id] = append(found[id], k)
			} else if _, seen := found[id]; !seen {
				found[id] = nil
			}
		}
		return nil
	})
	if err != nil {
		return found, err
	}
	err = s.getEach(ctx, indexKeys, func(_ int, id string) error {
		// A rotated-out token key holds a tombstone, not an id.
		if _, seen := found[id]; !seen && checkAccountID(id) == nil {
			found[id] = nil
		}
		return nil
	})
	if err != nil {
		return found, err
	}
	return found, nil
}

// getEach GETs keys, restoreCheckBatch at a time in one pipeline each,
// and calls fn with the index and value of every key that exists (a key
// gone meanwhile is skipped). It stops at the first error of Redis or fn.
func (s *Store) getEach(ctx context.Context, keys []string, fn func(i int, v string) error) error {
	for start := 0; start < len(keys); start += restoreCheckBatch {
		batch := keys[start:min(len(keys), start+restoreCheckBatch)]
		octx, cancel, err := s.op(ctx)
		if err != nil {
			return err
		}
		gets := make([]*redis.StringCmd, len(batch))
		// Each GET's own error is checked below (redis.Nil: no such key).
		_, _ = s.client.Pipelined(octx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				gets[i] = p.Get(octx, k)
			}
			return nil
		})
		cancel()
		for i, g := range gets {
			v, err := g.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return s.fail("restore", err)
			}
			if err := fn(start+i, v); err != nil {
				return err
			}
		}
	}
	return nil
}
