package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/httpserver"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Sizes of TestServerLimits.
const (
	idleConns    = 5000
	slowConns    = 200
	normalRounds = 50
	// slowHeader is what each slow connection trickles after its request
	// line, a byte every slowEvery: it would take about 37 s, far longer
	// than httpserver.ReadHeaderTimeout.
	slowHeader = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
	slowEvery  = 500 * time.Millisecond
	// clientTimeout bounds every answer a normal client waits for.
	clientTimeout = 5 * time.Second
)

// raiseNoFile raises this process's soft limit on open files to at least n
// (up to the hard limit) and fails the test if it cannot reach n.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if uint64(lim.Cur) >= n {
		return
	}
	setRlim(&lim.Cur, min(uint64(lim.Max), n))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if uint64(lim.Cur) < n {
		t.Fatalf("the hard limit on open files is %d; this test needs %d (ulimit -Hn)", lim.Max, n)
	}
}

// setRlim sets an Rlimit field, a uint64 on most systems and an int64 on
// FreeBSD, to v.
func setRlim[T int64 | uint64](field *T, v uint64) { *field = T(v) }

// softNoFile reads the soft limit on open files of process pid.
func softNoFile(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[0] == "Max" && f[1] == "open" && f[2] == "files" {
			n, err := strconv.ParseUint(f[3], 10, 64)
			if err != nil {
				t.Fatalf("limits line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no open-files line in /proc/%d/limits", pid)
	return 0
}

// idleConn opens a connection, serves one GET /health on it and returns it
// idle in the server's keep-alive state.
func idleConn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, clientTimeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(4 * clientTimeout))
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: octostore\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("GET /health: %d", resp.StatusCode)
	}
	return c, nil
}

// slowResult is what one slow-header connection saw.
type slowResult struct {
	closedAfter time.Duration // when the server closed it, from the first byte
	sent        int           // header bytes sent before that
	answer      string        // any bytes the server sent
	err         error         // a failure of the test's own
}

// trickle writes a request line and then slowHeader a byte every slowEvery
// until the server closes the connection or stop is closed.
func trickle(addr string, stop <-chan struct{}) slowResult {
	c, err := net.DialTimeout("tcp", addr, clientTimeout)
	if err != nil {
		return slowResult{err: err}
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: octostore\r\n"); err != nil {
		return slowResult{err: err}
	}
	closed := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c) // returns when the server closes (or c is closed)
		closed <- b
	}()
	tick := time.NewTicker(slowEvery)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case b := <-closed:
			return slowResult{closedAfter: time.Since(start), sent: i, answer: string(b)}
		case <-stop:
			c.Close()
			<-closed
			return slowResult{err: errors.New("the server had not closed the connection when the test gave up")}
		case <-tick.C:
			if i < len(slowHeader) {
				c.Write([]byte{slowHeader[i]}) // an error shows as the reader's EOF
				i++
			}
		}
	}
}

// TestServerLimits runs the real binary with its http.Server limits and
// checks that abusive clients cannot hold it: 5,000 idle keep-alive
// connections are held open and 200 more connections trickle their headers
// a byte every 500 ms, while a normal client runs 50 rounds of GET /health,
// acquire and release, each answered within the client timeout. Then every
// slow connection must have been closed by the server (ReadHeaderTimeout)
// without an answer and long before its headers were complete, and the
// idle connections must still be open and serving.
func TestServerLimits(t *testing.T) {
	raiseNoFile(t, idleConns+slowConns+1000)
	p := startServer(t, filepath.Join(t.TempDir(), "octo.db"))
	out := p.waitStdout(tokenRE)
	token := tokenRE.FindString(out)
	if token == "" {
		t.Fatalf("no admin token in stdout:\n%s", out)
	}
	if n := softNoFile(t, p.cmd.Process.Pid); n < idleConns+slowConns+100 {
		t.Fatalf("the server may open only %d files: too few for this test, and for a server", n)
	}
	addr := strings.TrimPrefix(p.base, "http://")

	// 5,000 idle connections, opened by 50 workers.
	conns := make([]net.Conn, idleConns)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, idleConns)
	for range 50 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= idleConns {
					return
				}
				c, err := idleConn(addr)
				if err != nil {
					errs <- fmt.Errorf("idle connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// 200 slow-header connections, and a normal client meanwhile.
	stop := make(chan struct{})
	results := make([]slowResult, slowConns)
	var slow sync.WaitGroup
	for i := range slowConns {
		slow.Go(func() { results[i] = trickle(addr, stop) })
	}
	giveUp := time.AfterFunc(3*httpserver.ReadHeaderTimeout, func() { close(stop) })
	t.Cleanup(func() { giveUp.Stop(); slow.Wait() })

	client := &http.Client{Timeout: clientTimeout, Transport: contracttest.New(t).Transport(&http.Transport{DisableKeepAlives: true})}
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s under load: %v", method, path, err)
		}
		defer resp.Body.Close()
		m := map[string]any{}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s %s under load: %v", method, path, err)
		}
		return resp.StatusCode, m
	}
	for i := range normalRounds {
		if st, m := call("GET", "/health", ""); st != 200 {
			t.Fatalf("round %d: health %d %v", i, st, m)
		}
		st, m := call("POST", "/locks/limits/acquire", `{"ttl_seconds":30}`)
		if st != 200 {
			t.Fatalf("round %d: acquire %d %v", i, st, m)
		}
		if st, m := call("POST", "/locks/limits/release", fmt.Sprintf(`{"lease_id":%q}`, m["lease_id"])); st != 200 {
			t.Fatalf("round %d: release %d %v", i, st, m)
		}
	}

	slow.Wait()
	giveUp.Stop()
	var longest time.Duration
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("slow connection %d: %v", i, r.err)
		case r.answer != "":
			t.Errorf("slow connection %d got an answer: %q", i, truncateS(r.answer, 200))
		case r.sent >= len(slowHeader):
			t.Errorf("slow connection %d sent its whole header before the server closed it", i)
		}
		longest = max(longest, r.closedAfter)
	}
	t.Logf("%d idle connections held; %d slow-header connections all closed by the server, the last after %v (httpserver.ReadHeaderTimeout %v)", idleConns, slowConns, longest.Round(10*time.Millisecond), httpserver.ReadHeaderTimeout)

	// The idle connections are still open and serve: a sample of 100.
	for i := 0; i < idleConns; i += idleConns / 100 {
		c := conns[i]
		c.SetDeadline(time.Now().Add(clientTimeout))
		if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: octostore\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("idle connection %d no longer serves: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("idle connection %d: %d", i, resp.StatusCode)
		}
	}
}

// TestServeInProcess runs `octostore serve` inside the test process, over
// SQLite and over Redis (miniredis, through --redis-url), so that its
// set-up and shutdown count in the coverage of this package: it serves,
// prints the first-start token, enforces MaxHeaderBytes (431 for 40 KiB of
// headers), logs JSON, and returns nil once its context is cancelled, after
// which nothing listens.
func TestServeInProcess(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return []string{"--db", filepath.Join(t.TempDir(), "o.db")} }},
		{"redis", func(t *testing.T) []string { return []string{"--redis-url", "redis://" + miniredis.RunT(t).Addr()} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GITHUB_CLIENT_ID", "")
			t.Setenv("GITHUB_CLIENT_SECRET", "")
			client := &http.Client{Timeout: clientTimeout, Transport: contracttest.New(t).Transport(&http.Transport{DisableKeepAlives: true})}
			// The op timeout is raised from 3 s: this test is not about it,
			// and a SQLite commit waits for an fsync on a CI disk that may
			// be busy.
			sp := startServe(t, client, func() []string {
				return append([]string{"--log-format", "json", "--op-timeout", "30s"}, tc.store(t)...)
			})
			addr, base, mu, stdout, stderr, cancel, errc := sp.addr, sp.base, &sp.mu, &sp.stdout, &sp.stderr, sp.stop, sp.done
			mu.Lock()
			token := tokenRE.FindString(stdout.String())
			mu.Unlock()
			if token == "" {
				t.Fatal("no first-start token on stdout")
			}
			do := func(method, path, body string) (int, map[string]any) {
				t.Helper()
				req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				defer resp.Body.Close()
				m := map[string]any{}
				json.NewDecoder(resp.Body).Decode(&m)
				return resp.StatusCode, m
			}
			st, m := do("POST", "/locks/inproc/acquire", `{"ttl_seconds":60}`)
			if st != 200 {
				t.Fatalf("acquire: %d %v", st, m)
			}
			if st, m := do("POST", "/locks/inproc/release", fmt.Sprintf(`{"lease_id":%q}`, m["lease_id"])); st != 200 {
				t.Fatalf("release: %d %v", st, m)
			}
			if st, m := do("GET", "/health", ""); st != 200 || m["store"] != tc.name {
				t.Fatalf("health: %d %v", st, m)
			}

			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(clientTimeout))
			fmt.Fprintf(c, "GET /locks HTTP/1.1\r\nHost: o\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 40<<10))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("40 KiB of headers: %v %v, want 431", resp, err)
			}
			resp.Body.Close()

			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("serve after cancel: %v", err)
				}
				errc <- nil // for the cleanup
			case <-time.After(shutdownTimeout + 5*time.Second):
				t.Fatal("serve did not return after its context was cancelled")
			}
			if _, err := client.Get(base + "/health"); err == nil {
				t.Fatal("still answering after shutdown")
			}
			mu.Lock()
			logs := stderr.String()
			mu.Unlock()
			for _, want := range []string{`"msg":"octostore listening"`, `"msg":"shutting down"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %s:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, token) {
				t.Errorf("the token appears in the log")
			}
		})
	}
}

// TestTokenLifecycleInProcess runs the operator's token commands in this
// process (so they count in the coverage of this package): a token made by
// `token create` authenticates against `serve`, and `token revoke` — from an
// argument, from stdin, with "-" — refuses it at once; bad input and a bad
// environment are refused before the store is touched.
func TestTokenLifecycleInProcess(t *testing.T) {
	db := filepath.Join(t.TempDir(), "o.db")
	cmd := func(stdin string, args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
		return out.String(), err
	}
	create := func() string {
		t.Helper()
		out, err := cmd("", "token", "create", "--db", db, "--login", "ops")
		if err != nil || !tokenRE.MatchString(out) {
			t.Fatalf("token create: %q %v", out, err)
		}
		return strings.TrimSpace(out)
	}
	for _, how := range []struct {
		name  string
		stdin func(tok string) string
		arg   func(tok string) []string
	}{
		{"argument", func(string) string { return "" }, func(tok string) []string { return []string{tok} }},
		{"stdin", func(tok string) string { return tok + "\n" }, func(string) []string { return nil }},
		{"dash", func(tok string) string { return "  " + tok }, func(string) []string { return []string{"-"} }},
	} {
		tok := create()
		args := append([]string{"token", "revoke", "--db", db}, how.arg(tok)...)
		if out, err := cmd(how.stdin(tok), args...); err != nil || out != "revoked\n" {
			t.Fatalf("revoke by %s: %q %v", how.name, out, err)
		}
		if _, err := cmd("", "token", "revoke", "--db", db, tok); err == nil || !strings.Contains(err.Error(), "no such token") {
			t.Fatalf("second revoke by %s: %v", how.name, err)
		}
	}
	for _, bad := range []struct {
		env, val string
		args     []string
		want     string
	}{
		{"", "", []string{"token", "revoke", "--db", db, "a", "b"}, "want one token"},
		{"REDIS_CLUSTER", "maybe", []string{"token", "revoke", "--db", db, create()}, "REDIS_CLUSTER"},
		{"OCTOSTORE_OP_TIMEOUT", "3", []string{"token", "revoke", "--db", db, create()}, "OCTOSTORE_OP_TIMEOUT"},
		{"", "", []string{"token", "revoke", "--db", db, "--op-timeout", "0s", create()}, "--op-timeout"},
		{"", "", []string{"token", "revoke", "--db", filepath.Join(t.TempDir(), "no", "such", "dir", "o.db"), create()}, "no SQLite database at"},
		{"", "", []string{"token", "create", "--login", "x", "--db", filepath.Join(t.TempDir(), "no", "such", "dir", "o.db")}, "open sqlite store"},
	} {
		if bad.env != "" {
			t.Setenv(bad.env, bad.val)
		}
		if _, err := cmd("", bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v with %s=%q: %v, want an error about %s", bad.args[:2], bad.env, bad.val, err, bad.want)
		}
		if bad.env != "" {
			os.Unsetenv(bad.env)
		}
	}
}

// servedInProcess is an `octostore serve` run inside the test process by
// startServe: its address, its output (written under mu), the function
// that stops it and the channel its return value arrives on.
type servedInProcess struct {
	addr, base     string
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	stop           context.CancelFunc
	done           chan error
}

// startServe runs `octostore serve --addr <free port>` with args() in the
// test process and waits until it answers /health with 200 (over https
// when args() has --tls-cert). The port is
// found by listening on :0 and closing, so another process can take it
// first: serve then fails with "address already in use" and is started
// again, on another port and with args() called again (a fresh store, so
// that a first-start token is printed again), up to 5 times. When t ends,
// serve is stopped and waited for; a test that checks serve's return value
// takes it from done and puts a nil back for that cleanup.
func startServe(t *testing.T, client *http.Client, args func() []string) *servedInProcess {
	t.Helper()
	return startServeOn(t, "127.0.0.1", client, args)
}

// startServeOn is startServe with serve listening on host (such as
// 0.0.0.0) instead of 127.0.0.1; the test still reaches it on 127.0.0.1.
func startServeOn(t *testing.T, host string, client *http.Client, args func() []string) *servedInProcess {
	t.Helper()
	sp := &servedInProcess{}
	for attempt := 1; ; attempt++ {
		sp.addr = freeAddr(t)
		_, port, err := net.SplitHostPort(sp.addr)
		if err != nil {
			t.Fatal(err)
		}
		sp.mu.Lock()
		sp.stdout.Reset()
		sp.stderr.Reset()
		sp.mu.Unlock()
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		argv := append([]string{"serve", "--addr", net.JoinHostPort(host, port)}, args()...)
		sp.base = "http://" + sp.addr
		if slices.Contains(argv, "--tls-cert") {
			sp.base = "https://" + sp.addr
		}
		go func() {
			done <- run(ctx, argv, strings.NewReader(""), lockedWriter{&sp.mu, &sp.stdout}, lockedWriter{&sp.mu, &sp.stderr})
		}()
		t.Cleanup(func() {
			stop()
			<-done
		})
		err = waitServing(sp.base, client, &sp.mu, &sp.stderr, done)
		if err == nil {
			sp.stop, sp.done = stop, done
			return sp
		}
		done <- err // for the cleanup
		if !strings.Contains(err.Error(), "address already in use") || attempt == 5 {
			t.Fatal(err)
		}
	}
}

// waitServing waits until the in-process serve writing its log to stderr
// (guarded by mu) has logged that it listens and answers GET /health at
// base with 200. It returns serve's error if serve returns first.
func waitServing(base string, client *http.Client, mu *sync.Mutex, stderr *bytes.Buffer, errc chan error) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		listening := strings.Contains(stderr.String(), `"msg":"octostore listening"`)
		mu.Unlock()
		var err error
		if listening {
			var resp *http.Response
			if resp, err = client.Get(base + "/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return nil
				}
			}
		}
		select {
		case err := <-errc:
			return fmt.Errorf("serve returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve did not become healthy (listening logged: %v): %v", listening, err)
		}
	}
}

func truncateS(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TestServeWarnsOfRedisDurability: serve over a redis-server without an
// append-only file logs why its fencing tokens are not crash-safe, and
// still serves; a setting changed on the running Redis is logged at the
// next reading (every durabilityInterval), and so is its repair.
func TestServeWarnsOfRedisDurability(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	defer func(d time.Duration) { durabilityInterval = d }(durabilityInterval)
	durabilityInterval = 10 * time.Millisecond
	srv := redistest.Start(t) // appendonly no
	sp := startServe(t, &http.Client{Timeout: 5 * time.Second}, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "30s", "--redis-url", srv.URL()}
	})
	logs := func() string {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return sp.stderr.String()
	}
	waitLog := func(what, want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs(), want); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %s in the log:\n%s", what, want, logs())
			}
		}
	}
	waitLog("at start", `"msg":"store durability","problem":"Redis has appendonly \"no\"`)
	if strings.Contains(logs(), "maxmemory-policy") {
		t.Fatalf("a maxmemory-policy warning before the policy changed:\n%s", logs())
	}

	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	if err := rc.ConfigSet(t.Context(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	waitLog("after CONFIG SET maxmemory-policy allkeys-lru", `"msg":"store durability","problem":"Redis has maxmemory-policy \"allkeys-lru\"`)
	if err := rc.ConfigSet(t.Context(), "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	waitLog("after CONFIG SET maxmemory-policy noeviction", `"msg":"store durability restored","was":"Redis has maxmemory-policy \"allkeys-lru\"`)
	if n := strings.Count(logs(), `appendonly \"no\"`); n != 1 {
		t.Errorf("the appendonly warning, in force all along, was logged %d times, want once:\n%s", n, logs())
	}

	sp.stop()
	if err := <-sp.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	sp.done <- nil // for the cleanup
}

// TestServeAppliesItsLimits: the limits serve is given, from the
// environment and from flags (a flag beating its variable), are the ones
// its API enforces; and serve sets the GC target when GOGC is unset.
func TestServeAppliesItsLimits(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	t.Setenv("OCTOSTORE_DEFAULT_TTL_SECONDS", "7")
	t.Setenv("OCTOSTORE_MAX_LOCKS", "1")
	t.Setenv("OCTOSTORE_MAX_TTL_SECONDS", "5") // --max-ttl below wins
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC") // restored by t.Setenv's cleanup
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	client := &http.Client{Timeout: clientTimeout, Transport: contracttest.New(t).Transport(&http.Transport{DisableKeepAlives: true})}
	sp := startServe(t, client, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "30s", "--db", filepath.Join(t.TempDir(), "lim.db"), "--max-ttl", "20", "--max-metadata", "5"}
	})
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC target while serving with GOGC unset: %d, want %d", got, gcPercent)
	}
	sp.mu.Lock()
	token := tokenRE.FindString(sp.stdout.String())
	sp.mu.Unlock()
	if token == "" {
		t.Fatal("no first-start token on stdout")
	}
	acquire := func(name, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", sp.base+"/locks/"+name+"/acquire", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("acquire %s: %v", name, err)
		}
		defer resp.Body.Close()
		m := map[string]any{}
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"a", `{"ttl_seconds":21}`, 400, "invalid_ttl"},
		{"a", `{"ttl_seconds":20,"metadata":"123456"}`, 400, "invalid_metadata"},
		{"a", `{"metadata":"12345"}`, 200, ""},
		{"b", `{"ttl_seconds":20}`, 403, "lock_limit_exceeded"},
	} {
		st, m := acquire(tc.name, tc.body)
		if st != tc.status || (tc.code != "" && m["code"] != tc.code) {
			t.Fatalf("acquire %s %s: %d %v, want %d %s", tc.name, tc.body, st, m, tc.status, tc.code)
		}
		if st == 200 && m["ttl_seconds"] != float64(7) {
			t.Errorf("acquire without ttl_seconds: ttl_seconds %v, want the default 7", m["ttl_seconds"])
		}
	}
}

// TestShutdownDrainsSlowRequests: a stop lets a request in flight finish
// for up to 10 s (README "Configuration"), also one still in flight a few
// seconds into the stop: its answer is a real one (the store is still
// open), and serve then returns nil.
func TestShutdownDrainsSlowRequests(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	sp := startServe(t, &http.Client{Timeout: clientTimeout}, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "30s", "--db", filepath.Join(t.TempDir(), "drain.db")}
	})
	sp.mu.Lock()
	token := tokenRE.FindString(sp.stdout.String())
	sp.mu.Unlock()
	c, err := net.Dial("tcp", sp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	const body = `{"ttl_seconds":30}`
	fmt.Fprintf(c, "POST /locks/drain/acquire HTTP/1.1\r\nHost: o\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", token, len(body))
	br := bufio.NewReader(c)
	// "100 Continue" comes once the handler reads the body: in flight.
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line after it
		t.Fatal(err)
	}
	sp.stop()
	// Well into the drain (but inside the 10 s the README promises), the
	// body comes.
	time.Sleep(3 * time.Second)
	io.WriteString(c, body)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || m["fencing_token"] == nil {
		t.Fatalf("the request in flight during the stop: %d %v, want 200 with a lease", resp.StatusCode, m)
	}
	if err := <-sp.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	sp.done <- nil // for the cleanup
}

// TestServeUsesThePublicURL: with a GitHub app, OCTOSTORE_PUBLIC_URL (not
// the listen address) is the base of the callback URL sent to GitHub, and
// no first account is made.
func TestServeUsesThePublicURL(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "Iv1.test")
	t.Setenv("GITHUB_CLIENT_SECRET", "0123456789abcdef0123456789abcdef01234567")
	t.Setenv("GITHUB_BASE_URL", "http://127.0.0.1:9/gh")
	t.Setenv("OCTOSTORE_PUBLIC_URL", "https://locks.example.com")
	client := &http.Client{Timeout: clientTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sp := startServe(t, client, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "30s", "--db", filepath.Join(t.TempDir(), "gh.db")}
	})
	resp, err := client.Get(sp.base + "/auth/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "redirect_uri="+url.QueryEscape("https://locks.example.com/auth/github/callback")) {
		t.Fatalf("GET /auth/github: %d Location %q, want a redirect_uri on OCTOSTORE_PUBLIC_URL", resp.StatusCode, loc)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if tokenRE.MatchString(sp.stdout.String()) {
		t.Fatalf("a token was printed although GitHub sign-in is configured:\n%s", sp.stdout.String())
	}
}

// TestServeUsesItsOpTimeout: --op-timeout bounds the API's store
// operations, not functions.DefaultOpTimeout: with --op-timeout 30s, an
// acquire that Redis holds up for longer than the default (the server
// paused, then resumed) is answered 200, not 503.
func TestServeUsesItsOpTimeout(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	srv := redistest.Start(t)
	starts := 0
	client := &http.Client{Timeout: 30 * time.Second}
	sp := startServe(t, client, func() []string {
		starts++ // a fresh prefix for each start: a first start prints a token
		return []string{"--log-format", "json", "--op-timeout", "30s", "--redis-url", srv.URL(), "--redis-prefix", fmt.Sprintf("opt%d:", starts)}
	})
	sp.mu.Lock()
	token := tokenRE.FindString(sp.stdout.String())
	sp.mu.Unlock()
	if token == "" {
		t.Fatal("no first-start token on stdout")
	}
	srv.Pause()
	resumed := make(chan struct{})
	go func() {
		defer close(resumed)
		time.Sleep(functions.DefaultOpTimeout + 2*time.Second)
		srv.Resume()
	}()
	t.Cleanup(func() { <-resumed })
	req, _ := http.NewRequest("POST", sp.base+"/locks/slow/acquire", strings.NewReader(`{"ttl_seconds":30}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("acquire held up past the default op timeout: %d %v, want 200 within --op-timeout 30s", resp.StatusCode, m)
	}
}

// A client holding idle keep-alive connections up to the server's limit on
// open files (no token needed) must not lock other clients out: once the
// server nears that limit, each new connection closes the longest-idle
// one. The server runs with a hard limit of 128 open files; the test opens
// idle connections one by one until one is not answered or 2×128 are open,
// then a new client must still be answered, and its acquire must succeed.
func TestIdleConnectionsCannotLockOthersOut(t *testing.T) {
	const files = 128
	p := startServerVia(t, []string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, files)}, filepath.Join(t.TempDir(), "octo.db"))
	token := tokenRE.FindString(p.waitStdout(tokenRE))
	if token == "" {
		t.Fatal("no admin token in stdout")
	}
	if n := softNoFile(t, p.cmd.Process.Pid); n != files {
		t.Fatalf("the server may open %d files, want %d", n, files)
	}
	addr := strings.TrimPrefix(p.base, "http://")
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range 2 * files {
		c, err := net.DialTimeout("tcp", addr, clientTimeout)
		if err != nil {
			break
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: octostore\r\n\r\n"); err != nil {
			break
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			break
		}
		resp.Body.Close()
	}
	t.Logf("held %d idle connections", len(conns))

	client := &http.Client{Timeout: 4 * clientTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(p.base + "/health")
	if err != nil {
		t.Fatalf("GET /health with %d idle connections held: %v", len(conns), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health: status %d, want 200", resp.StatusCode)
	}
	req, err := http.NewRequest("POST", p.base+"/locks/victim/acquire", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("acquire with %d idle connections held: %v", len(conns), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("acquire: status %d, want 200", resp.StatusCode)
	}
}
