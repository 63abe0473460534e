//go:build darwin || freebsd || netbsd

package httpserver

import (
	"os"
	"syscall"
	"time"
)

// changeTime returns the time fi's inode last changed (its ctime), as on
// Linux (ctime_linux.go); the zero time when fi has no Stat_t.
func changeTime(fi os.FileInfo) time.Time {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}
	}
	return time.Unix(st.Ctimespec.Unix())
}
