package connect

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
)

// outQueue is what has been sent and not yet written, kept encoded so that
// one write carries many messages. One goroutine at a time is the writer and
// drains the queue in order: a caller of Request or Publish writes its own
// message when nobody else is writing (no hand-off on the latency path),
// while messages sent from the handle's own goroutines (responses, which the
// reader may send) are left to the writer goroutine, so that the reader
// never blocks on a full socket while the broker waits for it to read.
type outQueue struct {
	w     deadlineWriter
	fail  func(error) // called once, without mu, when a write fails
	max   int
	kick  chan struct{}
	mu    sync.Mutex
	buf   []byte
	spare []byte
	room  chan struct{} // closed and replaced whenever the queue drains
	// writing is set while a goroutine is writing; it drains the queue.
	writing bool
	closed  bool
}

var errOutClosed = errors.New("send queue closed")

// deadlineWriter is the transport as the queue sees it.
type deadlineWriter interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

// directWriteWait is how long a caller writing its own message waits for a
// full socket before leaving the rest to the writer goroutine: long enough
// for a writable socket, short enough that a stalled broker costs callers
// nothing more than queueing.
const directWriteWait = 2 * time.Millisecond

func (q *outQueue) init(w deadlineWriter, max int, fail func(error)) {
	q.w, q.max, q.fail = w, max, fail
	q.kick = make(chan struct{}, 1)
	q.room = make(chan struct{})
}

// put encodes m onto the queue for a caller: it first waits, bounded by
// ctx, while the queue holds more than max bytes, and then writes the queue
// itself when no other goroutine is writing.
func (q *outQueue) put(ctx context.Context, m *fluxkit.Message) error { return q.add(ctx, m, true) }

// putNoWait encodes m onto the queue however full it is and leaves the
// writing to the writer goroutine: the handle's own goroutines (the reader
// sending responses) must never block on the socket.
func (q *outQueue) putNoWait(m *fluxkit.Message) error { return q.add(context.Background(), m, false) }

func (q *outQueue) add(ctx context.Context, m *fluxkit.Message, caller bool) error {
	q.mu.Lock()
	for caller && len(q.buf) > q.max && !q.closed {
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	if q.closed {
		q.mu.Unlock()
		return errOutClosed
	}
	q.buf = appendMessage(q.buf, m)
	switch {
	case q.writing:
	case caller:
		q.drainLocked(true)
	default:
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	q.mu.Unlock()
	return nil
}

// drainLocked writes until the queue is empty. It is called with mu held
// and not writing; mu is released around each write. A direct writer (a
// caller) gives up after directWriteWait on a full socket and hands the rest
// of the queue, in order, to the writer goroutine.
func (q *outQueue) drainLocked(direct bool) {
	q.writing = true
	for len(q.buf) > 0 && !q.closed {
		b := q.buf
		q.buf, q.spare = q.spare[:0], nil
		close(q.room)
		q.room = make(chan struct{})
		q.mu.Unlock()
		var deadline time.Time
		if direct {
			deadline = time.Now().Add(directWriteWait)
		}
		_ = q.w.SetWriteDeadline(deadline)
		n, err := q.w.Write(b)
		q.mu.Lock()
		if direct && errors.Is(err, os.ErrDeadlineExceeded) && !q.closed {
			q.buf = append(b[n:len(b):len(b)], q.buf...)
			q.writing = false
			select {
			case q.kick <- struct{}{}:
			default:
			}
			return
		}
		if cap(b) <= 4<<20 {
			q.spare = b[:0]
		}
		if err != nil {
			q.writing = false
			q.mu.Unlock()
			q.fail(err)
			q.mu.Lock()
			return
		}
	}
	q.writing = false
}

// run is the writer goroutine: it drains what put left to it, until close.
func (q *outQueue) run() {
	for range q.kick {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return
		}
		if !q.writing {
			q.drainLocked(false)
		}
		q.mu.Unlock()
	}
}

func (q *outQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.room)
		close(q.kick)
	}
	q.mu.Unlock()
}
