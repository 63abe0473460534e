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
