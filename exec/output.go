package exec

import (
	"sync"
)

// Stream numbers of captured output.
const (
	streamStdout = 0
	streamStderr = 1
)

var streamNames = [2]string{"stdout", "stderr"}

// outBuf holds one stream's captured bytes between the pipe and their
// acknowledgement upstream. It never drops: when full, the reader blocks,
// the pipe fills and the writer (the shell) blocks too: back-pressure
// instead of loss (I6), and memory bounded by limit.
type outBuf struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled on every change
	limit  int
	data   []byte // bytes from base on
	base   int64  // offset of data[0]: everything before is acknowledged
	eof    bool
	closed bool // abandoned: readers stop waiting
}

func newOutBuf(limit int) *outBuf {
	b := &outBuf{limit: limit}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// write appends p, blocking while the buffer is full. It returns false if
// the buffer was abandoned.
func (b *outBuf) write(p []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(p) > 0 {
		for len(b.data) >= b.limit && !b.closed {
			b.cond.Wait()
		}
		if b.closed {
			return false
		}
		n := min(len(p), b.limit-len(b.data))
		b.data = append(b.data, p[:n]...)
		p = p[n:]
		b.cond.Broadcast()
	}
	return true
}

// space reports how many bytes may be written without blocking, waiting
// until there is some.
func (b *outBuf) space() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.data) >= b.limit && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		return 0
	}
	return b.limit - len(b.data)
}

func (b *outBuf) setEOF() {
	b.mu.Lock()
	b.eof = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// abandon wakes every waiter for good.
func (b *outBuf) abandon() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// peek returns up to max unacknowledged bytes from offset off (which must be
// at or after base), and whether the stream ended with them.
func (b *outBuf) peek(off int64, max int) (data []byte, eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := int(off - b.base)
	if i < 0 {
		i = 0
	}
	if i > len(b.data) {
		i = len(b.data)
	}
	end := min(len(b.data), i+max)
	return append([]byte(nil), b.data[i:end]...), b.eof && end == len(b.data)
}

// ack releases everything before offset off.
func (b *outBuf) ack(off int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := int(off - b.base)
	if n <= 0 {
		return
	}
	if n > len(b.data) {
		n = len(b.data)
	}
	// Copy down rather than reslice so the backing array does not creep.
	b.data = append(b.data[:0], b.data[n:]...)
	b.base += int64(n)
	b.cond.Broadcast()
}

// state returns the acknowledged offset, the end offset and eof.
func (b *outBuf) state() (acked, end int64, eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.base, b.base + int64(len(b.data)), b.eof
}

// waitData blocks until there are bytes at or after off, EOF, abandonment,
// or stop is closed.
func (b *outBuf) waitData(off int64, stop <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.base+int64(len(b.data)) <= off && !b.eof && !b.closed {
		select {
		case <-stop:
			return
		default:
		}
		b.cond.Wait()
	}
}
