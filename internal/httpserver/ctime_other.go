//go:build !linux && !darwin && !freebsd && !netbsd

package httpserver

import (
	"os"
	"time"
)

// changeTime returns the zero time: outside Linux, macOS, FreeBSD and
// NetBSD a file's version is its identity, size and modification time
// only.
func changeTime(os.FileInfo) time.Time { return time.Time{} }
