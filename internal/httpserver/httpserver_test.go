package httpserver

import (
	"bufio"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A request whose headers exceed MaxHeaderBytes (and net/http's 4 KiB of
// slack) is refused with 431 before the handler runs; a normal one reaches
// the handler. (With net/http's
// default of 1 MB the large one would reach it too.)
func TestNewBoundsHeaders(t *testing.T) {
	var calls atomic.Int32
	srv := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	status := func(header string) int {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nConnection: close\r\n\r\n", header)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := status(strings.Repeat("a", 2*MaxHeaderBytes)); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of %d bytes: %d, want 431", 2*MaxHeaderBytes, got)
	}
	if got := status("a"); got != http.StatusOK {
		t.Errorf("small headers: %d, want 200", got)
	}
	// net/http reads up to 4 KiB past MaxHeaderBytes (the README says so).
	if got := status(strings.Repeat("a", MaxHeaderBytes+1024)); got != http.StatusOK {
		t.Errorf("headers of %d bytes: %d, want 200 (inside net/http's 4 KiB slack)", MaxHeaderBytes+1024, got)
	}
	if got := status(strings.Repeat("a", MaxHeaderBytes+4096)); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of %d bytes: %d, want 431", MaxHeaderBytes+4096, got)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
	if srv.ReadHeaderTimeout != ReadHeaderTimeout || srv.WriteTimeout != WriteTimeout || srv.IdleTimeout != IdleTimeout || srv.ReadTimeout != ReadTimeout {
		t.Errorf("timeouts %v %v %v %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

// "OPTIONS *" reaches the handler, which answers it like any other request
// (net/http's own answer would be a bare 200).
func TestOptionsStarReachesTheHandler(t *testing.T) {
	srv := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Method+" "+r.RequestURI)
		w.WriteHeader(http.StatusTeapot)
	}), nil)
	c := serveAndDial(t, srv)
	fmt.Fprint(c, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTeapot || res.Header.Get("X-Seen") != "OPTIONS *" {
		t.Fatalf("OPTIONS *: %s, X-Seen %q; want the handler's 418", res.Status, res.Header.Get("X-Seen"))
	}
}

// lockedBuilder is a strings.Builder safe for concurrent use.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// net/http's own errors (here: a handler's panic) go to the errorLog New
// was given, so `octostore serve` writes them in its log's format.
func TestNewLogsToErrorLog(t *testing.T) {
	var logged lockedBuilder
	srv := New(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom in handler") }), log.New(&logged, "", 0))
	c := serveAndDial(t, srv)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	// net/http logs the panic, then closes the connection: read to EOF.
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Fatal("a panicking handler answered")
	}
	if got := logged.String(); !strings.Contains(got, "panic serving") || !strings.Contains(got, "boom in handler") {
		t.Fatalf("errorLog got %q, want net/http's panic line", got)
	}
}

// serveAndDial serves srv on a loopback port until the test ends and
// returns a connection to it that gives up after 10 s.
func serveAndDial(t *testing.T, srv *http.Server) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}
