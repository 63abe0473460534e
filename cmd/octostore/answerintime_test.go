package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/httpserver"
)

// TestSlowStoreIsAnswered503WithALongOpTimeout: a lock write that the store
// is too slow to take is answered 503 store_unavailable after --op-timeout
// (README "Writing a client"), also when --op-timeout is longer than the
// HTTP server's WriteTimeout. Before, net/http closed the connection
// without a word (curl: "Empty reply from server") while the access log
// said 503. The WriteTimeout is shortened here to 500 ms, under the op
// timeout of 1 s, as --op-timeout 40s was under its 30 s.
func TestSlowStoreIsAnswered503WithALongOpTimeout(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	mux := http.NewServeMux()
	if w, h := answerInTime(3*time.Second, mux); w != httpserver.WriteTimeout || h != http.Handler(mux) {
		t.Fatalf("--op-timeout 3s: WriteTimeout %v and a wrapped handler %v, want httpserver's %v and the handler itself (no context per request on the hot path)", w, h != http.Handler(mux), httpserver.WriteTimeout)
	}
	defer func(d time.Duration) { baseWriteTimeout = d }(baseWriteTimeout)
	baseWriteTimeout = 500 * time.Millisecond

	db := filepath.Join(t.TempDir(), "slow.db")
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	sp := startServe(t, client, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "1s", "--db", db}
	})
	sp.mu.Lock()
	token := tokenRE.FindString(sp.stdout.String())
	sp.mu.Unlock()
	if token == "" {
		t.Fatal("no first-start token on stdout")
	}

	// Another process holds the database's write lock, so the acquire
	// waits for the whole op timeout.
	holdWriteLock(t, db)

	req, _ := http.NewRequest("POST", sp.base+"/locks/slow/acquire", strings.NewReader(`{"lease_id":"slow-1"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("acquire while the store is held up: %v; want a 503 answer", err)
	}
	defer resp.Body.Close()
	var body struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("acquire while the store is held up: status %d, body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Code != "store_unavailable" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("acquire while the store is held up: %d %q Retry-After %q, want 503 store_unavailable with Retry-After 1", resp.StatusCode, body.Code, resp.Header.Get("Retry-After"))
	}
}
