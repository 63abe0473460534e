package main

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/leakcheck"
	"github.com/octostore/octostore/internal/syncbuf"
)

// testVersion is linked into the test bootstrap, so /health can be
// compared with the in-test handler's.
const testVersion = "v0.0.0-lambdatest"

// releaseFlags are the Makefile's release build flags (without the
// version), used for the test binary too so that its size and start-up
// are the ones that ship.
var releaseFlags = []string{"-trimpath", "-ldflags", "-s -w -X github.com/octostore/octostore/internal/buildinfo.version=" + testVersion, "-tags", "lambda.norpc"}

// bootstrapBin is the bootstrap built for the host by TestMain.
var bootstrapBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "octostore-lambda-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bootstrapBin = filepath.Join(dir, "bootstrap")
	if out, err := goBuild(bootstrapBin, nil); err != nil {
		fmt.Fprintf(os.Stderr, "building the bootstrap: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := leakcheck.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// goBuild builds this package into out with the release flags; env adds
// to the environment (e.g. GOOS, GOARCH).
func goBuild(out string, env []string) ([]byte, error) {
	args := append([]string{"build"}, releaseFlags...)
	args = append(args, "-o", out, ".")
	cmd := exec.Command("go", args...)
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	return cmd.CombinedOutput()
}

// runtimeAPI is a stand-in for the Lambda Runtime API
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): it hands
// queued events to GET /runtime/invocation/next and collects what the
// bootstrap posts back.
type runtimeAPI struct {
	t       testing.TB
	srv     *httptest.Server
	queue   chan *invocation
	done    chan struct{}
	initErr chan initError
	nextID  atomic.Int64

	mu      sync.Mutex
	pending map[string]*invocation
	nexts   []time.Time // when each GET /next arrived
}

// invocation is one event and, once the bootstrap answered, its result.
type invocation struct {
	id      string
	payload []byte
	result  chan invokeResult
}

// invokeResult is what the bootstrap posted for an invocation.
type invokeResult struct {
	failed    bool   // posted to /error rather than /response
	errorType string // Lambda-Runtime-Function-Error-Type of a failure
	body      []byte
	at        time.Time
}

// initError is a POST to /runtime/init/error.
type initError struct {
	errorType string
	body      []byte
}

const runtimePrefix = "/2018-06-01/runtime"

func newRuntimeAPI(t testing.TB) *runtimeAPI {
	api := &runtimeAPI{
		t:       t,
		queue:   make(chan *invocation, 16),
		done:    make(chan struct{}),
		initErr: make(chan initError, 4),
		pending: map[string]*invocation{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+runtimePrefix+"/invocation/next", api.next)
	mux.HandleFunc("POST "+runtimePrefix+"/invocation/{id}/response", api.respond)
	mux.HandleFunc("POST "+runtimePrefix+"/invocation/{id}/error", api.respond)
	mux.HandleFunc("POST "+runtimePrefix+"/init/error", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		api.initErr <- initError{errorType: r.Header.Get("Lambda-Runtime-Function-Error-Type"), body: body}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"OK"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("runtime API: unexpected %s %s", r.Method, r.URL.Path)
		http.Error(w, "unexpected", http.StatusNotFound)
	})
	api.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(api.done)
		api.srv.Close()
	})
	return api
}

// addr is the value for AWS_LAMBDA_RUNTIME_API.
func (api *runtimeAPI) addr() string { return strings.TrimPrefix(api.srv.URL, "http://") }

func (api *runtimeAPI) next(w http.ResponseWriter, r *http.Request) {
	api.mu.Lock()
	api.nexts = append(api.nexts, time.Now())
	api.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-api.queue:
	case <-api.done:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	api.mu.Lock()
	api.pending[inv.id] = inv
	api.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(10*time.Second).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:octostore-OctoStoreFunction")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
	h.Set("Content-Type", "application/json")
	w.Write(inv.payload)
}

func (api *runtimeAPI) respond(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.PathValue("id")
	api.mu.Lock()
	inv := api.pending[id]
	delete(api.pending, id)
	api.mu.Unlock()
	if inv == nil {
		api.t.Errorf("runtime API: answer for unknown invocation %q", id)
		http.Error(w, "unknown invocation", http.StatusBadRequest)
		return
	}
	inv.result <- invokeResult{
		failed:    strings.HasSuffix(r.URL.Path, "/error"),
		errorType: r.Header.Get("Lambda-Runtime-Function-Error-Type"),
		body:      body,
		at:        time.Now(),
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"OK"}`)
}

// enqueue queues payload for the next GET /next and returns its invocation.
func (api *runtimeAPI) enqueue(payload []byte) *invocation {
	inv := &invocation{
		id:      fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", api.nextID.Add(1)),
		payload: payload,
		result:  make(chan invokeResult, 1),
	}
	api.queue <- inv
	return inv
}

// wait returns the invocation's result; it fails the test if none comes
// within a minute or the bootstrap exits first (a guard against hangs, not
// a timing assertion).
func (inv *invocation) wait(t testing.TB, b *bootstrap) invokeResult {
	t.Helper()
	var exited <-chan struct{}
	if b != nil {
		exited = b.exited
	}
	select {
	case res := <-inv.result:
		return res
	case <-exited:
		t.Fatalf("bootstrap exited (%v) before answering invocation %s; stderr:\n%s", b.waitErr, inv.id, b.stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("no answer to invocation %s within a minute", inv.id)
	}
	return invokeResult{}
}

// bootstrap is one running bootstrap process.
type bootstrap struct {
	api     *runtimeAPI
	cmd     *exec.Cmd
	stderr  *syncbuf.Buffer
	started time.Time
	exited  chan struct{}
	waitErr error // valid once exited is closed
}

// startBootstrap runs the bootstrap with exactly env (plus
// AWS_LAMBDA_RUNTIME_API pointing at api) and stops it when the test ends.
func startBootstrap(t testing.TB, api *runtimeAPI, env map[string]string) *bootstrap {
	t.Helper()
	b := &bootstrap{api: api, stderr: &syncbuf.Buffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(bootstrapBin)
	b.cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + api.addr(), "PATH=/usr/bin:/bin"}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		b.cmd.Env = append(b.cmd.Env, k+"="+env[k])
	}
	b.cmd.Stdout = b.stderr
	b.cmd.Stderr = b.stderr
	b.started = time.Now()
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting the bootstrap: %v", err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.exited
		if t.Failed() {
			t.Logf("bootstrap output:\n%s", b.stderr.String())
		}
	})
	return b
}

// waitExit waits (up to a minute) for the process to end by itself.
func (b *bootstrap) waitExit(t testing.TB) error {
	t.Helper()
	select {
	case <-b.exited:
		return b.waitErr
	case <-time.After(time.Minute):
		t.Fatalf("bootstrap still running after a minute; output:\n%s", b.stderr.String())
		return nil
	}
}

// waitOutput returns the process's output once it contains want, or once
// the process has exited or 10 s have passed (then the caller's check
// fails). The process writes its log line before it asks for an
// invocation, but this process copies the pipe on an exec goroutine of its
// own, which may not have run yet.
func (b *bootstrap) waitOutput(want string) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := b.stderr.String()
		if strings.Contains(out, want) || time.Now().After(deadline) {
			return out
		}
		select {
		case <-b.exited:
			return b.stderr.String()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var panicRE = regexp.MustCompile(`(?m)^(panic:|goroutine \d+ \[)`)
