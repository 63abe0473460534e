package sqlitestore

// syncDir does nothing on Windows. FlushFileBuffers refuses the read-only
// handle os.Open gives a directory; a handle opened for writing with
// backup semantics may flush on a local NTFS volume but fails on network
// shares, and NTFS journals the new name anyway, so a crash never leaves
// it half-made. A crash of the machine soon after a backup or restore may
// still lose the name.
func syncDir(string) error { return nil }
