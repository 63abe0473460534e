package httpserver

import (
	"container/list"
	"net"
	"net/http"
	"sync"
)

// idleReaper closes idle keep-alive connections, oldest first, when the
// server holds so many connections that the process would soon run out of
// file descriptors. Without it a client (no token needed) that opens idle
// keep-alive connections up to the limit on open files, and sends one
// request on each within every IdleTimeout, keeps every other client from
// connecting: Accept fails with EMFILE until it lets go. An idle
// connection is one a client could reopen at any time, so it is the one to
// give up; connections with a request in progress are bounded by the
// timeouts and never closed here.
type idleReaper struct {
	max int // connections allowed before idle ones are closed

	mu    sync.Mutex
	open  int
	idle  *list.List // of net.Conn, the longest idle first
	where map[net.Conn]*list.Element
}

// reserveFiles returns how many connections a server may hold for the
// soft limit on open files lim: lim less a reserve for the store's files
// and connections, the listener and the log (a quarter of lim, at most
// 256).
func reserveFiles(lim uint64) int {
	n := int(min(lim, 1<<30))
	return max(n-min(max(n/4, 1), 256), 1)
}

func newIdleReaper(max int) *idleReaper {
	return &idleReaper{max: max, idle: list.New(), where: make(map[net.Conn]*list.Element)}
}

// connState is the server's ConnState hook.
func (r *idleReaper) connState(c net.Conn, s http.ConnState) {
	var victim net.Conn
	r.mu.Lock()
	switch s {
	case http.StateNew:
		r.open++
		if r.open > r.max && r.idle.Len() > 0 {
			victim = r.idle.Remove(r.idle.Front()).(net.Conn)
			delete(r.where, victim)
		}
	case http.StateIdle:
		if _, ok := r.where[c]; !ok {
			r.where[c] = r.idle.PushBack(c)
		}
	case http.StateActive:
		r.unidle(c)
	case http.StateClosed, http.StateHijacked:
		r.unidle(c)
		r.open--
	}
	r.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
}

// unidle drops c from the idle list; r.mu is held.
func (r *idleReaper) unidle(c net.Conn) {
	if e, ok := r.where[c]; ok {
		r.idle.Remove(e)
		delete(r.where, c)
	}
}
