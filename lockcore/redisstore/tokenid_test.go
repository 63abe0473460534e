package redisstore_test

import (
	"errors"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

// TestAccountIDByTokenClosed checks that the one-round-trip lookup fails
// with ErrUnavailable on a closed store. Its answers (the same as
// AccountByToken's for live, unknown, revoked and rotated-away tokens) are
// checked by storetest's Tokens, which runs against every Redis harness.
func TestAccountIDByTokenClosed(t *testing.T) {
	m := miniredis.RunT(t)
	s := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr(), DisableIdentity: true}), redisstore.Options{Prefix: "tid:"})
	s.Close()
	if _, err := s.AccountIDByToken(t.Context(), lockcore.TokenHash{}); !errors.Is(err, lockcore.ErrUnavailable) {
		t.Fatalf("closed store: %v, want ErrUnavailable", err)
	}
}
