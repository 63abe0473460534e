package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/httpserver"
	"github.com/octostore/octostore/internal/redistest"
	"github.com/octostore/octostore/scripts"
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

// stallingProxy forwards TCP connections to a Redis at target, and from the
// first command that holds trigger on stops forwarding anything to Redis
// (on every connection) until release is called: a Redis that stalls
// just as a given command is sent.
type stallingProxy struct {
	ln       net.Listener
	trigger  []byte
	stalled  chan struct{} // closed at the trigger
	released chan struct{} // closed by release
	once     sync.Once
	relOnce  sync.Once
}

func startStallingProxy(t *testing.T, target string, trigger []byte) *stallingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln, trigger: trigger, stalled: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(func() { p.release(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *stallingProxy) release() { p.relOnce.Do(func() { close(p.released) }) }

func (p *stallingProxy) serve(c net.Conn, target string) {
	defer c.Close()
	r, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer r.Close()
	go func() { io.Copy(c, r); c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if bytes.Contains(buf[:n], p.trigger) {
				p.once.Do(func() { close(p.stalled) })
			}
			select {
			case <-p.stalled:
				<-p.released
			default:
			}
			if _, err := r.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestRotationOnAStalledRedisIsAnswered: a Redis that stalls as the token
// rotation's script is sent makes RotateToken spend --op-timeout on the
// script, then up to --op-timeout each on steps of its own context (the
// check whether the script ran, then taking the new token back), which do
// not end with the request's context. The answer (503, or 200 with the new
// token when the check finds that the rotation happened) must still be
// written before the WriteTimeout; before, with --op-timeout 3s and a base
// WriteTimeout shortened to 500 ms (as a --op-timeout of 12 s under the
// real 30 s), the WriteTimeout was 8 s and the 503 came after about 9 s:
// the client got an empty reply.
func TestRotationOnAStalledRedisIsAnswered(t *testing.T) {
	t.Setenv("GITHUB_CLIENT_ID", "")
	t.Setenv("GITHUB_CLIENT_SECRET", "")
	defer func(d time.Duration) { baseWriteTimeout = d }(baseWriteTimeout)
	baseWriteTimeout = 500 * time.Millisecond

	srv := redistest.Start(t)
	sha := sha1.Sum([]byte(scripts.Rotate))
	proxy := startStallingProxy(t, srv.Addr(), []byte(hex.EncodeToString(sha[:])))
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	sp := startServe(t, client, func() []string {
		return []string{"--log-format", "json", "--op-timeout", "3s", "--redis-url", "redis://" + proxy.ln.Addr().String()}
	})
	sp.mu.Lock()
	token := tokenRE.FindString(sp.stdout.String())
	sp.mu.Unlock()
	if token == "" {
		t.Fatal("no first-start token on stdout")
	}
	defer func() {
		proxy.release()
		sp.stop()
		<-sp.done
		sp.done <- nil // for the cleanup
	}()

	req, _ := http.NewRequest("POST", sp.base+"/auth/token/rotate", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	select {
	case <-proxy.stalled:
	default:
		t.Fatalf("the rotation's script never reached the proxy (answer: %v, %v)", resp, err)
	}
	if err != nil {
		t.Fatalf("rotation while Redis stalls: %v; want an answer (503, or 200 if it is known to have happened)", err)
	}
	defer resp.Body.Close()
	var body struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("rotation while Redis stalls: status %d, body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Code != "store_unavailable" {
		t.Fatalf("rotation while Redis stalls: %d %q, want 503 store_unavailable", resp.StatusCode, body.Code)
	}
}
