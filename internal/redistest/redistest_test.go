//go:build unix

package redistest

import (
	"strings"
	"testing"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t, "--appendonly", "yes")
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL() != "redis://"+s.Addr() {
		t.Fatalf("Addr/URL: got %q, %q", s.Addr(), s.URL())
	}
	if r, err := command(s.Addr(), "SET", "k", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET: %q, %v", r, err)
	}
	s.Kill()
	if _, err := command(s.Addr(), "PING"); err == nil {
		t.Fatalf("PING after Kill: want an error, got none")
	}
	s.Restart()
	// appendonly yes and the same directory: the write survived the kill.
	if r, err := command(s.Addr(), "GET", "k"); err != nil || r != "v" {
		t.Errorf("GET after Restart: want %q, got %q, %v", "v", r, err)
	}
	s.Stop()
	if _, err := command(s.Addr(), "PING"); err == nil {
		t.Fatalf("PING after Stop: want an error, got none")
	}
	s.Stop() // stopping twice is harmless
}

func TestClusterURL(t *testing.T) {
	c := &Cluster{nodes: []*Server{{port: 7001}, {port: 7002}, {port: 7003}}}
	want := "redis://127.0.0.1:7001?addr=127.0.0.1:7002&addr=127.0.0.1:7003"
	if got := c.URL(); got != want {
		t.Errorf("URL: want %q, got %q", want, got)
	}
}

// TestStartIgnoresAnotherServerOnThePort: when the chosen port has been
// taken by another redis-server in the meantime, that server's PONG must not
// pass for ours (which cannot bind and exits): start fails, so that Start
// tries another port, and the other server is left alone.
func TestStartIgnoresAnotherServerOnThePort(t *testing.T) {
	other := Start(t)
	s := &Server{t: t, bin: Require(t), dir: t.TempDir(), port: other.port}
	if err := s.start(); err == nil {
		s.Stop()
		t.Fatal("start on a port another redis-server holds: want an error, got nil (its PONG was taken for ours)")
	} else if !strings.Contains(err.Error(), "exited during start") {
		t.Errorf("start on a taken port: want the process to have exited, got %v", err)
	}
	if err := ours(other.Addr(), other.cmd.Process.Pid); err != nil {
		t.Errorf("the other server after the failed start: %v", err)
	}
	if err := ours(other.Addr(), other.cmd.Process.Pid+1); err == nil {
		t.Error("ours with a wrong process id: want an error, got nil")
	}
}
