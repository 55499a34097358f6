package testbroker

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/fluxkit/fluxkit"
)

type registration struct {
	topic  string
	allow  fluxkit.Role
	fn     fluxkit.HandlerFunc
	ctx    context.Context
	cancel context.CancelFunc
}

type delivery struct {
	req *fluxkit.Message
	rsp *responder
	reg *registration
}

// deliver queues a routed request for this handle's dispatcher, after the
// checks the broker makes on the provider's side: the topic is known and the
// sender's roles are allowed.
func (h *Handle) deliver(m *fluxkit.Message, rsp *responder) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		rsp.fail(noService(m.Topic))
		return
	}
	reg := h.handlers[m.Topic]
	if reg == nil {
		h.mu.Unlock()
		rsp.fail(noMethod(m.Topic))
		return
	}
	if !m.Cred().Allowed(reg.allow) {
		h.mu.Unlock()
		rsp.fail(notAllowed(reg.allow))
		return
	}
	rsp.provider = h
	if !rsp.noResponse {
		h.pending[rsp] = struct{}{}
	}
	h.inbox = append(h.inbox, delivery{req: m, rsp: rsp, reg: reg})
	h.mu.Unlock()
	h.wake()
}

func (h *Handle) donePending(rsp *responder) {
	h.mu.Lock()
	if h.pending != nil {
		delete(h.pending, rsp)
	}
	h.mu.Unlock()
}

func (h *Handle) pendingResponders() []*responder {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*responder, 0, len(h.pending))
	for r := range h.pending {
		out = append(out, r)
	}
	return out
}

// Register serves topic; see fluxkit.Handle.
func (h *Handle) Register(topic string, allow fluxkit.Role, fn fluxkit.HandlerFunc) (func(), error) {
	service, _, ok := strings.Cut(topic, ".")
	if !ok || service == "" {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "topic %q has no service part", topic)
	}
	// As flux-core's broker: guests may add only services named after
	// their userid ("1001-myservice").
	if !h.cred.IsOwner() && !strings.HasPrefix(service, strconv.FormatUint(uint64(h.cred.Userid), 10)+"-") {
		return nil, &fluxkit.Error{Errnum: fluxkit.EPERM}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errClosed
	}
	if _, dup := h.handlers[topic]; dup {
		h.mu.Unlock()
		return nil, fluxkit.Errorf(fluxkit.EEXIST, "topic %s is already registered", topic)
	}
	if h.services[service] == 0 {
		if err := h.rank.addService(service, h); err != nil {
			h.mu.Unlock()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(h.ctx)
	reg := &registration{topic: topic, allow: allow, fn: fn, ctx: ctx, cancel: cancel}
	h.handlers[topic] = reg
	h.services[service]++
	startDispatcher := !h.dispatcher
	h.dispatcher = true
	h.mu.Unlock()
	if startDispatcher && !h.b.goOwned(h.dispatch) {
		return nil, errClosed
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.handlers == nil || h.handlers[topic] != reg {
				return
			}
			delete(h.handlers, topic)
			h.services[service]--
			if h.services[service] == 0 {
				delete(h.services, service)
				h.rank.removeService(service, h)
			}
		})
	}, nil
}

func (h *Handle) dispatch() {
	for {
		h.mu.Lock()
		for len(h.inbox) == 0 && !h.closed {
			h.mu.Unlock()
			select {
			case <-h.signal:
			case <-h.ctx.Done():
				return
			}
			h.mu.Lock()
		}
		if h.closed {
			h.mu.Unlock()
			return
		}
		d := h.inbox[0]
		h.inbox[0] = delivery{}
		h.inbox = h.inbox[1:]
		h.mu.Unlock()
		if d.reg.ctx.Err() != nil {
			// Unregistered after the request was queued.
			d.rsp.fail(noService(d.req.Topic))
			continue
		}
		d.reg.fn(d.reg.ctx, d.rsp, d.req)
	}
}
