//go:build !unix

package httpserver

// connBudget returns 0: outside Unix there is no per-process limit on open
// files for accepted connections to exhaust (Windows sockets are bounded
// by memory), so the server closes no idle connection early.
func connBudget() int { return 0 }
