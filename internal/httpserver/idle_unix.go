//go:build unix

package httpserver

import "syscall"

// connBudget returns the connections a server of this process may hold
// (see reserveFiles), or 0 when the limit on open files cannot be read.
func connBudget() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 0
	}
	// Cur is a uint64 on most systems and an int64 on FreeBSD.
	return reserveFiles(uint64(lim.Cur))
}
