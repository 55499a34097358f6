package testbroker

import (
	"context"
	"strings"
	"sync"

	"github.com/fluxkit/fluxkit"
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
		s.push(m)
	}
	return nil
}

// Subscribe delivers events whose topic starts with prefix; see
// fluxkit.Handle.
func (h *Handle) Subscribe(ctx context.Context, prefix string) (fluxkit.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{h: h, prefix: prefix, signal: make(chan struct{}, 1)}
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

type subscription struct {
	h      *Handle
	prefix string
	signal chan struct{}

	mu     sync.Mutex
	q      []*fluxkit.Message
	closed bool
}

func (s *subscription) push(m *fluxkit.Message) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.q = append(s.q, m)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *subscription) Recv(ctx context.Context) (*fluxkit.Message, error) {
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			m := s.q[0]
			s.q[0] = nil
			s.q = s.q[1:]
			s.mu.Unlock()
			return m, nil
		}
		if s.closed {
			s.mu.Unlock()
			return nil, fluxkit.Errorf(fluxkit.ENODATA, "subscription closed")
		}
		s.mu.Unlock()
		select {
		case <-s.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *subscription) Close() error {
	s.close()
	s.h.mu.Lock()
	if s.h.subs != nil {
		delete(s.h.subs, s)
	}
	s.h.mu.Unlock()
	return nil
}

func (s *subscription) close() {
	s.h.b.evMu.Lock()
	delete(s.h.b.subs, s)
	s.h.b.evMu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.q = nil
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}
