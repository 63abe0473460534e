// Command local runs OctoStore for development with no setup: an in-process
// miniredis (so the same Lua scripts as production run), the same HTTP
// handlers as every other deployment, and a fresh dev account whose token is
// printed with a ready curl line at every start. Nothing is kept after exit.
//
//	go run ./local [--addr 127.0.0.1:8080]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/buildinfo"
	"github.com/octostore/octostore/internal/httpserver"
	"github.com/octostore/octostore/internal/stopsignal"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

func main() {
	// The same stop signals as octostore serve: the first drains, a
	// second ends the process at once.
	ctx, stop := stopsignal.Context()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(2)
	}
}

// run serves until ctx ends. When ready is non-nil it receives the listen
// address once the server accepts connections (for tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	mr, opts, err := startRedis()
	if err != nil {
		return err
	}
	defer mr.Close()
	store := redisstore.New(redis.NewClient(opts), redisstore.Options{})
	defer store.Close()

	acct, _, err := store.EnsureAccount(ctx, "dev")
	if err != nil {
		return fmt.Errorf("create dev account: %w", err)
	}
	token, hash := lockcore.NewToken()
	if err := store.AddToken(ctx, acct.ID, hash); err != nil {
		return fmt.Errorf("create dev token: %w", err)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv := httpserver.New(functions.New(functions.Deps{
		Store:     store,
		StoreName: "redis",
		Logger:    logger,
		Version:   buildinfo.Version(),
	}), slog.NewLogLogger(logger.Handler(), slog.LevelWarn))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, `
OctoStore local (in-process miniredis; nothing is kept after exit) on %s

Dev account token:

    %s

Try it:

    curl -X POST %s/locks/my-lock/acquire -H "Authorization: Bearer %s" -d '{"ttl_seconds":30}'

`, base, token, base, token)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startRedis starts the in-process miniredis behind a random password, so
// that another local user cannot connect to its loopback port and read the
// token hashes or add a token of their own; it returns the options of a
// client that may.
func startRedis() (*miniredis.Miniredis, *redis.Options, error) {
	mr := miniredis.NewMiniRedis()
	var b [24]byte
	rand.Read(b[:]) // crypto/rand.Read never fails.
	pw := hex.EncodeToString(b[:])
	mr.RequireAuth(pw)
	if err := mr.Start(); err != nil {
		return nil, nil, fmt.Errorf("start miniredis: %w", err)
	}
	return mr, &redis.Options{Addr: mr.Addr(), Password: pw}, nil
}
