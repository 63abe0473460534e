package httpserver

import "syscall"

// ctimeOf returns st's inode change time (Linux names the field Ctim).
func ctimeOf(st *syscall.Stat_t) syscall.Timespec { return st.Ctim }
