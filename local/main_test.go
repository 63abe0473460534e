package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/octostore/octostore/internal/syncbuf"
)

// TestLocalServes starts the local server, takes the printed token and uses
// the printed curl line's request: acquire, then a second acquire is held.
func TestLocalServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncbuf.Buffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--addr", "127.0.0.1:0"}, &stdout, &stderr, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run ended early: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("local server did not start")
	}
	out := stdout.String()
	token := regexp.MustCompile(`os_[A-Za-z0-9_-]{43}`).FindString(out)
	if token == "" || !strings.Contains(out, "curl -X POST http://"+addr+"/locks/my-lock/acquire") {
		t.Fatalf("banner lacks a token or curl line:\n%s", out)
	}
	acquire := func() (int, map[string]any) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/locks/my-lock/acquire", strings.NewReader(`{"ttl_seconds":30}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("body %q: %v", raw, err)
		}
		return resp.StatusCode, m
	}
	if code, body := acquire(); code != 200 || body["status"] != "acquired" {
		t.Fatalf("first acquire: %d %v", code, body)
	}
	if code, body := acquire(); code != 409 || body["status"] != "held" {
		t.Fatalf("second acquire: %d %v", code, body)
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the token appears in the log")
	}
}

// TestLocalRedisNeedsPassword: the miniredis port is on loopback, where any
// local user can reach it; without the password it refuses every command.
func TestLocalRedisNeedsPassword(t *testing.T) {
	mr, opts, err := startRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	ctx := context.Background()
	anon := redis.NewClient(&redis.Options{Addr: opts.Addr})
	defer anon.Close()
	if err := anon.Set(ctx, "os:token:x", "acct", 0).Err(); err == nil {
		t.Fatal("a client without the password wrote to the local store")
	}
	ok := redis.NewClient(opts)
	defer ok.Close()
	if err := ok.Ping(ctx).Err(); err != nil {
		t.Fatalf("the server's own client: %v", err)
	}
}
