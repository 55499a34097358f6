package flub

import (
	"context"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// call is an RPC in flight on a Conn or a Client.
type call struct {
	tag       uint32
	streaming bool
	q         *queue[*fluxkit.Message]
	release   func()

	mu       sync.Mutex
	finished bool
	once     sync.Once
}

func newCall(tag uint32, streaming bool, release func()) *call {
	return &call{tag: tag, streaming: streaming, q: newQueue[*fluxkit.Message](), release: release}
}

func (c *call) Matchtag() uint32 { return c.tag }

func (c *call) Recv(ctx context.Context) (*fluxkit.Message, error) {
	c.mu.Lock()
	done := c.finished
	c.mu.Unlock()
	if done {
		return nil, fluxkit.Errorf(fluxkit.ENODATA, "no more responses")
	}
	m, ok, err := c.q.pop(ctx, nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fluxkit.Errorf(fluxkit.ECONNRESET, "connection to the broker closed")
	}
	if !c.streaming || m.Errnum != 0 {
		c.mu.Lock()
		c.finished = true
		c.mu.Unlock()
		c.Close()
	}
	if m.Errnum != 0 {
		return m, fluxkit.ErrorFromResponse(m)
	}
	return m, nil
}

func (c *call) Close() {
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
		c.q.close()
	})
}

// calls is a matchtag table shared by Conn and Client.
type calls struct {
	mu     sync.Mutex
	next   uint32
	m      map[uint32]*call
	closed bool
}

// add registers a new call; ok is false after closeAll.
func (t *calls) add(streaming bool) (*call, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false
	}
	if t.m == nil {
		t.m = map[uint32]*call{}
	}
	for {
		t.next++
		if t.next != fluxkit.MatchtagNone && t.m[t.next] == nil {
			break
		}
	}
	tag := t.next
	c := newCall(tag, streaming, func() {
		t.mu.Lock()
		delete(t.m, tag)
		t.mu.Unlock()
	})
	t.m[tag] = c
	return c, true
}

func (t *calls) deliver(m *fluxkit.Message) {
	t.mu.Lock()
	c := t.m[m.Matchtag]
	t.mu.Unlock()
	if c != nil {
		c.q.push(m)
	}
}

func (t *calls) closeAll() {
	t.mu.Lock()
	t.closed = true
	all := make([]*call, 0, len(t.m))
	for _, c := range t.m {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.q.close()
	}
}

// open checks that req is a request and returns the copy to send, with
// route as its route stack and, unless it wants no response, the matchtag
// of a new call (nil otherwise).
func (t *calls) open(ctx context.Context, req *fluxkit.Message, route []string) (*fluxkit.Message, *call, error) {
	if req == nil || req.Type != fluxkit.TypeRequest {
		return nil, nil, fluxkit.Errorf(fluxkit.EINVAL, "Request takes a message of type request")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	m := req.Clone()
	m.Route = route
	m.Flags |= fluxkit.FlagRoute
	if m.IsNoResponse() {
		return m, nil, nil
	}
	cl, ok := t.add(m.IsStreaming())
	if !ok {
		return nil, nil, errClosed
	}
	m.Matchtag = cl.tag
	return m, cl, nil
}

// sent is what Request returns once the request from open was handed on,
// or could not be (err): the call, or no call for a request that wants no
// response.
func (c *call) sent(err error) (fluxkit.Call, error) {
	if err != nil {
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
