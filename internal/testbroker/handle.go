package testbroker

import (
	"context"
	"sync"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/callq"
)

// Handle is a client connection to one rank. It implements fluxkit.Handle.
type Handle struct {
	b    *Broker
	rank *Rank
	cred fluxkit.Cred
	uuid string

	ctx    context.Context
	cancel context.CancelFunc

	calls callq.Table

	mu         sync.Mutex
	closed     bool
	handlers   map[string]*registration
	services   map[string]int // topics registered per service
	inbox      []delivery
	signal     chan struct{}
	dispatcher bool
	pending    map[*responder]struct{} // requests being served here
	used       map[target]struct{}     // where this client sent requests, for disconnect
	subs       map[*subscription]struct{}
}

// target is where a client's departure sends a disconnect message: the
// disconnect topic of a request it sent, and the rank that served it.
type target struct {
	topic string
	rank  uint32
}

var _ fluxkit.Handle = (*Handle)(nil)

func newHandle(b *Broker, r *Rank, cred fluxkit.Cred) *Handle {
	ctx, cancel := context.WithCancel(b.ctx)
	return &Handle{
		b:        b,
		rank:     r,
		cred:     cred,
		uuid:     b.newUUID(),
		ctx:      ctx,
		cancel:   cancel,
		handlers: map[string]*registration{},
		services: map[string]int{},
		signal:   make(chan struct{}, 1),
		pending:  map[*responder]struct{}{},
		used:     map[target]struct{}{},
		subs:     map[*subscription]struct{}{},
	}
}

// Rank is the rank this handle is connected to.
func (h *Handle) Rank() uint32 { return h.rank.id }

// Size is the instance size.
func (h *Handle) Size() uint32 { return uint32(h.b.size) }

// Cred is the handle's identity.
func (h *Handle) Cred() fluxkit.Cred { return h.cred }

// UUID is the identity that requests from this handle carry as sender.
func (h *Handle) UUID() string { return h.uuid }

// Close disconnects: the handle's pending RPCs end with ECONNRESET, requests
// it was serving fail ENOSYS, its services and subscriptions go away, and
// every service it sent requests to receives "<service>.disconnect".
// It does not wait for a handler that is running; Broker.Close does.
func (h *Handle) Close() error {
	h.shutdown(true)
	return nil
}

func (h *Handle) shutdown(disconnect bool) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	pending := h.pending
	h.pending = nil
	used := h.used
	h.used = nil
	subs := h.subs
	h.subs = nil
	services := h.services
	h.services = nil
	for _, reg := range h.handlers {
		reg.cancel()
	}
	h.handlers = nil
	h.inbox = nil
	h.mu.Unlock()
	h.cancel()
	h.wake()
	h.b.forget(h)

	h.calls.Close(errClosed)
	for svc := range services {
		h.rank.removeService(svc, h)
	}
	for rsp := range pending {
		rsp.fail(fluxkit.Errorf(fluxkit.ENOSYS, "service went away"))
	}
	for s := range subs {
		s.unsubscribe()
	}
	if disconnect {
		for t := range used {
			m := fluxkit.NewRequest(t.topic, t.rank, nil)
			m.Flags |= fluxkit.FlagNoResponse
			m.Userid, m.Rolemask = h.cred.Userid, h.cred.Roles
			m.Route = []string{h.uuid}
			p := h.b.provider(t.rank, m.Service())
			if p == nil || !h.b.reachableBetween(h.rank.id, t.rank) {
				continue
			}
			// The broker sends it on the client's behalf, behind the
			// client's requests on the same links.
			deliver := func() { p.deliver(m, &responder{noResponse: true}) }
			if h.b.quiet() {
				deliver()
			} else {
				h.b.transmit(h.rank.id, t.rank, deliver)
			}
		}
	}
}

func (h *Handle) wake() {
	select {
	case h.signal <- struct{}{}:
	default:
	}
}
