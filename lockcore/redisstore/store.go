// Package redisstore is the lockcore.Store on Redis, through go-redis v9's
// UniversalClient: a standalone server, Sentinel, Redis Cluster, or
// miniredis in tests and local development.
//
// Every lock operation is one Lua script from package scripts (run with
// EVALSHA, falling back to EVAL when the server does not know it yet) that
// touches the keys of one account only, all in one hash slot thanks to the
// hash tag {a:<account-id>}. Time comes from the Redis server (TIME), so many
// stateless instances agree on expiries. Account and token operations are
// single commands or short sequences designed to stay correct across Cluster
// slots (see the method docs).
//
// The lock writes with a bearer token (lockcore.TokenLocks: AcquireAs,
// RenewAs, ReleaseAs) are one round trip too: the token's mirror key lives
// in the account's slot, and the lock script checks that it exists in the
// same atomic step as the write. AddToken, RotateToken and RevokeToken keep
// the mirrors in step with the token keys, deleting a mirror before the
// token key it mirrors is retired, so a retired token is refused at once by
// every instance on a standalone Redis and on Redis Cluster alike. A token
// without a mirror (from a store written before mirrors existed) is
// checked against its token key and then written with a check of its
// revocation mark, so its retirement is not overtaken either.
//
// Fencing tokens come from one counter per account that never expires and
// is never deleted. A new lease's token is the counter plus one, but never
// below the Redis clock in microseconds (acquire.lua): a hybrid logical
// clock, so tokens still go up after Redis loses writes it acknowledged
// (a crash with appendfsync everysec, a failover to a replica that had
// not received them, a snapshot brought back, an evicted counter), as
// long as the clock of the Redis that answers is not behind the one that
// issued the lost tokens by more than the time between the two. What
// such a loss still undoes is the locks themselves: a lost acquire or
// renew leaves the lock free for a second lease (whose token is then the
// higher one), so run Redis with appendonly yes and appendfsync always
// when locks must survive a crash too (a managed service that
// acknowledges a write only once it is durable, such as MemoryDB, does
// not have that gap). Keep maxmemory-policy at noeviction: an allkeys-*
// policy may evict any key, held locks and tokens included; a volatile-*
// policy evicts held locks (the keys with a TTL) before they expire, so
// that a second lease can take a lock whose holder still has it. Under
// noeviction a full Redis refuses writes, and the store reports that as
// ErrUnavailable.
//
// Failures to reach Redis, timeouts, cancelled contexts and server states
// that refuse service for a while (LOADING, CLUSTERDOWN, TRYAGAIN,
// MASTERDOWN, BUSY, READONLY, NOREPLICAS, OOM, MISCONF, maxclients, a
// script stopped by a Cluster slot migration) or
// refuse the client's credentials or ACL permissions (NOAUTH, WRONGPASS,
// NOPERM: a password changed or a user disabled while the server runs) are
// returned wrapping lockcore.ErrUnavailable. The Store holds no connection
// state of its own: when Redis comes back, calls succeed again (within about
// a second, once go-redis' dial probe notices). On Redis Cluster such a
// failure that Redis did not answer (a connection refused, a timeout) also
// makes the client read the slot map again, so that the replica that took
// over from a master that is gone is found at once (see reloadSlots).
//
// Keys (P is the prefix, ID an account id):
//
//	P{a:ID}:lock:<name>  hash lease, fence, expires, ttl (ms), metadata; PX TTL
//	P{a:ID}:fence        the account's last fencing token; no TTL
//	P{a:ID}:held         zset name -> expires (ms), for quota and List;
//	                     each acquire and renew makes it expire no earlier
//	                     than its highest score (also a set an earlier
//	                     build left without a TTL), never earlier than
//	                     before: a release or a shortening renewal does
//	                     not bring its expiry forward
//	P{a:ID}:account      hash login, github_id, created (ms)
//	P{a:ID}:tok:<hex>    "1" while the token with that sha256 hex belongs to
//	                     the account; no TTL. A mirror of Ptoken:<hex> in
//	                     the account's slot, so AcquireAs, RenewAs and
//	                     ReleaseAs check the token inside the lock script
//	                     (tokens added before mirrors existed have none and
//	                     are checked against Ptoken:<hex>, see AcquireAs)
//	P{a:ID}:revoked:<hex> "1" for two minutes after the token with that
//	                     sha256 hex was revoked or rotated out: the lock
//	                     scripts' fallback for a token without a mirror
//	                     refuses it while the mark exists (see lockScript)
//	Ptoken:<sha256 hex>  account id of a token, or for a minute after it
//	                     was rotated out a "rotated:<new hash>" tombstone
//	Plogin:<login>       id of the operator-made account with that login
//	Pgh:<github id>      id of the account of a GitHub user
//	Paccounts            set of all account ids (CountAccounts)
//	Phealth              the time (ms) of the last Ping, which writes it;
//	                     PX one minute
package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/scripts"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "os:"

// DefaultOpTimeout is the per-operation timeout used when
// Options.OpTimeout is zero.
const DefaultOpTimeout = 2 * time.Second

// Options tune a Store.
type Options struct {
	// Prefix starts every key the store writes; default DefaultPrefix.
	// Stores with different prefixes on one Redis do not see each other.
	// It must not contain '{' or '}', which would change the hash tags
	// (Open refuses such a prefix).
	Prefix string
	// OpTimeout bounds each operation when the caller's context has no
	// earlier deadline; default DefaultOpTimeout.
	OpTimeout time.Duration
	// WaitReplicas, when positive, makes every lock write (acquire, renew,
	// release) wait until that many replicas of its master have it (WAIT,
	// on the connection that wrote it) before it succeeds; a write they
	// have not acknowledged within the operation's time is an error
	// wrapping lockcore.ErrUnavailable (its outcome unknown: the master
	// has it). Redis replicates asynchronously, so without it a failover
	// to a replica can lose acknowledged lock writes (a second lease can
	// then take a held lock; fencing tokens stay safe either way). With
	// it, a lock write is acknowledged only once a replica that a failover
	// could promote has it. Ping's health write waits the same way (so
	// /health says 503 while lock writes would); token and account writes
	// are not waited for. It needs a *redis.Client or *redis.ClusterClient
	// (as Open makes): with another UniversalClient (a *redis.Ring) every
	// lock write and Ping fails with an error wrapping
	// lockcore.ErrUnavailable.
	WaitReplicas int
}

// Config is what the command line or the environment give to Open.
type Config struct {
	// URL is a redis:// or rediss:// (TLS) URL as go-redis parses it. With
	// Cluster it is go-redis' cluster form
	// redis://h1:p1?addr=h2:p2&addr=h3:p3.
	URL string
	// Cluster selects a Redis Cluster client.
	Cluster bool
	// Prefix is Options.Prefix.
	Prefix string
	// OpTimeout is Options.OpTimeout; Open also uses it for the client's
	// dial, read, write and pool timeouts.
	OpTimeout time.Duration
	// WaitReplicas is Options.WaitReplicas.
	WaitReplicas int
	// Server marks a store that serves the API (octostore serve, the
	// Lambda function): its connections are named ServerClientName
	// (CLIENT SETNAME), unless the URL names them (client_name), so that
	// a restore can tell that servers use the Redis (ServersConnected).
	// A Redis that refuses CLIENT SETNAME (an ACL user without CLIENT)
	// is served all the same, by unnamed connections (see nameServerConn).
	Server bool
}

// ServerClientName is the name the connections of a store opened with
// Config.Server give Redis.
const ServerClientName = "octostore-server"

// Store is a lockcore.Store on Redis. It is safe for concurrent use; many
// Stores in many processes may share one Redis.
type Store struct {
	client redis.UniversalClient
	// pipe, when set, carries the hot path's commands (token lookups,
	// acquire, renew, release): go-redis' autopipeliner, which writes the
	// commands of concurrent callers to Redis together, so 32 requests in
	// flight cost Redis and the network a few reads and writes instead of
	// 32 of each. Open sets it for a standalone client; New leaves it nil.
	pipe      *redis.AutoPipeliner
	inflight  atomic.Int64 // hot-path commands in flight, to bypass pipe when alone
	prefix    string
	opTimeout time.Duration
	// waitReplicas is Options.WaitReplicas (see runWrite).
	waitReplicas int
	// nodes maps the address of each node of a Cluster client to its
	// client (*redis.Client), as go-redis makes them (OnNewNode), so that
	// runWrite can follow a MOVED or ASK redirect to the node it names:
	// its WAIT must go on the connection that wrote. Set by New only when
	// the store waits for replicas.
	nodes sync.Map
	// waitSlots maps a node's address ("" for a *redis.Client) to a
	// semaphore (chan struct{} of capacity waitSlotsPerNode) bounding the
	// lock writes waiting for replicas at once on that node (see runWrite)
	// to half its connection pool, so that while its replicas lag the
	// other half still serves reads, token lookups and /health. Each
	// master of a Cluster has a pool, and a semaphore, of its own: writes
	// stalled on one master's replica do not hold back the others'.
	waitSlots        sync.Map
	waitSlotsPerNode int
	closed           atomic.Bool
	// Test hooks, nil outside tests: fallbackHook runs in lockScript's
	// fallback after the token key was read and before the write;
	// retireHook runs in RevokeToken and RotateToken after the token key
	// was retired and before the revocation mark is set again; scanHook
	// runs in RevokeAccountTokens' sweep after each SCAN and before the
	// values of the keys it returned are read (on each Cluster master at
	// once).
	fallbackHook, retireHook, scanHook func()
}

var (
	acquireScript = redis.NewScript(scripts.Acquire)
	renewScript   = redis.NewScript(scripts.Renew)
	releaseScript = redis.NewScript(scripts.Release)
	getScript     = redis.NewScript(scripts.Get)
	listScript    = redis.NewScript(scripts.List)
	accountScript = redis.NewScript(scripts.Account)
	rotateScript  = redis.NewScript(scripts.Rotate)
	revokeScript  = redis.NewScript(scripts.Revoke)
)

// tombstoneTTL is how long a rotated-out token key keeps its tombstone: long
// enough to outlive any client retry of the rotation.
const tombstoneTTL = time.Minute

// vouchWindow is how long, by the Redis clock, a lock write whose token has
// no mirror may still be done on the strength of the token key that it
// read: the fallback's write must run within vouchWindow of the first
// script's answer. markTTL is how long the revocation mark that
// RevokeToken and RotateToken set (twice: before the mirror goes, and
// again after the token key is retired) lasts. A fallback that read the
// token key before the key was retired, and writes after the revocation
// returned, finds the mark if it writes within markTTL of the second
// setting, and is past its deadline if it writes later, because
// vouchWindow < markTTL; so no write with a retired token lands after its
// revocation returned, however long the fallback's steps take. The first
// setting alone covers those writes while the key was retired less than
// markTTL - vouchWindow after it, so a second setting that fails within
// markCover of the first does not fail the retirement (see markAgain).
// markTTL is also how long a token whose retirement failed before its key
// was retired stays refused by the lock writes, and the mark keeps
// refusing it while the failed call is retried.
const (
	vouchWindow = 30 * time.Second
	markTTL     = 2 * time.Minute
	markCover   = markTTL - vouchWindow - 30*time.Second
)

// New returns a Store over client. The Store owns the client from then on:
// Close closes it. The client's own timeouts still apply; for a client that
// does not set ContextTimeoutEnabled, a read can outlast OpTimeout up to the
// client's ReadTimeout. With Options.WaitReplicas the client must be a
// *redis.Client or *redis.ClusterClient, and half of its PoolSize (per
// node) bounds the writes that wait at once. Open configures all of this;
// prefer it.
func New(client redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	s := &Store{client: client, prefix: opts.Prefix, opTimeout: opts.OpTimeout, waitReplicas: max(opts.WaitReplicas, 0)}
	if s.waitReplicas > 0 {
		pool := 0
		switch c := client.(type) {
		case *redis.Client:
			pool = c.Options().PoolSize
		case *redis.ClusterClient:
			pool = c.Options().PoolSize
			c.OnNewNode(func(c *redis.Client) { s.nodes.Store(c.Options().Addr, c) })
		}
		if pool <= 0 {
			pool = 10 * runtime.GOMAXPROCS(0) // go-redis' default
		}
		s.waitSlotsPerNode = max(pool/2, 1)
	}
	return s
}

// Open parses cfg.URL, builds a client whose dial, read, write and pool
// timeouts are cfg.OpTimeout and which honours context deadlines, and pings
// Redis once. A malformed URL or prefix is a plain error. A failing ping returns an
// error wrapping lockcore.ErrUnavailable and no Store; a Store that opened
// recovers by itself from later outages.
//
// When Redis is down, go-redis stops dialling after a burst of failed dials
// and probes in the background about once a second, so a Store recovers
// within about a second of Redis coming back.
//
// Commands are not retried by the standalone client (MaxRetries -1), because
// a retried release or revoke that had already taken effect would be
// misreported as ErrLeaseNotCurrent or ErrNotFound. The Cluster client keeps
// go-redis' redirect and failover handling (MaxRedirects), which can retry a
// command after a network error: acquire, renew and token rotation (and
// AcquireAs, RenewAs) are safe to retry; a retried release or revoke (or
// ReleaseAs) may be misreported as above (the lock is free or the token
// gone either way).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	timeout := cfg.OpTimeout
	if timeout <= 0 {
		timeout = DefaultOpTimeout
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: key prefix %q must not contain '{' or '}'", cfg.Prefix)
	}
	if PasswordCut(cfg.URL) {
		return nil, errPasswordCut
	}
	var client redis.UniversalClient
	if cfg.Cluster {
		o, err := redis.ParseClusterURL(cfg.URL)
		if err != nil {
			return nil, urlError("cluster URL", clusterURLForm, err)
		}
		if o.ReadOnly || o.RouteByLatency || o.RouteRandomly {
			// Reads from replicas lag: a token revoked or rotated on the
			// master could still be accepted, and a lock shown free.
			return nil, fmt.Errorf("redisstore: cluster URL: read_only, route_by_latency and route_randomly send reads to replicas, which may not have seen the latest writes; remove them")
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
		o.ContextTimeoutEnabled = true
		o.MaxRetries = -1
		if o.DialerRetries == 0 {
			o.DialerRetries, o.DialerRetryTimeout = fastDialRetries, fastDialBackoff
		}
		if cfg.Server && o.ClientName == "" {
			o.OnConnect = nameServerConn
		}
		client = redis.NewClusterClient(o)
	} else {
		o, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, urlError("URL", urlForm, err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
		o.ContextTimeoutEnabled = true
		o.MaxRetries = -1
		if o.DialerRetries == 0 {
			o.DialerRetries, o.DialerRetryTimeout = fastDialRetries, fastDialBackoff
		}
		if cfg.Server && o.ClientName == "" {
			o.OnConnect = nameServerConn
		}
		client = redis.NewClient(o)
	}
	if cfg.WaitReplicas < 0 {
		client.Close()
		return nil, fmt.Errorf("redisstore: replicas to wait for must be 0 or more (got %d)", cfg.WaitReplicas)
	}
	s := New(client, Options{Prefix: cfg.Prefix, OpTimeout: timeout, WaitReplicas: cfg.WaitReplicas})
	if c, ok := client.(*redis.Client); ok {
		var err error
		if s.pipe, err = c.AsyncAutoPipeline(); err != nil {
			client.Close()
			return nil, fmt.Errorf("redisstore: autopipeline: %w", err)
		}
	}
	// Reachable is enough to open: a Redis that refuses writes for a while
	// (full, loading) makes the store unavailable, not the start fail.
	if err := s.reach(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return s, nil
}

// nameServerConn names a new connection of a server's store
// ServerClientName (CLIENT SETNAME), for ServersConnected. It is not
// go-redis' ClientName, which fails every connection (and so the store)
// when CLIENT SETNAME is refused: an ACL user without the CLIENT command
// (NOPERM), or a Redis-compatible server or proxy that lacks it, served
// before names were given and must go on serving, unnamed. Any other
// error (the connection broke) fails the connection as usual.
func nameServerConn(ctx context.Context, cn *redis.Conn) error {
	err := cn.ClientSetName(ctx, ServerClientName).Err()
	var rerr redis.Error
	if err != nil && errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// reach checks that Redis answers PING, within OpTimeout.
func (s *Store) reach(ctx context.Context) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		if replyHasPrefix(err, accessPrefixes) {
			// A wrong password or user at start is a configuration
			// error, not an outage to wait out.
			return fmt.Errorf("redisstore: ping: %w", err)
		}
		return s.fail("ping", err)
	}
	return nil
}

// The forms of URL Open takes, named in its errors.
const (
	urlForm        = "redis://[user:password@]host:port[/db], rediss://… for TLS, or unix:///path/to/socket"
	clusterURLForm = "redis://[user:password@]host1:port1?addr=host2:port2&addr=…"
)

// errPasswordCut is Open's error for a URL that PasswordCut refuses; it
// does not quote the URL.
var errPasswordCut = errors.New("redisstore: URL has an '@' or a '#' after its host (the URL is not shown: it may hold a password): percent-encode a '/', '?' or '#' in the password (as %2F %3F %23)")

// PasswordCut reports whether a redis:// or rediss:// URL has an '@' or a
// '#' after its host: a password whose '/', '?' or '#' was not
// percent-encoded, which ended the host there and left the rest of the
// password in the URL's path, query or fragment. Past its host a Redis
// URL holds only a database number and options, so one there is never
// meant. Open refuses such a URL before go-redis parses it, since
// go-redis would quote that rest in its error (an invalid database
// number, an unknown option), or ignore a fragment, and url.URL.Redacted
// would show it. Other schemes (unix://, whose socket path may hold an
// '@') are not checked.
func PasswordCut(raw string) bool {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (!strings.EqualFold(scheme, "redis") && !strings.EqualFold(scheme, "rediss")) {
		return false
	}
	end := strings.IndexAny(rest, "/?#")
	return end >= 0 && strings.ContainsAny(rest[end:], "@#")
}

// RedactedURL is a Redis URL fit for a log line or a usage text: its
// password replaced by "xxxxx", or placeholder when the URL does not
// parse or PasswordCut refuses it (it may then hold a password where
// url.URL.Redacted does not look).
func RedactedURL(raw, placeholder string) string {
	u, err := url.Parse(raw)
	if err != nil || PasswordCut(raw) {
		return placeholder
	}
	return u.Redacted()
}

// urlError reports a Redis URL that does not parse, and the form wanted,
// without the URL itself, which may hold a password (url.Parse's errors
// quote it whole).
func urlError(what, form string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		// Not even the parser's reason: it quotes a piece of the URL
		// ("invalid port \":pw\" after host"), and a password with an
		// unescaped / ? or # is cut there, its start taken for the port.
		return fmt.Errorf("redisstore: %s does not parse (neither it nor the reason is shown: they may hold a password); in the password, percent-encode / ? # @ and %% (as %%2F %%3F %%23 %%40 %%25); want %s", what, form)
	}
	return fmt.Errorf("redisstore: %s: %w; want %s", what, err, form)
}

// Dial retries of the clients Open builds (unless the URL sets
// dialer_retries): a refused connection fails a call after ~50ms instead of
// go-redis' default five attempts 100ms apart.
const (
	fastDialRetries = 2
	fastDialBackoff = 50 * time.Millisecond
)

// Ping checks, within OpTimeout, that Redis takes a write: it sets the key
// <prefix>health (a minute's TTL). Every lock operation is a write, so a
// Redis that answers PING but refuses writes (full under noeviction, a
// read-only replica, MISCONF after a failed save) is unavailable too. On
// Redis Cluster the key lives on one master, so Ping checks that one. With
// Options.WaitReplicas the write goes with a WAIT (see pingReplicas), and
// replicas that do not acknowledge it in time make Ping fail with an
// error wrapping lockcore.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if s.waitReplicas > 0 {
		return s.pingReplicas(ctx)
	}
	if err := s.client.Set(ctx, s.prefix+"health", time.Now().UnixMilli(), healthTTL).Err(); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// pingReplicas is Ping for a store that waits for replicas: the health
// key's write goes with a WAIT, as a lock write does (see runWrite), so
// that /health says 503 while the replicas a lock write waits for do not
// acknowledge it, when every lock write would be 503 too. It takes no
// semaphore slot: a health check must answer within its own time.
func (s *Store) pingReplicas(ctx context.Context) error {
	key := s.prefix + "health"
	node, err := s.masterOf(ctx, key)
	if err != nil {
		return s.fail("ping", err)
	}
	wait := s.waitTimeout(ctx)
	var set *redis.StatusCmd
	var acked *redis.Cmd
	// Each command's own error is read below.
	_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		set = p.Set(ctx, key, time.Now().UnixMilli(), healthTTL)
		acked = p.Do(ctx, "wait", s.waitReplicas, wait.Milliseconds())
		return nil
	})
	if err := set.Err(); err != nil {
		if moved, _ := redirect(err); moved {
			if cc, ok := s.client.(*redis.ClusterClient); ok {
				cc.ReloadState(context.Background())
			}
		}
		return s.fail("ping", err)
	}
	n, err := acked.Int64()
	if err != nil {
		return s.fail("ping", fmt.Errorf("WAIT for %d replicas: %v", s.waitReplicas, err))
	}
	if n < int64(s.waitReplicas) {
		return s.fail("ping", fmt.Errorf("%d of the %d replicas to wait for acknowledged the health write within %v", n, s.waitReplicas, wait.Round(time.Millisecond)))
	}
	return nil
}

// healthTTL is how long the key Ping writes lives.
const healthTTL = time.Minute

// Close closes the client. Calls after Close fail with an error wrapping
// lockcore.ErrUnavailable; a second Close returns nil. Close waits at most
// closeWait for the client: when Redis does not answer, it returns an error
// wrapping lockcore.ErrUnavailable, and the client's connections close in
// the background as their reads time out.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- s.client.Close() }()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("redisstore: close: %w: Redis did not answer the commands still in flight within %v; their connections are closed as their reads time out", lockcore.ErrUnavailable, closeWait)
	}
}

// closeWait bounds Close. Closing a go-redis client first sends the
// commands left in its autopipeliner and waits for their answers, which a
// hung Redis never gives: each dispatch waits out the read timeout
// (OpTimeout) and then the next one, up to go-redis' 30 s backstop, so
// that a server stopped during an outage would stop that much later than
// its drain time. The callers of those commands have had their answer
// (ErrUnavailable at their deadline) and a server's handlers have all
// returned by the time it closes its store: nothing waits for the answers.
const closeWait = time.Second

// op derives the context of one operation: ctx bounded by OpTimeout (ctx
// itself, with no new timer, when its deadline is already that close).
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, fmt.Errorf("redisstore: %w: store is closed", lockcore.ErrUnavailable)
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.opTimeout {
		// Already bounded at least as tightly (the HTTP handlers give
		// every store call such a context): no second timer.
		return ctx, noCancel, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	return ctx, cancel, nil
}

func noCancel() {}

// transientPrefixes are server error replies that mean "not now" rather
// than "wrong request". OOM (a full Redis under noeviction) and MISCONF (a
// failed RDB snapshot with stop-writes-on-bgsave-error) refuse every write
// until an operator acts; a script is refused at its first write, so it
// changed nothing. "max number of clients reached" (ERR) is a Redis at its
// maxclients, as when many Lambda instances start at once. "Script
// attempted to access a non local key" is a script on a Redis Cluster
// master whose slot is being migrated away, stopped at a command on a key
// that the master no longer holds (one the script deleted, as acquire.lua
// does with a lock hash it takes over, or one emptied and so deleted
// earlier in the script): the command is refused as for a key already
// moved, and the script ends with what it wrote so far (in the lock
// scripts, only a deleted expired lock, removed expired held entries, or a
// fencing counter raised without a lease, none of which a later call
// minds), so the call may be retried once the migration has ended.
var transientPrefixes = []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "BUSY", "READONLY", "NOREPLICAS", "MOVED", "ASK", "OOM", "MISCONF", "max number of clients reached", "Script attempted to access a non local key"}

// clusterDownPrefix is the reply of a Cluster node that does not serve the
// slot asked for (the Cluster is down, or the node has left it), after
// which reloadSlots reads the slot map again.
var clusterDownPrefix = []string{"CLUSTERDOWN"}

// accessPrefixes are server error replies that refuse the client's
// credentials or permissions: a password changed or a user disabled while
// the server runs (NOAUTH, WRONGPASS, on every new connection), or an ACL
// user without a command or key the store needs (NOPERM; inside a script
// Redis 7 says "ERR The user executing the script can't run this command
// or subcommand"). The store cannot serve until an operator acts, as with
// OOM, so fail reports them as ErrUnavailable (503, as /health already
// answers then), not as a bug (500). A connection that could not
// authenticate (a password required since the store opened) and sends a
// command of more than ten arguments gets "ERR Protocol error:
// unauthenticated multibulk length" instead of NOAUTH. Open still refuses
// them at start as a configuration error (see reach).
var accessPrefixes = []string{"NOAUTH", "WRONGPASS", "NOPERM", "The user executing the script can't run", "Protocol error: unauthenticated"}

// replyHasPrefix reports whether err is a Redis error reply (not a context
// error) whose message, without a leading "ERR ", starts with one of
// prefixes.
func replyHasPrefix(err error, prefixes []string) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	msg := strings.TrimPrefix(rerr.Error(), "ERR ")
	for _, p := range prefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// fail translates a go-redis error: server replies that are neither
// transient nor access refusals are plain errors (a bug or a
// misconfiguration); everything else (network, timeout, context, pool,
// closed client, transient replies, refused credentials or permissions)
// wraps lockcore.ErrUnavailable.
func (s *Store) fail(op string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) &&
		!replyHasPrefix(err, transientPrefixes) && !replyHasPrefix(err, accessPrefixes) {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	s.reloadSlots(err)
	return fmt.Errorf("redisstore: %s: %w: %w", op, lockcore.ErrUnavailable, err)
}

// reloadSlots makes a Cluster client read the slot map again, in the
// background (go-redis runs one reload at a time), after an error that
// is no reply from Redis: a connection refused or broken, or a timeout;
// and after a CLUSTERDOWN reply. A master that is gone (killed, its host
// lost) answers nothing, so it never sends the MOVED on which go-redis
// reloads the map by itself; its slots' commands would go on failing
// after a replica has taken its place, until go-redis' periodic reload
// (ClusterStateReloadInterval, 60 s by default). A master removed from the
// Cluster (redis-cli --cluster del-node resets it and leaves it running)
// knows no slot any more and answers CLUSTERDOWN, not MOVED, to the slots
// it gave away, so the same holds for a store whose map still names it.
// A caller that went away (context.Canceled) says nothing about Redis and
// reloads nothing.
func (s *Store) reloadSlots(err error) {
	var rerr redis.Error
	if (errors.As(err, &rerr) && !replyHasPrefix(err, clusterDownPrefix)) || errors.Is(err, context.Canceled) || s.closed.Load() {
		return
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}

// hotDo runs cmd and waits for it until ctx ends: through the
// autopipeliner when there is one and other hot-path commands are in flight
// (a lone command goes straight to the client, which is quicker than the
// hand-off to the pipeliner's flusher). A command whose ctx has already
// ended is never sent. When the wait ends with ctx, the command may still
// run (the outcome is unknown, as for any timeout) and cmd must not be read.
func (s *Store) hotDo(ctx context.Context, cmd redis.Cmder) error {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.pipe == nil || n == 1 {
		return s.client.Process(ctx, cmd)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.pipe.Submit(ctx, cmd).WaitContext(ctx)
}

// runScript is Script.Run on the hot path: EVALSHA through hotDo, then
// EVAL on the client when Redis does not know the script yet (NOSCRIPT,
// e.g. after a restart).
func (s *Store) runScript(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	argv := make([]any, 0, 3+len(keys)+len(args))
	argv = append(argv, "evalsha", sc.Hash(), len(keys))
	for _, k := range keys {
		argv = append(argv, k)
	}
	argv = append(argv, args...)
	cmd := redis.NewCmd(ctx, argv...)
	err := s.hotDo(ctx, cmd)
	switch {
	case err == nil:
		return cmd
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		return sc.Eval(ctx, s.client, keys, args...)
	}
	failed := redis.NewCmd(ctx)
	failed.SetErr(err)
	return failed
}

// runWrite is runScript for a lock write (acquire, renew or release
// script, keys[0] in the account's slot). With Options.WaitReplicas it
// sends the script (EVALSHA, or EVAL when Redis answers NOSCRIPT) and a
// WAIT for that many replicas on one connection to the master of keys[0]'s
// slot, in one round trip, and fails unless the replicas acknowledged the
// write in time: WAIT covers the writes made on its own connection, which
// is why it bypasses the autopipeliner and go-redis' pooled dispatch
// (Ping waits the same way: pingReplicas). The script's text goes with the
// WAIT rather than through SCRIPT LOAD on
// another connection: a user who may not run SCRIPT LOAD is served as
// runScript serves it, and a SCRIPT FLUSH between a load and the resend
// cannot answer NOSCRIPT again. Each send's WAIT timeout is waitTimeout's,
// computed then. On a Cluster
// a MOVED (a stale slot map: the map is read again) or ASK (a slot being
// migrated) reply is followed, up to MaxRedirects times, to the node it
// names, script and WAIT together; a redirect it cannot follow is a
// transient error.
func (s *Store) runWrite(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	if s.waitReplicas == 0 {
		return s.runScript(ctx, sc, keys, args...)
	}
	failed := func(err error) *redis.Cmd {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	node, err := s.masterOf(ctx, keys[0])
	if err != nil {
		return failed(err)
	}
	var wait time.Duration
	send := func(node *redis.Client, withText, asking bool) (*redis.Cmd, *redis.Cmd) {
		wait = s.waitTimeout(ctx)
		var cmd, acked *redis.Cmd
		// Each command's own error is read below.
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			if asking {
				p.Do(ctx, "asking")
			}
			if withText {
				cmd = sc.Eval(ctx, p, keys, args...)
			} else {
				cmd = sc.EvalSha(ctx, p, keys, args...)
			}
			acked = p.Do(ctx, "wait", s.waitReplicas, wait.Milliseconds())
			return nil
		})
		return cmd, acked
	}
	// A write that waits holds its connection until the replicas answer:
	// at most half the pool does (waitSlots).
	slots := s.waitSlot(node)
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return failed(ctx.Err())
	}
	var cmd, acked *redis.Cmd
	withText, asking := false, false
	for redirects := 0; ; {
		cmd, acked = send(node, withText, asking)
		err := cmd.Err()
		if !withText && redis.HasErrorPrefix(err, "NOSCRIPT") {
			withText = true
			continue
		}
		cc, ok := s.client.(*redis.ClusterClient)
		if !ok || err == nil {
			break
		}
		// A slot map gone stale (a failover, a slot moved: MOVED) or a
		// slot being migrated (ASK) is followed as go-redis follows it
		// for runScript, to the node named, with the WAIT.
		moved, addr := redirect(err)
		if moved {
			cc.ReloadState(context.Background())
		}
		if addr == "" || redirects >= cc.Options().MaxRedirects {
			break
		}
		next := s.nodeAt(ctx, cc, addr)
		if next == nil {
			break
		}
		node, asking = next, !moved
		redirects++
	}
	if err := cmd.Err(); err != nil {
		return cmd
	}
	n, err := acked.Int64()
	if err != nil {
		// Not a bug of the request (500) but of the setup, as an access
		// refusal is: a server that refuses WAIT (a proxy or service
		// without it, a writable replica) refuses every waited write,
		// after the script ran.
		return failed(fmt.Errorf("WAIT for %d replicas: %v (it is on the master; its outcome is unknown)", s.waitReplicas, err))
	}
	if n < int64(s.waitReplicas) {
		return failed(fmt.Errorf("%d of the %d replicas to wait for acknowledged the write within %v (it is on the master; its outcome is unknown)", n, s.waitReplicas, wait.Round(time.Millisecond)))
	}
	return cmd
}

// masterOf returns the client of the master that holds key: the client
// itself on a standalone Redis, the slot's master on a Cluster (as the
// slot map says now).
func (s *Store) masterOf(ctx context.Context, key string) (*redis.Client, error) {
	switch c := s.client.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	}
	return nil, fmt.Errorf("redisstore: waiting for replicas needs a *redis.Client or *redis.ClusterClient, not %T", s.client)
}

// waitTimeout is the timeout of a WAIT sent now under ctx: what is left of
// ctx less a fifth of it, or less waitSlack if that is more (for reading
// its answer), never 0, which would wait for ever.
func (s *Store) waitTimeout(ctx context.Context) time.Duration {
	left := s.opTimeout
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	return max(left-max(left/5, waitSlack), time.Millisecond)
}

// waitSlot returns the semaphore of runWrite's waited writes to node (see
// Store.waitSlots).
func (s *Store) waitSlot(node *redis.Client) chan struct{} {
	addr := ""
	if _, ok := s.client.(*redis.ClusterClient); ok {
		addr = node.Options().Addr
	}
	if ch, ok := s.waitSlots.Load(addr); ok {
		return ch.(chan struct{})
	}
	ch, _ := s.waitSlots.LoadOrStore(addr, make(chan struct{}, s.waitSlotsPerNode))
	return ch.(chan struct{})
}

// nodeAt returns the client of the Cluster node at addr, or nil: the one
// OnNewNode recorded, else (a node made before New watched for them, as
// on a client already used) the master at addr after the slot map is read
// again, recorded then.
func (s *Store) nodeAt(ctx context.Context, cc *redis.ClusterClient, addr string) *redis.Client {
	if n, ok := s.nodes.Load(addr); ok {
		return n.(*redis.Client)
	}
	var mu sync.Mutex
	var found *redis.Client
	_ = cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		if c.Options().Addr == addr {
			mu.Lock()
			found = c
			mu.Unlock()
		}
		return nil
	})
	if found != nil {
		s.nodes.Store(addr, found)
	}
	return found
}

// redirect returns the node address of a MOVED or ASK reply ("" for any
// other error) and whether it is a MOVED.
func redirect(err error) (moved bool, addr string) {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false, ""
	}
	f := strings.Fields(rerr.Error())
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return false, ""
	}
	return f[0] == "MOVED", f[2]
}

// waitSlack is the least time runWrite leaves between the end of its WAIT
// and the end of its context: Redis times blocked clients out on its event
// loop, which an idle server runs hz (10) times a second, so a WAIT can
// answer up to 100 ms after its timeout.
const waitSlack = 150 * time.Millisecond

// Key layout. Every key of an account carries the hash tag {a:ID}.

// Prefix returns the key prefix that every key of the store starts with.
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) tag(accountID string) string     { return s.prefix + "{a:" + accountID + "}" }
func (s *Store) lockKey(tag, name string) string { return tag + ":lock:" + name }
func (s *Store) accountKey(id string) string     { return s.tag(id) + ":account" }
func (s *Store) tokenKey(h lockcore.TokenHash) string {
	return s.prefix + "token:" + hex.EncodeToString(h[:])
}
func (s *Store) githubKey(id int64) string    { return s.prefix + "gh:" + strconv.FormatInt(id, 10) }
func (s *Store) loginKey(login string) string { return s.prefix + "login:" + login }
func (s *Store) accountsKey() string          { return s.prefix + "accounts" }

// mirrorKey is the token mirror <tag>:tok:<hash hex>: it exists while the
// token belongs to the account of tag.
func (s *Store) mirrorKey(tag string, h lockcore.TokenHash) string {
	return tag + ":tok:" + hex.EncodeToString(h[:])
}

// markKey is the revocation mark <tag>:revoked:<hash hex>, set for markTTL
// by RevokeToken and RotateToken, so that the lock scripts' fallback for a
// token without a mirror refuses a token that is being retired.
func (s *Store) markKey(tag string, h lockcore.TokenHash) string {
	return tag + ":revoked:" + hex.EncodeToString(h[:])
}

// markRetired sets the revocation mark of a token of accountID for markTTL.
func (s *Store) markRetired(ctx context.Context, op, accountID string, h lockcore.TokenHash) error {
	if err := s.client.Set(ctx, s.markKey(s.tag(accountID), h), "1", markTTL).Err(); err != nil {
		return s.fail(op, err)
	}
	return nil
}

// markAgain sets the revocation mark of a token of accountID whose key
// has just been retired, the second time (see vouchWindow); first is when
// the first setting began. If it fails while less than markCover has
// passed since, the first mark still covers every write that can race the
// retirement, so the retirement stands and markAgain returns nil: a
// rotation that took effect is not reported failed (its caller would lose
// both tokens). Later, the error is returned.
func (s *Store) markAgain(ctx context.Context, op, accountID string, h lockcore.TokenHash, first time.Time) error {
	if s.retireHook != nil {
		s.retireHook()
	}
	err := s.markRetired(ctx, op, accountID, h)
	if err != nil && time.Since(first) < markCover {
		return nil
	}
	return err
}

// checkAccountID refuses ids that would break the hash tag.
func checkAccountID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "{}") {
		return fmt.Errorf("redisstore: account id %q is not usable (empty, over 128 bytes, or containing braces)", id)
	}
	return nil
}

// Acquire implements lockcore.Locks.Acquire with one run of acquire.lua.
func (s *Store) Acquire(ctx context.Context, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	return s.acquire(ctx, nil, accountID, name, opts)
}

// AcquireAs implements lockcore.TokenLocks.AcquireAs: Acquire whose run of
// acquire.lua also checks, in the same atomic step, that the token's mirror
// key <prefix>{a:ID}:tok:<hash hex> exists, so it is one round trip on
// Redis Cluster too. A token without a mirror (added before mirrors
// existed, or of another account) costs two more: the token key is read
// and, if it names accountID, acquire.lua runs again, done unless the
// token's revocation mark appeared meanwhile (see lockScript).
// Input errors are Acquire's, checked first. A token that is unknown,
// revoked, rotated away or of another account gets an error wrapping
// lockcore.ErrNotFound and nothing changes; an outage during the check
// wraps lockcore.ErrUnavailable. Safe to retry, like Acquire.
func (s *Store) AcquireAs(ctx context.Context, token lockcore.TokenHash, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	return s.acquire(ctx, &token, accountID, name, opts)
}

// acquire is Acquire, and AcquireAs when token is not nil.
func (s *Store) acquire(ctx context.Context, token *lockcore.TokenHash, accountID, name string, opts lockcore.AcquireOptions) (lockcore.AcquireResult, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return lockcore.AcquireResult{}, err
	}
	if err := lockcore.ValidateLeaseID(opts.LeaseID); err != nil {
		return lockcore.AcquireResult{}, err
	}
	ttl, err := lockcore.TTLMillis(opts.TTL)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	if opts.MaxHeld < 1 {
		return lockcore.AcquireResult{}, fmt.Errorf("redisstore: acquire: MaxHeld must be at least 1 (got %d)", opts.MaxHeld)
	}
	if err := checkAccountID(accountID); err != nil {
		return lockcore.AcquireResult{}, err
	}
	hasMeta, meta := "0", ""
	if opts.Metadata != nil {
		hasMeta, meta = "1", *opts.Metadata
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	defer cancel()
	tag := s.tag(accountID)
	keys := []string{s.lockKey(tag, name), tag + ":fence", tag + ":held"}
	cmd, err := s.lockScript(ctx, "acquire", acquireScript, accountID, token, keys, name, opts.LeaseID, ttl, opts.MaxHeld, hasMeta, meta)
	if err != nil {
		return lockcore.AcquireResult{}, err
	}
	res, err := cmd.Slice()
	if err != nil {
		return lockcore.AcquireResult{}, s.fail("acquire", err)
	}
	r := reply{v: res}
	switch status := r.int(0); status {
	case 2:
		if r.err != nil {
			return lockcore.AcquireResult{}, r.fail("acquire")
		}
		return lockcore.AcquireResult{}, fmt.Errorf("redisstore: acquire %q: %w", name, lockcore.ErrLockLimitExceeded)
	case 0, 1:
		lease := r.lease(name, 1)
		now := r.time(7)
		if r.err != nil {
			return lockcore.AcquireResult{}, r.fail("acquire")
		}
		return lockcore.AcquireResult{Acquired: status == 1, Lease: lease, Now: now}, nil
	default:
		r.setErr(fmt.Errorf("unknown status %d", status))
		return lockcore.AcquireResult{}, r.fail("acquire")
	}
}

// Renew implements lockcore.Locks.Renew with one run of renew.lua.
func (s *Store) Renew(ctx context.Context, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	return s.renew(ctx, nil, accountID, name, leaseID, ttl)
}

// RenewAs implements lockcore.TokenLocks.RenewAs: Renew whose run of
// renew.lua also checks the token's mirror key in the same atomic step,
// with the same fallback, errors and retry safety as AcquireAs.
func (s *Store) RenewAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	return s.renew(ctx, &token, accountID, name, leaseID, ttl)
}

// renew is Renew, and RenewAs when token is not nil.
func (s *Store) renew(ctx context.Context, token *lockcore.TokenHash, accountID, name, leaseID string, ttl time.Duration) (lockcore.Lease, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return lockcore.Lease{}, err
	}
	if err := lockcore.ValidateLeaseID(leaseID); err != nil {
		return lockcore.Lease{}, err
	}
	ms, err := lockcore.TTLMillis(ttl)
	if err != nil {
		return lockcore.Lease{}, err
	}
	if err := checkAccountID(accountID); err != nil {
		return lockcore.Lease{}, err
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.Lease{}, err
	}
	defer cancel()
	tag := s.tag(accountID)
	cmd, err := s.lockScript(ctx, "renew", renewScript, accountID, token, []string{s.lockKey(tag, name), tag + ":held"}, name, leaseID, ms)
	if err != nil {
		return lockcore.Lease{}, err
	}
	res, err := cmd.Slice()
	if err != nil {
		return lockcore.Lease{}, s.fail("renew", err)
	}
	r := reply{v: res}
	if r.int(0) != 1 {
		if r.err != nil {
			return lockcore.Lease{}, r.fail("renew")
		}
		return lockcore.Lease{}, fmt.Errorf("redisstore: renew %q: %w", name, lockcore.ErrLeaseNotCurrent)
	}
	lease := lockcore.Lease{
		Name:         name,
		LeaseID:      leaseID,
		FencingToken: r.int(1),
		ExpiresAt:    r.time(2),
		TTL:          time.Duration(r.int(3)) * time.Millisecond,
		Metadata:     r.str(5),
	}
	if r.err != nil {
		return lockcore.Lease{}, r.fail("renew")
	}
	return lease, nil
}

// Release implements lockcore.Locks.Release with one run of release.lua.
func (s *Store) Release(ctx context.Context, accountID, name, leaseID string) error {
	return s.release(ctx, nil, accountID, name, leaseID)
}

// ReleaseAs implements lockcore.TokenLocks.ReleaseAs: Release whose run of
// release.lua also checks the token's mirror key in the same atomic step,
// with the same fallback and errors as AcquireAs. Like Release, a retry of
// a release that had taken effect reports ErrLeaseNotCurrent.
func (s *Store) ReleaseAs(ctx context.Context, token lockcore.TokenHash, accountID, name, leaseID string) error {
	return s.release(ctx, &token, accountID, name, leaseID)
}

// release is Release, and ReleaseAs when token is not nil.
func (s *Store) release(ctx context.Context, token *lockcore.TokenHash, accountID, name, leaseID string) error {
	if err := lockcore.ValidateName(name); err != nil {
		return err
	}
	if err := lockcore.ValidateLeaseID(leaseID); err != nil {
		return err
	}
	if err := checkAccountID(accountID); err != nil {
		return err
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	tag := s.tag(accountID)
	cmd, err := s.lockScript(ctx, "release", releaseScript, accountID, token, []string{s.lockKey(tag, name), tag + ":held"}, name, leaseID)
	if err != nil {
		return err
	}
	n, err := cmd.Int64()
	if err != nil {
		return s.fail("release", err)
	}
	if n != 1 {
		return fmt.Errorf("redisstore: release %q: %w", name, lockcore.ErrLeaseNotCurrent)
	}
	return nil
}

// lockScript runs the lock write sc (acquire.lua, renew.lua or
// release.lua) on keys through runScript. With a token it first runs sc
// with the token's mirror key appended, so the token check and the write
// are one atomic step in the account's slot. If the script answers
// scripts.NotProved, the token key (the authority) decides: an error
// (ErrNotFound for an unknown, revoked or rotated-away token, ErrUnavailable
// for an outage) or another account (ErrNotFound) is returned. A token of
// accountID that has no mirror (made before mirrors existed, or in the
// middle of its revocation) gets sc run again with the mirror, the token's
// revocation mark and a deadline vouchWindow after the first script's
// clock: the write is done if the mark does not exist and the deadline is
// not reached, and refused (ErrNotFound) otherwise, so a revocation or
// rotation that completes between the two steps is not overtaken (see
// vouchWindow). The fallback never creates a mirror: a token of a store
// written before mirrors existed keeps its three round trips. The returned
// error is final (already translated); the returned command succeeded and
// holds the write's reply.
func (s *Store) lockScript(ctx context.Context, op string, sc *redis.Script, accountID string, token *lockcore.TokenHash, keys []string, args ...any) (*redis.Cmd, error) {
	if token == nil {
		cmd := s.runWrite(ctx, sc, keys, args...)
		if err := cmd.Err(); err != nil {
			return nil, s.fail(op, err)
		}
		return cmd, nil
	}
	tag := s.tag(accountID)
	withMirror := append(keys[:len(keys):len(keys)], s.mirrorKey(tag, *token))
	cmd := s.runWrite(ctx, sc, withMirror, args...)
	if err := cmd.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	now, refused, err := notProved(cmd.Val())
	if err != nil {
		return nil, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if !refused {
		return cmd, nil
	}
	id, err := s.accountIDByToken(ctx, *token)
	if err != nil {
		return nil, err
	}
	if id != accountID {
		return nil, fmt.Errorf("redisstore: %s: token: %w (the token belongs to another account)", op, lockcore.ErrNotFound)
	}
	// The mirror is missing but the token key (in another slot) names
	// this account. Before writing on the token key's word, make sure the
	// account's slot still holds its record: a slot that lost its keys
	// (a Cluster master restarted empty) has lost the account's record,
	// locks and fencing counter, and the account is to be made again
	// first (README, "Backup and restore"); its tokens would go on above
	// the lost ones all the same, since they follow the Redis clock. One
	// more round trip, on this fallback only.
	n, err := s.client.Exists(ctx, s.accountKey(accountID)).Result()
	if err != nil {
		return nil, s.fail(op, err)
	}
	if n == 0 {
		// Not the token's fault (its key is there): a 503 that the log
		// explains, until the account is made again.
		return nil, fmt.Errorf("redisstore: %s: account %q has no record in its slot (Redis lost this account's keys; see README, \"Backup and restore\"): %w", op, accountID, lockcore.ErrUnavailable)
	}
	if s.fallbackHook != nil {
		s.fallbackHook()
	}
	vouched := append(withMirror, s.markKey(tag, *token))
	cmd = s.runWrite(ctx, sc, vouched, append(args[:len(args):len(args)], now+vouchWindow.Milliseconds())...)
	if err := cmd.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	if _, refused, err = notProved(cmd.Val()); err != nil {
		return nil, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if refused {
		return nil, fmt.Errorf("redisstore: %s: token: %w (revoked or rotated away meanwhile)", op, lockcore.ErrNotFound)
	}
	return cmd, nil
}

// notProved reports whether a lock script's reply is scripts.NotProved,
// the array {-1, now}, and returns now (ms, Redis clock). A reply starting
// with -1 without a time is an error (a script that does not match this
// build).
func notProved(v any) (now int64, refused bool, err error) {
	a, ok := v.([]any)
	if !ok || len(a) == 0 || a[0] != int64(scripts.NotProved) {
		return 0, false, nil
	}
	if len(a) < 2 {
		return 0, true, fmt.Errorf("malformed reply %v: the token was not proved, and no time came with it", a)
	}
	now, ok = a[1].(int64)
	if !ok {
		return 0, true, fmt.Errorf("malformed reply %v: the token was not proved, and no time came with it", a)
	}
	return now, true, nil
}

// Get implements lockcore.Locks.Get with one run of get.lua.
func (s *Store) Get(ctx context.Context, accountID, name string) (lockcore.LockState, error) {
	if err := lockcore.ValidateName(name); err != nil {
		return lockcore.LockState{}, err
	}
	if err := checkAccountID(accountID); err != nil {
		return lockcore.LockState{}, err
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.LockState{}, err
	}
	defer cancel()
	res, err := getScript.Run(ctx, s.client, []string{s.lockKey(s.tag(accountID), name)}).Slice()
	if err != nil {
		return lockcore.LockState{}, s.fail("get", err)
	}
	r := reply{v: res}
	st := lockcore.LockState{Name: name}
	if r.int(0) == 1 {
		st.Held = true
		st.Lease = r.lease(name, 1)
	}
	if r.err != nil {
		return lockcore.LockState{}, r.fail("get")
	}
	return st, nil
}

// listAttempts bounds how often List re-asks with a corrected name set
// while other clients keep acquiring new names.
const listAttempts = 8

// List implements lockcore.Locks.List with list.lua: the script sees the
// held set and all the lock hashes at one moment. It is usually one round
// trip (none held) or two.
func (s *Store) List(ctx context.Context, accountID string) ([]lockcore.Lease, error) {
	if err := checkAccountID(accountID); err != nil {
		return nil, err
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	tag := s.tag(accountID)
	var names []string
	for range listAttempts {
		keys := make([]string, 0, len(names)+1)
		keys = append(keys, tag+":held")
		args := make([]any, 0, len(names))
		for _, n := range names {
			keys = append(keys, s.lockKey(tag, n))
			args = append(args, n)
		}
		res, err := listScript.Run(ctx, s.client, keys, args...).Slice()
		if err != nil {
			return nil, s.fail("list", err)
		}
		r := reply{v: res}
		if r.int(0) == 0 {
			names = names[:0]
			for i := 1; i < len(res); i++ {
				names = append(names, r.str(i))
			}
			if r.err != nil {
				return nil, r.fail("list")
			}
			continue
		}
		leases := make([]lockcore.Lease, 0, (len(res)-2)/7)
		for i := 2; i+7 <= len(res); i += 7 {
			leases = append(leases, r.lease(r.str(i), i+1))
		}
		if r.err != nil {
			return nil, r.fail("list")
		}
		sort.Slice(leases, func(i, j int) bool { return leases[i].Name < leases[j].Name })
		return leases, nil
	}
	return nil, fmt.Errorf("redisstore: list: %w: the held set kept changing over %d attempts", lockcore.ErrUnavailable, listAttempts)
}

// EnsureAccount implements lockcore.Accounts.EnsureAccount. The login index
// key <prefix>login:<login> is claimed with SET NX (so one id wins), then
// account.lua creates the record if absent; created reports whether this
// call made the record.
func (s *Store) EnsureAccount(ctx context.Context, login string) (lockcore.Account, bool, error) {
	if err := lockcore.ValidateLogin(login); err != nil {
		return lockcore.Account{}, false, err
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.Account{}, false, err
	}
	defer cancel()
	id, err := s.claim(ctx, s.loginKey(login))
	if err != nil {
		return lockcore.Account{}, false, err
	}
	return s.writeAccount(ctx, id, login, 0, false)
}

// UpsertGitHubAccount implements lockcore.Accounts.UpsertGitHubAccount: the
// index key <prefix>gh:<github id> is claimed with SET NX, then account.lua
// creates the record or updates its login.
func (s *Store) UpsertGitHubAccount(ctx context.Context, githubID int64, login string) (lockcore.Account, error) {
	if githubID <= 0 {
		return lockcore.Account{}, fmt.Errorf("redisstore: GitHub id must be positive (got %d)", githubID)
	}
	if err := lockcore.ValidateLogin(login); err != nil {
		return lockcore.Account{}, err
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	defer cancel()
	id, err := s.claim(ctx, s.githubKey(githubID))
	if err != nil {
		return lockcore.Account{}, err
	}
	acct, _, err := s.writeAccount(ctx, id, login, githubID, true)
	return acct, err
}

// claim returns the account id stored under an index key, storing a new
// one with SET NX if there is none. Index keys are never deleted, so the
// first id set wins forever.
func (s *Store) claim(ctx context.Context, key string) (string, error) {
	id, err := s.client.Get(ctx, key).Result()
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, redis.Nil) {
		return "", s.fail("account index", err)
	}
	fresh := lockcore.NewAccountID()
	ok, err := s.client.SetNX(ctx, key, fresh, 0).Result()
	if err != nil {
		return "", s.fail("account index", err)
	}
	if ok {
		return fresh, nil
	}
	id, err = s.client.Get(ctx, key).Result()
	if err != nil {
		return "", s.fail("account index", err)
	}
	return id, nil
}

// writeAccount runs account.lua for id and records id in the accounts set
// (idempotent, so a creator that died half-way is repaired by the next
// caller). A record made again after Redis lost the account's slot,
// fencing counter included, needs nothing more: acquire.lua keeps every
// token at or above the Redis clock in microseconds, so the account's
// tokens go on above every one handed out before.
func (s *Store) writeAccount(ctx context.Context, id string, login string, githubID int64, setLogin bool) (lockcore.Account, bool, error) {
	if err := checkAccountID(id); err != nil {
		return lockcore.Account{}, false, err
	}
	set := "0"
	if setLogin {
		set = "1"
	}
	res, err := accountScript.Run(ctx, s.client, []string{s.accountKey(id)}, login, githubID, set).Slice()
	if err != nil {
		return lockcore.Account{}, false, s.fail("account", err)
	}
	if err := s.client.SAdd(ctx, s.accountsKey(), id).Err(); err != nil {
		return lockcore.Account{}, false, s.fail("account", err)
	}
	r := reply{v: res}
	created := r.int(0) == 1
	gh, perr := strconv.ParseInt(r.str(2), 10, 64)
	if perr != nil {
		r.setErr(perr)
	}
	acct := lockcore.Account{ID: id, Login: r.str(1), GitHubID: gh, CreatedAt: r.time(3)}
	if r.err != nil {
		return lockcore.Account{}, false, r.fail("account")
	}
	return acct, created, nil
}

// AccountByID implements lockcore.Accounts.AccountByID with one HMGET.
func (s *Store) AccountByID(ctx context.Context, id string) (lockcore.Account, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	defer cancel()
	return s.accountByID(ctx, id)
}

func (s *Store) accountByID(ctx context.Context, id string) (lockcore.Account, error) {
	if checkAccountID(id) != nil {
		return lockcore.Account{}, fmt.Errorf("redisstore: account %q: %w", id, lockcore.ErrNotFound)
	}
	vals, err := s.client.HMGet(ctx, s.accountKey(id), "login", "github_id", "created").Result()
	if err != nil {
		return lockcore.Account{}, s.fail("account", err)
	}
	login, ok := vals[0].(string)
	if !ok {
		return lockcore.Account{}, fmt.Errorf("redisstore: account %q: %w", id, lockcore.ErrNotFound)
	}
	ghs, _ := vals[1].(string)
	cs, _ := vals[2].(string)
	gh, err1 := strconv.ParseInt(ghs, 10, 64)
	created, err2 := strconv.ParseInt(cs, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return lockcore.Account{}, fmt.Errorf("redisstore: account %q: malformed record: %w", id, err)
	}
	return lockcore.Account{ID: id, Login: login, GitHubID: gh, CreatedAt: time.UnixMilli(created).UTC()}, nil
}

// CountAccounts implements lockcore.Accounts.CountAccounts with SCARD of
// the accounts set.
func (s *Store) CountAccounts(ctx context.Context) (int64, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	n, err := s.client.SCard(ctx, s.accountsKey()).Result()
	if err != nil {
		return 0, s.fail("count accounts", err)
	}
	return n, nil
}

// AddToken implements lockcore.Accounts.AddToken: it checks that the
// account exists, sets the token's mirror <prefix>{a:ID}:tok:<hash hex>
// (for AcquireAs and friends), then sets <prefix>token:<hash hex> to the
// account id. The mirror comes first so that a live token key has its
// mirror (except tokens added before mirrors existed, and a token while
// RotateToken or RevokeToken retires it), so AcquireAs needs one round
// trip. A call that fails between the two leaves a mirror whose token
// AccountByToken does not know; the token was never reported added (the
// HTTP handlers learn a token's account from AccountIDByToken before they
// call AcquireAs), and a retry completes it. Setting both again is
// harmless, so a retry is safe.
func (s *Store) AddToken(ctx context.Context, accountID string, hash lockcore.TokenHash) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if checkAccountID(accountID) != nil {
		return fmt.Errorf("redisstore: add token: account %q: %w", accountID, lockcore.ErrNotFound)
	}
	n, err := s.client.Exists(ctx, s.accountKey(accountID)).Result()
	if err != nil {
		return s.fail("add token", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: add token: account %q: %w", accountID, lockcore.ErrNotFound)
	}
	if err := s.client.Set(ctx, s.mirrorKey(s.tag(accountID), hash), "1", 0).Err(); err != nil {
		return s.fail("add token", err)
	}
	if err := s.client.Set(ctx, s.tokenKey(hash), accountID, 0).Err(); err != nil {
		return s.fail("add token", err)
	}
	return nil
}

// AccountByToken implements lockcore.Accounts.AccountByToken: one GET of
// the token key and one HMGET of the account.
func (s *Store) AccountByToken(ctx context.Context, hash lockcore.TokenHash) (lockcore.Account, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	defer cancel()
	id, err := s.accountIDByToken(ctx, hash)
	if err != nil {
		return lockcore.Account{}, err
	}
	return s.accountByID(ctx, id)
}

// AccountIDByToken is AccountByToken for a caller that needs only the
// account id (the HTTP handlers' authentication): one GET of the token key,
// so one round trip instead of two, with the same answer as AccountByToken
// at the same moment. It returns an error wrapping lockcore.ErrNotFound for
// an unknown, revoked or rotated-away token, and one wrapping
// lockcore.ErrUnavailable when Redis does not answer. A token is only ever
// added to an existing account and accounts are never deleted, so the id
// names an existing account.
func (s *Store) AccountIDByToken(ctx context.Context, hash lockcore.TokenHash) (string, error) {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return "", err
	}
	defer cancel()
	return s.accountIDByToken(ctx, hash)
}

func (s *Store) accountIDByToken(ctx context.Context, hash lockcore.TokenHash) (string, error) {
	cmd := redis.NewStringCmd(ctx, "get", s.tokenKey(hash))
	err := s.hotDo(ctx, cmd)
	var id string
	if err == nil {
		id = cmd.Val()
	}
	if errors.Is(err, redis.Nil) || (err == nil && strings.HasPrefix(id, scripts.TombstonePrefix)) {
		return "", fmt.Errorf("redisstore: token: %w", lockcore.ErrNotFound)
	}
	if err != nil {
		return "", s.fail("token", err)
	}
	return id, nil
}

// rotatedTo reports whether old's token key (oldKey) holds the tombstone
// of a rotation to new, read with a context of its own: after rotate.lua
// failed with an unknown outcome (its reply lost to a timeout or a closed
// connection), it says that the script did run, so that RotateToken can
// answer with the new token instead of an error that leaves the caller
// with old retired and new unknown. false says nothing: the script may
// not have run, or may still run.
func (s *Store) rotatedTo(ctx context.Context, oldKey string, new lockcore.TokenHash) bool {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opTimeout)
	defer cancel()
	v, err := s.client.Get(rctx, oldKey).Result()
	return err == nil && v == scripts.TombstonePrefix+new.String()
}

// RotateToken implements lockcore.Accounts.RotateToken. The two token keys
// may sit in different Cluster slots, so it is steps: read the account of
// old; SET new's mirror <prefix>{a:ID}:tok:<new hex>, then new's token key;
// set old's revocation mark and DEL old's mirror; then retire old with
// rotate.lua, which replaces its token key by a one-minute tombstone naming
// new (a lookup treats it as unknown), and set old's mark again (see
// vouchWindow). Only the caller whose rotate.lua retired old succeeds; a caller
// that finds old gone or retired by another rotation deletes new's mirror
// and then new's token key again and returns ErrNotFound, so of concurrent
// rotations exactly one wins and no losing token stays valid. A
// client-level retry of rotate.lua after a lost reply recognises its own
// tombstone and still succeeds, and so does a call whose reply was lost
// for good (its context ended, a connection closed) when a read of old's
// token key then finds that tombstone (rotatedTo); otherwise such a call
// takes new back and returns the error, and old may or may not have been
// retired.
//
// Old's mirror goes before rotate.lua runs, so once RotateToken returns
// success (or even if the caller dies after rotate.lua), AcquireAs and
// friends refuse old on every instance: their scripts no longer find the
// mirror, and the token key they fall back to is the tombstone. A losing
// call deletes old's mirror too, which is harmless: old is retired by the
// winner or was revoked. A call that fails before rotate.lua leaves old
// live without its mirror and with its mark: the lock writes refuse it
// until the mark expires (markTTL) and then take it through the token-key
// fallback, and a retried rotation completes.
func (s *Store) RotateToken(ctx context.Context, old, new lockcore.TokenHash) (lockcore.Account, error) {
	if old == new {
		return lockcore.Account{}, errors.New("redisstore: rotate token: the new token hash equals the old one")
	}
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return lockcore.Account{}, err
	}
	defer cancel()
	oldKey, newKey := s.tokenKey(old), s.tokenKey(new)
	id, err := s.client.Get(ctx, oldKey).Result()
	if errors.Is(err, redis.Nil) || (err == nil && strings.HasPrefix(id, scripts.TombstonePrefix)) {
		return lockcore.Account{}, fmt.Errorf("redisstore: rotate token: %w", lockcore.ErrNotFound)
	}
	if err != nil {
		return lockcore.Account{}, s.fail("rotate token", err)
	}
	acct, err := s.accountByID(ctx, id)
	if err != nil {
		return lockcore.Account{}, err
	}
	tag := s.tag(id)
	newMirror := s.mirrorKey(tag, new)
	// Until rotate.lua is sent, new is a token nobody was given and old
	// is not retired: a step that fails here (a timeout, a client that
	// went away) takes new back, as a losing rotation does, so that
	// failed rotations do not each leave a live token key and mirror,
	// without a TTL, that nobody can present or revoke by its token.
	unset := func(err error) error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opTimeout)
		defer cancel()
		if s.client.Del(dctx, newMirror).Err() == nil {
			_ = s.client.Del(dctx, newKey).Err()
		}
		return err
	}
	if err := s.client.Set(ctx, newMirror, "1", 0).Err(); err != nil {
		return lockcore.Account{}, unset(s.fail("rotate token", err))
	}
	if err := s.client.Set(ctx, newKey, id, 0).Err(); err != nil {
		return lockcore.Account{}, unset(s.fail("rotate token", err))
	}
	first := time.Now()
	if err := s.markRetired(ctx, "rotate token", id, old); err != nil {
		return lockcore.Account{}, unset(err)
	}
	if err := s.client.Del(ctx, s.mirrorKey(tag, old)).Err(); err != nil {
		return lockcore.Account{}, unset(s.fail("rotate token", err))
	}
	won, err := rotateScript.Run(ctx, s.client, []string{oldKey}, id, scripts.TombstonePrefix+new.String(), tombstoneTTL.Milliseconds()).Int64()
	if err != nil {
		err = s.fail("rotate token", err)
		if !s.rotatedTo(ctx, oldKey, new) {
			// Not known to have run: the caller gets an error and so
			// never learns new, which is taken back as at the steps
			// above, or each such failure leaves new's token key and
			// mirror for ever. A script still in flight that retires
			// old afterwards leaves a tombstone naming a token that is
			// gone, as a revocation of new would.
			return lockcore.Account{}, unset(err)
		}
		// It ran: go on as its reply would have, on a context of its own
		// (the caller's may have ended).
		var cancelAfter context.CancelFunc
		ctx, cancelAfter = context.WithTimeout(context.WithoutCancel(ctx), s.opTimeout)
		defer cancelAfter()
		won = 1
	}
	if won != 1 {
		// The mirror first: a mirror without its token key would let
		// AcquireAs accept a token that AccountByToken refuses.
		if err := s.client.Del(ctx, newMirror).Err(); err != nil {
			return lockcore.Account{}, s.fail("rotate token", err)
		}
		if err := s.client.Del(ctx, newKey).Err(); err != nil {
			return lockcore.Account{}, s.fail("rotate token", err)
		}
		return lockcore.Account{}, fmt.Errorf("redisstore: rotate token: %w (rotated or revoked concurrently)", lockcore.ErrNotFound)
	}
	if err := s.markAgain(ctx, "rotate token", id, old, first); err != nil {
		return lockcore.Account{}, err
	}
	return acct, nil
}

// RevokeToken implements lockcore.Accounts.RevokeToken: it reads the token
// key for the account, sets the token's revocation mark
// <prefix>{a:ID}:revoked:<hex> for markTTL and deletes its mirror
// <prefix>{a:ID}:tok:<hex> (so AcquireAs and friends refuse it on every
// instance), then deletes the token key with revoke.lua (a token already
// rotated out is unknown), then sets the mark again (see vouchWindow and
// markAgain). The mirror goes first, so no mirror outlives its token; a
// call that fails between the two leaves the token live without its
// mirror, refused by the lock writes while the mark lasts and then working
// through AcquireAs' token-key fallback, until a retry revokes it. An
// unknown, revoked or rotated-out token gets ErrNotFound; so does a retry
// of a revocation that had taken effect. Concurrent revocations and
// rotations of one token retire it once: at most one of them succeeds.
func (s *Store) RevokeToken(ctx context.Context, hash lockcore.TokenHash) error {
	ctx, cancel, err := s.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	key := s.tokenKey(hash)
	id, err := s.client.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) || (err == nil && strings.HasPrefix(id, scripts.TombstonePrefix)) {
		return fmt.Errorf("redisstore: revoke token: %w", lockcore.ErrNotFound)
	}
	if err != nil {
		return s.fail("revoke token", err)
	}
	ok := checkAccountID(id) == nil
	first := time.Now()
	if ok {
		if err := s.markRetired(ctx, "revoke token", id, hash); err != nil {
			return err
		}
		if err := s.client.Del(ctx, s.mirrorKey(s.tag(id), hash)).Err(); err != nil {
			return s.fail("revoke token", err)
		}
	}
	n, err := revokeScript.Run(ctx, s.client, []string{key}).Int64()
	if err != nil {
		return s.fail("revoke token", err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: revoke token: %w", lockcore.ErrNotFound)
	}
	if ok {
		return s.markAgain(ctx, "revoke token", id, hash, first)
	}
	return nil
}

// reply decodes a script's array reply, remembering the first malformed
// element instead of failing at each read.
type reply struct {
	v   []any
	err error
}

func (r *reply) setErr(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reply) fail(op string) error {
	return fmt.Errorf("redisstore: %s: malformed script reply %v: %w", op, r.v, r.err)
}

func (r *reply) int(i int) int64 {
	if i >= len(r.v) {
		r.setErr(fmt.Errorf("element %d missing", i))
		return 0
	}
	n, ok := r.v[i].(int64)
	if !ok {
		r.setErr(fmt.Errorf("element %d is %T, not an integer", i, r.v[i]))
	}
	return n
}

func (r *reply) str(i int) string {
	if i >= len(r.v) {
		r.setErr(fmt.Errorf("element %d missing", i))
		return ""
	}
	s, ok := r.v[i].(string)
	if !ok {
		r.setErr(fmt.Errorf("element %d is %T, not a string", i, r.v[i]))
	}
	return s
}

func (r *reply) time(i int) time.Time { return time.UnixMilli(r.int(i)).UTC() }

// lease decodes lease, fence, expires, ttl, hasmeta, metadata from index i.
func (r *reply) lease(name string, i int) lockcore.Lease {
	l := lockcore.Lease{
		Name:         name,
		LeaseID:      r.str(i),
		FencingToken: r.int(i + 1),
		ExpiresAt:    r.time(i + 2),
		TTL:          time.Duration(r.int(i+3)) * time.Millisecond,
	}
	if r.int(i+4) == 1 {
		l.Metadata = r.str(i + 5)
	}
	return l
}

var (
	_ lockcore.Store         = (*Store)(nil)
	_ lockcore.TokenLocks    = (*Store)(nil)
	_ lockcore.AccountTokens = (*Store)(nil)
)
