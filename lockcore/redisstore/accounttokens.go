package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
)

// maxSweepPasses bounds RevokeAccountTokens' passes over the token keys.
// Only tokens made as fast as they are revoked (a rotation loop holding one
// of them) keep a pass finding some.
const maxSweepPasses = 10

// RevokeAccountTokens implements lockcore.AccountTokens. Redis keeps no
// index of an account's tokens, so it scans the token keys
// (<prefix>token:*, on every master of a Cluster) for those naming the
// account, and retires each with RevokeToken (mirror first, so at once on
// every instance). It repeats that until a pass finds none: a rotation of
// one of them running meanwhile either loses (its old token was revoked
// first, and it deletes the token it made) or has made its new token key
// before it retired the old one, and the next pass finds that key. After
// maxSweepPasses passes that all found tokens it gives up with an error.
// The scan reads every token key of the store: its cost grows with the
// tokens of all accounts (it is an operator's command, not a request's).
// An account id that no account can have gets 0.
func (s *Store) RevokeAccountTokens(ctx context.Context, accountID string) (int, error) {
	if checkAccountID(accountID) != nil {
		return 0, nil
	}
	revoked := 0
	for range maxSweepPasses {
		hashes, err := s.tokensOf(ctx, accountID)
		if err != nil || len(hashes) == 0 {
			return revoked, err
		}
		for _, h := range hashes {
			switch err := s.RevokeToken(ctx, h); {
			case err == nil:
				revoked++
			case errors.Is(err, lockcore.ErrNotFound):
				// Revoked or rotated meanwhile: the next pass finds
				// what a rotation made.
			default:
				return revoked, err
			}
		}
	}
	return revoked, fmt.Errorf("redisstore: revoke account tokens: the account still had new tokens after %d passes (a rotation or sign-in loop?); run it again", maxSweepPasses)
}

// tokensOf returns the hashes of the live token keys whose value is
// accountID, read with SCAN and GETs on each node (a Cluster's masters
// each hold some of the keys).
func (s *Store) tokensOf(ctx context.Context, accountID string) ([]lockcore.TokenHash, error) {
	head := s.prefix + "token:"
	pattern := globEscape(head) + "*"
	var (
		mu    sync.Mutex
		found []lockcore.TokenHash
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		for cursor := uint64(0); ; {
			octx, cancel, err := s.op(ctx)
			if err != nil {
				return err
			}
			keys, next, err := c.Scan(octx, cursor, pattern, 1000).Result()
			if err != nil {
				cancel()
				return s.fail("revoke account tokens", err)
			}
			var gets []*redis.StringCmd
			if len(keys) > 0 {
				// Each GET's own error is checked below; a key gone
				// since the scan is redis.Nil.
				_, _ = c.Pipelined(octx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						gets = append(gets, p.Get(octx, k))
					}
					return nil
				})
			}
			cancel()
			for i, g := range gets {
				if err := g.Err(); err != nil && !errors.Is(err, redis.Nil) {
					return s.fail("revoke account tokens", err)
				}
				if g.Val() != accountID {
					continue // another account's, a tombstone, or gone since the scan
				}
				var h lockcore.TokenHash
				if b, err := hex.DecodeString(strings.TrimPrefix(keys[i], head)); err == nil && len(b) == len(h) {
					copy(h[:], b)
					mu.Lock()
					found = append(found, h)
					mu.Unlock()
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.client)
	}
	return found, err
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
