//go:build linux || darwin || freebsd || netbsd

package httpserver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/tlstest"
)

// A pair rewritten in place with the same sizes and the old modification
// times (what cp -p, rsync -t --inplace and touch -r leave) is read
// again: its change time differs.
func TestTLSReloadsRewriteKeepingModTime(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	// pad gives each file a fixed size, so that the rewrite keeps it: PEM
	// readers skip what follows the last block.
	pad := func(serial int64) (cert, key []byte) {
		t.Helper()
		c, k := filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
		ca.WriteServerPair(t, c, k, serial)
		var out [2][]byte
		for i, f := range []string{c, k} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > 2048 {
				t.Fatalf("%s: %d bytes, more than the padded size", f, len(b))
			}
			out[i] = append(b, bytes.Repeat([]byte("\n"), 2048-len(b))...)
		}
		return out[0], out[1]
	}
	c2, k2 := pad(2)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for f, b := range map[string][]byte{certFile: c2, keyFile: k2} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	addr, log := tlsServer(t, certFile, keyFile)
	if _, serial := fetch(t, ca, addr); serial != 2 {
		t.Fatalf("serial %d, want 2", serial)
	}
	before, err := os.Stat(certFile)
	if err != nil {
		t.Fatal(err)
	}
	c3, k3 := pad(3)
	for f, b := range map[string][]byte{certFile: c3, keyFile: k3} {
		if err := os.WriteFile(f, b, 0o600); err != nil { // in place: same inode
			t.Fatal(err)
		}
	}
	// Put the old modification times back until the change time has moved
	// on: it has the kernel's clock tick as its granularity.
	for deadline := time.Now().Add(5 * time.Second); ; {
		for _, f := range []string{certFile, keyFile} {
			if err := os.Chtimes(f, old, old); err != nil {
				t.Fatal(err)
			}
		}
		after, err := os.Stat(certFile)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(before, after) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
			t.Fatalf("the rewrite changed more than the contents: %v %d %v, then %v %d %v",
				before.Sys(), before.Size(), before.ModTime(), after.Sys(), after.Size(), after.ModTime())
		}
		if !changeTime(after).Equal(changeTime(before)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change time did not move in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, serial := fetch(t, ca, addr); serial != 3 {
		t.Fatalf("after a rewrite keeping size and modification time: serial %d, want 3; log:\n%s", serial, log)
	}
}
