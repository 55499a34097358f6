package connect

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// service is a service name this handle registered with the broker through
// service.add. Its topics are in Handle.handlers.
type service struct {
	name   string
	topics int
	// ready is closed when service.add has been answered; err is its
	// outcome. Registrations of further topics of the service wait on it.
	ready chan struct{}
	err   error
}

type registration struct {
	topic  string
	allow  fluxkit.Role
	fn     fluxkit.HandlerFunc
	ctx    context.Context
	cancel context.CancelFunc
}

// Register serves topic; see [fluxkit.Handle]. The first topic of a service
// registers the service with the broker (service.add, which the broker
// allows the instance owner, and guests only for names starting with their
// userid and a dash); the service stays registered while any of its topics
// is. Register waits for the broker's answer for as long as the handle
// lives.
//
// A request for an unregistered topic of a registered service is answered
// ENOSYS "Unknown service method 'TOPIC'", and one from a sender not
// allowed gets EPERM, with flux-core's texts. "<service>.disconnect"
// requests, which the broker sends when a client of the service goes away,
// reach a handler registered for that topic and are otherwise dropped.
func (h *Handle) Register(topic string, allow fluxkit.Role, fn fluxkit.HandlerFunc) (func(), error) {
	name, method, ok := strings.Cut(topic, ".")
	if !ok || name == "" || method == "" {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "topic %q is not SERVICE.METHOD", topic)
	}
	if fn == nil {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "no handler for %s", topic)
	}
	h.mu.Lock()
	if h.err != nil {
		err := h.err
		h.mu.Unlock()
		return nil, err
	}
	if _, dup := h.handlers[topic]; dup {
		h.mu.Unlock()
		return nil, fluxkit.Errorf(fluxkit.EEXIST, "topic %s is already registered", topic)
	}
	svc := h.services[name]
	add := svc == nil
	if add {
		svc = &service{name: name, ready: make(chan struct{})}
		h.services[name] = svc
	}
	svc.topics++
	ctx, cancel := context.WithCancel(h.ctx)
	reg := &registration{topic: topic, allow: allow, fn: fn, ctx: ctx, cancel: cancel}
	h.handlers[topic] = reg
	h.mu.Unlock()

	if add {
		svc.err = fluxkit.RPC(h.ctx, h, "service.add", fluxkit.NodeidAny, map[string]string{"service": name}, nil)
		close(svc.ready)
	} else {
		select {
		case <-svc.ready:
		case <-h.ctx.Done():
		}
	}
	if err := svc.err; err != nil || h.ctx.Err() != nil {
		h.unregister(reg, svc, false)
		if err == nil {
			err = h.endedErr()
		}
		return nil, fmt.Errorf("registering service %s: %w", name, err)
	}
	var once sync.Once
	return func() { once.Do(func() { h.unregister(reg, svc, true) }) }, nil
}

// unregister drops reg; the last topic of a service removes the service
// from the broker (service.remove) when tell is set.
func (h *Handle) unregister(reg *registration, svc *service, tell bool) {
	reg.cancel()
	h.mu.Lock()
	if h.handlers[reg.topic] == reg {
		delete(h.handlers, reg.topic)
	}
	svc.topics--
	last := svc.topics == 0 && h.services[svc.name] == svc
	if last {
		delete(h.services, svc.name)
	}
	h.mu.Unlock()
	if last && tell && svc.err == nil {
		err := fluxkit.RPC(h.ctx, h, "service.remove", fluxkit.NodeidAny, map[string]string{"service": svc.name}, nil)
		if err != nil && h.ctx.Err() == nil {
			h.log.Warn("service.remove failed", "service", svc.name, "err", err)
		}
	}
}

// deliverRequest queues a request from the broker for the dispatcher after
// the checks flux-core's message dispatch makes: a known topic and an
// allowed sender.
func (h *Handle) deliverRequest(m *fluxkit.Message) {
	h.mu.Lock()
	reg := h.handlers[m.Topic]
	h.mu.Unlock()
	w := &responder{h: h, req: m}
	switch {
	case reg == nil:
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOSYS, "Unknown service method '%s'", m.Topic))
	case !m.Cred().Allowed(reg.allow):
		text := "Request requires owner credentials"
		if reg.allow != 0 && reg.allow != fluxkit.RoleOwner {
			text = "Request rejected due to insufficient privilege"
		}
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, "%s", text))
	default:
		h.in.put(delivery{req: m, w: w, reg: reg})
	}
}

// dispatchLoop runs handlers one at a time, in arrival order, as a
// flux-core reactor runs message handlers.
func (h *Handle) dispatchLoop() {
	defer h.wg.Done()
	for {
		d, ok := h.in.take()
		if !ok {
			return
		}
		if d.reg.ctx.Err() != nil {
			_ = d.w.RespondError(fluxkit.Errorf(fluxkit.ENOSYS, "Unknown service method '%s'", d.req.Topic))
			continue
		}
		d.reg.fn(d.reg.ctx, d.w, d.req)
	}
}

type delivery struct {
	req *fluxkit.Message
	w   *responder
	reg *registration
}

// inbox is the dispatcher's queue.
type inbox struct {
	mu     sync.Mutex
	q      []delivery
	closed bool
	signal chan struct{}
}

func (b *inbox) init() { b.signal = make(chan struct{}, 1) }

func (b *inbox) put(d delivery) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.q = append(b.q, d)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *inbox) take() (delivery, bool) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return delivery{}, false
		}
		if len(b.q) > 0 {
			d := b.q[0]
			b.q[0] = delivery{}
			b.q = b.q[1:]
			b.mu.Unlock()
			return d, true
		}
		b.mu.Unlock()
		<-b.signal
	}
}

func (b *inbox) close() {
	b.mu.Lock()
	b.closed = true
	b.q = nil
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// responder answers one request from the broker.
type responder struct {
	h   *Handle
	req *fluxkit.Message

	mu   sync.Mutex
	done bool
}

// Respond sends a response; after the last one of a non-streaming request,
// further responses are dropped, as are responses to FlagNoResponse.
func (r *responder) Respond(payload []byte) error {
	return r.send(fluxkit.ResponseTo(r.req, payload, 0), !r.req.IsStreaming())
}

// RespondError sends an error response, which ends a stream.
func (r *responder) RespondError(err error) error {
	return r.send(fluxkit.ErrorResponse(r.req, err), true)
}

func (r *responder) send(m *fluxkit.Message, final bool) error {
	if r.req.IsNoResponse() {
		return nil
	}
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return nil
	}
	r.done = final
	r.mu.Unlock()
	return r.h.reply(m)
}
