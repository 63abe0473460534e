package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/freeport"
)

// binPath is the octostore binary built once for the process-level tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "octostore-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "octostore")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build octostore:", err)
		os.Exit(1)
	}
	clearOperatorEnv()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testEnv are the variables of the environment that steer the tests
// themselves; clearOperatorEnv keeps them.
var testEnv = map[string]bool{
	"OCTOSTORE_REQUIRE_REDIS":   true,
	"OCTOSTORE_REQUIRE_BROWSER": true,
	"OCTOSTORE_ARTIFACTS":       true,
	"OCTOSTORE_SOAK":            true,
	"OCTOSTORE_SOAK_DURATION":   true,
}

// clearOperatorEnv unsets every configuration variable of the commands
// (REDIS_URL, REDIS_CLUSTER, OCTOSTORE_*, GITHUB_*), so that the tests,
// which set what they need with t.Setenv, see the defaults and not the
// settings of the shell that runs them: an operator's REDIS_URL or
// OCTOSTORE_MAX_TTL_SECONDS would otherwise fail tests that expect a
// SQLite store or the default limits.
func clearOperatorEnv() {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if testEnv[k] {
			continue
		}
		if strings.HasPrefix(k, "OCTOSTORE_") || strings.HasPrefix(k, "GITHUB_") || k == "REDIS_URL" || k == "REDIS_CLUSTER" {
			os.Unsetenv(k)
		}
	}
}

// TestSuiteIgnoresTheOperatorsEnvironment runs tests that expect the
// defaults again, in a copy of this test binary whose environment holds
// an operator's settings (a Redis URL, other limits, GitHub sign-in): they
// must pass all the same, so that `make test` passes in a shell
// configured as README.md's "Configuration" shows.
func TestSuiteIgnoresTheOperatorsEnvironment(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.count=1",
		"-test.run=^(TestRunCommands|TestBackupAndRestoreRefusals|TestBadEnvironmentStopsServe)$")
	cmd.Env = append(os.Environ(),
		"REDIS_URL=redis://127.0.0.1:1", "REDIS_CLUSTER=true", "OCTOSTORE_DB=/nonexistent/octostore.db",
		"OCTOSTORE_MAX_TTL_SECONDS=30", "OCTOSTORE_OP_TIMEOUT=1s", "OCTOSTORE_ADDR=127.0.0.1:1",
		"GITHUB_CLIENT_ID=abc", "GITHUB_CLIENT_SECRET=def")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the tests fail in an operator's environment: %v\n%s", err, out)
	}
}

var tokenRE = regexp.MustCompile(`os_[A-Za-z0-9_-]{43}`)

// proc is one running octostore server process.
type proc struct {
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
}

func (p *proc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, from below the kernel's ephemeral range (freeport).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startServer runs `octostore serve` over db on a free port and waits
// until this process has bound it (its "octostore listening" log line names
// the address) and /health answers 200. The port is found by listening on
// :0 and closing, so another process can take it before the server binds
// it; the server then exits with "address already in use" and is started
// again on another port (after removing db if that start made it, so the
// next one is still a first start). The op timeout is raised from the
// default 3 s: these tests are not about it, and a SQLite commit waits for
// an fsync on a CI disk that may be busy.
func startServer(t *testing.T, db string, env ...string) *proc {
	t.Helper()
	return startServerVia(t, nil, db, env...)
}

// startServerVia is startServer with the binary run through the command
// words via (such as a shell that first changes what the server
// inherits); nil runs it directly.
func startServerVia(t *testing.T, via []string, db string, env ...string) *proc {
	t.Helper()
	_, err := os.Stat(db)
	fresh := errors.Is(err, os.ErrNotExist)
	for attempt := 1; ; attempt++ {
		p, inUse := tryStartServer(t, via, db, env)
		if !inUse {
			return p
		}
		if attempt == 5 {
			_, errOut := p.output()
			t.Fatalf("no free port after %d attempts; last stderr:\n%s", attempt, errOut)
		}
		if fresh {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(db + suffix)
			}
		}
	}
}

// tryStartServer is one attempt of startServer. It reports inUse when the
// server exited because its port had been taken meanwhile.
func tryStartServer(t *testing.T, via []string, db string, env []string) (p *proc, inUse bool) {
	t.Helper()
	addr := freeAddr(t)
	p = &proc{base: "http://" + addr, done: make(chan struct{})}
	args := append(append([]string(nil), via...), binPath, "serve", "--addr", addr, "--db", db, "--op-timeout", "30s")
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	listening := `msg="octostore listening" addr=` + addr + " "
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, errOut := p.output(); strings.Contains(errOut, listening) {
			resp, err := http.Get(p.base + "/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p, false
				}
			}
		}
		select {
		case <-p.done:
			out, errOut := p.output()
			if strings.Contains(errOut, "address already in use") {
				return p, true
			}
			t.Fatalf("server exited early\nstdout:\n%s\nstderr:\n%s", out, errOut)
		default:
		}
		if time.Now().After(deadline) {
			out, errOut := p.output()
			t.Fatalf("server did not become healthy\nstdout:\n%s\nstderr:\n%s", out, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStdout returns the server's stdout once re matches it, or once the
// server has exited or 10 s have passed (then the caller's check fails).
// The server writes before it listens, but this process copies its stdout
// on a goroutine of its own, which may not have run yet.
func (p *proc) waitStdout(re *regexp.Regexp) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := p.output()
		if re.MatchString(out) || time.Now().After(deadline) {
			return out
		}
		select {
		case <-p.done:
			out, _ := p.output()
			return out
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// finalStdout stops the server and returns everything it wrote on stdout.
func (p *proc) finalStdout() string {
	p.kill() // waits for the process and for the copy of its output
	out, _ := p.output()
	return out
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// cleanEnv is the test's environment without any OctoStore or GitHub
// settings, so the developer's shell cannot change what the tests see.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OCTOSTORE_") || strings.HasPrefix(kv, "GITHUB_") || strings.HasPrefix(kv, "REDIS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

type apiResult struct {
	status int
	body   map[string]any
}

func call(t *testing.T, method, url, token, body string) apiResult {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := contracttest.Client(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, url, raw, err)
	}
	return apiResult{resp.StatusCode, m}
}

func fence(t *testing.T, r apiResult) int64 {
	t.Helper()
	f, ok := r.body["fencing_token"].(float64)
	if !ok {
		t.Fatalf("no fencing_token in %v", r.body)
	}
	return int64(f)
}

// TestSIGKILLKeepsEverything is the durability promise of the single
// binary: after kill -9 and a restart, held locks, fencing order and tokens
// are all still there.
func TestSIGKILLKeepsEverything(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octo.db")
	p := startServer(t, db)

	out := p.waitStdout(tokenRE)
	admin := tokenRE.FindString(out)
	if admin == "" {
		t.Fatalf("first start printed no token; stdout:\n%s", out)
	}
	if !strings.Contains(out, "curl -X POST "+p.base+"/locks/") {
		t.Errorf("first start printed no ready curl line; stdout:\n%s", out)
	}

	// A token made by the operator command while the server runs.
	opsOut, err := exec.Command(binPath, "token", "create", "--login", "ops", "--db", db).Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	ops := strings.TrimSpace(string(opsOut))
	if !tokenRE.MatchString(ops) || strings.Contains(ops, "\n") {
		t.Fatalf("token create printed %q, want exactly one token", opsOut)
	}

	held := call(t, "POST", p.base+"/locks/held-one/acquire", admin, `{"ttl_seconds":3600,"metadata":"m1"}`)
	if held.status != 200 {
		t.Fatalf("acquire held-one: %d %v", held.status, held.body)
	}
	var maxFence int64 = fence(t, held)
	for i := 0; i < 5; i++ {
		r := call(t, "POST", p.base+"/locks/cycled/acquire", admin, `{"ttl_seconds":60}`)
		if r.status != 200 {
			t.Fatalf("acquire cycled: %d %v", r.status, r.body)
		}
		if f := fence(t, r); f <= maxFence {
			t.Fatalf("fencing token %d not above %d", f, maxFence)
		} else {
			maxFence = f
		}
		rel := call(t, "POST", p.base+"/locks/cycled/release", admin, fmt.Sprintf(`{"lease_id":%q}`, r.body["lease_id"]))
		if rel.status != 200 {
			t.Fatalf("release cycled: %d %v", rel.status, rel.body)
		}
	}
	opsLock := call(t, "POST", p.base+"/locks/held-one/acquire", ops, `{"ttl_seconds":3600}`)
	if opsLock.status != 200 {
		t.Fatalf("ops acquire: %d %v", opsLock.status, opsLock.body)
	}

	p.kill() // SIGKILL: no shutdown code runs.

	q := startServer(t, db)
	st := call(t, "GET", q.base+"/locks/held-one", admin, "")
	if st.status != 200 || st.body["status"] != "held" {
		t.Fatalf("after restart held-one: %d %v", st.status, st.body)
	}
	if st.body["lease_id"] != held.body["lease_id"] || fence(t, st) != fence(t, held) || st.body["metadata"] != "m1" {
		t.Fatalf("after restart held-one = %v, want lease %v token %v", st.body, held.body["lease_id"], held.body["fencing_token"])
	}
	again := call(t, "POST", q.base+"/locks/cycled/acquire", admin, "")
	if again.status != 200 {
		t.Fatalf("acquire after restart: %d %v", again.status, again.body)
	}
	if f := fence(t, again); f <= maxFence {
		t.Fatalf("fencing token after restart %d, want > %d", f, maxFence)
	}
	if r := call(t, "GET", q.base+"/locks/held-one", ops, ""); r.status != 200 || r.body["lease_id"] != opsLock.body["lease_id"] {
		t.Fatalf("ops token after restart: %d %v", r.status, r.body)
	}
	if r := call(t, "GET", q.base+"/locks", "os_"+strings.Repeat("A", 43), ""); r.status != 401 {
		t.Fatalf("unknown token after restart: %d %v", r.status, r.body)
	}
	if out2 := q.finalStdout(); tokenRE.MatchString(out2) {
		t.Fatalf("restart printed a token again; stdout:\n%s", out2)
	}
}

// TestTokenRevoke revokes a token through the operator command, reading it
// from stdin, and checks the server refuses it at once.
func TestTokenRevoke(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octo.db")
	p := startServer(t, db)
	tok, err := exec.Command(binPath, "token", "create", "--login", "ci", "--db", db).Output()
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	if r := call(t, "GET", p.base+"/locks", token, ""); r.status != 200 {
		t.Fatalf("new token: %d %v", r.status, r.body)
	}
	rev := exec.Command(binPath, "token", "revoke", "--db", db)
	rev.Stdin = strings.NewReader(token + "\n")
	if out, err := rev.CombinedOutput(); err != nil {
		t.Fatalf("token revoke: %v: %s", err, out)
	}
	if r := call(t, "GET", p.base+"/locks", token, ""); r.status != 401 {
		t.Fatalf("revoked token: %d %v", r.status, r.body)
	}
	again := exec.Command(binPath, "token", "revoke", "--db", db, token)
	out, err := again.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no such token") {
		t.Fatalf("second revoke: err=%v out=%s", err, out)
	}
}

// TestRedisDialFailureOutput: with Redis unreachable, serve's log is
// still all JSON (go-redis' own dial lines included) with --log-format
// json, and a token command prints its error alone, not go-redis' plain
// "pool.go" lines before it. Both exit non-zero.
func TestRedisDialFailureOutput(t *testing.T) {
	closed := "redis://" + freeAddr(t) // nothing listens there
	for _, tc := range []struct {
		name      string
		args      []string
		wantJSONs int // JSON lines before the final error line
	}{
		{"serve", []string{"serve", "--log-format", "json", "--addr", "127.0.0.1:0", "--op-timeout", "300ms", "--redis-url", closed}, 1},
		{"token create", []string{"token", "create", "--login", "x", "--op-timeout", "300ms", "--redis-url", closed}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = cleanEnv()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err == nil {
				t.Fatal("exit status 0 with Redis unreachable")
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "octostore: open redis store: ") {
				t.Errorf("last line %q, want the error", last)
			}
			jsons := 0
			for _, l := range lines[:len(lines)-1] {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Errorf("line %q is not JSON", l)
					continue
				}
				if m["msg"] == "redis client" {
					jsons++
				}
			}
			if jsons < tc.wantJSONs || (tc.wantJSONs == 0 && len(lines) != 1) {
				t.Errorf("stderr:\n%s\nwant %d+ JSON redis client lines before the error", stderr.String(), tc.wantJSONs)
			}
		})
	}
}

// TestSecondSignalStopsAtOnce: a request still in flight holds a graceful
// stop for up to 10 s; a second SIGINT ends the process at once, also for
// a server started with SIGINT ignored (in the background of a script),
// whose disposition at start is "ignore".
func TestSecondSignalStopsAtOnce(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		// The tests may run with SIGINT ignored (started with & by a shell
		// without job control), which the server would inherit: caught
		// here instead, it reaches the server's exec at its default, as
		// from a terminal.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGINT)
		p := startServer(t, filepath.Join(t.TempDir(), "octo.db"))
		signal.Reset(syscall.SIGINT)
		testSecondSignalStopsAtOnce(t, p)
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("ended %v after a second SIGINT, want killed by it", p.cmd.ProcessState)
		}
	})
	t.Run("ignored at start", func(t *testing.T) {
		p := startServerVia(t, []string{"sh", "-c", `trap '' INT; exec "$0" "$@"`}, filepath.Join(t.TempDir(), "octo.db"))
		testSecondSignalStopsAtOnce(t, p)
		if code := p.cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGINT) {
			t.Errorf("exit code %d after a second SIGINT ignored at start, want %d", code, 128+int(syscall.SIGINT))
		}
	})
}

func testSecondSignalStopsAtOnce(t *testing.T, p *proc) {
	token := tokenRE.FindString(p.waitStdout(tokenRE))
	c, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// An acquire whose body never comes: the request stays in flight
	// (until the server's 15 s read timeout). "100 Continue" comes back
	// once the handler reads the body, so the request is in flight then.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /locks/slow/acquire HTTP/1.1\r\nHost: o\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n", token)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		t.Fatal("the server stopped at the first signal with a request in flight")
	case <-time.After(500 * time.Millisecond):
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop within 5 s of a second SIGINT")
	}
	if p.cmd.ProcessState.Success() {
		t.Fatalf("exit status %v after a second signal, want failure", p.cmd.ProcessState)
	}
}

// TestGracefulShutdown sends SIGTERM (and, to another server, SIGHUP,
// which a closed terminal sends) and expects a clean exit with the
// shutdown logged.
func TestGracefulShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			if sig == syscall.SIGHUP {
				// The tests may run with SIGHUP ignored (nohup make test),
				// which the server would inherit: caught here instead,
				// it reaches the server's exec at its default. Caught
				// whether or not signal.Ignored says so: once this test
				// has run (-count=2), Ignored is false although Reset
				// has put SIGHUP back to ignored.
				signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
				defer signal.Reset(syscall.SIGHUP)
			}
			p := startServer(t, filepath.Join(t.TempDir(), "octo.db"))
			p.cmd.Process.Signal(sig)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				t.Fatalf("server did not exit after %v", sig)
			}
			_, errOut := p.output()
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit code %d after %v; stderr:\n%s", code, sig, errOut)
			}
			if !strings.Contains(errOut, "shutting down") {
				t.Errorf("no shutdown in the log after %v:\n%s", sig, errOut)
			}
			sc := bufio.NewScanner(strings.NewReader(errOut))
			for sc.Scan() {
				if tokenRE.MatchString(sc.Text()) {
					t.Fatalf("a token appears in the log: %s", sc.Text())
				}
			}
		})
	}
}

// TestNohupKeepsServing: a server started with SIGHUP ignored (nohup)
// keeps ignoring it, so that closing the terminal it was started from
// does not stop it, as before SIGHUP was handled.
func TestNohupKeepsServing(t *testing.T) {
	// What nohup does: the shell ignores SIGHUP, and exec keeps it ignored.
	p := startServerVia(t, []string{"sh", "-c", `trap '' HUP; exec "$0" "$@"`}, filepath.Join(t.TempDir(), "octo.db"))
	p.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case <-p.done:
		_, errOut := p.output()
		t.Fatalf("a server started with SIGHUP ignored (nohup) stopped at SIGHUP:\n%s", errOut)
	case <-time.After(time.Second):
	}
	resp, err := http.Get(p.base + "/health")
	if err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
	resp.Body.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
}

// TestIgnoredSIGINTStillStops: a server started in the background by a
// script (a shell without job control starts it with SIGINT ignored) stops
// gracefully at SIGINT, so that Ctrl-C on the script or kill -INT still
// ends it, as they did before the server took SIGINT's disposition at
// start into account.
func TestIgnoredSIGINTStillStops(t *testing.T) {
	p := startServerVia(t, []string{"sh", "-c", `trap '' INT; exec "$0" "$@"`}, filepath.Join(t.TempDir(), "octo.db"))
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("a server started with SIGINT ignored did not stop at SIGINT")
	}
	_, errOut := p.output()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(errOut, "shutting down") {
		t.Fatalf("exit code %d after SIGINT, want a graceful stop (0, shutting down logged); stderr:\n%s", code, errOut)
	}
}

// TestFirstStartStdoutClosedPipe: the first start with stdout on a pipe
// whose reader is gone (README: "If the token cannot be printed ... a
// closed pipe") must not die of SIGPIPE with the token live and unseen:
// the token is revoked, and the start fails saying what to do.
func TestFirstStartStdoutClosedPipe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octo.db")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // nobody reads: a write gets EPIPE (or SIGPIPE)
	defer w.Close()
	var errOut bytes.Buffer
	cmd := exec.Command(binPath, "serve", "--addr", freeAddr(t), "--db", db, "--op-timeout", "30s")
	cmd.Env = cleanEnv()
	cmd.Stdout = w
	cmd.Stderr = &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the server started although its token could not be printed; stderr:\n%s", errOut.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the first start died of %v writing its token to a closed pipe (the token stays live, unseen); stderr:\n%s", ws.Signal(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "octostore token create --login admin") {
		t.Errorf("stderr does not say to run token create:\n%s", errOut.String())
	}
	sdb, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var n int
	if err := sdb.QueryRow("SELECT count(*) FROM tokens").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d token(s) live after a first start that could not print its token; want it revoked", n)
	}
}

// TestServeWithGitHubApp starts the binary with a GitHub app configured:
// no admin account is made, /auth/github redirects to the configured
// GitHub, and the docs are served.
func TestServeWithGitHubApp(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octo.db")
	p := startServer(t, db,
		"GITHUB_CLIENT_ID=Iv1.test",
		"GITHUB_CLIENT_SECRET=0123456789abcdef0123456789abcdef01234567",
		"GITHUB_BASE_URL=http://127.0.0.1:9/gh",
	)
	client := contracttest.Client(t)
	resp, err := client.Get(p.base + "/auth/github")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "http://127.0.0.1:9/gh/login/oauth/authorize?") ||
		!strings.Contains(loc, "redirect_uri="+url.QueryEscape(p.base+"/auth/github/callback")) {
		t.Fatalf("GET /auth/github: %d Location %q", resp.StatusCode, loc)
	}
	for _, path := range []string{"/docs", "/openapi.json"} {
		resp, err := client.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if out := p.finalStdout(); tokenRE.MatchString(out) {
		t.Fatalf("a token was printed although GitHub sign-in is configured:\n%s", out)
	}
}

// TestBackupWhileServingAndRestore is the operator's backup and restore
// with the real binary: a backup taken by a second process while the
// server answers acquires and releases, more locks after it, the server
// killed and its database moved aside, a restore, and a restart. The
// restored server must not hand out again a fencing token of the lost
// database: its first token is above every one issued before.
func TestBackupWhileServingAndRestore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "octo.db")
	p := startServer(t, db)
	admin := tokenRE.FindString(p.waitStdout(tokenRE))
	held := call(t, "POST", p.base+"/locks/held/acquire", admin, `{"ttl_seconds":3600}`)
	if held.status != 200 {
		t.Fatalf("acquire held: %d %v", held.status, held.body)
	}

	// Cycles on another lock while the backup runs.
	stop := make(chan struct{})
	cycles := make(chan int, 1)
	go func() {
		n := 0
		defer func() { cycles <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := call(t, "POST", p.base+"/locks/busy/acquire", admin, "")
			if r.status != 200 {
				t.Errorf("acquire busy during the backup: %d %v", r.status, r.body)
				return
			}
			if rel := call(t, "POST", p.base+"/locks/busy/release", admin, fmt.Sprintf(`{"lease_id":%q}`, r.body["lease_id"])); rel.status != 200 {
				t.Errorf("release busy during the backup: %d %v", rel.status, rel.body)
				return
			}
			n++
		}
	}()
	copyPath := filepath.Join(dir, "copy.db")
	backup := exec.Command(binPath, "backup", "--db", db, copyPath)
	backup.Env = cleanEnv()
	out, err := backup.CombinedOutput()
	close(stop)
	t.Logf("%d acquire+release cycles ran alongside the backup", <-cycles)
	if err != nil || !strings.HasPrefix(string(out), "backed up "+db+" to "+copyPath+" (") {
		t.Fatalf("backup: %v: %s", err, out)
	}

	var maxFence int64
	for i := 0; i < 5; i++ {
		r := call(t, "POST", p.base+fmt.Sprintf("/locks/after-%d/acquire", i), admin, `{"ttl_seconds":3600}`)
		if r.status != 200 {
			t.Fatalf("acquire after the backup: %d %v", r.status, r.body)
		}
		maxFence = max(maxFence, fence(t, r))
	}
	p.kill()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(db+suffix, filepath.Join(dir, "lost.db"+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}

	restore := exec.Command(binPath, "restore", "--db", db, copyPath)
	restore.Env = cleanEnv()
	out, err = restore.CombinedOutput()
	m := regexp.MustCompile(`locks dropped; every fencing counter \(accounts: 1\) is now at least (\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("restore: %v: %s", err, out)
	}
	// The default floor (the clock in µs) must be above every token the
	// lost database handed out after the backup.
	floor, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil || floor <= maxFence {
		t.Fatalf("restore's default floor %s: want above %d, the highest token of the lost database (%v)", m[1], maxFence, err)
	}

	q := startServer(t, db)
	if r := call(t, "GET", q.base+"/locks/held", admin, ""); r.status != 200 || r.body["status"] != "free" {
		t.Fatalf("held after the restore: %d %v; want free (the backup's locks are dropped)", r.status, r.body)
	}
	again := call(t, "POST", q.base+"/locks/after-0/acquire", admin, "")
	if again.status != 200 {
		t.Fatalf("acquire after the restore: %d %v", again.status, again.body)
	}
	if f := fence(t, again); f <= floor {
		t.Fatalf("first fencing token after the restore: %d; want above the floor %d (itself above %d, the highest of the lost database)", f, floor, maxFence)
	}
	if out := q.finalStdout(); tokenRE.MatchString(out) {
		t.Fatalf("the restored server printed a new admin token; stdout:\n%s", out)
	}

	// The default floor is the clock, which tokens follow anyway, so the
	// token above does not show that restore raised the counter: a floor
	// an hour ahead of the clock does. The next token is exactly the
	// floor + 1 only if the restored database's counter is at the floor.
	high := time.Now().Add(time.Hour).UnixMicro()
	raised := filepath.Join(dir, "raised.db")
	restore = exec.Command(binPath, "restore", "--db", raised, "--fence-floor", strconv.FormatInt(high, 10), copyPath)
	restore.Env = cleanEnv()
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("restore --fence-floor %d: %v: %s", high, err, out)
	}
	r := startServer(t, raised)
	above := call(t, "POST", r.base+"/locks/after-0/acquire", admin, "")
	if above.status != 200 {
		t.Fatalf("acquire after the restore with --fence-floor: %d %v", above.status, above.body)
	}
	if f := fence(t, above); f != high+1 {
		t.Fatalf("first fencing token after restore --fence-floor %d: %d; want %d, the floor + 1", high, f, high+1)
	}
}
