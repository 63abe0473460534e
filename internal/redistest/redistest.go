//go:build unix

// Package redistest starts real redis-server processes for tests: a single
// server (Start) or a three-master Redis Cluster (StartCluster, to which
// AddReplica adds replicas), each on free loopback ports in the test's
// temporary directory, stopped when the test ends.
//
// When redis-server is not installed, tests that need it are skipped with a
// message, except when the environment variable OCTOSTORE_REQUIRE_REDIS=1
// (as in CI), where they fail.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/freeport"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure when set to "1".
const RequireEnv = "OCTOSTORE_REQUIRE_REDIS"

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// Require returns the path of redis-server. If it is not installed, it
// skips t, or fails it when OCTOSTORE_REQUIRE_REDIS=1.
func Require(t testing.TB) string {
	t.Helper()
	return requireBinary(t, "redis-server")
}

func requireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("redistest: %s not found in PATH and %s=1: install Redis (e.g. apt-get install redis-server)", name, RequireEnv)
	}
	t.Skipf("redistest: %s not found in PATH; skipping (set %s=1 to make this a failure)", name, RequireEnv)
	return ""
}

// Server is one redis-server process started by Start. Its methods are
// safe for concurrent use.
type Server struct {
	t    testing.TB // nil for the Shared server, which cannot Restart
	bin  string
	dir  string
	port int
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start runs redis-server on a free 127.0.0.1 port with its working
// directory in t.TempDir(), waits until it answers PING and stops it when
// the test ends. The defaults (--save "" --appendonly no) come first and
// args are appended, so args override them (e.g. "--appendonly", "yes").
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Require(t), dir: t.TempDir(), args: args}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", err)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL returns redis://host:port for the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Dir returns the server's working directory (where an AOF lives).
func (s *Server) Dir() string { return s.dir }

// start launches the process and waits for PING; on failure the process is
// gone again.
func (s *Server) start() error {
	argv := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no"}
	argv = append(argv, s.args...)
	cmd := exec.Command(s.bin, argv...)
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := waitPing(s.Addr(), cmd.Process.Pid, done); err != nil {
		cmd.Process.Kill()
		<-done
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		return fmt.Errorf("%w; log:\n%s", err, log)
	}
	return nil
}

// Kill stops the server with SIGKILL (no shutdown, no final fsync) and
// waits for it to exit.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Pause freezes the server with SIGSTOP: it keeps its port and accepts
// connections but answers nothing, like a hung or partitioned Redis. Resume,
// Stop, Kill and Restart undo it.
func (s *Server) Pause() { s.send(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.send(syscall.SIGCONT) }

func (s *Server) send(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(sig)
	}
}

// Stop stops the server with SIGTERM and waits for it to exit (SIGKILL
// after a few seconds). Stopping a stopped server does nothing.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	cmd.Process.Signal(syscall.SIGCONT) // a paused server must run to handle SIGTERM
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server if it runs and starts it again on the same port
// and directory (so an append-only file is replayed), waiting for PING.
func (s *Server) Restart() {
	if s.t == nil {
		panic("redistest: the Shared server cannot be restarted")
	}
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
}

// freePort returns a loopback port that was free a moment ago, from below
// the kernel's ephemeral range (freeport), so that no outgoing connection
// takes it while Restart has the server stopped.
func freePort() (int, error) { return freeport.Pick() }

// waitPing waits until the redis-server with process id pid answers PING
// with PONG at addr, the process exits, or startTimeout passes.
//
// The port was free when freePort chose it, but another process (another
// test binary starting its own redis-server, or one restarting on a port it
// had before) may have taken it since; our server then fails to bind and
// exits, but until it has, the other one would answer PING. So the answer
// counts only once INFO shows our process id.
func waitPing(addr string, pid int, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited during start (last check: %v)", last)
		default:
		}
		reply, err := command(addr, "PING")
		if err == nil && reply == "+PONG" {
			if err = ours(addr, pid); err == nil {
				return nil
			}
			last = err
		} else {
			last = fmt.Errorf("PING: %q %v", reply, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server at %s did not answer PING within %v: %v", addr, startTimeout, last)
}

// ours checks that the redis-server answering at addr has process id pid.
func ours(addr string, pid int) error {
	info, err := command(addr, "INFO", "server")
	if err != nil {
		return fmt.Errorf("INFO server: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if v == strconv.Itoa(pid) {
				return nil
			}
			return fmt.Errorf("%s is answered by another redis-server (process %s, ours is %d)", addr, v, pid)
		}
	}
	return errors.New("INFO server: no process_id")
}

// command sends one inline command and returns the first line of the
// reply, or for a bulk string its content.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return line, err
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}

// Cluster is a three-master Redis Cluster started by StartCluster.
type Cluster struct {
	nodes    []*Server
	replicas []*Server // started by AddReplica
}

// StartCluster starts three redis-server processes in cluster mode (each in
// its own directory), joins them with redis-cli --cluster create (no
// replicas), waits until every node reports cluster_state:ok and stops them
// when the test ends. It skips or fails like Require when redis-server or
// redis-cli is missing.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	cli := requireBinary(t, "redis-cli")
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		// The bus port defaults to port+10000, which may be taken or out of
		// range; pick a free one too.
		bus, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port for the cluster bus: %v", err)
		}
		c.nodes = append(c.nodes, Start(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.nodes {
		for {
			info, err := command(n.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s not ok after 30s: %q %v", n.Addr(), info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns the host:port of each master.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// URL returns the cluster in go-redis' cluster URL form
// redis://h1:p1?addr=h2:p2&addr=h3:p3.
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Node returns the Server of the cluster node at addr (a master of Addrs
// or a replica started by AddReplica), or nil if there is none.
func (c *Cluster) Node(addr string) *Server {
	for _, nodes := range [][]*Server{c.nodes, c.replicas} {
		for _, n := range nodes {
			if n.Addr() == addr {
				return n
			}
		}
	}
	return nil
}

// AddReplica starts one more redis-server in cluster mode, joins it to the
// cluster as a replica of the master at addr (redis-cli --cluster add-node
// --cluster-slave) and waits until its replication link is up, so that it
// holds the master's keys. The master is first set to a diskless sync
// without delay, so that the first sync does not wait for more replicas.
// The replica is stopped when the test ends. It is not one of Addrs.
func (c *Cluster) AddReplica(t testing.TB, addr string) *Server {
	t.Helper()
	cli := requireBinary(t, "redis-cli")
	master := c.Node(addr)
	if master == nil {
		t.Fatalf("redistest: AddReplica: %s is no node of the cluster", addr)
	}
	id, err := command(addr, "CLUSTER", "MYID")
	if err != nil {
		t.Fatalf("redistest: CLUSTER MYID of %s: %v", addr, err)
	}
	if reply, err := command(addr, "CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil || reply != "+OK" {
		t.Fatalf("redistest: CONFIG SET repl-diskless-sync-delay on %s: %q %v", addr, reply, err)
	}
	bus, err := freePort()
	if err != nil {
		t.Fatalf("redistest: free port for the cluster bus: %v", err)
	}
	r := Start(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
		"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"--cluster", "add-node", r.Addr(), addr, "--cluster-slave", "--cluster-master-id", id}
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := command(r.Addr(), "INFO", "replication")
		if err == nil && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s of %s not in sync after 30s: %q %v", r.Addr(), addr, info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every master knows the replica (gossip), so that each takes its
	// word if it becomes a master.
	for _, n := range c.nodes {
		for {
			nodes, err := command(n.Addr(), "CLUSTER", "NODES")
			if err == nil && knowsReplica(nodes, r.Addr(), id) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: %s does not know the replica %s of %s after 30s: %q %v", n.Addr(), r.Addr(), addr, nodes, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.replicas = append(c.replicas, r)
	return r
}

// knowsReplica reports whether CLUSTER NODES output lists the node at addr
// as a connected replica of the master with id master.
func knowsReplica(nodes, addr, master string) bool {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		// id addr@bus flags master ping pong epoch link-state slots...
		if len(f) >= 8 && strings.HasPrefix(f[1], addr+"@") && strings.Contains(f[2], "slave") && f[3] == master && f[7] == "connected" {
			return true
		}
	}
	return false
}
