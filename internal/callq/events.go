package callq

import (
	"context"

	"github.com/fluxkit/fluxkit"
)

// Events is the queue behind a subscription. The zero Events is ready; a
// handle's subscription type embeds it and adds its own Close, which
// calls [Events.Close] and then tells whoever delivers.
type Events struct {
	q queue
}

// Push queues an event; it reports false once the queue has ended.
func (e *Events) Push(m *fluxkit.Message) bool { return e.q.push(m, false) }

// Fail ends the queue with err, after the events already queued. The
// first error wins.
func (e *Events) Fail(err error) { e.q.fail(err) }

// Close ends the queue and drops what it holds; it reports whether this
// call closed it, so that the caller undoes the subscription once.
func (e *Events) Close() bool { return e.q.close() }

// Recv returns the next event. After Close it returns an error wrapping
// ENODATA; after Fail, once the queue is drained, Fail's error.
func (e *Events) Recv(ctx context.Context) (*fluxkit.Message, error) {
	m, over, err := e.q.recv(ctx)
	switch {
	case m != nil:
		return m, nil
	case over:
		return nil, fluxkit.Errorf(fluxkit.ENODATA, "subscription closed")
	}
	return nil, err
}
