package logbuf_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/internal/logbuf"
	"github.com/octostore/octostore/internal/syncbuf"
)

// countingWriter counts the writes it gets.
type countingWriter struct {
	syncbuf.Buffer
	mu     sync.Mutex
	writes int
	fail   error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	return c.Buffer.Write(p)
}

func (c *countingWriter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func TestLinesArriveInOrderInFewWrites(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, time.Hour, 4096)
	var want bytes.Buffer
	for i := range 1000 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if n, err := w.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("got %d bytes, want %d, in order", len(out.String()), want.Len())
	}
	// 8,890 bytes through a 4,096-byte buffer: a few writes, not 1,000.
	if n := out.count(); n < 2 || n > 4 {
		t.Errorf("%d underlying writes, want 3", n)
	}
}

func TestIntervalFlushes(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, 10*time.Millisecond, 4096)
	defer w.Close()
	w.Write([]byte("hello\n"))
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "hello\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not written after the interval: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLargeWriteGoesThrough(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, time.Hour, 16)
	w.Write([]byte("small\n"))
	big := strings.Repeat("x", 100) + "\n"
	w.Write([]byte(big))
	if out.String() != "small\n"+big {
		t.Fatalf("got %q", out.String())
	}
	w.Close()
}

func TestWritesAfterCloseGoThrough(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, time.Hour, 4096)
	w.Write([]byte("a\n"))
	w.Close()
	w.Close()
	w.Write([]byte("b\n"))
	if out.String() != "a\nb\n" {
		t.Fatalf("got %q", out.String())
	}
}

func TestErrorsAreReturnedAndDoNotStick(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, time.Hour, 8)
	defer w.Close()
	boom := errors.New("disk full")
	out.mu.Lock()
	out.fail = boom
	out.mu.Unlock()
	w.Write([]byte("1234567\n"))
	if _, err := w.Write([]byte("x\n")); !errors.Is(err, boom) {
		t.Fatalf("Write when the buffer had to be written: %v, want %v", err, boom)
	}
	out.mu.Lock()
	out.fail = nil
	out.mu.Unlock()
	w.Write([]byte("ok\n"))
	if err := w.Flush(); err != nil || out.String() != "ok\n" {
		t.Fatalf("after the error: %v %q", err, out.String())
	}
}

func TestConcurrentWriters(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, time.Millisecond, 512)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				fmt.Fprintf(w, "g%d-%d\n", g, i)
			}
		})
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d-%d", &g, &i); err != nil {
			t.Fatalf("torn line %q", l)
		}
		k := fmt.Sprint(g)
		if i != next[k] {
			t.Fatalf("goroutine %d: line %d after %d", g, i, next[k]-1)
		}
		next[k]++
	}
}

// A Write that would take the buffer past its size writes what the buffer
// holds first, so the buffer never holds more than size bytes.
func TestFullBufferIsWrittenFirst(t *testing.T) {
	var out countingWriter
	w := logbuf.New(&out, time.Hour, 8)
	w.Write([]byte("1234"))
	w.Write([]byte("56789"))
	if got, n := out.String(), out.count(); got != "1234" || n != 1 {
		t.Fatalf("after 4+5 bytes into 8: %q in %d writes, want the first 4 bytes in one write", got, n)
	}
	if err := w.Close(); err != nil || out.String() != "123456789" {
		t.Fatalf("after Close: %q, %v", out.String(), err)
	}
}
