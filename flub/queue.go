package flub

import (
	"context"
	"sync"
)

// queue is an unbounded FIFO with a wake-up channel. Socket readers push
// into queues so that they never wait on the broker loop, which is what
// keeps two brokers writing to each other from deadlocking.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	signal chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{signal: make(chan struct{}, 1)} }

// push appends v; it reports false once the queue is closed.
func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
	return true
}

// drain takes every queued item.
func (q *queue[T]) drain() []T {
	q.mu.Lock()
	items := q.items
	q.items = nil
	q.mu.Unlock()
	return items
}

// close makes later pushes fail and wakes a waiting pop.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop waits for the next item, ctx, or stop. ok is false when nothing will
// come: the queue is closed and empty.
func (q *queue[T]) pop(ctx context.Context, stop <-chan struct{}) (v T, ok bool, err error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v = q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			q.mu.Unlock()
			return v, true, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return v, false, nil
		}
		select {
		case <-q.signal:
		case <-ctx.Done():
			return v, false, ctx.Err()
		case <-stop:
			return v, false, nil
		}
	}
}
