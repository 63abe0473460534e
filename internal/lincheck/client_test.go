package lincheck

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/octostore/octostore/lockcore"
)

// TestClientClassifiesAnswers checks how Do turns HTTP answers into
// outcomes: exact outcomes for the contract's answers, Unknown for lost
// ones, a ContractError for forbidden ones.
func TestClientClassifiesAnswers(t *testing.T) {
	cases := []struct {
		name    string
		in      Input
		status  int
		body    string
		want    Outcome
		breach  bool
		checkFn func(t *testing.T, o Output)
	}{
		{"acquired", Input{Kind: OpAcquire, Lock: "x", LeaseID: "a", TTL: time.Hour}, 200,
			`{"status":"acquired","lease_id":"a","fencing_token":7,"expires_at":"2026-11-27T22:43:02.123Z","ttl_seconds":3600}`, Acquired, false,
			func(t *testing.T, o Output) {
				if o.Token != 7 || o.LeaseID != "a" || o.TTL != time.Hour || o.ExpiresAt.UnixMilli()%1000 != 123 {
					t.Errorf("parsed %+v", o)
				}
			}},
		{"held", Input{Kind: OpAcquire, Lock: "x", LeaseID: "b", TTL: time.Hour}, 409,
			`{"status":"held","holder_id":"h_1","expires_at":"2026-11-27T22:43:02.123Z","retry_after_ms":5}`, Held, false,
			func(t *testing.T, o Output) {
				if o.HolderID != "h_1" {
					t.Errorf("parsed %+v", o)
				}
			}},
		{"renewed", Input{Kind: OpRenew, Lock: "x", LeaseID: "a", TTL: time.Hour}, 200,
			`{"status":"renewed","lease_id":"a","fencing_token":7,"expires_at":"2026-11-27T22:43:02.123Z","ttl_seconds":3600}`, Renewed, false, nil},
		{"not current", Input{Kind: OpRelease, Lock: "x", LeaseID: "a"}, 409,
			`{"error":"no","code":"lease_not_current","request_id":"r"}`, NotCurrent, false, nil},
		{"released", Input{Kind: OpRelease, Lock: "x", LeaseID: "a"}, 200, `{"status":"released","name":"x"}`, Released, false, nil},
		{"get held", Input{Kind: OpGet, Lock: "x"}, 200,
			`{"name":"x","status":"held","lease_id":"a","holder_id":"` + lockcore.HolderID("a") + `","fencing_token":7,"expires_at":"2026-11-27T22:43:02.123Z"}`, Held, false, nil},
		{"get held with a wrong holder id", Input{Kind: OpGet, Lock: "x"}, 200,
			`{"name":"x","status":"held","lease_id":"a","holder_id":"h_0","fencing_token":7,"expires_at":"2026-11-27T22:43:02.123Z"}`, Unknown, true, nil},
		{"get free", Input{Kind: OpGet, Lock: "x"}, 200, `{"name":"x","status":"free"}`, Free, false, nil},
		{"store unavailable", Input{Kind: OpRenew, Lock: "x", LeaseID: "a", TTL: time.Hour}, 503,
			`{"error":"down","code":"store_unavailable","request_id":"r"}`, Unknown, false, nil},
		{"internal error", Input{Kind: OpAcquire, Lock: "x", LeaseID: "a", TTL: time.Hour}, 500,
			`{"error":"bug","code":"internal","request_id":"r"}`, Unknown, true, nil},
		{"wrong status word", Input{Kind: OpAcquire, Lock: "x", LeaseID: "a", TTL: time.Hour}, 200,
			`{"status":"acquire","lease_id":"a","fencing_token":7,"expires_at":"2026-11-27T22:43:02.123Z","ttl_seconds":3600}`, Unknown, true, nil},
		{"not JSON", Input{Kind: OpGet, Lock: "x"}, 200, `<html>`, Unknown, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotAuth, gotPath string
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotAuth, gotPath = r.Header.Get("Authorization"), r.Method+" "+r.URL.Path
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer ts.Close()
			cl := &Client{BaseURL: ts.URL, Token: "os_t"}
			out, err := cl.Do(context.Background(), c.in)
			var ce *ContractError
			if c.breach != errors.As(err, &ce) {
				t.Fatalf("error %v, want a contract breach: %v", err, c.breach)
			}
			if !c.breach && err != nil {
				t.Fatal(err)
			}
			if out.Outcome != c.want || out.Status != c.status {
				t.Fatalf("outcome %v status %d, want %v %d", out.Outcome, out.Status, c.want, c.status)
			}
			if gotAuth != "Bearer os_t" {
				t.Errorf("Authorization %q", gotAuth)
			}
			want := map[OpKind]string{OpAcquire: "POST /locks/x/acquire", OpRenew: "POST /locks/x/renew", OpRelease: "POST /locks/x/release", OpGet: "GET /locks/x"}[c.in.Kind]
			if gotPath != want {
				t.Errorf("request %q, want %q", gotPath, want)
			}
			if c.checkFn != nil {
				c.checkFn(t, out)
			}
		})
	}
}

func TestClientLostAndUnsent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cl := &Client{BaseURL: "http://" + addr, Token: "os_t"}
	if _, err := cl.Do(context.Background(), Input{Kind: OpGet, Lock: "x"}); !errors.Is(err, ErrNotSent) {
		t.Errorf("refused connection: error %v, want ErrNotSent", err)
	}

	// A server that takes the request and hangs up without answering.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer ts.Close()
	cl = &Client{BaseURL: ts.URL, Token: "os_t"}
	out, err := cl.Do(context.Background(), Input{Kind: OpAcquire, Lock: "x", LeaseID: "a", TTL: time.Hour})
	if err != nil || out.Outcome != Unknown || out.Err == "" {
		t.Errorf("lost answer: %+v, %v; want Unknown with a reason", out, err)
	}
}
