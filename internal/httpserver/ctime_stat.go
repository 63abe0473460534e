//go:build linux || darwin || freebsd || netbsd

package httpserver

import (
	"os"
	"syscall"
	"time"
)

// changeTime returns the time fi's inode last changed (its ctime), which
// a rewrite of the file changes even when it keeps the old modification
// time (cp -p, rsync -t); the zero time when fi has no Stat_t.
func changeTime(fi os.FileInfo) time.Time {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}
	}
	ct := ctimeOf(st)
	return time.Unix(ct.Unix())
}
