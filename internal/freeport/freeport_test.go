package freeport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestPickBelowEphemeralRange: every port picked can be listened on and,
// when the machine's range leaves room below it (from 21000 up), lies in
// [20000, start of the range); otherwise it is a kernel-chosen one.
func TestPickBelowEphemeralRange(t *testing.T) {
	low, ok := ephemeralLow()
	if !ok {
		t.Fatal("cannot read", rangeFile)
	}
	room := low-lowest >= 1000
	for i := 0; i < 20; i++ {
		port, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if room && (port < lowest || port >= low) || !room && port < low {
			t.Fatalf("Pick = %d with the ephemeral range from %d", port, low)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("port %d from Pick: %v", port, err)
		}
		l.Close()
	}
}

// TestPickFallsBack: a range too low to leave room, or none readable,
// gives a kernel-chosen port, which is in the ephemeral range.
func TestPickFallsBack(t *testing.T) {
	low, ok := ephemeralLow()
	if !ok {
		t.Fatal("cannot read", rangeFile)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"low": "20500\t60999\n", "garbled": "x\n", "missing": ""} {
		t.Run(name, func(t *testing.T) {
			old := rangeFile
			t.Cleanup(func() { rangeFile = old })
			rangeFile = filepath.Join(dir, name)
			if name != "missing" {
				if err := os.WriteFile(rangeFile, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			port, err := Pick()
			if err != nil {
				t.Fatal(err)
			}
			if port < low {
				t.Fatalf("Pick = %d, want a kernel-chosen port (from %d up)", port, low)
			}
		})
	}
}

// TestAddr: the address form of Pick.
func TestAddr(t *testing.T) {
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q (%v)", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < lowest {
		t.Fatalf("Addr = %q, want a port from %d up", addr, lowest)
	}
}
