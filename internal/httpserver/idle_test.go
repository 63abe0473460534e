package httpserver

import (
	"net"
	"net/http"
	"testing"
	"time"
)

func TestReserveFiles(t *testing.T) {
	for _, c := range []struct {
		lim  uint64
		want int
	}{{1, 1}, {4, 3}, {128, 96}, {1024, 768}, {20000, 19744}, {1 << 40, 1<<30 - 256}} {
		if got := reserveFiles(c.lim); got != c.want {
			t.Errorf("reserveFiles(%d) = %d, want %d", c.lim, got, c.want)
		}
	}
}

// Past its budget, a new connection closes the longest-idle one; active
// connections are never closed.
func TestIdleReaperClosesLongestIdle(t *testing.T) {
	r := newIdleReaper(3)
	type pair struct{ srv, cli net.Conn }
	var cs []pair
	open := func() net.Conn {
		s, c := net.Pipe()
		cs = append(cs, pair{s, c})
		r.connState(s, http.StateNew)
		return s
	}
	closed := func(c net.Conn) bool {
		return c.SetDeadline(time.Time{}) != nil // net.Pipe: an error once closed
	}
	a, b, c := open(), open(), open()
	for _, x := range []net.Conn{a, b, c} {
		r.connState(x, http.StateActive)
	}
	r.connState(b, http.StateIdle)
	r.connState(a, http.StateIdle)
	open() // the 4th: b, idle longest, goes
	if !closed(b) || closed(a) || closed(c) {
		t.Fatalf("after a 4th connection: closed a=%v b=%v c=%v, want only b", closed(a), closed(b), closed(c))
	}
	r.connState(b, http.StateClosed)
	r.connState(a, http.StateActive) // a is busy again
	open()                           // the 4th again, and nothing idle
	if closed(a) || closed(c) {
		t.Fatalf("an active connection was closed: a=%v c=%v", closed(a), closed(c))
	}
	for _, p := range cs {
		p.srv.Close()
		p.cli.Close()
	}
}
