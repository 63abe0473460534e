package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/internal/tlstest"
	"github.com/octostore/octostore/lockcore"
	"github.com/octostore/octostore/lockcore/redisstore"
	"github.com/octostore/octostore/lockcore/sqlitestore"
)

func TestRunCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cli.db")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		stdin   string
		wantErr string
		wantOut string
	}{
		{name: "version", args: []string{"version"}, wantOut: "octostore "},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{name: "token without subcommand", args: []string{"token"}, wantErr: "want a subcommand"},
		{name: "token unknown subcommand", args: []string{"token", "eat"}, wantErr: `unknown subcommand "eat"`},
		{name: "create without login", args: []string{"token", "create", "--db", db}, wantErr: "--login is required"},
		{name: "create bad login", args: []string{"token", "create", "--db", db, "--login", "a b"}, wantErr: "login must be"},
		{name: "revoke garbage", args: []string{"token", "revoke", "--db", db, "nope"}, wantErr: "token must be"},
		{name: "revoke empty stdin", args: []string{"token", "revoke", "--db", db}, stdin: "", wantErr: "token must be"},
		{name: "bad env int", args: []string{"serve", "--db", db}, env: map[string]string{"OCTOSTORE_MAX_LOCKS": "1o0"}, wantErr: "OCTOSTORE_MAX_LOCKS"},
		// The token commands have no limits: a bad limit does not stop them.
		{name: "bad env int does not stop token create", args: []string{"token", "create", "--db", db, "--login", "x"}, env: map[string]string{"OCTOSTORE_MAX_LOCKS": "1o0"}, wantOut: "os_"},
		{name: "bad env op timeout stops token create", args: []string{"token", "create", "--db", db, "--login", "x"}, env: map[string]string{"OCTOSTORE_OP_TIMEOUT": "3"}, wantErr: "OCTOSTORE_OP_TIMEOUT"},
		{name: "cluster without url", args: []string{"token", "create", "--db", db, "--login", "x", "--redis-cluster"}, wantErr: "needs --redis-url"},
		{name: "empty --db", args: []string{"token", "create", "--db", "", "--login", "x"}, wantErr: "--db (env OCTOSTORE_DB) is empty"},
		{name: "empty OCTOSTORE_DB", args: []string{"token", "create", "--login", "x"}, env: map[string]string{"OCTOSTORE_DB": ""}, wantErr: "--db (env OCTOSTORE_DB) is empty"},
		{name: "revoke with the store flags after the token", args: []string{"token", "revoke", "os_x", "--db", db}, wantErr: "the store flags go before the token"},
		{name: "serve log format from the environment", args: []string{"serve", "--db", db}, env: map[string]string{"OCTOSTORE_LOG_FORMAT": "xml"}, wantErr: "env OCTOSTORE_LOG_FORMAT"},
		{name: "serve bad limits", args: []string{"serve", "--db", db, "--max-locks", "0"}, wantErr: "--max-locks (env OCTOSTORE_MAX_LOCKS) must be at least 1"},
		{name: "serve max TTL 0", args: []string{"serve", "--db", db, "--max-ttl", "0"}, wantErr: "--max-ttl (env OCTOSTORE_MAX_TTL_SECONDS) must be at least 1"},
		{name: "serve default TTL above the max", args: []string{"serve", "--db", db, "--max-ttl", "30"}, wantErr: "--default-ttl (env OCTOSTORE_DEFAULT_TTL_SECONDS) must be from 1 to --max-ttl (env OCTOSTORE_MAX_TTL_SECONDS), 30 seconds (got 60)"},
		{name: "serve negative metadata", args: []string{"serve", "--db", db, "--max-metadata", "-1"}, wantErr: "--max-metadata (env OCTOSTORE_MAX_METADATA_BYTES) must not be negative"},
		{name: "version with arguments", args: []string{"version", "extra"}, wantErr: `version: unexpected arguments ["extra"]`},
		{name: "version -h", args: []string{"version", "-h"}, wantOut: "usage:\n  octostore [serve]"},
		{name: "serve bad log format", args: []string{"serve", "--db", db, "--log-format", "xml"}, wantErr: "--log-format"},
		{name: "serve stray argument", args: []string{"serve", "--db", db, "extra"}, wantErr: "unexpected arguments"},
		{name: "create prints one token", args: []string{"token", "create", "--db", db, "--login", "cli"}, wantOut: "os_"},
		{name: "--help shows every command", args: []string{"--help"}, wantOut: "usage:\n  octostore [serve]"},
		{name: "-h shows every command", args: []string{"-h"}, wantOut: "usage:\n  octostore [serve]"},
		{name: "help", args: []string{"help"}, wantOut: "usage:\n  octostore [serve]"},
		{name: "token --help", args: []string{"token", "--help"}, wantOut: "usage:\n  octostore [serve]"},
		// A Redis URL from the environment that nothing answers: --db on the
		// command line wins, so the token is created in SQLite.
		{name: "--db beats REDIS_URL from the environment", args: []string{"token", "create", "--db", db, "--login", "cli"},
			env: map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "REDIS_CLUSTER": "true"}, wantOut: "os_"},
		{name: "REDIS_URL from the environment without --db", args: []string{"token", "create", "--login", "cli", "--op-timeout", "200ms"},
			env: map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, wantErr: "open redis store"},
		{name: "--db and --redis-url", args: []string{"token", "create", "--db", db, "--redis-url", "redis://127.0.0.1:1", "--login", "cli"}, wantErr: "choose one store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, strings.NewReader(tt.stdin), &out, &errOut)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v (stderr %s)", err, errOut.String())
			}
			if !strings.HasPrefix(out.String(), tt.wantOut) {
				t.Fatalf("stdout = %q, want prefix %q", out.String(), tt.wantOut)
			}
		})
	}
}

// TestStartupErrorsHideSecrets: a configuration error about a URL that
// holds a password (a Redis URL that does not parse, a GitHub URL with user
// info) never prints the password; main writes these errors to stderr,
// which is usually the log.
func TestStartupErrorsHideSecrets(t *testing.T) {
	const pw = "Sup3rS3cretPw"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"redis URL that does not parse", []string{"token", "create", "--login", "x", "--redis-url", "redis://default:" + pw + "@bad%zzhost:6379/0"}, nil},
		{"cluster URL that does not parse", []string{"token", "create", "--login", "x", "--redis-cluster", "--redis-url", "redis://default:" + pw + "@bad%zzhost:6379"}, nil},
		{"redis unreachable", []string{"token", "create", "--login", "x", "--op-timeout", "200ms", "--redis-url", "redis://default:" + pw + "@127.0.0.1:1/0"}, nil},
		// A generated password with a character that a URL gives a
		// meaning (base64 has '/'), not percent-encoded: what comes
		// before that character parses as the host's port.
		{"redis URL with a / in the password", []string{"token", "create", "--login", "x", "--redis-url", "redis://default:" + pw + "/rest@127.0.0.1:6379"}, nil},
		{"redis URL with a # in the password", []string{"token", "create", "--login", "x", "--redis-url", "redis://:" + pw + "#rest@127.0.0.1:6379"}, nil},
		{"cluster URL with a ? in the password", []string{"token", "create", "--login", "x", "--redis-cluster", "--redis-url", "redis://:" + pw + "?rest@127.0.0.1:6379"}, nil},
		// The same with only digits (or nothing) before that character:
		// the URL parses, and the rest of the password is its path or
		// query, which go-redis quotes in its error.
		{"redis URL with a ? after digits in the password", []string{"token", "create", "--login", "x", "--redis-url", "redis://default:2024?" + pw + "@127.0.0.1:6379"}, nil},
		{"redis URL with a / first in the password", []string{"token", "create", "--login", "x", "--redis-url", "redis://default:/" + pw + "@127.0.0.1:6379"}, nil},
		{"cluster URL with a ? after digits in the password", []string{"token", "create", "--login", "x", "--redis-cluster", "--redis-url", "redis://default:2024?" + pw + "@127.0.0.1:6379"}, nil},
		{"GitHub API URL with a / in the password", []string{"serve", "--db", filepath.Join(t.TempDir(), "x.db"), "--addr", "127.0.0.1:0"},
			map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": strings.Repeat("s", 40), "GITHUB_API_URL": "https://u:" + pw + "/x@ghe.example.com/api/v3"}},
		{"GitHub API URL with a token in its query", []string{"serve", "--db", filepath.Join(t.TempDir(), "x.db"), "--addr", "127.0.0.1:0"},
			map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": strings.Repeat("s", 40), "GITHUB_API_URL": "https://ghe.example.com/api/v3?access_token=" + pw}},
		{"GitHub API URL with user info", []string{"serve", "--db", filepath.Join(t.TempDir(), "x.db"), "--addr", "127.0.0.1:0"},
			map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": strings.Repeat("s", 40), "GITHUB_API_URL": "https://u:" + pw + "@ghe.example.com/api/v3"}},
		{"public URL that does not parse", []string{"serve", "--db", filepath.Join(t.TempDir(), "x.db"), "--addr", "127.0.0.1:0"},
			map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": strings.Repeat("s", 40), "OCTOSTORE_PUBLIC_URL": "https://u:" + pw + "@bad%zzhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error()+out.String()+errOut.String(), pw) {
				t.Errorf("the password is printed: %v", err)
			}
		})
	}
}

// TestRefusedStartLeavesNothing: a serve that is refused before it runs (TLS
// files it cannot use, a GitHub configuration it cannot use, or a listen
// address that is taken)
// creates no database file and no first account, so it prints no token for
// a server that never answered, and the next start is still a first start.
func TestRefusedStartLeavesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	cert, key, otherKey := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "other-key.pem")
	ca.WriteServerPair(t, cert, key, 2)
	ca.WriteServerPair(t, filepath.Join(dir, "other-cert.pem"), otherKey, 3)
	for _, tc := range []struct {
		name, addr, wantErr string
		env                 map[string]string
	}{
		{"TLS certificate without a key", "127.0.0.1:0", "--tls-cert (env OCTOSTORE_TLS_CERT) needs --tls-key", map[string]string{"OCTOSTORE_TLS_CERT": cert}},
		{"TLS key without a certificate", "127.0.0.1:0", "--tls-key (env OCTOSTORE_TLS_KEY) needs --tls-cert", map[string]string{"OCTOSTORE_TLS_KEY": key}},
		{"TLS key file missing", "127.0.0.1:0", "TLS key file", map[string]string{"OCTOSTORE_TLS_CERT": cert, "OCTOSTORE_TLS_KEY": key + ".gone"}},
		{"TLS key of another certificate", "127.0.0.1:0", "private key does not match", map[string]string{"OCTOSTORE_TLS_CERT": cert, "OCTOSTORE_TLS_KEY": otherKey}},
		{"GitHub client id without a secret", "127.0.0.1:0", "client secret is empty", map[string]string{"GITHUB_CLIENT_ID": "id"}},
		{"GitHub state secret too short", "127.0.0.1:0", "state secret", map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": "short", "OCTOSTORE_STATE_SECRET": "short"}},
		{"listen address taken", taken.Addr().String(), "address already in use", nil},
		// net.Listen would take "" as every interface and a random port.
		{"empty listen address", "", "--addr (env OCTOSTORE_ADDR) is empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			db := filepath.Join(t.TempDir(), "refused.db")
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"serve", "--db", db, "--addr", tc.addr}, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(out.String(), "os_") {
				t.Errorf("a refused start printed a token:\n%s", out.String())
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused start left %s behind (stat: %v)", db, err)
			}
		})
	}
}

// TestTokenCommandsAndAMissingDatabase: token revoke on a SQLite file that
// does not exist fails and creates nothing (there is nothing to revoke in a
// new database); token create makes the database and says so on stderr,
// since a token in a database no server uses would be refused.
func TestTokenCommandsAndAMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "missing.db")
	token, _ := lockcore.NewToken()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"token", "revoke", "--db", db, token}, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no SQLite database at "+db) {
		t.Fatalf("revoke on a missing database: err = %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("revoke on a missing database left %d files behind", len(entries))
	}

	out.Reset()
	if err := run(context.Background(), []string{"token", "create", "--db", db, "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "os_") || !strings.Contains(errOut.String(), "created a new database "+db) {
		t.Fatalf("create on a missing database: stdout %q stderr %q", out.String(), errOut.String())
	}
	errOut.Reset()
	if err := run(context.Background(), []string{"token", "create", "--db", db, "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if errOut.Len() != 0 {
		t.Fatalf("create on an existing database wrote to stderr: %q", errOut.String())
	}
	// Now the database exists, and the token made above is revoked in it.
	created := strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0])
	out.Reset()
	if err := run(context.Background(), []string{"token", "revoke", "--db", db, created}, strings.NewReader(""), &out, &errOut); err != nil || out.String() != "revoked\n" {
		t.Fatalf("revoke: err %v, stdout %q", err, out.String())
	}
}

// TestTokenCommandsWaitForTheWriteLock: an operator command waits for
// the SQLite write lock longer than a request does (--op-timeout, 3 s by
// default), since a server under load takes the lock back after each
// commit and a command giving up as soon as a request does failed there
// ("database is locked"). Another connection holds the write lock for
// longer than the op timeout; token create and token revoke, started
// while it is held, succeed once it is let go.
func TestTokenCommandsWaitForTheWriteLock(t *testing.T) {
	db := filepath.Join(t.TempDir(), "octostore.db")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "create", "--db", db, "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	made := strings.TrimSpace(out.String())
	holder, err := sql.Open("sqlite", "file:"+db+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	for _, args := range [][]string{
		{"token", "create", "--db", db, "--login", "ops"},
		{"token", "revoke", "--db", db, made},
	} {
		tx, err := holder.Begin() // BEGIN IMMEDIATE: the write lock
		if err != nil {
			t.Fatal(err)
		}
		// Closed just before the lock is let go: the command cannot have
		// its lock before then, while a channel closed after Rollback
		// could still be open when the command, let in by Rollback, has
		// returned (a starved goroutine), failing a correct command.
		releasing := make(chan struct{})
		go func() {
			time.Sleep(4 * time.Second)
			close(releasing)
			tx.Rollback()
		}()
		out.Reset()
		err = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		select {
		case <-releasing:
		default:
			t.Fatalf("%s returned while another connection held the write lock: %v, stdout %q", strings.Join(args[:2], " "), err, out.String())
		}
		if err != nil || out.Len() == 0 {
			t.Fatalf("%s once the write lock was let go: %v, stdout %q", strings.Join(args[:2], " "), err, out.String())
		}
	}
}

// TestBadFlagIsAUsageError: a flag the flag package refuses comes back as
// a usageError, which main exits 2 on without printing it a second time;
// the flag package has printed it once, with the flags.
func TestBadFlagIsAUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--bogus"},
		{"token", "create", "--bogus"},
		{"token", "revoke", "--bogus"},
		{"bench", "--duration", "5"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: err = %v (%T), want a usageError", args, err, err)
			continue
		}
		if n := strings.Count(errOut.String(), err.Error()); n != 1 {
			t.Errorf("%q: stderr names the error %d times, want once:\n%s", args, n, errOut.String())
		}
		if out.Len() != 0 {
			t.Errorf("%q: a refused command line wrote to stdout: %q", args, out.String())
		}
	}
	err := run(context.Background(), []string{"serve", "-h"}, strings.NewReader(""), io.Discard, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("serve -h: err = %v, want flag.ErrHelp", err)
	}
}

// TestHelpGoesToStdout: the flags a command prints when asked (-h, -help,
// --help) go to stdout, as "octostore help" does, so that they can be
// piped to a pager; nothing goes to stderr.
func TestHelpGoesToStdout(t *testing.T) {
	for _, c := range []struct {
		args           []string
		name, fl, also string
	}{
		{[]string{"serve", "-h"}, "serve", "-addr", ""},
		{[]string{"token", "create", "--help"}, "token create", "-login", ""},
		{[]string{"token", "revoke", "-help"}, "token revoke", "-account", ""},
		{[]string{"backup", "-h"}, "backup", "-db", "SQLite only"},
		{[]string{"restore", "-h"}, "restore", "-fence-floor", ""},
		{[]string{"bench", "-h"}, "bench", "-clients", ""},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, strings.NewReader(""), &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%q: err = %v, want flag.ErrHelp", c.args, err)
		}
		if !strings.HasPrefix(out.String(), "Usage of "+c.name+":") || !strings.Contains(out.String(), "  "+c.fl+" ") {
			t.Errorf("%q: stdout = %q, want the usage of %s with %s", c.args, out.String(), c.name, c.fl)
		}
		if !strings.Contains(out.String(), c.also) {
			t.Errorf("%q: stdout = %q, want it to say %q", c.args, out.String(), c.also)
		}
		if errOut.Len() != 0 {
			t.Errorf("%q: stderr = %q, want nothing", c.args, errOut.String())
		}
	}
}

func TestBaseURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"[::]:8080":      "http://127.0.0.1:8080",
		"127.0.0.1:9000": "http://127.0.0.1:9000",
		"[::1]:8080":     "http://[::1]:8080",
		"localhost:8080": "http://localhost:8080",
		"lock.internal":  "http://lock.internal",
	} {
		if got := baseURL(addr, false); got != want {
			t.Errorf("baseURL(%q, false) = %q, want %q", addr, got, want)
		}
		want = "https://" + strings.TrimPrefix(want, "http://")
		if got := baseURL(addr, true); got != want {
			t.Errorf("baseURL(%q, true) = %q, want %q", addr, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080":   true,
		"127.0.0.2:8080":   true,
		"[::1]:8080":       true,
		"localhost:8080":   true,
		":8080":            false,
		"0.0.0.0:8080":     false,
		"[::]:8080":        false,
		"10.0.0.7:8080":    false,
		"lock.internal:80": false,
		"no-port":          false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestFirstStartCurlLineWorks: the curl line of a first start names the
// port the server really listens on, also when --addr asks for any port,
// and asks for a TTL the server allows, also when --max-ttl is under 30 s.
func TestFirstStartCurlLineWorks(t *testing.T) {
	for _, tc := range []struct {
		name, wantBody string
		limits         []string
	}{
		{"default limits", `{"ttl_seconds":30}`, nil},
		{"max TTL under 30 s", `{"ttl_seconds":10}`, []string{"--max-ttl", "10", "--default-ttl", "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testFirstStartCurlLine(t, tc.limits, tc.wantBody)
		})
	}
}

// testFirstStartCurlLine starts serve on a new database with the extra
// limit flags, and runs the curl line it prints, whose body must be
// wantBody.
func testFirstStartCurlLine(t *testing.T, limits []string, wantBody string) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var out bytes.Buffer
	var serveErr error
	stopped := make(chan struct{})
	args := append([]string{"serve", "--db", filepath.Join(t.TempDir(), "first.db"), "--addr", "127.0.0.1:0"}, limits...)
	go func() {
		serveErr = run(ctx, args, strings.NewReader(""), lockedWriter{&mu, &out}, io.Discard)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	re := regexp.MustCompile(`curl -X POST (http://127\.0\.0\.1:\d+)/locks/my-lock/acquire -H "Authorization: Bearer (os_\S+)" -d '([^']*)'`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; time.Sleep(20 * time.Millisecond) {
		select {
		case <-stopped:
			t.Fatalf("serve stopped: %v", serveErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no curl line in 20 s")
		}
		mu.Lock()
		m = re.FindStringSubmatch(out.String())
		mu.Unlock()
	}
	if m[3] != wantBody {
		t.Errorf("the curl line's body is %s, want %s", m[3], wantBody)
	}
	// serve prints the line after it listens, and serves once the store is
	// open: try until the answer comes.
	client := &http.Client{Timeout: 10 * time.Second}
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest(http.MethodPost, m[1]+"/locks/my-lock/acquire", strings.NewReader(m[3]))
		req.Header.Set("Authorization", "Bearer "+m[2])
		if resp, err = client.Do(req); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the curl line's URL does not answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the curl line's request: %s, want 200", resp.Status)
	}
	cancel()
	<-stopped
	if serveErr != nil {
		t.Fatalf("serve: %v", serveErr)
	}
}

// TestTokenRevokeAccount: token revoke --account cuts an account off: every
// token of it (one made by a rotation included) stops working, another
// account's token does not, and a new token works again.
func TestTokenRevokeAccount(t *testing.T) {
	db := filepath.Join(t.TempDir(), "acct.db")
	cmd := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		return out.String(), err
	}
	create := func(login string) string {
		t.Helper()
		out, err := cmd("token", "create", "--db", db, "--login", login)
		if err != nil {
			t.Fatalf("token create: %v", err)
		}
		return strings.TrimSpace(out)
	}
	t1, t2, other := create("ops"), create("ops"), create("ci")

	st, err := sqlitestore.Open(context.Background(), db, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.AccountByToken(context.Background(), lockcore.HashToken(t1))
	if err != nil {
		t.Fatal(err)
	}
	// A rotation that only the holder of t2 knows the result of.
	_, rotated := lockcore.NewToken()
	if _, err := st.RotateToken(context.Background(), lockcore.HashToken(t2), rotated); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, err := cmd("token", "revoke", "--db", db, "--account", acct.ID)
	if want := "revoked 2 tokens of account " + acct.ID + " (login ops)\n"; err != nil || out != want {
		t.Fatalf("revoke --account: %q %v, want %q", out, err, want)
	}
	st, err = sqlitestore.Open(context.Background(), db, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for what, h := range map[string]lockcore.TokenHash{"t1": lockcore.HashToken(t1), "t2": lockcore.HashToken(t2), "t2's rotation": rotated} {
		if _, err := st.AccountByToken(context.Background(), h); !errors.Is(err, lockcore.ErrNotFound) {
			t.Errorf("%s after revoke --account: %v, want ErrNotFound", what, err)
		}
	}
	if _, err := st.AccountByToken(context.Background(), lockcore.HashToken(other)); err != nil {
		t.Errorf("another account's token after revoke --account: %v", err)
	}

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"token", "revoke", "--db", db, "--account", "a_nosuch"}, `no account "a_nosuch"`},
		{[]string{"token", "revoke", "--db", db, "--account", acct.ID, other}, "not both"},
	} {
		if _, err := cmd(tc.args...); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.wantErr)
		}
	}
	ci, err := st.AccountByToken(context.Background(), lockcore.HashToken(other))
	if err != nil {
		t.Fatalf("the refused commands revoked another account's token: %v", err)
	}
	out, err = cmd("token", "revoke", "--db", db, "--account", ci.ID)
	if want := "revoked 1 token of account " + ci.ID + " (login ci)\n"; err != nil || out != want {
		t.Errorf("revoke --account of one token: %q %v, want %q", out, err, want)
	}
}

// TestBackupAndRestoreCommands runs backup and restore as an operator
// would: a backup while the database is open and in use, more locks after
// it, then a restore with the default floor. Every fencing token after
// the restore must be above every token issued before (the floor is the
// time of the restore in microseconds), the backup's locks are gone, and
// the token made before the backup still works.
func TestBackupAndRestoreCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"token", "create", "--db", db, "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out.String())
	live, err := sqlitestore.Open(ctx, db, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	acct, err := live.AccountByToken(ctx, lockcore.HashToken(token))
	if err != nil {
		t.Fatal(err)
	}
	var highest int64
	acquire := func(s lockcore.Store, name string) int64 {
		t.Helper()
		r, err := s.Acquire(ctx, acct.ID, name, lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100})
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire(%s): %+v, %v", name, r, err)
		}
		highest = max(highest, r.Lease.FencingToken)
		return r.Lease.FencingToken
	}
	acquire(live, "a")
	acquire(live, "b")

	copyPath := filepath.Join(dir, "copy.db")
	out.Reset()
	if err := run(ctx, []string{"backup", "--db", db, copyPath}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("backup: %v", err)
	}
	fi, err := os.Stat(copyPath)
	if err != nil || out.String() != fmt.Sprintf("backed up %s to %s (%d bytes)\n", db, copyPath, fi.Size()) {
		t.Fatalf("backup: stdout %q, %v", out.String(), err)
	}
	for i := 0; i < 10; i++ {
		acquire(live, fmt.Sprintf("after-%d", i))
	}

	restored := filepath.Join(dir, "restored.db")
	before := time.Now().UnixMicro()
	out.Reset()
	if err := run(ctx, []string{"restore", "--db", restored, copyPath}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("restore: %v", err)
	}
	var floor int64
	if _, err := fmt.Sscanf(out.String(), "restored "+copyPath+" to "+restored+": 2 locks dropped; every fencing counter (accounts: 1) is now at least %d\n", &floor); err != nil {
		t.Fatalf("restore: stdout %q: %v", out.String(), err)
	}
	if after := time.Now().UnixMicro(); floor < before || floor > after {
		t.Errorf("the default floor %d is not the time of the restore (%d..%d µs)", floor, before, after)
	}
	// Opened with a clock at the epoch: tokens never fall below the clock,
	// so with the real one the first token would be above the floor
	// whether or not the restore raised the counter; at the epoch it is
	// the counter's alone.
	r, err := sqlitestore.Open(ctx, restored, sqlitestore.Options{Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.AccountByToken(ctx, lockcore.HashToken(token)); err != nil || got.ID != acct.ID {
		t.Errorf("the token after restore: %+v, %v", got, err)
	}
	if l, err := r.List(ctx, acct.ID); err != nil || len(l) != 0 {
		t.Errorf("locks after restore: %+v, %v; want none", l, err)
	}
	lost := highest
	if f := acquire(r, "a"); f != floor+1 || f <= lost {
		t.Errorf("first fencing token after restore: %d; want %d (the floor + 1), above %d, the highest the live database issued", f, floor+1, lost)
	}
}

// TestBackupAndRestoreRefusals checks the command lines the two commands
// refuse, each with a message that says what to do.
func TestBackupAndRestoreRefusals(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "live.db")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "create", "--db", db, "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := run(context.Background(), []string{"backup", "--db", db, copyPath}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	// What a database that was moved aside without its -wal leaves behind.
	if err := os.WriteFile(filepath.Join(dir, "stale.db-wal"), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A backup whose counter is above this clock in µs, as after an
	// earlier restore given a high floor, or on a machine whose clock is
	// behind.
	high := filepath.Join(dir, "high.db")
	body, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(high, body, 0o600); err != nil {
		t.Fatal(err)
	}
	hdb, err := sql.Open("sqlite", high)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hdb.Exec("INSERT INTO fences(account_id, fence) SELECT id, 3000000000000000 FROM accounts"); err != nil {
		t.Fatal(err)
	}
	if err := hdb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"backup without a file", []string{"backup", "--db", db}, nil, "backup: want one argument, the new file to write the copy to (got 0"},
		{"backup with two files", []string{"backup", "--db", db, "x.db", "y.db"}, nil, "(got 2; the flags go before it)"},
		{"backup over a file", []string{"backup", "--db", db, copyPath}, nil, "copy.db exists; it is never overwritten"},
		{"backup of a missing database", []string{"backup", "--db", filepath.Join(dir, "none.db"), filepath.Join(dir, "n.db")}, nil, "no such file"},
		{"backup with REDIS_URL set", []string{"backup", filepath.Join(dir, "r.db")}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, "the store is Redis (REDIS_URL or --redis-url); give --db"},
		{"backup with an empty OCTOSTORE_DB", []string{"backup", filepath.Join(dir, "e.db")}, map[string]string{"OCTOSTORE_DB": ""}, "--db (env OCTOSTORE_DB) is empty"},
		{"restore without a file", []string{"restore", "--db", filepath.Join(dir, "r1.db")}, nil, "restore: want one argument, the backup file (got 0"},
		{"restore over the live database", []string{"restore", "--db", db, copyPath}, nil, "live.db exists; it is never overwritten"},
		{"restore next to a stale -wal", []string{"restore", "--db", filepath.Join(dir, "stale.db"), copyPath}, nil, "stale.db-wal exists; it is never overwritten"},
		{"restore with floor 0", []string{"restore", "--db", filepath.Join(dir, "r2.db"), "--fence-floor", "0", copyPath}, nil, "fencing floor must be from 1"},
		{"restore with a negative floor", []string{"restore", "--db", filepath.Join(dir, "r3.db"), "--fence-floor", "-5", copyPath}, nil, "(got -5)"},
		{"restore of a file with REDIS_URL set", []string{"restore", copyPath}, map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}, "with Redis, load the snapshot into Redis its own way first; restore then takes no file (got 1 arguments)"},
		{"restore with --db and --redis-url", []string{"restore", "--db", filepath.Join(dir, "r5.db"), "--redis-url", "redis://127.0.0.1:1", copyPath}, nil, "choose one store"},
		{"restore on a Redis that is not there", []string{"restore", "--redis-url", "redis://127.0.0.1:1", "--op-timeout", "200ms"}, nil, "open redis store"},
		{"restore with the clock below a counter", []string{"restore", "--db", filepath.Join(dir, "r6.db"), high}, nil,
			"the default fencing floor, this machine's clock ("},
		{"restore with the clock below a counter says what to give", []string{"restore", "--db", filepath.Join(dir, "r6.db"), high}, nil,
			"the clock is behind, or an earlier restore was given a higher --fence-floor; nothing was changed. Give --fence-floor 3000000000000000 or more"},
		{"restore with a floor below a counter", []string{"restore", "--db", filepath.Join(dir, "r7.db"), "--fence-floor", "77", high}, nil,
			"restore: --fence-floor 77 is below the fencing counter of account acct_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v: %v; want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	for _, n := range []string{"x.db", "y.db", "n.db", "r.db", "e.db", "r1.db", "r2.db", "r3.db", "r5.db", "r6.db", "r7.db", "stale.db"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s after a refused command: %v; want it absent", n, err)
		}
	}
	// With --db, REDIS_URL does not matter: the SQLite file is named.
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1")
	out.Reset()
	if err := run(context.Background(), []string{"restore", "--db", filepath.Join(dir, "r4.db"), "--fence-floor", "77", copyPath}, strings.NewReader(""), &out, &errOut); err != nil ||
		!strings.HasSuffix(out.String(), "is now at least 77\n") {
		t.Fatalf("restore with --db and REDIS_URL set: %q, %v", out.String(), err)
	}
}

// TestRestoreRedis runs restore on a real redis-server, as after loading
// an older snapshot: with REDIS_URL set it takes no file, drops the locks
// and raises the counters under the store's prefix.
func TestRestoreRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	t.Setenv("REDIS_URL", srv.URL())
	t.Setenv("OCTOSTORE_REDIS_PREFIX", "rs:")
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"token", "create", "--login", "ops"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	st, err := redisstore.Open(ctx, redisstore.Config{URL: srv.URL(), Prefix: "rs:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.AccountByToken(ctx, lockcore.HashToken(strings.TrimSpace(out.String())))
	if err != nil {
		t.Fatal(err)
	}
	acquire := func() int64 {
		t.Helper()
		r, err := st.Acquire(ctx, acct.ID, "x", lockcore.AcquireOptions{LeaseID: lockcore.NewLeaseID(), TTL: time.Minute, MaxHeld: 100})
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire: %+v, %v", r, err)
		}
		return r.Lease.FencingToken
	}
	acquire()
	// A floor an hour ahead of the clock, which tokens never fall below, so
	// that the tokens after the restore show it.
	floor := time.Now().Add(time.Hour).UnixMicro()
	floorArg := strconv.FormatInt(floor, 10)

	// A server using the Redis (its connections named as serve's and the
	// Lambda's are): restore refuses, naming it, and changes nothing;
	// --force restores all the same.
	server, err := redisstore.Open(ctx, redisstore.Config{URL: srv.URL(), Prefix: "rs:", Server: true})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	err = run(ctx, []string{"restore", "--fence-floor", floorArg}, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "connection(s) of OctoStore servers are open to this Redis (from 127.0.0.1:") || !strings.Contains(err.Error(), "or give --force") {
		t.Fatalf("restore while a server is connected: %v; want it refused", err)
	}
	if s, err := st.Get(ctx, acct.ID, "x"); err != nil || !s.Held {
		t.Fatalf("the lock after a refused restore: %+v, %v; want still held", s, err)
	}
	out.Reset()
	if err := run(ctx, []string{"restore", "--force", "--fence-floor", floorArg}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("restore --force: %v", err)
	}
	server.Close()
	if want := "restored Redis (prefix rs:): 1 locks dropped; every fencing counter (accounts: 1) is now at least " + floorArg + "\n"; out.String() != want {
		t.Fatalf("restore: stdout %q; want %q", out.String(), want)
	}
	if f := acquire(); f != floor+1 {
		t.Errorf("first token after restore: %d; want %d", f, floor+1)
	}
	// With the server gone, no --force is needed: a floor below that
	// counter is refused for that alone, and changes nothing.
	err = run(ctx, []string{"restore", "--fence-floor", floorArg}, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("restore: --fence-floor %d is below the fencing counter of account %s (%d), so it is not above every token issued; nothing was changed", floor, acct.ID, floor+1)) {
		t.Errorf("restore with a floor below the counter: %v", err)
	}
	if s, err := st.Get(ctx, acct.ID, "x"); err != nil || !s.Held || s.Lease.FencingToken != floor+1 {
		t.Errorf("the lock after a refused restore: %+v, %v; want held with token %d", s, err, floor+1)
	}
}

// TestBadEnvironmentStopsServe: every limit and store variable set in the
// environment is checked, also when it is empty and also when a flag
// overrides it (README "Configuration"): serve stops with a message that
// names it, and creates no database and no first account. (The context is
// cancelled already, so a serve that gets past the checks stops at once
// instead of running.)
func TestBadEnvironmentStopsServe(t *testing.T) {
	for _, tc := range []struct {
		key, val string
		flags    []string
	}{
		{"OCTOSTORE_MAX_TTL_SECONDS", "1h", nil},
		{"OCTOSTORE_DEFAULT_TTL_SECONDS", "x", nil},
		{"OCTOSTORE_MAX_METADATA_BYTES", "1k", nil},
		{"OCTOSTORE_MAX_LOCKS", "", nil},
		{"OCTOSTORE_MAX_TTL_SECONDS", "1o0", []string{"--max-ttl", "100"}},
		{"OCTOSTORE_OP_TIMEOUT", "", nil},
		{"OCTOSTORE_OP_TIMEOUT", "3", []string{"--op-timeout", "3s"}},
		{"OCTOSTORE_OP_TIMEOUT", "-1s", []string{"--op-timeout", "3s"}},
		{"OCTOSTORE_MAX_LOCKS", "0", []string{"--max-locks", "5"}},
		{"OCTOSTORE_MAX_TTL_SECONDS", "36028797018967568", []string{"--max-ttl", "3600"}},
		{"OCTOSTORE_DEFAULT_TTL_SECONDS", "9223372037", []string{"--default-ttl", "60"}},
		{"OCTOSTORE_LOG_FORMAT", "xml", []string{"--log-format", "text"}},
		{"REDIS_CLUSTER", "yes", nil},
		{"OCTOSTORE_REDIS_WAIT_REPLICAS", "-1", nil},
		{"OCTOSTORE_REDIS_WAIT_REPLICAS", "one", []string{"--redis-wait-replicas", "0"}},
		{"OCTOSTORE_ADDR", "8080", nil},
		{"OCTOSTORE_REDIS_PREFIX", "os{x}:", nil},
	} {
		t.Run(tc.key+"="+tc.val, func(t *testing.T) {
			t.Setenv("GITHUB_CLIENT_ID", "")
			t.Setenv("GITHUB_CLIENT_SECRET", "")
			t.Setenv(tc.key, tc.val)
			db := filepath.Join(t.TempDir(), "env.db")
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var out, errOut bytes.Buffer
			args := append([]string{"serve", "--db", db, "--addr", "127.0.0.1:0"}, tc.flags...)
			err := run(ctx, args, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "environment "+tc.key+"=") {
				t.Fatalf("serve with %s=%q: err = %v, want one naming %s", tc.key, tc.val, err, tc.key)
			}
			if strings.Contains(out.String(), "os_") {
				t.Errorf("a refused start printed a token:\n%s", out.String())
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused start left %s behind (stat: %v)", db, err)
			}
		})
	}
}

// TestTokenCreateOnACluster: --redis-cluster reaches the store, so a token
// made on a Redis Cluster (whose URL names every master) is stored where a
// cluster client of the same prefix finds it.
func TestTokenCreateOnACluster(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t)
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"token", "create", "--login", "ops", "--redis-url", c.URL(), "--redis-cluster", "--redis-prefix", "cl:"}, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("token create on a cluster: %v (stderr %s)", err, errOut.String())
	}
	st, err := redisstore.Open(ctx, redisstore.Config{URL: c.URL(), Cluster: true, Prefix: "cl:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if acct, err := st.AccountByToken(ctx, lockcore.HashToken(strings.TrimSpace(out.String()))); err != nil || acct.Login != "ops" {
		t.Fatalf("the token made on the cluster: %+v, %v", acct, err)
	}
}

// TestBadLoginTouchesNoStore: token create refuses a bad --login before it
// opens the store: no SQLite file is made, and no Redis is dialled (the
// error is about the login, not about a Redis that does not answer).
func TestBadLoginTouchesNoStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "login.db")
	for _, store := range [][]string{{"--db", db}, {"--redis-url", "redis://127.0.0.1:1", "--op-timeout", "200ms"}} {
		var out, errOut bytes.Buffer
		args := append([]string{"token", "create", "--login", "a b"}, store...)
		err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "token create: login must be") {
			t.Errorf("%q: err = %v, want the login refused", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("%q printed %q", args, out.String())
		}
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused token create left %s behind (stat: %v)", db, err)
	}
}

// TestUsageHidesRedisPassword: the flag defaults printed by -h and by a bad
// flag (to stderr, i.e. the service log) never show REDIS_URL's password.
func TestUsageHidesRedisPassword(t *testing.T) {
	const pw = "Sup3rS3cretPw"
	for _, u := range []string{"redis://:" + pw + "@127.0.0.1:1/0", "redis://u:" + pw + "@bad%zzhost:1",
		// A '#' or '?' after digits in the password, not percent-encoded:
		// the rest is the URL's fragment or query, which url.Redacted shows.
		"redis://default:2024#" + pw + "@127.0.0.1:1", "redis://default:2024?" + pw + "@127.0.0.1:1"} {
		t.Setenv("REDIS_URL", u)
		for _, args := range [][]string{
			{"serve", "-h"}, {"serve", "--bogus"}, {"token", "create", "--bogus"},
			{"token", "revoke", "--bogus"}, {"backup", "--bogus"}, {"restore", "-h"},
		} {
			var out, errOut bytes.Buffer
			_ = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
			if strings.Contains(out.String()+errOut.String(), pw) {
				t.Errorf("%q with REDIS_URL %q prints the password:\n%s%s", args, u, out.String(), errOut.String())
			}
		}
	}
}

// shortWriter takes what is written but reports a failure, as a write to
// a full disk, or a closed pipe, may after part of the text went out.
type shortWriter struct{ bytes.Buffer }

func (w *shortWriter) Write(p []byte) (int, error) {
	w.Buffer.Write(p[:len(p)/2])
	return len(p) / 2, errors.New("no space left on device")
}

// TestFirstStartTokenNotPrinted: when the first start cannot print the
// admin token (stdout on a full disk, a closed pipe), nobody has it and
// later starts print none, since the account exists. The start must fail
// saying how to get a token, and the token that nobody saw must not work.
func TestFirstStartTokenNotPrinted(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "first.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var w shortWriter
	err = bootstrapAdmin(ctx, st, &w, "http://127.0.0.1:1", 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "octostore token create --login admin") {
		t.Fatalf("bootstrapAdmin with a failing stdout: %v; want an error that says to run `octostore token create --login admin`", err)
	}
	token := tokenRE.FindString(w.String())
	if token == "" {
		t.Fatalf("no token in what was written: %q", w.String())
	}
	if a, err := st.AccountByToken(ctx, lockcore.HashToken(token)); !errors.Is(err, lockcore.ErrNotFound) {
		t.Errorf("the token whose printing failed: %+v, %v; want it revoked", a, err)
	}
}

// tokenlessStore is a store whose AddToken fails, as a first start's
// does when the store goes away between making the account and its token.
type tokenlessStore struct{ lockcore.Store }

func (tokenlessStore) AddToken(context.Context, string, lockcore.TokenHash) error {
	return fmt.Errorf("sqlitestore: add token: %w", lockcore.ErrUnavailable)
}

// lostAnswerStore is a store whose EnsureAccount makes the account but
// fails, as a Redis write whose answer is lost to a timeout does.
type lostAnswerStore struct{ lockcore.Store }

func (s lostAnswerStore) EnsureAccount(ctx context.Context, login string) (lockcore.Account, bool, error) {
	if _, _, err := s.Store.EnsureAccount(ctx, login); err != nil {
		return lockcore.Account{}, false, err
	}
	return lockcore.Account{}, false, fmt.Errorf("redisstore: account: %w: i/o timeout", lockcore.ErrUnavailable)
}

// TestFirstStartFailsAfterTheAccount: a first start whose store failed
// once the account was made (its token not made, or the account's own
// answer lost) leaves every later start printing no token, since the
// account exists. Its error must wrap the store's and say how to get a
// token, and it must print none.
func TestFirstStartFailsAfterTheAccount(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(lockcore.Store) lockcore.Store
	}{
		{"token not made", func(st lockcore.Store) lockcore.Store { return tokenlessStore{st} }},
		{"account's answer lost", func(st lockcore.Store) lockcore.Store { return lostAnswerStore{st} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "first.db"), sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var out bytes.Buffer
			err = bootstrapAdmin(ctx, tc.wrap(st), &out, "http://127.0.0.1:1", 30*time.Second)
			if err == nil || !strings.Contains(err.Error(), "octostore token create --login admin") || !errors.Is(err, lockcore.ErrUnavailable) {
				t.Fatalf("bootstrapAdmin: %v; want an error that wraps the store's and says to run `octostore token create --login admin`", err)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q with no token made", out.String())
			}
			if n, err := st.CountAccounts(ctx); err != nil || n != 1 {
				t.Fatalf("CountAccounts = %d, %v; want the account made (the case the message is for)", n, err)
			}
			if err := bootstrapAdmin(ctx, st, &out, "http://127.0.0.1:1", 30*time.Second); err != nil || out.Len() != 0 {
				t.Fatalf("the next start: %v, printed %q; want no error and no token (the account exists)", err, out.String())
			}
		})
	}
}

// TestUnopenableDatabaseSaysWhy: SQLite's "unable to open database file"
// names no cause; the command's error must say what is wrong with --db.
func TestUnopenableDatabaseSaysWhy(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, db, want string }{
		{"missing directory", filepath.Join(dir, "no such dir", "x.db"), "the directory " + filepath.Join(dir, "no such dir") + " does not exist"},
		{"a directory", dir, dir + " is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"token", "create", "--db", tc.db, "--login", "ops"}, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("token create --db %s: %v; want an error containing %q", tc.db, err, tc.want)
			}
		})
	}
}
