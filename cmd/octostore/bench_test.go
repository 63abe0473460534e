package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/octostore/octostore/functions"
	"github.com/octostore/octostore/internal/loadgen"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

func TestBenchFlagValidation(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no token", []string{"--url", "http://127.0.0.1:1"}, nil, "a token is required"},
		{"zero clients", []string{"--token", "os_x", "--clients", "0"}, nil, "--clients must be 1..10000"},
		{"too many clients", []string{"--token", "os_x", "--clients", "10001"}, nil, "--clients must be 1..10000"},
		{"negative duration", []string{"--token", "os_x", "--duration", "-1s"}, nil, "--duration must not be negative"},
		{"negative cycles", []string{"--token", "os_x", "--cycles", "-3"}, nil, "--cycles must not be negative"},
		{"no bound", []string{"--token", "os_x", "--duration", "0"}, nil, "give a --duration or a number of --cycles"},
		{"fractional ttl", []string{"--token", "os_x", "--ttl", "1500ms"}, nil, "--ttl must be a whole number of seconds"},
		{"short ttl", []string{"--token", "os_x", "--ttl", "0s"}, nil, "--ttl must be"},
		{"negative retry", []string{"--token", "os_x", "--retry-delay", "-1ms"}, nil, "--retry-delay must not be negative"},
		{"unknown target", []string{"--target", "zookeeper"}, nil, `--target must be octostore, etcd or redis (got "zookeeper")`},
		{"redis without url", []string{"--target", "redis"}, nil, "--redis-url is required"},
		{"etcd without url", []string{"--target", "etcd", "--etcd-url", ""}, nil, "--etcd-url is required"},
		{"octostore without url", []string{"--token", "os_x", "--url", ""}, nil, "--url is required"},
		{"bad url", []string{"--token", "os_x", "--url", "ftp://x"}, nil, "want http://host:port"},
		{"stray argument", []string{"--token", "os_x", "extra"}, nil, "unexpected arguments"},
		{"unknown flag", []string{"--frobnicate"}, nil, "flag provided but not defined"},
		{"redis braces account", []string{"--target", "redis", "--redis-url", "redis://127.0.0.1:1", "--redis-account", "{x}"}, nil, "without braces"},
		{"bad redis url", []string{"--target", "redis", "--redis-url", "http://x"}, nil, "redis URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OCTOSTORE_TOKEN", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"bench"}, tt.args...), strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q on a refused command line", out.String())
			}
		})
	}
}

// startBenchServer serves the real handler over SQLite and returns its URL
// and a token.
func startBenchServer(t *testing.T) (string, string) {
	t.Helper()
	h, tok := benchHandler(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, tok
}

// benchHandler is the real handler over a new SQLite store, with a token.
func benchHandler(t *testing.T) (http.Handler, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "bench.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct, _, err := st.EnsureAccount(ctx, "bench")
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := lockcore.NewToken()
	if err := st.AddToken(ctx, acct.ID, hash); err != nil {
		t.Fatal(err)
	}
	return functions.New(functions.Deps{Store: st, StoreName: "sqlite", OpTimeout: 30 * time.Second}), tok
}

func TestBenchJSONAgainstServer(t *testing.T) {
	url, tok := startBenchServer(t)
	// The token comes from the environment, as the flag help suggests.
	t.Setenv("OCTOSTORE_TOKEN", tok)
	var out, errOut bytes.Buffer
	args := []string{"bench", "--url", url, "--clients", "3", "--cycles", "30", "--duration", "0", "--contended", "--json", "--quiet", "--label", "t1"}
	if err := run(context.Background(), args, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("bench: %v (stderr %s)", err, errOut.String())
	}
	var res loadgen.Result
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("JSON output: %v", err)
	}
	if res.Label != "t1" || res.Target != "octostore" || res.Clients != 3 || !res.Contended ||
		res.Cycles != 30 || res.Errors != 0 || res.Attempts != 30+res.Held || res.Acquire.Count != uint64(res.Attempts) {
		t.Fatalf("result %+v", res)
	}
	if errOut.Len() != 0 {
		t.Fatalf("--quiet still wrote %q to stderr", errOut.String())
	}
}

func TestBenchTextAgainstRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	var out, errOut bytes.Buffer
	args := []string{"bench", "--target", "redis", "--redis-url", "redis://" + mr.Addr(), "--clients", "2", "--cycles", "20", "--duration", "0"}
	if err := run(context.Background(), args, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("bench: %v", err)
	}
	for _, want := range []string{"target redis-lua, 2 clients, distinct names", "cycles            20", "errors             0", "acquire", "release", "p99"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.HasSuffix(errOut.String(), "\n") {
		t.Errorf("progress output %q does not end its line", errOut.String())
	}
	if keys := mr.Keys(); len(keys) != 1 || keys[0] != "os:{a:bench}:fence" {
		t.Errorf("keys after the run: %v", keys)
	}
}

// The etcd target does not keep its leases alive, so each lease's TTL must
// outlast the run. A run bounded only by --cycles used to get the TTL of a
// duration-bound run with duration 0 (--ttl + 1 min): a longer run lost
// its leases mid-run, and every lock after that failed.
func TestBenchEtcdLeaseOutlastsTheRun(t *testing.T) {
	var (
		mu   sync.Mutex
		ttls []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v3/lease/grant":
			mu.Lock()
			ttls = append(ttls, fmt.Sprint(req["TTL"]))
			mu.Unlock()
			fmt.Fprint(w, `{"header":{},"ID":"7587","TTL":"1"}`)
		case "/v3/lock/lock":
			fmt.Fprintf(w, `{"header":{},"key":%q}`, req["name"])
		default: // unlock, revoke
			fmt.Fprint(w, `{"header":{}}`)
		}
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		bound   []string
		wantTTL string
	}{
		{[]string{"--duration", "0", "--cycles", "5"}, "86400"}, // a day
		// --cycles alone runs until the cycles are done (not for the
		// default 10 s), so it too has no known length.
		{[]string{"--cycles", "5"}, "86400"},
		// 5 s + 10 s + 60 s. The run ends on its 5 cycles, long before
		// 5 s; with 100 ms a stalled client could end it at 4.
		{[]string{"--duration", "5s", "--cycles", "5", "--ttl", "10s"}, "75"},
	} {
		ttls = nil
		var out, errOut bytes.Buffer
		args := append([]string{"bench", "--target", "etcd", "--etcd-url", srv.URL, "--clients", "2", "--json", "--quiet"}, tc.bound...)
		if err := run(context.Background(), args, strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatalf("%v: %v (stderr %s)", tc.bound, err, errOut.String())
		}
		var res loadgen.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Cycles != 5 || res.Errors != 0 {
			t.Fatalf("%v: result %+v (%v)", tc.bound, res, err)
		}
		mu.Lock()
		got := ttls
		mu.Unlock()
		if len(got) != 2 || got[0] != tc.wantTTL || got[1] != tc.wantTTL {
			t.Errorf("%v: lease TTLs asked %v, want two of %s", tc.bound, got, tc.wantTTL)
		}
	}
}

// TestBenchFailsWhenNothingCompletes: a run whose every request failed
// (here a token the server does not know) gives up at once rather than
// after its hour, still prints its result, and returns an error, so a
// script does not take it for a measurement.
func TestBenchFailsWhenNothingCompletes(t *testing.T) {
	url, _ := startBenchServer(t)
	unknown, _ := lockcore.NewToken()
	var out, errOut bytes.Buffer
	args := []string{"bench", "--url", url, "--token", unknown, "--clients", "2", "--duration", "1h", "--json", "--quiet"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("err = %v, want gave up … HTTP 401", err)
	}
	var res loadgen.Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil || res.Cycles != 0 || res.Errors == 0 || !res.GaveUp || res.Interrupted {
		t.Fatalf("result not printed, or not marked as given up: %v %q", jerr, out.String())
	}
}

// TestBenchOverTLS: bench drives an https server whose authority
// --ca-cert gives; without it (the system's authorities only) the run
// fails on the certificate; a --ca-cert that is not PEM is refused.
func TestBenchOverTLS(t *testing.T) {
	h, tok := benchHandler(t)
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	url := srv.URL
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OCTOSTORE_TOKEN", tok)
	base := []string{"bench", "--url", url, "--clients", "2", "--cycles", "20", "--json", "--quiet"}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append(base, "--ca-cert", ca), strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("bench with --ca-cert: %v (stderr %s)", err, errOut.String())
	}
	var res loadgen.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Cycles != 20 || res.Errors != 0 {
		t.Fatalf("result %+v, %v", res, err)
	}
	out.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, base, strings.NewReader(""), &out, &errOut); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("bench without --ca-cert: %v, want a certificate error", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	for file, want := range map[string]string{notPEM: "holds no PEM certificate", notPEM + ".gone": "no such file"} {
		out.Reset()
		err := run(context.Background(), append(base, "--ca-cert", file), strings.NewReader(""), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), want) || out.Len() != 0 {
			t.Errorf("--ca-cert %s: %v (stdout %q), want %q and no result", file, err, out.String(), want)
		}
	}
}

// TestBenchInterrupted: a run that a signal ends (the context, as main
// wires SIGINT and SIGTERM) prints its figures, marked as interrupted,
// releases every lock it holds, and returns an error.
func TestBenchInterrupted(t *testing.T) {
	url, tok := startBenchServer(t)
	t.Setenv("OCTOSTORE_TOKEN", tok)
	ctx, cancel := context.WithCancel(context.Background())
	// The run's own bound is an hour: only the interruption ends it, once
	// the progress line shows that cycles are being done.
	progress := &syncWriter{onWrite: func(p []byte) {
		if bytes.Contains(p, []byte("cycles")) && !bytes.Contains(p, []byte("cycles 0 ")) {
			cancel()
		}
	}}
	var out bytes.Buffer
	args := []string{"bench", "--url", url, "--clients", "4", "--duration", "1h", "--json", "--name-prefix", "intr-"}
	err := run(ctx, args, strings.NewReader(""), &out, progress)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v, want an interrupted run", err)
	}
	var res loadgen.Result
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil || !res.Interrupted || res.Cycles == 0 || res.Errors != 0 {
		t.Fatalf("result %+v (%v), want interrupted with cycles and no errors", res, jerr)
	}
	// Nothing is left held: the same token lists no lock.
	req, _ := http.NewRequest(http.MethodGet, url+"/locks", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Count int `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || list.Count != 0 {
		t.Fatalf("locks held after the interrupted run: %d (%v)", list.Count, err)
	}
}

// syncWriter is an io.Writer safe for concurrent use that calls onWrite
// with each write.
type syncWriter struct {
	mu      sync.Mutex
	onWrite func([]byte)
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onWrite(p)
	return len(p), nil
}
