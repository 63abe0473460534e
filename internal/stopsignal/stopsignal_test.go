package stopsignal_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/stopsignal"
)

// childEnv makes the test binary act as a server: it takes the stop
// signals with Context, says "ready", and at the end of the context says
// "stopping" and then drains (sleeps) for drainEnv, then calls stop and
// exits 0.
const (
	childEnv = "STOPSIGNAL_TEST_CHILD"
	drainEnv = "STOPSIGNAL_TEST_DRAIN"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := stopsignal.Context()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("stopping")
		d, _ := time.ParseDuration(os.Getenv(drainEnv))
		time.Sleep(d)
		stop()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a running child process and its stdout, line by line.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

// startChild runs the test binary as a child that drains for drain at its
// first stop signal, through prefix (a command that execs the rest).
func startChild(t *testing.T, drain time.Duration, prefix ...string) *child {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string(nil), prefix...), self)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1", drainEnv+"="+drain.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 8), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	c.expect(t, "ready")
	return c
}

// expect waits (generously: the machine may be loaded) for the child's
// next line and fails unless it is want.
func (c *child) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-c.lines:
		if got != want {
			t.Fatalf("child said %q, want %q", got, want)
		}
	case <-c.done:
		t.Fatalf("child exited (%v) before saying %q", c.cmd.ProcessState, want)
	case <-time.After(30 * time.Second):
		t.Fatalf("child did not say %q within 30 s", want)
	}
}

// wait waits for the child to exit and returns how it ended.
func (c *child) wait(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case <-c.done:
		return c.cmd.ProcessState
	case <-time.After(30 * time.Second):
		t.Fatal("child did not exit within 30 s")
		return nil
	}
}

// atDefault runs f with SIGINT caught by the test, so that a child
// started in f gets SIGINT at its default action even when the tests
// themselves run with it ignored (started with & by a shell without job
// control).
func atDefault(f func()) {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT)
	defer signal.Reset(syscall.SIGINT)
	f()
}

func TestFirstSignalEndsTheContext(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			var c *child
			atDefault(func() { c = startChild(t, 0) })
			c.cmd.Process.Signal(sig)
			c.expect(t, "stopping")
			if st := c.wait(t); st.ExitCode() != 0 {
				t.Fatalf("child ended %v after one %v, want exit 0 after its drain", st, sig)
			}
		})
	}
}

func TestSecondSignalEndsTheProcess(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		var c *child
		atDefault(func() { c = startChild(t, time.Hour) })
		c.cmd.Process.Signal(syscall.SIGINT)
		c.expect(t, "stopping")
		c.cmd.Process.Signal(syscall.SIGINT)
		st := c.wait(t)
		ws, ok := st.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Fatalf("child ended %v after a second SIGINT, want killed by SIGINT", st)
		}
	})
	t.Run("ignored at start", func(t *testing.T) {
		c := startChild(t, time.Hour, "sh", "-c", `trap '' INT; exec "$0" "$@"`)
		c.cmd.Process.Signal(syscall.SIGINT)
		c.expect(t, "stopping")
		c.cmd.Process.Signal(syscall.SIGINT)
		if st := c.wait(t); st.ExitCode() != 128+int(syscall.SIGINT) {
			t.Fatalf("child ended %v after a second SIGINT ignored at start, want exit %d", st, 128+int(syscall.SIGINT))
		}
	})
}

func TestStopEndsTheContextAndMayBeCalledAgain(t *testing.T) {
	ctx, stop := stopsignal.Context()
	if ctx.Err() != nil {
		t.Fatal("the context ended before any signal or stop")
	}
	stop()
	stop()
	if ctx.Err() == nil {
		t.Fatal("the context is still live after stop")
	}
}
