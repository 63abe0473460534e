package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{name: "bad env int", args: []string{"token", "create", "--db", db, "--login", "x"}, env: map[string]string{"OCTOSTORE_MAX_LOCKS": "1o0"}, wantErr: "OCTOSTORE_MAX_LOCKS"},
		{name: "cluster without url", args: []string{"token", "create", "--db", db, "--login", "x", "--redis-cluster"}, wantErr: "--redis-cluster needs --redis-url"},
		{name: "serve bad limits", args: []string{"serve", "--db", db, "--max-locks", "0"}, wantErr: "max held locks"},
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

// TestRefusedStartLeavesNothing: a serve that is refused before it runs (a
// GitHub configuration it cannot use, or a listen address that is taken)
// creates no database file and no first account, so it prints no token for
// a server that never answered, and the next start is still a first start.
func TestRefusedStartLeavesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name, addr, wantErr string
		env                 map[string]string
	}{
		{"GitHub client id without a secret", "127.0.0.1:0", "client secret is empty", map[string]string{"GITHUB_CLIENT_ID": "id"}},
		{"GitHub state secret too short", "127.0.0.1:0", "state secret", map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": "short", "OCTOSTORE_STATE_SECRET": "short"}},
		{"listen address taken", taken.Addr().String(), "address already in use", nil},
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
