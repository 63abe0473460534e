// Package logbuf is a buffered log writer: lines are gathered in memory and
// written to the underlying writer in one write every interval (or as soon
// as the buffer is full), instead of one write system call per line. A busy
// server logs a line per request; on a small machine that syscall is a
// measurable share of the request's cost.
//
// What it promises: every byte written is handed to the underlying writer,
// in order, within the interval or at Flush/Close; a Write never blocks for
// longer than one underlying write. What it costs: if the process is killed
// (SIGKILL, a fatal runtime error) the lines of the last interval are lost,
// so a Writer is meant for access logs, not for data. Safe for concurrent
// use.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer buffers writes for an underlying io.Writer. Create it with New.
type Writer struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	size int

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a Writer over w that writes what it holds every interval, or
// as soon as it holds size bytes. It starts one goroutine, which Close
// stops.
func New(w io.Writer, interval time.Duration, size int) *Writer {
	b := &Writer{w: w, buf: make([]byte, 0, size), size: size, stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop(interval)
	return b
}

func (b *Writer) loop(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = b.Flush()
		case <-b.stop:
			return
		}
	}
}

// Write buffers p (written through at once when p alone is larger than the
// buffer). It returns len(p) and nil, or the error of the underlying write
// it had to make (what that write held is dropped; later writes go on).
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > b.size {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes what is buffered now; on an error what it held is dropped.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Writer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Close stops the periodic writes and writes what is buffered. Writes after
// Close go straight through (nothing is buffered any more, so nothing can
// be lost). Close is idempotent.
func (b *Writer) Close() error {
	b.once.Do(func() {
		close(b.stop)
		<-b.done
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.flushLocked()
	b.size = 0
	return err
}
