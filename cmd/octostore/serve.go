package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/oauth"
	"github.com/octostore/octostore/internal/buildinfo"
	"github.com/octostore/octostore/internal/httpserver"
	"github.com/octostore/octostore/internal/logbuf"
	"github.com/octostore/octostore/lockcore"
)

// How long a shutdown waits for requests in flight, and the access log's
// buffering. (The HTTP server's limits are internal/httpserver's.)
const (
	shutdownTimeout = 10 * time.Second

	// The log is written at least every logFlush, or when logBufSize bytes
	// are waiting; a SIGKILL loses at most the last logFlush of lines.
	logFlush   = 100 * time.Millisecond
	logBufSize = 64 << 10
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envString("OCTOSTORE_ADDR", "127.0.0.1:8080"), "listen address (env OCTOSTORE_ADDR)")
	logFormat := fs.String("log-format", envString("OCTOSTORE_LOG_FORMAT", "text"), "log format: text or json (env OCTOSTORE_LOG_FORMAT)")
	tlsCert := fs.String("tls-cert", envString("OCTOSTORE_TLS_CERT", ""), "serve HTTPS with this PEM certificate chain file; needs --tls-key (env OCTOSTORE_TLS_CERT)")
	tlsKey := fs.String("tls-key", envString("OCTOSTORE_TLS_KEY", ""), "the PEM private key file of --tls-cert (env OCTOSTORE_TLS_KEY)")
	var sf storeFlags
	sf.register(fs)
	var lf limitFlags
	lf.register(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	if err := checkLimitEnv(); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("serve: --addr (env OCTOSTORE_ADDR) is empty: give a listen address such as 127.0.0.1:8080")
	}
	limits, err := lf.limits()
	if err != nil {
		return err
	}
	tuneGC(os.LookupEnv)
	// One log line per request: gather them and write every logFlush
	// instead of one write per line. Close (deferred) writes the rest.
	logOut := logbuf.New(stderr, logFlush, logBufSize)
	defer logOut.Close()
	logger, err := newLogger(*logFormat, logOut)
	if err != nil {
		return err
	}

	// Everything that can refuse the start without the store is checked
	// before the store is opened: a refused start leaves no database file
	// behind, and never creates the first account (printing its token)
	// for a server that then does not run.
	keyPair, err := loadKeyPair(*tlsCert, *tlsKey, logger)
	if err != nil {
		return err
	}
	oauthCfg := oauthConfigFromEnv(*addr, keyPair != nil)
	if err := oauthCfg.Check(); err != nil {
		return fmt.Errorf("GitHub sign-in: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()

	// go-redis' own lines (failed dials while Redis is away, the first
	// one included) in the log's format.
	sf.redisLog = logger
	sf.server = true
	store, storeName, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// Said, not only returned: the server has already stopped
		// serving, and the log is where its operator looks.
		if err := store.Close(); err != nil {
			logger.Error("closing the store", "err", err)
		}
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchDurability(watchCtx, store, logger, warnDurability(ctx, store, logger), durabilityInterval)

	var flow *oauth.Flow
	if oauthCfg.Enabled() {
		if flow, err = oauth.New(oauthCfg, store, logger); err != nil {
			return fmt.Errorf("GitHub sign-in: %w", err)
		}
	} else if err := bootstrapAdmin(ctx, store, stdout, curlBase(ln.Addr().String(), keyPair != nil), min(30*time.Second, limits.MaxTTL)); err != nil {
		return err
	}

	handler := functions.New(functions.Deps{
		Store:     store,
		StoreName: storeName,
		Limits:    limits,
		Logger:    logger,
		Version:   buildinfo.Version(),
		OpTimeout: sf.opTimeout,
		OAuth:     flow,
	})
	srv := httpserver.New(handler, log.New(httpErrorLog{logger}, "", 0))
	srv.WriteTimeout, srv.Handler = answerInTime(sf.opTimeout, handler)
	serveFn := srv.Serve
	if keyPair != nil {
		if err := httpserver.UseTLS(srv, keyPair); err != nil {
			return err
		}
		serveFn = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		go keyPair.Watch(ctx, tlsWatchInterval)
	} else if !isLoopback(*addr) && !strings.HasPrefix(oauthCfg.PublicURL, "https://") {
		logger.Warn("serving plain HTTP on a non-loopback address: bearer tokens cross the network unencrypted",
			"addr", *addr, "fix", "set --tls-cert and --tls-key, or serve behind a TLS proxy and set OCTOSTORE_PUBLIC_URL to its https:// URL")
	}
	logger.Info("octostore listening", "addr", ln.Addr().String(), "store", storeName, "version", buildinfo.Version(), "tls", keyPair != nil, "github_sign_in", flow != nil)

	errc := make(chan error, 1)
	go func() { errc <- serveFn(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// writeMargin is how much longer than one store step (--op-timeout) the
// time a request's own store steps may take is at least, and
// requestMargin how long before the WriteTimeout the last store step of a
// request ends: net/http closes the connection of an answer written after
// its WriteTimeout without a word, so a 503 after a long --op-timeout (or
// after two slow steps) would never reach the client.
const (
	writeMargin   = 5 * time.Second
	requestMargin = 2 * time.Second
)

// detachedSteps is how many store steps of up to --op-timeout each a
// request may still make after its context has ended, on contexts of
// their own: a Redis token rotation whose script's reply was lost reads
// whether the script ran, then takes the new token back or finishes the
// rotation (redisstore.Store.RotateToken), so that its answer tells what
// happened.
const detachedSteps = 2

// baseWriteTimeout is the server's WriteTimeout when --op-timeout needs no
// more (a variable so that a test can shorten it).
var baseWriteTimeout = httpserver.WriteTimeout

// answerInTime returns the WriteTimeout of a server whose store steps each
// last up to opTimeout, and h with the context of every request ending
// early enough that every answer, a 503 included, is written in time: the
// request's own steps end by the larger of the base WriteTimeout and
// opTimeout + writeMargin, less requestMargin, and the WriteTimeout leaves
// room after that for detachedSteps more and requestMargin. A request
// makes at most two store steps in a row on its context (the token's
// account, then the write), and then at most detachedSteps: when all of
// them fit in the base WriteTimeout with writeMargin to spare (opTimeout
// up to 6.25 s; the default is 3 s), h is returned as it is, and requests
// pay for no extra context.
func answerInTime(opTimeout time.Duration, h http.Handler) (time.Duration, http.Handler) {
	if (2+detachedSteps)*opTimeout+writeMargin <= baseWriteTimeout {
		return baseWriteTimeout, h
	}
	limit := max(baseWriteTimeout, opTimeout+writeMargin) - requestMargin
	write := limit + detachedSteps*opTimeout + requestMargin
	return write, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), limit)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// tlsWatchInterval is how often serve looks at its TLS files and
// certificate without a handshake asking (httpserver.KeyPair.Watch); a
// variable for the tests.
var tlsWatchInterval = time.Hour

// durabilityInterval is how often serve reads the store's durability
// settings again after start (watchDurability); a variable for the tests.
var durabilityInterval = 10 * time.Minute

// durabilityChecker is a store that can report its durability settings
// (the Redis store: appendonly, appendfsync, maxmemory-policy).
type durabilityChecker interface {
	DurabilityWarnings(context.Context) ([]string, error)
}

// warnDurability logs a warning for each setting of the store that falls
// short of what crash-safe locks need (Redis: appendonly,
// appendfsync, maxmemory-policy; see README "Durability"), and returns
// those warnings. Settings that cannot be read are logged as such (and nil
// is returned); the server starts either way.
func warnDurability(ctx context.Context, store lockcore.Store, logger *slog.Logger) []string {
	d, ok := store.(durabilityChecker)
	if !ok {
		return nil
	}
	warnings, err := d.DurabilityWarnings(ctx)
	if err != nil {
		logger.Info("could not read the store's durability settings", "err", err)
		return nil
	}
	for _, w := range warnings {
		logger.Warn("store durability", "problem", w)
	}
	return warnings
}

// watchDurability reads the store's durability settings again every
// interval until ctx ends, so that a setting changed on a running Redis
// (CONFIG SET maxmemory-policy allkeys-lru, appendonly no) is logged too:
// each warning that was not there at the last reading at WARN, each one
// gone since at INFO. prev is what the start found. A reading that fails
// (Redis away, CONFIG refused) is skipped without a word: the start
// already said whether the settings can be read, and /health reports an
// outage.
func watchDurability(ctx context.Context, store lockcore.Store, logger *slog.Logger, prev []string, interval time.Duration) {
	d, ok := store.(durabilityChecker)
	if !ok {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		prev = recheckDurability(ctx, d, logger, prev)
	}
}

// recheckDurability is one reading of watchDurability: it logs the
// changes from prev and returns the warnings now in force (prev when the
// reading fails).
func recheckDurability(ctx context.Context, d durabilityChecker, logger *slog.Logger, prev []string) []string {
	cur, err := d.DurabilityWarnings(ctx)
	if err != nil {
		return prev
	}
	for _, w := range cur {
		if !slices.Contains(prev, w) {
			logger.Warn("store durability", "problem", w)
		}
	}
	for _, w := range prev {
		if !slices.Contains(cur, w) {
			logger.Info("store durability restored", "was", w)
		}
	}
	return cur
}

// gcPercent is the garbage collector's target (GOGC) that serve sets when
// the environment does not set GOGC. The server's live heap is a few MB and
// every request allocates, so at Go's default of 100 it collects hundreds
// of times a second; at 400 it collects a quarter as often, for about
// 12 MB more RSS under load. Measured: +37% cycles/s in the handler's
// Redis benchmark at 32 goroutines (benchstat, p=0.002), +7–12% and p99
// -0.8 ms over HTTP (BENCHMARKS.md).
const gcPercent = 400

// tuneGC sets the GC target to gcPercent unless GOGC is set (lookup is
// os.LookupEnv), and returns the target in force afterwards: an operator's
// GOGC always wins.
func tuneGC(lookup func(string) (string, bool)) int {
	if _, set := lookup("GOGC"); set {
		prev := debug.SetGCPercent(100)
		debug.SetGCPercent(prev)
		return prev
	}
	debug.SetGCPercent(gcPercent)
	return gcPercent
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format (env OCTOSTORE_LOG_FORMAT) must be text or json (got %q)", format)
}

// httpErrorLog writes net/http's own error lines to logger at WARN, but a
// TLS handshake that the client abandoned without a word (a TCP health
// check, a port scan: EOF, a reset, the handshake timeout) at DEBUG, so
// that probes do not bury the warnings that matter.
type httpErrorLog struct{ logger *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") &&
		(strings.HasSuffix(msg, ": EOF") || strings.HasSuffix(msg, ": connection reset by peer") || strings.HasSuffix(msg, ": i/o timeout")) {
		level = slog.LevelDebug
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}

// loadKeyPair reads the TLS pair of --tls-cert and --tls-key: nil when
// neither is given, an error when only one is or the files do not load.
func loadKeyPair(certFile, keyFile string, logger *slog.Logger) (*httpserver.KeyPair, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case keyFile == "":
		return nil, errors.New("serve: --tls-cert (env OCTOSTORE_TLS_CERT) needs --tls-key (env OCTOSTORE_TLS_KEY), the certificate's private key")
	case certFile == "":
		return nil, errors.New("serve: --tls-key (env OCTOSTORE_TLS_KEY) needs --tls-cert (env OCTOSTORE_TLS_CERT), the certificate chain")
	}
	kp, err := httpserver.LoadKeyPair(certFile, keyFile, logger)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return kp, nil
}

// isLoopback reports whether the listen address addr takes connections
// from this machine only: a loopback IP or "localhost".
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// oauthConfigFromEnv reads the GitHub app settings. Setting
// GITHUB_CLIENT_ID or GITHUB_CLIENT_SECRET turns sign-in on (and oauth.New
// then checks the rest). Without OCTOSTORE_PUBLIC_URL the callback is on the
// listen address (https when the server serves TLS); without
// OCTOSTORE_STATE_SECRET the state key is derived from the client secret,
// so every instance with the same app agrees.
func oauthConfigFromEnv(addr string, tls bool) oauth.Config {
	public := strings.TrimSpace(os.Getenv("OCTOSTORE_PUBLIC_URL"))
	if public == "" {
		public = baseURL(addr, tls)
	}
	return oauth.Config{
		ClientID:     strings.TrimSpace(os.Getenv("GITHUB_CLIENT_ID")),
		ClientSecret: os.Getenv("GITHUB_CLIENT_SECRET"),
		PublicURL:    public,
		StateSecret:  []byte(os.Getenv("OCTOSTORE_STATE_SECRET")),
		BaseURL:      strings.TrimSpace(os.Getenv("GITHUB_BASE_URL")),
		APIURL:       strings.TrimSpace(os.Getenv("GITHUB_API_URL")),
	}
}

// baseURL is the URL of a listen address, https when tls is set, else
// http; a wildcard host (":8080", "0.0.0.0:8080", "[::]:8080") becomes
// 127.0.0.1.
func baseURL(addr string, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, port)
}

// curlBase is the URL of the first-start curl line: OCTOSTORE_PUBLIC_URL
// when set (a certificate names a host, rarely 127.0.0.1), else the URL of
// the address the server listens on.
func curlBase(addr string, tls bool) string {
	if public := strings.TrimSpace(os.Getenv("OCTOSTORE_PUBLIC_URL")); public != "" {
		return strings.TrimSuffix(public, "/")
	}
	return baseURL(addr, tls)
}

// bootstrapAdmin makes the first account on an empty store (when no GitHub
// app is configured) and prints its token once, with a curl line for base,
// the server's URL, that acquires a lock for ttl (which must be within the
// server's limits). Later starts find an account and print nothing.
func bootstrapAdmin(ctx context.Context, store lockcore.Store, stdout io.Writer, base string, ttl time.Duration) error {
	n, err := store.CountAccounts(ctx)
	if err != nil {
		return fmt.Errorf("count accounts: %w", err)
	}
	if n > 0 {
		return nil
	}
	acct, _, err := store.EnsureAccount(ctx, "admin")
	if err != nil {
		// The account may be made all the same (a write whose answer was
		// lost to a timeout), and later starts then print no token.
		return fmt.Errorf("first start: could not create account \"admin\" (%w). If a later start prints no token, the account was made after all: make a token with `octostore token create --login admin` and the same store flags", err)
	}
	token, hash := lockcore.NewToken()
	if err := store.AddToken(ctx, acct.ID, hash); err != nil {
		// The account is made, so later starts print no token: say how
		// to get one (a start killed right here needs the same command,
		// which the README gives).
		return fmt.Errorf("first start: created account \"admin\", but making its token failed (%w); later starts find the account and print none. Make a token with `octostore token create --login admin` and the same store flags", err)
	}
	// A closed pipe on stdout would end the process with SIGPIPE at the
	// write below (Go's default for fd 1), before the token that nobody
	// saw can be revoked: while SIGPIPE is asked for, the write fails
	// with EPIPE instead.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	if _, err := fmt.Fprintf(stdout, `
First start: created account "admin". Its token is shown this once; keep it:

    %s

Try it:

    curl -X POST %s/locks/my-lock/acquire -H "Authorization: Bearer %s" -d '{"ttl_seconds":%d}'

`, token, base, token, int(ttl/time.Second)); err != nil {
		// Nobody may have seen the token, and later starts print none
		// (the account exists): take it back, stop, and say how to get one.
		what := "it was revoked"
		if rerr := store.RevokeToken(ctx, hash); rerr != nil {
			what = fmt.Sprintf("revoking it failed too (%v): revoke every token of account %s with `octostore token revoke --account %s`", rerr, acct.ID, acct.ID)
		}
		return fmt.Errorf("first start: could not print the token of the new account \"admin\" on stdout (%w); %s. Make a token with `octostore token create --login admin` and the same store flags, then start again", err, what)
	}
	return nil
}
