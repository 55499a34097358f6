package testbroker

import (
	"context"
	"strings"
	"sync"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/callq"
)

// Request sends a request; see fluxkit.Handle. The payload is not copied:
// the caller must not modify it after sending.
func (h *Handle) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := fluxkit.ValidateRequest(req); err != nil {
		return nil, err
	}
	noResp := req.IsNoResponse()
	m := *req
	m.Route = []string{h.uuid}
	m.Flags |= fluxkit.FlagRoute
	if !h.cred.IsOwner() || m.Userid == fluxkit.UseridUnknown {
		// Guests never choose their credentials; the owner may, as
		// flux-core's connector allows, to act for another user.
		m.Userid, m.Rolemask = h.cred.Userid, h.cred.Roles
	}
	if m.Nodeid == fluxkit.NodeidUpstream {
		m.Flags |= fluxkit.FlagUpstream
		m.Nodeid = h.rank.id
	}

	var c *callq.Call
	if noResp {
		m.Matchtag = fluxkit.MatchtagNone
		h.mu.Lock()
		closed := h.closed
		h.mu.Unlock()
		if closed {
			return nil, errClosed
		}
	} else {
		var err error
		if c, err = h.calls.Add(m.Flags&fluxkit.FlagStreaming != 0); err != nil {
			return nil, err
		}
		m.Matchtag = c.Matchtag()
	}

	rsp := &responder{b: h.b, caller: h, noResponse: noResp}
	rsp.req = &m
	provider, dst, err := h.b.route(h, &m)
	if err != nil {
		rsp.src, rsp.dst = h.rank.id, h.rank.id
		rsp.fail(err)
		return callOrNil(c), nil
	}
	rsp.src, rsp.dst = h.rank.id, dst
	h.mu.Lock()
	if h.used != nil {
		h.used[target{disconnectTopic(m.Topic), dst}] = struct{}{}
	}
	h.mu.Unlock()
	if h.b.quiet() {
		provider.deliver(&m, rsp)
		return callOrNil(c), nil
	}
	h.b.transmit(rsp.src, rsp.dst, func() {
		if !h.b.reachableBetween(rsp.src, rsp.dst) {
			rsp.fail(fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank unreachable"))
			return
		}
		provider.deliver(&m, rsp)
	})
	return callOrNil(c), nil
}

func callOrNil(c *callq.Call) fluxkit.Call {
	if c == nil {
		return nil
	}
	return c
}

// route finds the handle serving m and its rank.
func (b *Broker) route(h *Handle, m *fluxkit.Message) (*Handle, uint32, error) {
	service := m.Service()
	src := h.rank.id
	if m.Nodeid == fluxkit.NodeidAny || m.Flags&fluxkit.FlagUpstream != 0 {
		if !b.up(src) {
			return nil, 0, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is down", src)
		}
		r := src
		if m.Flags&fluxkit.FlagUpstream != 0 {
			p, ok := b.Parent(src)
			if !ok {
				return nil, 0, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank 0 has no upstream")
			}
			r = p
		}
		for {
			if !b.up(r) {
				return nil, 0, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is down", r)
			}
			if p := b.provider(r, service); p != nil {
				return p, r, nil
			}
			parent, ok := b.Parent(r)
			if !ok {
				return nil, 0, noService(m.Topic)
			}
			r = parent
		}
	}
	if int(m.Nodeid) >= b.size {
		return nil, 0, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "no route to rank %d", m.Nodeid)
	}
	if !b.reachableBetween(src, m.Nodeid) {
		return nil, 0, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "no route to rank %d", m.Nodeid)
	}
	p := b.provider(m.Nodeid, service)
	if p == nil {
		return nil, 0, noService(m.Topic)
	}
	return p, m.Nodeid, nil
}

// noService is the broker's answer for a topic no service matches, in
// flux-core's words.
func noService(topic string) error {
	return fluxkit.Errorf(fluxkit.ENOSYS, "No service matching %s is registered", topic)
}

// noMethod is a service provider's answer for a topic it did not register,
// in the words of flux-core's message dispatch.
func noMethod(topic string) error {
	return fluxkit.Errorf(fluxkit.ENOSYS, "Unknown service method '%s'", topic)
}

// notAllowed is a provider's answer to a sender without the roles a
// handler allows, in the words of flux-core's message dispatch.
func notAllowed(allow fluxkit.Role) error {
	if allow == 0 || allow == fluxkit.RoleOwner {
		return fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired)
	}
	return fluxkit.Errorf(fluxkit.EPERM, "Request rejected due to insufficient privilege")
}

// disconnectTopic is the topic of the message a client's departure sends
// for a request topic: its last component replaced, as flux-core does
// ("a.b.c" gives "a.b.disconnect").
func disconnectTopic(topic string) string {
	if i := strings.LastIndexByte(topic, '.'); i >= 0 {
		return topic[:i] + ".disconnect"
	}
	return "disconnect"
}

// responder answers one delivered request.
type responder struct {
	b          *Broker
	req        *fluxkit.Message
	caller     *Handle
	provider   *Handle
	src, dst   uint32 // caller's rank, provider's rank
	noResponse bool

	mu   sync.Mutex
	done bool
}

func (r *responder) Respond(payload []byte) error {
	if r.noResponse {
		return nil
	}
	return r.send(fluxkit.ResponseTo(r.req, payload, 0), !r.req.IsStreaming())
}

func (r *responder) RespondError(err error) error {
	if r.noResponse {
		return nil
	}
	return r.send(fluxkit.ErrorResponse(r.req, err), true)
}

func (r *responder) send(resp *fluxkit.Message, final bool) error {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return nil
	}
	if final {
		r.done = true
	}
	r.mu.Unlock()
	if final && r.provider != nil {
		r.provider.donePending(r)
	}
	if r.provider != nil {
		resp.Userid, resp.Rolemask = r.provider.cred.Userid, r.provider.cred.Roles
	}
	if !r.b.reachableBetween(r.src, r.dst) {
		return nil
	}
	if r.b.quiet() {
		r.caller.deliverResponse(resp)
		return nil
	}
	r.b.transmit(r.dst, r.src, func() { r.caller.deliverResponse(resp) })
	return nil
}

// fail ends the request with err, delivered to the caller without crossing
// links: it models errors raised by the broker, not by the service.
func (r *responder) fail(err error) {
	if r.noResponse {
		return
	}
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.done = true
	r.mu.Unlock()
	if r.provider != nil {
		r.provider.donePending(r)
	}
	r.caller.deliverResponse(fluxkit.ErrorResponse(r.req, err))
}

func (h *Handle) deliverResponse(resp *fluxkit.Message) { h.calls.Deliver(resp) }
