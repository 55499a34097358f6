package callq

import (
	"context"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// Table is the set of RPCs a handle has in flight. The zero Table is
// ready; every method is safe for concurrent use.
type Table struct {
	mu    sync.Mutex
	next  uint32
	calls map[uint32]*Call
	err   error // set by Close: new calls are refused with it
}

// Add registers a call awaiting responses and gives it a matchtag; a
// streaming call takes responses until an error response. After Close it
// returns Close's error.
func (t *Table) Add(streaming bool) (*Call, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return nil, t.err
	}
	if t.calls == nil {
		t.calls = make(map[uint32]*Call)
	}
	c := &Call{t: t, tag: t.allocTag(), streaming: streaming}
	t.calls[c.tag] = c
	return c, nil
}

// allocTag returns a matchtag no pending call holds, never MatchtagNone.
// Called with mu held.
func (t *Table) allocTag() uint32 {
	for {
		t.next++
		if t.next == fluxkit.MatchtagNone {
			continue
		}
		if _, busy := t.calls[t.next]; !busy {
			return t.next
		}
	}
}

// Deliver hands a response to the call that holds its matchtag. An error
// response, or any response to a call that is not streaming, is the
// call's last; a response nobody waits for is dropped.
func (t *Table) Deliver(m *fluxkit.Message) {
	t.mu.Lock()
	c := t.calls[m.Matchtag]
	if c == nil {
		t.mu.Unlock()
		return
	}
	final := m.Errnum != 0 || !c.streaming
	if final {
		delete(t.calls, m.Matchtag)
	}
	t.mu.Unlock()
	c.q.push(m, final)
}

// Fail ends every pending call with err, after the responses it already
// has. Calls added later are not affected.
func (t *Table) Fail(err error) {
	t.mu.Lock()
	calls := t.calls
	t.calls = nil
	t.mu.Unlock()
	for _, c := range calls {
		c.q.fail(err)
	}
}

// Close ends every pending call with err, as Fail does, and refuses new
// calls with it. Only the first Close's error is kept.
func (t *Table) Close(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
	t.Fail(err)
}

// Len is the number of calls awaiting responses.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.calls)
}

// Call is an RPC in flight; it implements [fluxkit.Call].
type Call struct {
	t         *Table
	tag       uint32
	streaming bool
	q         queue
}

var _ fluxkit.Call = (*Call)(nil)

// Matchtag is the matchtag the request must be sent with.
func (c *Call) Matchtag() uint32 { return c.tag }

// Recv returns the next response: for an error response, the message and
// its *fluxkit.Error. After the last response it returns an error wrapping
// ENODATA; after the table ended the call, the table's error.
func (c *Call) Recv(ctx context.Context) (*fluxkit.Message, error) {
	m, over, err := c.q.recv(ctx)
	switch {
	case m != nil:
		return m, fluxkit.ErrorFromResponse(m)
	case over:
		return nil, fluxkit.Errorf(fluxkit.ENODATA, "no more responses")
	}
	return nil, err
}

// Close abandons the call: responses queued or still to come are dropped.
// Calling it again is harmless.
func (c *Call) Close() {
	if !c.q.close() {
		return
	}
	t := c.t
	t.mu.Lock()
	if t.calls[c.tag] == c {
		delete(t.calls, c.tag)
	}
	t.mu.Unlock()
}
