package crashtest

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/functions/apidocs/contracttest"
	"github.com/octostore/octostore/internal/freeport"
	"github.com/octostore/octostore/internal/leakcheck"
	"github.com/octostore/octostore/internal/lincheck"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/internal/syncbuf"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
)

var (
	soakFlag = flag.Bool("soak", false, "run long crash runs (also OCTOSTORE_SOAK=1)")
	// binPath is the octostore binary TestMain built.
	binPath string
)

// quietRedis drops go-redis' own log lines: the crash runs make it
// complain about every refused dial while redis-server is down.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...interface{}) {}

func TestMain(m *testing.M) {
	flag.Parse()
	redis.SetLogger(quietRedis{})
	dir, err := os.MkdirTemp("", "octostore-crashtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "octostore")
	// go test puts its own GOROOT/bin first on PATH: this "go" is the
	// toolchain running the test.
	out, err := exec.Command("go", "build", "-o", binPath, "github.com/octostore/octostore/cmd/octostore").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "crashtest: go build ./cmd/octostore: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := leakcheck.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func soak() bool { return *soakFlag || os.Getenv("OCTOSTORE_SOAK") == "1" }

// plan says how long a crash run lasts: a number of crashes, or in soak
// mode OCTOSTORE_SOAK_DURATION (default 60 s).
func plan(t *testing.T) (crashes int, until time.Time) {
	if !soak() {
		return 5, time.Time{}
	}
	d := time.Minute
	if s := os.Getenv("OCTOSTORE_SOAK_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("OCTOSTORE_SOAK_DURATION: %v", err)
		}
	}
	return 1 << 30, time.Now().Add(d)
}

// slack covers the millisecond rounding of store times.
const slack = 5 * time.Millisecond

// opTimeout bounds each store operation in the handler (Redis run).
const opTimeout = time.Second

// clientTimeout is how long a client waits for an answer.
const clientTimeout = 3 * time.Second

var locks = []string{"crash-a", "crash-b", "crash-c"}

// run drives clients against c while crash kills and restarts the store's
// process, then checks the history and returns its violations and the
// answers the contract forbids. crash runs on the test goroutine.
//
// With linear, leases last 3600 s and are never abandoned, so that no lease
// expires during the run, and the history is also checked for
// linearizability with porcupine (an answer lost in a crash is unknown).
//
// crash returns when the killed process was seen dead, or the zero time if
// requests can outlive the killed process (the handler survives a Redis
// crash). With those times, an operation whose answer was lost is bounded:
// the process that received it accepted its connection before the client
// gave up (clientTimeout after the call), so it took effect, if at all,
// before the first kill after that.
func run(t *testing.T, c *lincheck.Client, crashes int, until time.Time, linear bool, crash func() time.Time) ([]lincheck.Violation, []error) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	var rec lincheck.Recorder
	w := lincheck.Workload{
		Clients: 8, OpsPerClient: 1 << 30, Locks: locks,
		TTLs:    []time.Duration{time.Second, 2 * time.Second, 3 * time.Second},
		Abandon: 0.05, Think: 20 * time.Millisecond, Seed: seed,
		LeasePrefix: fmt.Sprintf("r%x", seed&0xffffff),
	}
	if linear {
		w.TTLs, w.Abandon = []time.Duration{3600 * time.Second}, 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg    sync.WaitGroup
		stats lincheck.Stats
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		stats = lincheck.Run(ctx, c, w, &rec)
	}()
	var kills []time.Time
	reader := w.Clients // the client id of the after-restart reads
	var readErrs []error
	sweep := func() {
		for _, l := range locks {
			in := lincheck.Input{Kind: lincheck.OpGet, Lock: l}
			call := time.Now()
			out, err := c.Do(context.Background(), in)
			if err != nil {
				readErrs = append(readErrs, err)
				continue
			}
			rec.Add(lincheck.Record{Client: reader, Input: in, Output: out, Call: call, Return: time.Now()})
		}
	}
	n := 0
	for ; n < crashes && (until.IsZero() || time.Now().Before(until)); n++ {
		time.Sleep(time.Duration(400+rng.Intn(800)) * time.Millisecond)
		if k := crash(); !k.IsZero() {
			kills = append(kills, k)
		}
		sweep()
		if t.Failed() {
			break
		}
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	sweep()
	h := rec.History(time.Now().Add(opTimeout))
	bounded := 0
	for i := range h.Records {
		r := &h.Records[i]
		if r.Output.Outcome != lincheck.Unknown {
			continue
		}
		gaveUp := r.Call.Add(clientTimeout)
		for _, k := range kills {
			if !k.Before(gaveUp) && !k.Before(r.Return) {
				r.Return, r.Bounded = k, true
				bounded++
				break
			}
		}
	}
	vs, ts := lincheck.CheckTimeline(h, slack)
	if ts.Acks == 0 || ts.Reads == 0 {
		t.Errorf("nothing to check: %d acknowledged acquires/renewals, %d reads", ts.Acks, ts.Reads)
	}
	if linear {
		res := lincheck.Verify(t, h, 5*time.Minute, t.Name())
		t.Logf("porcupine: %s in %v", res.Verdict, res.Took.Round(time.Millisecond))
	}
	t.Logf("SUMMARY %s: histories=1 crashes=%d operations=%d unknown=%d (bounded by a kill %d) not_sent=%d leases=%d acks=%d reads=%d expired_leases=%d violations=%d",
		t.Name(), n, len(h.Records), h.Unknown(), bounded, stats.NotSent, ts.Leases, ts.Acks, ts.Reads, ts.Expired, len(vs))
	return vs, append(stats.Breaches, readErrs...)
}

// noViolations fails t for each violation and breach (the first 20).
func noViolations(t *testing.T, vs []lincheck.Violation, breaches []error) {
	for i, b := range breaches {
		if i == 20 {
			t.Errorf("... and %d more breaches", len(breaches)-i)
			break
		}
		t.Errorf("contract breach: %v", b)
	}
	for i, v := range vs {
		if i == 20 {
			t.Errorf("... and %d more violations", len(vs)-i)
			break
		}
		t.Errorf("violation: %v", v)
	}
}

// TestCrashSQLiteBinary kills the octostore binary (SQLite) with SIGKILL
// and restarts it on the same database and port, many times, under load.
func TestCrashSQLiteBinary(t *testing.T) { crashSQLiteBinary(t, false) }

// TestCrashSQLiteBinaryLinearizable is TestCrashSQLiteBinary with leases
// that outlive the run, so that the whole history, crashes included, is
// also checked for linearizability.
func TestCrashSQLiteBinaryLinearizable(t *testing.T) { crashSQLiteBinary(t, true) }

func crashSQLiteBinary(t *testing.T, linear bool) {
	dir := t.TempDir()
	p := &proc{t: t, addr: freeAddr(t), db: filepath.Join(dir, "octo.db"), log: filepath.Join(dir, "octostore.log")}
	t.Cleanup(p.stop)
	p.start()
	token := p.token()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	c := &lincheck.Client{BaseURL: "http://" + p.addr, Token: token, HTTP: &http.Client{Transport: contracttest.New(t).Transport(tr), Timeout: clientTimeout}}
	crashes, until := plan(t)
	vs, breaches := run(t, c, crashes, until, linear, func() time.Time {
		p.kill()
		killed := time.Now()
		p.start()
		return killed
	})
	noViolations(t, vs, breaches)
}

// TestCrashRedis kills redis-server (appendonly yes, appendfsync always)
// with SIGKILL under the real handler and restarts it, many times.
func TestCrashRedis(t *testing.T) {
	crashes, until := plan(t)
	vs, breaches := crashRedis(t, crashes, until, false, "--appendonly", "yes", "--appendfsync", "always")
	noViolations(t, vs, breaches)
}

// TestCrashRedisWithoutPersistenceIsCaught proves the crash check can
// fail: a redis-server that keeps nothing on disk forgets every lease
// when killed (two holders, leases lost), and the check must say so. (Its
// fencing counters are lost too, but tokens follow the Redis clock, so
// they go on rising: no token is reused.)
// (The account and token are made again after each restart, as an
// operator would, so that the clients can go on.)
func TestCrashRedisWithoutPersistenceIsCaught(t *testing.T) {
	vs, _ := crashRedis(t, 3, time.Time{}, true, "--appendonly", "no", "--save", "")
	kinds := map[string]int{}
	for _, v := range vs {
		kinds[v.Kind]++
	}
	if len(vs) == 0 {
		t.Fatal("no violation found although redis-server lost all its data in every crash")
	}
	t.Logf("violations found, as expected: %v", kinds)
}

// crashRedis runs the handler over a redis-server started with args and
// kills and restarts that server; with reprovision it makes the account
// again after each restart, with the same token.
func crashRedis(t *testing.T, crashes int, until time.Time, reprovision bool, args ...string) ([]lincheck.Violation, []error) {
	srv := redistest.Start(t, args...)
	st, err := redisstore.Open(context.Background(), redisstore.Config{URL: srv.URL(), OpTimeout: opTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := httptest.NewServer(contracttest.Wrap(t, functions.New(functions.Deps{Store: st, StoreName: "redis", Limits: lockcore.DefaultLimits, OpTimeout: opTimeout})))
	t.Cleanup(ts.Close)
	token, hash := lockcore.NewToken()
	provision := func() {
		t.Helper()
		var err error
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var acct lockcore.Account
			if acct, _, err = st.EnsureAccount(context.Background(), "crash"); err != nil {
				continue
			}
			if err = st.AddToken(context.Background(), acct.ID, hash); err == nil {
				return
			}
		}
		t.Fatalf("provisioning the account: %v", err)
	}
	provision()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	c := &lincheck.Client{BaseURL: ts.URL, Token: token, HTTP: &http.Client{Transport: tr, Timeout: clientTimeout}}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	return run(t, c, crashes, until, false, func() time.Time {
		srv.Kill()
		time.Sleep(time.Duration(rng.Intn(200)) * time.Millisecond)
		srv.Restart()
		if reprovision {
			provision()
		}
		if err := waitHealthy(strings.TrimPrefix(ts.URL, "http://"), nil); err != nil {
			t.Fatalf("handler not healthy after restarting redis: %v", err)
		}
		return time.Time{}
	})
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, from below the kernel's ephemeral range (freeport), so that no
// outgoing connection takes it while the server is down between a kill and
// its restart.
func freeAddr(t *testing.T) string {
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// proc is one octostore serve process at a time on a fixed address and
// database.
type proc struct {
	t        *testing.T
	addr, db string
	log      string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stdout syncbuf.Buffer
	starts int
}

// env is the environment of the server: ours without anything that would
// configure it differently (GitHub app, Redis, limits).
func env() []string {
	var e []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "OCTOSTORE_") || strings.HasPrefix(k, "REDIS_") {
			continue
		}
		e = append(e, kv)
	}
	return e
}

// start launches the server and waits until /health answers 200.
func (p *proc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		cmd := exec.Command(binPath, "serve", "--addr", p.addr, "--db", p.db)
		cmd.Env = env()
		cmd.Stdout = &p.stdout
		cmd.Stderr = logf
		if err := cmd.Start(); err != nil {
			p.t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		p.mu.Lock()
		p.cmd, p.done = cmd, done
		p.starts++
		p.mu.Unlock()
		if lastErr = waitHealthy(p.addr, done); lastErr == nil {
			return
		}
		// The port may still be held by the killed process' sockets for a
		// moment, or the process failed: stop it and try again.
		p.kill()
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(p.log)
	p.t.Fatalf("octostore serve did not become healthy: %v\nlog tail:\n%s", lastErr, tail(string(log), 3000))
}

// waitHealthy polls GET /health until 200, the process exits, or 15 s pass.
func waitHealthy(addr string, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		default:
		}
		resp, err := hc.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from /health within 15s")
}

// signal sends sig to the running process and waits for it to exit
// (SIGKILL after 10 s).
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (p *proc) kill() { p.signal(syscall.SIGKILL) }
func (p *proc) stop() { p.signal(syscall.SIGTERM) }

var tokenRE = regexp.MustCompile(`os_[A-Za-z0-9_-]{43}`)

// token returns the admin token the first start printed.
func (p *proc) token() string {
	p.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if tok := tokenRE.FindString(p.stdout.String()); tok != "" {
			return tok
		}
	}
	p.t.Fatalf("no admin token on the first start's stdout:\n%s", p.stdout.String())
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
