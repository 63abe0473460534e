package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPosterRefusesWhatItCannotDrive(t *testing.T) {
	for _, u := range []string{"ftp://127.0.0.1:1", "http://127.0.0.1:1/prefix", "127.0.0.1:1", "http://", "https://:443", "::"} {
		if _, err := newPoster(u, 1, nil); err == nil {
			t.Errorf("newPoster(%q) accepted", u)
		}
	}
	if _, err := newPoster("http://127.0.0.1:1/", 1, nil); err != nil {
		t.Errorf("a trailing slash: %v", err)
	}
	for u, addr := range map[string]string{"http://h": "h:80", "https://h": "h:443", "https://h:8443": "h:8443", "https://[::1]": "[::1]:443"} {
		p, err := newPoster(u, 1, nil)
		if err != nil || p.hc.Addr != addr || p.hc.IsTLS != strings.HasPrefix(u, "https") {
			t.Errorf("newPoster(%q): %v, addr %q, TLS %v; want %q", u, err, p.hc.Addr, p.hc.IsTLS, addr)
		}
	}
}

// Over https the poster trusts the authorities it is given, and refuses a
// server whose certificate none of them signed.
func TestPosterOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.Method != "POST" || r.URL.Path != "/x" {
			w.WriteHeader(400)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	read := func(got *int) func(int, []byte) error {
		return func(status int, body []byte) error { *got = status; return nil }
	}
	p, err := newPoster(srv.URL, 1, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	var status int
	if err := p.post(context.Background(), "/x", "", []byte(`{}`), read(&status)); err != nil || status != 200 {
		t.Fatalf("with the server's authority: status %d, %v", status, err)
	}
	p, _ = newPoster(srv.URL, 1, nil)
	err = p.post(context.Background(), "/x", "", []byte(`{}`), read(&status))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("with the system's authorities only: %v, want a certificate error", err)
	}
}

func TestPosterSendsAndReads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.URL.Path != "/x/y" || r.Header.Get("Authorization") != "Bearer t" ||
			r.Header.Get("Content-Type") != "application/json" || string(b) != `{"a":1}` {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(409)
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	p, err := newPoster(srv.URL, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var status int
	var body string
	err = p.post(context.Background(), "/x/y", "Bearer t", []byte(`{"a":1}`), func(s int, b []byte) error {
		status, body = s, string(b)
		return nil
	})
	if err != nil || status != 409 || body != `{"ok":true}` {
		t.Fatalf("post: %v %d %q", err, status, body)
	}
}

func TestPosterEndsAtTheContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	p, _ := newPoster(srv.URL, 1, nil)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.post(ctx, "/", "", nil, func(int, []byte) error { return nil })
	// fasthttp's "timeout", or the context's own error if this goroutine was
	// descheduled past the deadline before post looked at ctx: either way
	// the request ended at the deadline.
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "timeout") && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("post to a server that never answers: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if err := p.post(cancelled, "/", "", nil, func(int, []byte) error { return nil }); err == nil {
		t.Fatal("post with a cancelled context succeeded")
	}
}
