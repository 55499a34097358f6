package connect

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// publishRequest is the event.publish payload: flux-core base64-encodes the
// event payload (encoding/json does that for a []byte), including the NUL
// that ends a JSON string, so subscribers in C get a string.
type publishRequest struct {
	Topic   string `json:"topic"`
	Flags   int    `json:"flags"`
	Payload []byte `json:"payload,omitempty"`
}

// Publish sends an event through rank 0's event.publish service, as
// flux_event_publish() does, and returns once rank 0 has given it a sequence
// number. flags may hold FlagPrivate.
func (h *Handle) Publish(ctx context.Context, topic string, payload []byte, flags fluxkit.MsgFlags) error {
	if topic == "" {
		return fluxkit.Errorf(fluxkit.EINVAL, "event has no topic")
	}
	if flags&^fluxkit.FlagPrivate != 0 {
		return fluxkit.Errorf(fluxkit.EINVAL, "event flags 0x%x: only FlagPrivate is allowed", uint8(flags))
	}
	req := publishRequest{Topic: topic, Flags: int(flags)}
	if len(payload) > 0 {
		req.Payload = append(append(make([]byte, 0, len(payload)+1), payload...), 0)
	}
	return fluxkit.RPC(ctx, h, "event.publish", 0, req, nil)
}

// Subscribe asks the broker for events whose topic starts with prefix
// (event.subscribe, which the local connector keeps per client) and returns
// them in sequence order. A broker that goes away ends the subscription with
// an error wrapping ECONNRESET.
func (h *Handle) Subscribe(ctx context.Context, prefix string) (fluxkit.Subscription, error) {
	s := &subscription{h: h, prefix: prefix, signal: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.err != nil {
		err := h.err
		h.mu.Unlock()
		return nil, err
	}
	// Registered before the request is sent, so no event published after
	// the subscription took effect can be missed; events that match it
	// before the broker answers are ones it would deliver anyway.
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	if err := fluxkit.RPC(ctx, h, "event.subscribe", fluxkit.NodeidAny, map[string]string{"topic": prefix}, nil); err != nil {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		return nil, err
	}
	return s, nil
}

func (h *Handle) deliverEvent(m *fluxkit.Message) {
	h.mu.Lock()
	var match []*subscription
	for s := range h.subs {
		if strings.HasPrefix(m.Topic, s.prefix) {
			match = append(match, s)
		}
	}
	h.mu.Unlock()
	for _, s := range match {
		s.push(m)
	}
}

type subscription struct {
	h      *Handle
	prefix string
	signal chan struct{}

	mu     sync.Mutex
	q      []*fluxkit.Message
	err    error
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
	s.wake()
}

func (s *subscription) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *subscription) terminate(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.wake()
}

// Recv returns the next event. Events that arrived before the handle ended
// are still returned, then its error.
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
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close ends the subscription and tells the broker (event.unsubscribe)
// without waiting for its answer.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.q = nil
	s.mu.Unlock()
	s.wake()
	h := s.h
	h.mu.Lock()
	_, live := h.subs[s]
	delete(h.subs, s)
	h.mu.Unlock()
	if live {
		req := fluxkit.NewRequest("event.unsubscribe", fluxkit.NodeidAny, []byte(`{"topic":`+quote(s.prefix)+`}`))
		if c, err := h.Request(h.ctx, req); err == nil && c != nil {
			c.Close()
		}
	}
	return nil
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
