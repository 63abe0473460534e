// Package stopsignal turns the signals that ask a server to stop into a
// context, the same way for every OctoStore server command (`octostore
// serve`, `go run ./local`).
//
// The first SIGINT, SIGTERM or SIGHUP ends the context: the server stops
// accepting and drains the requests in flight. A second one ends the
// process at once. SIGHUP is asked for only when it was not ignored at
// start, so a server started with nohup goes on ignoring it. SIGINT is
// always asked for, also when it was ignored at start (a server started
// in the background by a script), so Ctrl-C on that script or kill -INT
// still stops it.
package stopsignal

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Context returns a context that ends at the first stop signal, and a
// function that stops the signal handling and ends the context. Call
// stop once the server has stopped (more calls do nothing); signals that
// arrive after it are not caught by this package. Between the first
// signal and stop, a
// second signal ends the process: by the signal's default action, or
// (a signal that was ignored at start, which the reset puts back to
// ignored) by exiting with status 128 + the signal's number.
//
// Context sets up process-wide signal handling: call it once, from main.
func Context() (ctx context.Context, stop func()) {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	// Read before Notify, which stops a signal being ignored: a second
	// SIGINT that was ignored at start cannot end the process by its
	// default action, since Reset puts it back to ignored.
	intIgnored := signal.Ignored(os.Interrupt)
	ctx, cancel := context.WithCancel(context.Background())
	caught := make(chan os.Signal, 2)
	signal.Notify(caught, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case <-caught:
			cancel()
		case <-done:
			return
		}
		var sig os.Signal
		select {
		case sig = <-caught:
		case <-done:
			return
		}
		code := 128 + int(sig.(syscall.Signal))
		if sig == os.Interrupt && intIgnored {
			os.Exit(code)
		}
		signal.Reset(sig)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Signal(sig)
		}
		// The signal is delivered to another thread of the process,
		// whose handler ends it; exit only if that has not happened
		// by then.
		time.Sleep(2 * time.Second)
		os.Exit(code)
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(caught)
			close(done)
			cancel()
		})
	}
}
