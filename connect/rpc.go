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

// Request sends req; see [fluxkit.Handle]. The handle assigns the matchtag,
// turns NodeidUpstream into the upstream flag on its own rank, as
// flux_rpc() does, and leaves the credentials for the broker to fill in
// (unless Config.Userid/Rolemask stamp them). ctx bounds only the wait for
// room in the send queue.
func (h *Handle) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.Type != fluxkit.TypeRequest {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "message type %s is not a request", req.Type)
	}
	if req.Topic == "" {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "request has no topic")
	}
	noResp := req.IsNoResponse()
	if noResp && req.IsStreaming() {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "NORESPONSE and STREAMING are exclusive")
	}
	m := *req
	m.Route = nil
	m.Flags &^= fluxkit.FlagRoute
	if m.Nodeid == fluxkit.NodeidUpstream {
		m.Flags |= fluxkit.FlagUpstream
		m.Nodeid = h.rank
	}
	if m.Userid == 0 && m.Rolemask == 0 {
		m.Userid = fluxkit.UseridUnknown
	}
	var c *call
	h.mu.Lock()
	if h.err != nil {
		err := h.err
		h.mu.Unlock()
		return nil, err
	}
	if !noResp {
		m.Matchtag = h.allocTag()
		c = &call{h: h, tag: m.Matchtag, streaming: m.IsStreaming(), signal: make(chan struct{}, 1)}
		h.calls[m.Matchtag] = c
	} else {
		m.Matchtag = fluxkit.MatchtagNone
	}
	h.mu.Unlock()
	if err := h.send(ctx, &m); err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	if c == nil {
		return nil, nil
	}
	return c, nil
}

// allocTag returns a matchtag no pending call holds, never 0. Called with
// h.mu held.
func (h *Handle) allocTag() uint32 {
	for {
		h.nextTag++
		if h.nextTag == fluxkit.MatchtagNone {
			continue
		}
		if _, busy := h.calls[h.nextTag]; !busy {
			return h.nextTag
		}
	}
}

// deliverResponse hands a response to the call that holds its matchtag; a
// response nobody waits for (a closed call) is dropped.
func (h *Handle) deliverResponse(m *fluxkit.Message) {
	h.mu.Lock()
	c := h.calls[m.Matchtag]
	if c == nil {
		h.mu.Unlock()
		return
	}
	final := m.Errnum != 0 || !c.streaming
	if final {
		delete(h.calls, m.Matchtag)
	}
	h.mu.Unlock()
	c.push(m, final)
}

// call is an RPC in flight.
type call struct {
	h         *Handle
	tag       uint32
	streaming bool
	signal    chan struct{}

	mu     sync.Mutex
	q      []*fluxkit.Message
	ended  bool  // the final response is queued
	err    error // the handle ended first
	closed bool
}

func (c *call) Matchtag() uint32 { return c.tag }

func (c *call) push(m *fluxkit.Message, final bool) {
	c.mu.Lock()
	if c.closed || c.ended {
		c.mu.Unlock()
		return
	}
	c.q = append(c.q, m)
	c.ended = final
	c.mu.Unlock()
	c.wake()
}

func (c *call) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *call) terminate(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.wake()
}

// Recv returns the next response; see [fluxkit.Call]. Responses that
// arrived before the handle ended are still returned, then its error.
func (c *call) Recv(ctx context.Context) (*fluxkit.Message, error) {
	for {
		c.mu.Lock()
		if len(c.q) > 0 {
			m := c.q[0]
			c.q[0] = nil
			c.q = c.q[1:]
			c.mu.Unlock()
			return m, fluxkit.ErrorFromResponse(m)
		}
		switch {
		case c.ended || c.closed:
			c.mu.Unlock()
			return nil, fluxkit.Errorf(fluxkit.ENODATA, "no more responses")
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *call) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.q = nil
	c.mu.Unlock()
	h := c.h
	h.mu.Lock()
	if h.calls[c.tag] == c {
		delete(h.calls, c.tag)
	}
	h.mu.Unlock()
}

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

// put encodes m onto the queue. It first waits, bounded by wait, while the
// queue holds more than max bytes, and then writes the queue itself when no
// other goroutine is writing.
func (q *outQueue) put(wait context.Context, m *fluxkit.Message) error {
	return q.enqueue(wait, true, m)
}

// putNoWait queues m without waiting for room: a responder must not block
// the service handler that answers, so its queue may run past max.
func (q *outQueue) putNoWait(m *fluxkit.Message) error {
	return q.enqueue(context.Background(), false, m)
}

func (q *outQueue) enqueue(wait context.Context, block bool, m *fluxkit.Message) error {
	q.mu.Lock()
	for block && len(q.buf) > q.max && !q.closed {
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-wait.Done():
			return wait.Err()
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
	case block:
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
