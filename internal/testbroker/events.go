package testbroker

import (
	"context"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/callq"
)

// Publish sends an event; see fluxkit.Handle. The payload is not copied, and
// every subscriber receives the same *Message, which it must not modify.
func (h *Handle) Publish(ctx context.Context, topic string, payload []byte, flags fluxkit.MsgFlags) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if topic == "" {
		return fluxkit.Errorf(fluxkit.EINVAL, "event has no topic")
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return errClosed
	}
	b := h.b
	if !b.reachableBetween(h.rank.id, 0) {
		return fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank 0 unreachable from rank %d", h.rank.id)
	}
	m := &fluxkit.Message{
		Type:     fluxkit.TypeEvent,
		Flags:    fluxkit.FlagRoute | flags&(fluxkit.FlagPrivate|fluxkit.FlagUser1),
		Topic:    topic,
		Payload:  payload,
		Userid:   h.cred.Userid,
		Rolemask: h.cred.Roles,
	}
	private := m.Flags&fluxkit.FlagPrivate != 0
	b.evMu.Lock()
	defer b.evMu.Unlock()
	b.seq++
	m.Seq = b.seq
	for s := range b.subs {
		if !strings.HasPrefix(topic, s.prefix) {
			continue
		}
		if private && !s.h.cred.IsOwner() && s.h.cred.Userid != m.Userid {
			continue
		}
		if !b.reachableBetween(0, s.h.rank.id) {
			continue
		}
		s.Push(m)
	}
	return nil
}

// Subscribe delivers events whose topic starts with prefix; see
// fluxkit.Handle.
func (h *Handle) Subscribe(ctx context.Context, prefix string) (fluxkit.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{h: h, prefix: prefix}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.b.evMu.Lock()
	h.b.subs[s] = struct{}{}
	h.b.evMu.Unlock()
	return s, nil
}

// subscription is the queue of one Subscribe's events.
type subscription struct {
	callq.Events
	h      *Handle
	prefix string
}

// Close ends the subscription.
func (s *subscription) Close() error {
	s.unsubscribe()
	s.h.mu.Lock()
	if s.h.subs != nil {
		delete(s.h.subs, s)
	}
	s.h.mu.Unlock()
	return nil
}

// unsubscribe stops deliveries and ends the queue.
func (s *subscription) unsubscribe() {
	s.h.b.evMu.Lock()
	delete(s.h.b.subs, s)
	s.h.b.evMu.Unlock()
	s.Events.Close()
}
