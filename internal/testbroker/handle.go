package testbroker

import (
	"context"
	"strconv"
	"strings"
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
