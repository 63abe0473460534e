//go:build !linux

package sqlitestore

import "os"

// fdatasync flushes f to the disk; off Linux it is a full fsync (on macOS
// os.File.Sync uses F_FULLFSYNC).
func fdatasync(f *os.File) error { return f.Sync() }
