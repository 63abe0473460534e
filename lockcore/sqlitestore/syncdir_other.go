//go:build !windows

package sqlitestore

import "os"

// syncDir fsyncs the directory dir, so that a name just made in it
// survives a crash of the machine.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
