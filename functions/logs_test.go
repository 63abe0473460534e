package functions_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// TestLogsNeverHoldTokens plays the whole session (which rotates a token
// and sends malformed and unknown ones) plus a panic and a store failure,
// and tokens sent by mistake in the path, as the method or as the request
// id, then checks that no token, token hash or Authorization value is in
// the log, that a token in a path shows as hidden, and that every access
// line has its fields.
func TestLogsNeverHoldTokens(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f := &faultyStore{}
			e := newEnv(t, b, wrapStore(f))
			secrets := []string{"Bearer", validToken}
			for _, tok := range e.tokens {
				secrets = append(secrets, tok, lockcore.HashToken(tok).String())
			}
			for _, s := range session {
				if s.advance != 0 {
					e.advance(s.advance)
					continue
				}
				w := e.do(t, s.q)
				if s.q.path == "/auth/token/rotate" && w.Code == 200 {
					tok, _ := decode(t, w)["token"].(string)
					secrets = append(secrets, tok, lockcore.HashToken(tok).String())
					e.tokens["alice-old"], e.tokens["alice"] = e.tokens["alice"], tok
				}
			}
			e.do(t, req{method: "GET", path: "/locks?token=" + e.tokens["alice"] + "&x=1"})
			// A token sent by mistake in the path or as the request id.
			tok := e.tokens["alice"]
			inPath := []req{withAuth(post("/locks/"+tok+"/acquire", ""), "alice"), get("/nope/" + tok), get("/docs/" + tok)}
			for _, q := range inPath {
				e.do(t, q)
			}
			q := withAuth(get("/locks"), "alice")
			q.header = map[string]string{"X-Request-Id": tok}
			e.do(t, q)
			e.do(t, req{method: tok, path: "/locks"}) // as the method
			f.failLocks.Store(true)
			e.do(t, get("/locks"))
			f.failLocks.Store(false)
			f.panics.Store(true)
			q = get("/locks")
			q.want500 = true
			e.do(t, q)

			logs := e.logs.String()
			for _, s := range secrets {
				if strings.Contains(logs, s) {
					t.Errorf("log contains secret %q", s)
				}
			}
			var access, hidden int
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if m["msg"] != "request" {
					continue
				}
				access++
				for _, k := range []string{"request_id", "method", "path", "status", "bytes", "duration"} {
					if _, ok := m[k]; !ok {
						t.Errorf("access line without %s: %s", k, line)
					}
				}
				if p, _ := m["path"].(string); strings.Contains(p, "/os_[hidden]") {
					hidden++
				}
				if p, _ := m["path"].(string); strings.Contains(p, "?") || strings.Contains(p, "x=1") {
					t.Errorf("access line path %q has the query", p)
				}
				if status, _ := m["status"].(float64); status < 400 && m["account_id"] != e.ids["alice"] && m["account_id"] != e.ids["bob"] && m["path"] != "/health" {
					t.Errorf("successful access line without the account id: %s", line)
				}
			}
			if hidden != len(inPath) {
				t.Errorf("%d access lines show a hidden token in the path, want %d", hidden, len(inPath))
			}
			if want := len(session) + 2 + len(inPath) + 1; access < want {
				t.Errorf("%d access lines, want at least %d", access, want)
			}
		})
	}
}

// TestAccessLogCutsHugePaths: an unauthenticated client cannot make one
// request write tens of KiB to the log with a huge path or method.
func TestAccessLogCutsHugePaths(t *testing.T) {
	e := newEnv(t, backends[0])
	e.do(t, get("/x/"+strings.Repeat("A", 20000)))
	e.do(t, req{method: strings.Repeat("M", 20000), path: "/health"})
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if len(line) > 2048 {
			t.Errorf("a log line of %d bytes: %.120s...", len(line), line)
		}
	}
}

// TestAccessLogStatusOfAnEmptyAnswer: a handler that returns without
// writing (the docs files answer a HEAD so) gets net/http's implicit 200,
// and its log line must say 200, not the 500 of a handler that panicked.
func TestAccessLogStatusOfAnEmptyAnswer(t *testing.T) {
	e := newEnv(t, backends[0])
	path := "/docs/swagger-ui.css"
	w := httptest.NewRecorder()
	e.bare.ServeHTTP(w, httptest.NewRequest("HEAD", path, nil))
	if w.Code != 200 {
		t.Fatalf("HEAD %s: %d, want 200", path, w.Code)
	}
	var found bool
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"path":"`+path+`"`) {
			found = true
			if !strings.Contains(line, `"status":200`) {
				t.Errorf("HEAD %s answered 200, logged as: %s", path, line)
			}
		}
	}
	if !found {
		t.Fatalf("no access log line for HEAD %s:\n%s", path, e.logs.String())
	}
}

// TestOutageLogsItsCauseOnce: while the store fails every call, the
// store's error is logged once (and then at most once per 10 s), for lock
// requests and for health checks each, not once per answer; every answer
// still has its access line with code=store_unavailable.
func TestOutageLogsItsCauseOnce(t *testing.T) {
	const n = 50
	f := &faultyStore{}
	e := newEnv(t, backends[0], wrapStore(f))
	start := time.Now()
	f.failLocks.Store(true)
	f.failPing.Store(true)
	for i := range n {
		if w := e.do(t, withAuth(post("/locks/job/acquire", ""), "alice")); w.Code != 503 {
			t.Fatalf("acquire %d: %d %s", i, w.Code, w.Body.String())
		}
		if w := e.do(t, withAuth(get("/health"), "-")); w.Code != 503 {
			t.Fatalf("health %d: %d %s", i, w.Code, w.Body.String())
		}
	}
	// One line per 10 s at most, however slow the machine.
	most := 1 + int(time.Since(start)/(10*time.Second))
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := m["msg"].(string)
		if msg == "request" && m["code"] != "store_unavailable" {
			continue
		}
		counts[msg]++
		if msg != "request" && !strings.Contains(line, "injected failure") {
			t.Errorf("a %q line without the store's error: %s", msg, line)
		}
	}
	if got := counts["request"]; got != 2*n {
		t.Errorf("%d access lines of 503 answers, want %d", got, 2*n)
	}
	for _, msg := range []string{"store unavailable", "health check: store ping failed"} {
		if got := counts[msg]; got < 1 || got > most {
			t.Errorf("%d %q lines for %d failures, want 1 to %d", got, msg, n, most)
		}
	}
}
