//go:build darwin || freebsd || netbsd

package httpserver

import "syscall"

// ctimeOf returns st's inode change time (these systems name the field
// Ctimespec).
func ctimeOf(st *syscall.Stat_t) syscall.Timespec { return st.Ctimespec }
