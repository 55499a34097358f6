package flub

import (
	"context"

	"github.com/fluxkit/fluxkit"
)

func (b *Broker) newConn(cred fluxkit.Cred) *Conn {
	ctx, cancel := context.WithCancel(b.ctx)
	return &Conn{b: b, id: newUUID(), cred: cred, ctx: ctx, cancel: cancel, work: newQueue[func()]()}
}

// Connect opens a client connection to this broker with cred.
func (b *Broker) Connect(cred fluxkit.Cred) (*Conn, error) {
	c := b.newConn(cred)
	errc := make(chan struct{})
	if !b.post(func() { b.clients[c.id] = c; close(errc) }) {
		return nil, errClosed
	}
	select {
	case <-errc:
		return c, nil
	case <-b.ctx.Done():
		return nil, errClosed
	}
}

var _ fluxkit.Handle = (*Broker)(nil)

// Rank is this broker's rank.
func (b *Broker) Rank() uint32 { return b.rank }

// Size is the instance size.
func (b *Broker) Size() uint32 { return b.size }

// Cred is the credential of the broker's own connection (owner, local).
func (b *Broker) Cred() fluxkit.Cred { return b.self.cred }

// Request sends a request as the instance owner.
func (b *Broker) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	return b.self.Request(ctx, req)
}

// Register serves a topic on the broker's own connection.
func (b *Broker) Register(topic string, allow fluxkit.Role, h fluxkit.HandlerFunc) (func(), error) {
	return b.self.Register(topic, allow, h)
}

// Publish publishes an event as the instance owner.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, flags fluxkit.MsgFlags) error {
	return b.self.Publish(ctx, topic, payload, flags)
}

// Subscribe subscribes the broker's own connection to events.
func (b *Broker) Subscribe(ctx context.Context, prefix string) (fluxkit.Subscription, error) {
	return b.self.Subscribe(ctx, prefix)
}
