package connect

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/callq"
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
	s := &subscription{h: h, prefix: prefix}
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
		s.Push(m)
	}
}

// subscription is the queue of one Subscribe's events.
type subscription struct {
	callq.Events
	h      *Handle
	prefix string
}

// Close ends the subscription and tells the broker (event.unsubscribe)
// without waiting for its answer.
func (s *subscription) Close() error {
	if !s.Events.Close() {
		return nil
	}
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
