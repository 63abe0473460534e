package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/octostore/octostore/internal/loadgen"
)

// benchFlags are the flags of `octostore bench`.
type benchFlags struct {
	target       string
	url, token   string
	etcdURL      string
	caCert       string
	redisURL     string
	redisPrefix  string
	redisAccount string
	clients      int
	duration     time.Duration
	cycles       int64
	contended    bool
	jsonOut      bool
	quiet        bool
	ttl          time.Duration
	retryDelay   time.Duration
	label        string
	namePrefix   string
}

func (b *benchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.target, "target", "octostore", "what to load: octostore (HTTP), etcd (v3 JSON gateway) or redis (the Lua scripts, no HTTP)")
	fs.StringVar(&b.url, "url", envString("OCTOSTORE_URL", "http://127.0.0.1:8080"), "OctoStore base URL (env OCTOSTORE_URL)")
	fs.StringVar(&b.token, "token", "", "OctoStore bearer token (default: env OCTOSTORE_TOKEN, which keeps it out of ps)")
	fs.StringVar(&b.etcdURL, "etcd-url", "http://127.0.0.1:2379", "etcd client URL, for --target etcd")
	fs.StringVar(&b.caCert, "ca-cert", "", "PEM file of the certificate authorities to trust for an https --url or --etcd-url (default: the system's)")
	fs.StringVar(&b.redisURL, "redis-url", "", "Redis URL, for --target redis")
	fs.StringVar(&b.redisPrefix, "redis-prefix", "os:", "key prefix, for --target redis (as the server's --redis-prefix)")
	fs.StringVar(&b.redisAccount, "redis-account", "bench", "account id whose namespace the locks live in, for --target redis")
	fs.IntVar(&b.clients, "clients", 32, "concurrent clients")
	fs.DurationVar(&b.duration, "duration", 10*time.Second, "how long to run (0, or not given with --cycles: until the cycles are done)")
	fs.Int64Var(&b.cycles, "cycles", 0, "stop after this many acquire+release cycles (0: no limit)")
	fs.BoolVar(&b.contended, "contended", false, "all clients compete for one lock name (default: one name per client)")
	fs.BoolVar(&b.jsonOut, "json", false, "print the result as one JSON object")
	fs.BoolVar(&b.quiet, "quiet", false, "no progress line on stderr")
	fs.DurationVar(&b.ttl, "ttl", time.Minute, "lease TTL of each acquire (whole seconds)")
	fs.DurationVar(&b.retryDelay, "retry-delay", 0, "wait after a \"held\" answer before trying again")
	fs.StringVar(&b.label, "label", "", "tag copied into the JSON result")
	fs.StringVar(&b.namePrefix, "name-prefix", "", "start of every lock name (default: bench- and a random tag, new for each run)")
}

// validate checks the flags that do not need the network.
func (b *benchFlags) validate() error {
	switch {
	case b.clients < 1 || b.clients > 10000:
		return fmt.Errorf("bench: --clients must be 1..10000 (got %d)", b.clients)
	case b.duration < 0:
		return fmt.Errorf("bench: --duration must not be negative (got %v)", b.duration)
	case b.cycles < 0:
		return fmt.Errorf("bench: --cycles must not be negative (got %d)", b.cycles)
	case b.duration == 0 && b.cycles == 0:
		return errors.New("bench: give a --duration or a number of --cycles")
	case b.ttl < time.Second || b.ttl%time.Second != 0:
		return fmt.Errorf("bench: --ttl must be a whole number of seconds, at least 1s (got %v)", b.ttl)
	case b.retryDelay < 0:
		return fmt.Errorf("bench: --retry-delay must not be negative (got %v)", b.retryDelay)
	}
	switch b.target {
	case "octostore":
		if b.url == "" {
			return errors.New("bench: --url is required for --target octostore")
		}
		if b.token == "" {
			return errors.New("bench: a token is required for --target octostore: --token or env OCTOSTORE_TOKEN")
		}
	case "etcd":
		if b.etcdURL == "" {
			return errors.New("bench: --etcd-url is required for --target etcd")
		}
	case "redis":
		if b.redisURL == "" {
			return errors.New("bench: --redis-url is required for --target redis")
		}
	default:
		return fmt.Errorf("bench: --target must be octostore, etcd or redis (got %q)", b.target)
	}
	return nil
}

// tlsConfig is the TLS setting of the HTTP targets: nil (the system's
// authorities) without --ca-cert, else one that trusts the file's
// certificates only. A file that cannot be read or holds no certificate is
// an error.
func (b *benchFlags) tlsConfig() (*tls.Config, error) {
	if b.caCert == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(b.caCert)
	if err != nil {
		return nil, fmt.Errorf("bench: --ca-cert: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("bench: --ca-cert %s holds no PEM certificate", b.caCert)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// bench runs the load generator against one target and prints the result.
// A run in which every acquire or release failed (none completed a cycle),
// or that a signal interrupted (ctx ended: it then lets the requests in
// flight finish and releases the locks it holds), still prints its result,
// and then returns an error, so that a script sees a failed run.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var b benchFlags
	b.register(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	// --cycles without --duration runs until the cycles are done, not for
	// the default 10 s.
	durationGiven := false
	fs.Visit(func(f *flag.Flag) { durationGiven = durationGiven || f.Name == "duration" })
	if b.cycles > 0 && !durationGiven {
		b.duration = 0
	}
	if b.token == "" {
		b.token = envString("OCTOSTORE_TOKEN", "")
	}
	if err := b.validate(); err != nil {
		return err
	}

	tlsConf, err := b.tlsConfig()
	if err != nil {
		return err
	}
	var target loadgen.Target
	switch b.target {
	case "octostore":
		target, err = loadgen.NewHTTPTarget(b.url, b.token, b.ttl, b.clients, tlsConf)
	case "etcd":
		target, err = loadgen.NewEtcdTarget(b.etcdURL, etcdLeaseTTL(b.duration, b.ttl), b.clients, tlsConf)
	case "redis":
		target, err = loadgen.NewRedisTarget(ctx, b.redisURL, loadgen.RedisKeys{Prefix: b.redisPrefix, AccountID: b.redisAccount}, b.ttl, max(100, b.clients), b.clients)
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer target.Close()

	cfg := loadgen.Config{
		Clients:    b.clients,
		Duration:   b.duration,
		Cycles:     b.cycles,
		Contended:  b.contended,
		NamePrefix: b.namePrefix,
		RetryDelay: b.retryDelay,
	}
	if !b.quiet {
		cfg.Progress = stderr
	}
	res, err := loadgen.Run(ctx, target, cfg)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	res.Label = b.label
	if b.jsonOut {
		err = json.NewEncoder(stdout).Encode(res)
	} else {
		err = printResult(stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Interrupted {
		return fmt.Errorf("bench: interrupted after %.1fs; the figures cover the run until then", res.Seconds)
	}
	if res.GaveUp {
		return fmt.Errorf("bench: gave up after %.1fs: every client's requests failed before any acquire got an answer; the first with: %s", res.Seconds, res.FirstError)
	}
	if res.Cycles == 0 && res.Errors > 0 {
		return fmt.Errorf("bench: no cycle completed; %d requests failed, the first with: %s", res.Errors, res.FirstError)
	}
	return nil
}

// etcdLeaseTTL is the TTL of each etcd client's lease, which the etcd
// target does not keep alive: it must outlast the run. A run bounded by
// duration lasts at most duration and the requests then in flight; one
// bounded only by a cycle count has no known length, so its leases get a
// day (they are revoked when the run ends, unless the process is killed).
func etcdLeaseTTL(duration, ttl time.Duration) time.Duration {
	if duration == 0 {
		return 24 * time.Hour
	}
	return duration + ttl + time.Minute
}

// printResult writes res for a person.
func printResult(w io.Writer, r loadgen.Result) error {
	mode := "distinct names"
	if r.Contended {
		mode = "one contended name"
	}
	interrupted := ""
	if r.Interrupted {
		interrupted = " (interrupted)"
	}
	if r.GaveUp {
		interrupted += " (gave up: every client's requests failed)"
	}
	fmt.Fprintf(w, "target %s, %d clients, %s, %.1fs%s\n", r.Target, r.Clients, mode, r.Seconds, interrupted)
	fmt.Fprintf(w, "cycles    %10d  %10.1f/s\n", r.Cycles, r.CyclesPerSec)
	fmt.Fprintf(w, "attempts  %10d  %10.1f/s  (held answers %d)\n", r.Attempts, r.AttemptsPerSec, r.Held)
	fmt.Fprintf(w, "errors    %10d\n", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "latency ms      p50      p90      p99      max\n")
	row := func(name string, l loadgen.Latency) {
		fmt.Fprintf(w, "%-9s %8.3f %8.3f %8.3f %8.3f\n", name, l.P50MS, l.P90MS, l.P99MS, l.MaxMS)
	}
	row("acquire", r.Acquire)
	row("release", r.Release)
	_, err := fmt.Fprintf(w, "%-9s %8.3f %8.3f %8.3f %8.3f   (first attempt to acquired)\n", "wait", r.Wait.P50MS, r.Wait.P90MS, r.Wait.P99MS, r.Wait.MaxMS)
	return err
}
