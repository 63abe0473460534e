package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/scripts"
)

// maxSweepPasses bounds RevokeAccountTokens' passes over the token keys,
// and maxChain the rotations it follows from one token: only tokens
// rotated as fast as they are revoked keep it going.
const (
	maxSweepPasses = 10
	maxChain       = 1000
)

// RevokeAccountTokens implements lockcore.AccountTokens. Redis keeps no
// index of an account's tokens, so it scans the token keys
// (<prefix>token:*, on every master of a Cluster) and retires, with
// RevokeToken (mirror first, so at once on every instance), each that names
// the account. A SCAN is no snapshot: a rotation running meanwhile can set
// its new token key where the scan has already been, and retire the old one
// after the scan read it. So every token found is followed along its
// rotations: a retired token's key is a tombstone naming the token it was
// rotated to (set only after the new token's key, and kept tombstoneTTL),
// and each batch of keys the scan returns is followed at once, from the
// token it names or, for a tombstone, from its successor as read then. A
// revocation that finds its token retired follows the new tombstone.
// Passes repeat until one revokes nothing and took less than half of
// tombstoneTTL (a longer one could have outlived a tombstone it needed);
// after maxSweepPasses it gives up with an error. The scan reads every
// token key of the store: its cost grows with the tokens of all accounts
// (it is an operator's command, not a request's). Last, it deletes the
// account's token mirrors whose token key no longer names the account
// (dropOrphanMirrors), each counted as a token revoked. An account id that
// no account can have gets 0.
func (s *Store) RevokeAccountTokens(ctx context.Context, accountID string) (int, error) {
	if checkAccountID(accountID) != nil {
		return 0, nil
	}
	revoked := 0
	for range maxSweepPasses {
		start := time.Now()
		n, err := s.sweep(ctx, accountID)
		revoked += n
		if err != nil {
			return revoked, err
		}
		if n == 0 && time.Since(start) < tombstoneTTL/2 {
			dropped, err := s.dropOrphanMirrors(ctx, accountID)
			return revoked + dropped, err
		}
	}
	return revoked, fmt.Errorf("redisstore: revoke account tokens: tokens of the account still appeared after %d passes (a rotation or sign-in loop, or a very long scan); run it again", maxSweepPasses)
}

// revokeChain revokes h if it is a live token of accountID, and otherwise
// follows h's rotations (tombstone to successor) to the live token at their
// end and revokes that. It returns 1 when it revoked a token, 0 when the
// chain ends in no live token of the account.
func (s *Store) revokeChain(ctx context.Context, accountID string, h lockcore.TokenHash) (int, error) {
	for range maxChain {
		octx, cancel, err := s.op(ctx)
		if err != nil {
			return 0, err
		}
		v, err := s.client.Get(octx, s.tokenKey(h)).Result()
		cancel()
		switch {
		case errors.Is(err, redis.Nil):
			return 0, nil // revoked, or made by a rotation that lost
		case err != nil:
			return 0, s.fail("revoke account tokens", err)
		case v == accountID:
			switch err := s.RevokeToken(ctx, h); {
			case err == nil:
				return 1, nil
			case !errors.Is(err, lockcore.ErrNotFound):
				return 0, err
			}
			// Retired meanwhile: read its key again.
		case strings.HasPrefix(v, scripts.TombstonePrefix):
			next, ok := parseHash(strings.TrimPrefix(v, scripts.TombstonePrefix))
			if !ok {
				return 0, nil
			}
			h = next
		default:
			return 0, nil // another account's
		}
	}
	return 0, fmt.Errorf("redisstore: revoke account tokens: a token was rotated %d times while being revoked", maxChain)
}

// sweep is one pass of RevokeAccountTokens: it scans the token keys with
// SCAN and GETs on each node (a Cluster's masters each hold some of them,
// and are scanned at the same time) and, batch by batch, revokes the chain
// of every key that names accountID or is a rotation tombstone (whose
// successor may). It returns how many tokens it revoked.
func (s *Store) sweep(ctx context.Context, accountID string) (int, error) {
	head := s.prefix + "token:"
	pattern := globEscape(head) + "*"
	var revoked atomic.Int64
	err := s.scanEach(ctx, "revoke account tokens", pattern, func(pctx context.Context, c redis.Cmdable, keys []string) error {
		if s.scanHook != nil {
			s.scanHook()
		}
		var gets []*redis.StringCmd
		if len(keys) > 0 {
			// Each GET's own error is checked below; a key gone since
			// the scan is redis.Nil.
			_, _ = c.Pipelined(pctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					gets = append(gets, p.Get(pctx, k))
				}
				return nil
			})
		}
		for i, g := range gets {
			if err := g.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return s.fail("revoke account tokens", err)
			}
			var from string
			switch v := g.Val(); {
			case v == accountID:
				from = strings.TrimPrefix(keys[i], head)
			case strings.HasPrefix(v, scripts.TombstonePrefix):
				from = strings.TrimPrefix(v, scripts.TombstonePrefix)
			default:
				continue // another account's, or gone since the scan
			}
			h, ok := parseHash(from)
			if !ok {
				continue
			}
			// Each chain under its own op timeouts, not the page's.
			n, err := s.revokeChain(ctx, accountID, h)
			revoked.Add(int64(n))
			if err != nil {
				return err
			}
		}
		return nil
	})
	return int(revoked.Load()), err
}

// scanEach runs SCAN MATCH pattern on every node that holds keys (see
// eachNode: the masters of a Cluster at the same time, so page must be
// safe for concurrent use) and calls page with each page of keys, the
// node's client, and a context bounded by the operation timeout for the
// page's own commands. It stops at the first error; a failed SCAN is
// translated for op (see fail).
func (s *Store) scanEach(ctx context.Context, op, pattern string, page func(pctx context.Context, c redis.Cmdable, keys []string) error) error {
	return s.eachNode(ctx, func(ctx context.Context, c redis.Cmdable) error {
		for cursor := uint64(0); ; {
			pctx, cancel, err := s.op(ctx)
			if err != nil {
				return err
			}
			keys, next, err := c.Scan(pctx, cursor, pattern, 1000).Result()
			if err != nil {
				err = s.fail(op, err)
			} else {
				err = page(pctx, c, keys)
			}
			cancel()
			if err != nil || next == 0 {
				return err
			}
			cursor = next
		}
	})
}

// eachNode calls fn with the client of each node that holds keys: the one
// server, or every master of a Cluster (at the same time, so fn must be
// safe for concurrent use).
func (s *Store) eachNode(ctx context.Context, fn func(ctx context.Context, c redis.Cmdable) error) error {
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return fn(ctx, c) })
	}
	return fn(ctx, s.client)
}

// parseHash reads a token hash written in hex.
func parseHash(s string) (lockcore.TokenHash, bool) {
	var h lockcore.TokenHash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// globEscape escapes the characters that SCAN's MATCH pattern treats
// specially, so that s matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]^-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dropOrphanMirrors deletes every token mirror of accountID
// (<prefix>{a:ID}:tok:<hex>, found with SCAN on every node) whose token
// key does not name the account: missing, a rotation tombstone, or
// another account's. Builds from before mirrors existed (before
// 2026-11-28) revoke and rotate a token by its token key alone and leave
// its mirror, with which the lock writes of later builds (AcquireAs and
// friends) go on accepting the token wherever an instance remembers it;
// once the mirror is gone they look the token key up and refuse it. A
// mirror whose token key is being set at this moment (AddToken and
// RotateToken set the mirror first) may be deleted too: its token then
// takes the lookup on every lock write, as a token made by those builds
// does, and works. It returns how many mirrors it deleted.
func (s *Store) dropOrphanMirrors(ctx context.Context, accountID string) (int, error) {
	head := s.tag(accountID) + ":tok:"
	pattern := globEscape(head) + "*"
	var mu sync.Mutex
	var mirrors []string
	err := s.scanEach(ctx, "revoke account tokens", pattern, func(_ context.Context, _ redis.Cmdable, keys []string) error {
		mu.Lock()
		mirrors = append(mirrors, keys...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, err
	}
	dropped := 0
	for start := 0; start < len(mirrors); start += restoreCheckBatch {
		n, err := s.dropOrphanBatch(ctx, accountID, head, mirrors[start:min(len(mirrors), start+restoreCheckBatch)])
		dropped += n
		if err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

// dropOrphanBatch reads the token key of each mirror in batch (one
// pipeline) and deletes, with one DEL (they share the account's slot),
// those whose token key does not name accountID.
func (s *Store) dropOrphanBatch(ctx context.Context, accountID, head string, batch []string) (int, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	gets := make([]*redis.StringCmd, len(batch))
	// Each GET's own error is checked below (redis.Nil: no such key).
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range batch {
			if h, ok := parseHash(strings.TrimPrefix(m, head)); ok {
				gets[i] = p.Get(ctx, s.tokenKey(h))
			}
		}
		return nil
	})
	var orphans []string
	for i, g := range gets {
		if g == nil {
			continue
		}
		v, err := g.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, s.fail("revoke account tokens", err)
		}
		if err != nil || v != accountID {
			orphans = append(orphans, batch[i])
		}
	}
	if len(orphans) == 0 {
		return 0, nil
	}
	n, err := s.client.Del(ctx, orphans...).Result()
	if err != nil {
		return 0, s.fail("revoke account tokens", err)
	}
	return int(n), nil
}
