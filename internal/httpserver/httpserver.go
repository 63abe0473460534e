// Package httpserver builds the net/http server that runs OctoStore's
// handlers outside Lambda (`octostore serve`, `go run ./local`) and the
// benchmark's do-nothing reference server (bench/floor), so that all three
// apply the same limits: a slow or abusive client cannot hold a connection
// or a goroutine for long, and request headers are bounded.
package httpserver

import (
	"log"
	"net/http"
	"time"
)

// The limits New sets.
const (
	// ReadHeaderTimeout bounds the wait for a request's headers; a client
	// that trickles them is cut off after it.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout = 15 * time.Second
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the answer.
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes a keep-alive connection idle for this long.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes bounds the request line and headers; net/http reads
	// 4 KiB past it before it answers 431.
	MaxHeaderBytes = 32 << 10
)

// New returns a server for h with the limits above. errorLog receives
// net/http's own errors (nil: the standard logger). The caller starts it
// (Serve) and stops it (Shutdown). Every request that parses reaches h,
// "OPTIONS *" included (net/http would otherwise answer it itself, without
// the headers h gives every answer). Once the server holds nearly as many
// connections as the process may open files (less a reserve for the
// store), each new connection closes the longest-idle keep-alive
// connection, so that idle connections cannot lock new clients out.
func New(h http.Handler, errorLog *log.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          errorLog,

		DisableGeneralOptionsHandler: true,
	}
	if n := connBudget(); n > 0 {
		srv.ConnState = newIdleReaper(n).connState
	}
	return srv
}
