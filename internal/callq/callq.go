// Package callq is the client side of a [fluxkit.Handle]: the RPCs a
// handle has in flight and the events its subscriptions have received,
// each a queue that one reader drains with Recv(ctx).
//
// A [Table] allocates matchtags (never [fluxkit.MatchtagNone], never one a
// pending call holds), routes each response to the [Call] that holds its
// matchtag, and forgets the call after its last response: the only one of
// a plain RPC, or the error response that ends a stream (ENODATA for a
// normal end). A response for a call nobody holds any more is dropped.
// When the handle ends, [Table.Close] ends every pending call with the
// handle's error and refuses new ones with it; responses that arrived
// before are still returned first.
//
// [Events] is the queue behind a subscription: events in arrival order,
// then the error that ended the subscription.
//
// Both queues are unbounded, so that whoever delivers (a socket reader, a
// broker's router) never waits for a slow reader; Recv wakes on a
// one-slot signal channel.
package callq

import (
	"context"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// queue is a FIFO of messages with one reader. Once ended (the last
// message is queued), closed (the reader gave up) or failed (err), nothing
// more is queued; Recv returns what is queued first, except after close.
type queue struct {
	mu     sync.Mutex
	signal chan struct{}
	q      []*fluxkit.Message
	ended  bool
	closed bool
	err    error
}

// sig returns the wake-up channel, creating it on first use so that the
// zero queue is ready. Called with mu held.
func (q *queue) sig() chan struct{} {
	if q.signal == nil {
		q.signal = make(chan struct{}, 1)
	}
	return q.signal
}

func (q *queue) wake() {
	q.mu.Lock()
	s := q.sig()
	q.mu.Unlock()
	select {
	case s <- struct{}{}:
	default:
	}
}

// push queues m, the last message when final. It reports false when the
// queue takes nothing more.
func (q *queue) push(m *fluxkit.Message, final bool) bool {
	q.mu.Lock()
	if q.closed || q.ended || q.err != nil {
		q.mu.Unlock()
		return false
	}
	q.q = append(q.q, m)
	q.ended = final
	s := q.sig()
	q.mu.Unlock()
	select {
	case s <- struct{}{}:
	default:
	}
	return true
}

// fail ends the queue with err after what is queued; the first error wins.
func (q *queue) fail(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.wake()
}

// close drops what is queued and ends the queue; it reports whether this
// call closed it.
func (q *queue) close() bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.closed = true
	q.q = nil
	q.mu.Unlock()
	q.wake()
	return true
}

// recv waits for the next message. over is true when nothing more will
// come because the queue ended or was closed; err is the failure, or ctx's.
func (q *queue) recv(ctx context.Context) (m *fluxkit.Message, over bool, err error) {
	for {
		q.mu.Lock()
		if len(q.q) > 0 {
			m := q.q[0]
			q.q[0] = nil
			q.q = q.q[1:]
			q.mu.Unlock()
			return m, false, nil
		}
		if q.ended || q.closed {
			q.mu.Unlock()
			return nil, true, nil
		}
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return nil, false, err
		}
		s := q.sig()
		q.mu.Unlock()
		select {
		case <-s:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}
