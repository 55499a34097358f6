package flub

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit"
)

// sendParent sends m up once the parent has accepted this connection's
// hello; a parent drops (and answers DISCONNECT to) anything else from a
// connection it does not know. While cut off, a request gets EHOSTUNREACH
// and anything else is dropped: a hello after the reconnection resends the
// membership that matters.
func (b *Broker) sendParent(m *fluxkit.Message) {
	if b.up == nil || !b.helloOK {
		if m.Type == fluxkit.TypeRequest && b.rank != 0 {
			b.respondErr(m, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is not connected to its parent rank %d", b.rank, b.Parent()))
		}
		return
	}
	if m.Type == fluxkit.TypeRequest {
		b.upPending.add(m)
	}
	b.sendUp(m)
}

// sendUp queues m on the uplink, hello or not.
func (b *Broker) sendUp(m *fluxkit.Message) {
	if b.up == nil {
		return
	}
	b.lastUp = b.p.now()
	if b.up.out.push(m.Frames()) {
		b.msgs.Add(1)
	}
}

// sendChild sends to a connected peer of the ROUTER. zmq4's ROUTER drops
// a message for an unknown routing id, but blocks until its send timeout
// when it never had a connection; asking the CURVE server first avoids
// both.
func (b *Broker) sendChild(uuid string, m *fluxkit.Message) {
	if b.router == nil {
		return
	}
	if _, ok := b.srv.Peer([]byte(uuid)); !ok {
		b.log.Debug("send to a disconnected child dropped", "uuid", uuid, "topic", m.Topic)
		return
	}
	b.sendTo(b.router, uuid, m)
}

// rpcKey names a request forwarded over a link, and its responses on the
// way back: they carry the same route stack and matchtag.
func rpcKey(m *fluxkit.Message) string {
	return strings.Join(m.Route, "\x00") + "\x00" + strconv.FormatUint(uint64(m.Matchtag), 10)
}

// inflight is the requests forwarded over one link that still await their
// last response. When the link is lost each gets EHOSTUNREACH, as
// flux-core's rpc tracking does, rather than leaving its caller waiting.
type inflight map[string]*fluxkit.Message

func (f inflight) add(m *fluxkit.Message) {
	if !m.IsNoResponse() {
		f[rpcKey(m)] = m
	}
}

// settle forgets the request a final response answers.
func (f inflight) settle(resp *fluxkit.Message) {
	k := rpcKey(resp)
	if req := f[k]; req != nil && (!req.IsStreaming() || resp.Errnum != 0) {
		delete(f, k)
	}
}

// failInflight answers every request still in flight over a lost link.
func (b *Broker) failInflight(f inflight, why string) {
	for k, req := range f {
		delete(f, k)
		b.respondErr(req, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "%s", why))
	}
}

// requestChild forwards a request to child c, or answers EHOSTUNREACH when
// its connection is gone.
func (b *Broker) requestChild(c *child, m *fluxkit.Message) {
	if _, ok := b.srv.Peer([]byte(c.uuid)); !ok {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is unreachable: lost connection to rank %d", m.Nodeid, c.rank))
		return
	}
	c.pending.add(m)
	b.sendTo(b.router, c.uuid, m)
}

func (b *Broker) control(typ uint32, status Status) *fluxkit.Message {
	return &fluxkit.Message{Type: fluxkit.TypeControl, Userid: fluxkit.UseridUnknown,
		ControlType: typ, ControlStatus: uint32(status)}
}

// respondErr answers req with an error, unless it wants no response.
func (b *Broker) respondErr(req *fluxkit.Message, err error) {
	if req.IsNoResponse() {
		return
	}
	b.routeResponse(errorResponse(req, err))
}

func (b *Broker) respond(req *fluxkit.Message, v any) {
	if req.IsNoResponse() {
		return
	}
	p, err := fluxkit.EncodePayload(v)
	if err != nil {
		b.respondErr(req, err)
		return
	}
	b.routeResponse(fluxkit.ResponseTo(req, p, 0))
}

// decode unpacks the JSON object in m into v, as decodeObject does, and
// answers m with the error when that fails.
func (b *Broker) decode(m *fluxkit.Message, v any) bool {
	if err := decodeObject(m, v); err != nil {
		b.respondErr(m, err)
		return false
	}
	return true
}

// routeRequest sends a request one hop towards its nodeid, or serves it.
func (b *Broker) routeRequest(m *fluxkit.Message) {
	switch n := m.Nodeid; {
	case n == fluxkit.NodeidUpstream:
		if b.rank == 0 {
			b.respondErr(m, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank 0 has no upstream"))
			return
		}
		m.Nodeid = fluxkit.NodeidAny
		b.sendParent(m)
	case n == fluxkit.NodeidAny:
		if b.rank == 0 || b.servesLocally(m.Topic) {
			b.serve(m)
			return
		}
		b.sendParent(m)
	case n == b.rank:
		b.serve(m)
	case n >= b.size:
		b.respondErr(m, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is not in an instance of size %d", n, b.size))
	default:
		if kid, ok := b.p.topo.ChildToward(b.rank, n); ok {
			c := b.children[kid]
			if c == nil || !c.online {
				b.respondErr(m, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is unreachable: rank %d is offline", n, kid))
				return
			}
			b.requestChild(c, m)
			return
		}
		if b.rank == 0 {
			b.respondErr(m, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d is unreachable", n))
			return
		}
		b.sendParent(m)
	}
}

// routeResponse sends a response back along its route stack.
func (b *Broker) routeResponse(m *fluxkit.Message) {
	id, ok := m.PopRoute()
	if !ok {
		return
	}
	switch {
	case id == b.parentUUID && b.up != nil:
		b.sendParent(m)
	case b.childByUUID[id] != nil:
		b.sendChild(id, m)
	case b.clients[id] != nil:
		b.clients[id].calls.deliver(m)
	default:
		if _, ok := b.bootPeers[id]; ok {
			if _, up := b.bootSrv.Peer([]byte(id)); up {
				b.sendTo(b.boot, id, m)
			}
			return
		}
		b.log.Debug("response for an unknown route dropped", "topic", m.Topic, "route", id)
	}
}

func (b *Broker) servesLocally(topic string) bool {
	if _, ok := b.builtin(topic); ok {
		return true
	}
	svc, _, _ := strings.Cut(topic, ".")
	return b.services[svc] > 0
}

// serve runs a request addressed to this broker.
func (b *Broker) serve(m *fluxkit.Message) {
	if bi, ok := b.builtin(m.Topic); ok {
		if !m.Cred().Allowed(bi.allow) {
			b.respondErr(m, notAllowed(bi.allow))
			return
		}
		bi.fn(m)
		return
	}
	reg := b.handlers[m.Topic]
	if reg == nil {
		if strings.HasSuffix(m.Topic, ".disconnect") {
			return
		}
		svc, _, _ := strings.Cut(m.Topic, ".")
		if b.services[svc] > 0 {
			b.respondErr(m, fluxkit.Errorf(fluxkit.ENOSYS, "Unknown service method '%s'", m.Topic))
			return
		}
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOSYS, "No service matching %s is registered", m.Topic))
		return
	}
	if !m.Cred().Allowed(reg.allow) {
		b.respondErr(m, notAllowed(reg.allow))
		return
	}
	w := &responder{b: b, req: m}
	reg.conn.work.push(func() {
		if reg.ctx.Err() == nil {
			reg.h(reg.ctx, w, m)
		}
	})
}

func (b *Broker) addHandler(reg *registration) error {
	if _, ok := b.builtin(reg.topic); ok {
		return fluxkit.Errorf(fluxkit.EEXIST, "%s is served by the broker", reg.topic)
	}
	if b.handlers[reg.topic] != nil {
		return fluxkit.Errorf(fluxkit.EEXIST, "%s is already registered", reg.topic)
	}
	svc, _, _ := strings.Cut(reg.topic, ".")
	// As flux-core's broker: a service has one provider on a rank, and
	// guests may add only services named after their userid.
	if owner := b.serviceOwner[svc]; owner != nil && owner != reg.conn {
		return &fluxkit.Error{Errnum: fluxkit.EEXIST}
	}
	if cred := reg.conn.cred; !cred.IsOwner() && !strings.HasPrefix(svc, strconv.FormatUint(uint64(cred.Userid), 10)+"-") {
		return &fluxkit.Error{Errnum: fluxkit.EPERM}
	}
	b.handlers[reg.topic] = reg
	b.services[svc]++
	b.serviceOwner[svc] = reg.conn
	return nil
}

func (b *Broker) removeHandler(reg *registration) {
	if b.handlers[reg.topic] != reg {
		return
	}
	delete(b.handlers, reg.topic)
	svc, _, _ := strings.Cut(reg.topic, ".")
	if b.services[svc]--; b.services[svc] <= 0 {
		delete(b.services, svc)
		delete(b.serviceOwner, svc)
	}
}

// fromChild handles a message read from the ROUTER: frame 0 is the
// child's routing id.
func (b *Broker) fromChild(frames [][]byte) {
	if len(frames) < 2 {
		return
	}
	id := string(frames[0])
	if b.p.frameHook != nil {
		b.p.frameHook(id, frames)
	}
	m, err := fluxkit.DecodeFrames(frames[1:])
	if err != nil {
		b.log.Info("malformed message", "from", id, "err", err)
		return
	}
	if !payloadTerminated(frames[1:], m) {
		b.log.Info("malformed message", "from", id, "err", "payload lacks its trailing NUL")
		return
	}
	c := b.childByUUID[id]
	if c == nil {
		if m.Type == fluxkit.TypeRequest && m.Topic == topicHello && b.ctx.Err() == nil {
			b.hello(id, m)
			return
		}
		b.sendChild(id, b.control(fluxkit.ControlDisconnect, 0))
		return
	}
	c.lastSeen = b.p.now()
	if c.torpid {
		c.torpid = false
		b.log.Error(fmt.Sprintf("broker on %s (rank %d) is responsive now", c.hostname(), c.rank))
		b.memberChange(memberOp{Op: opResponsive, Rank: c.rank})
	}
	switch m.Type {
	case fluxkit.TypeRequest:
		m.Rolemask &^= fluxkit.RoleLocal
		if m.Topic == topicMember && b.rank != 0 {
			b.snoopMember(m)
		}
		m.PushRoute(id)
		b.routeRequest(m)
	case fluxkit.TypeResponse:
		c.pending.settle(m)
		b.routeResponse(m)
	case fluxkit.TypeEvent:
		b.publish(m)
	case fluxkit.TypeControl:
		if m.ControlType == fluxkit.ControlStatus {
			c.status = Status(m.ControlStatus)
			b.updateStatus()
		}
	}
}

// payloadTerminated reports whether a message with a payload had it NUL
// terminated on the wire, as RFC 3 requires of JSON payloads.
func payloadTerminated(frames [][]byte, m *fluxkit.Message) bool {
	if len(m.Payload) == 0 {
		return true
	}
	// The payload frame is the one before PROTO.
	p := frames[len(frames)-2]
	return len(p) > 0 && p[len(p)-1] == 0
}

// fromParent handles a message read from the DEALER.
func (b *Broker) fromParent(frames [][]byte) {
	m, err := fluxkit.DecodeFrames(frames)
	if err != nil || !payloadTerminated(frames, m) {
		b.log.Info("malformed message from parent", "err", err)
		return
	}
	if m.Type == fluxkit.TypeControl {
		if m.ControlType == fluxkit.ControlDisconnect {
			b.log.Error(fmt.Sprintf("rank %d sent disconnect control message", b.Parent()))
			b.fail(ErrDisconnected)
		}
		return
	}
	if !b.helloOK {
		if m.Type == fluxkit.TypeResponse && m.Topic == topicHello {
			b.helloResponse(m)
			return
		}
		b.log.Info("message received before hello handshake completed", "topic", m.Topic)
		return
	}
	switch m.Type {
	case fluxkit.TypeRequest:
		m.PushRoute(b.parentUUID)
		b.routeRequest(m)
	case fluxkit.TypeResponse:
		b.upPending.settle(m)
		b.routeResponse(m)
	case fluxkit.TypeEvent:
		b.distribute(m)
	}
}

// fromBoot handles a message from a boot-server client: only requests,
// with the credential its key earned (not the one it asserts).
func (b *Broker) fromBoot(frames [][]byte) {
	if len(frames) < 2 {
		return
	}
	id := string(frames[0])
	m, err := fluxkit.DecodeFrames(frames[1:])
	if err != nil || !payloadTerminated(frames[1:], m) || m.Type != fluxkit.TypeRequest {
		b.log.Info("malformed message on the boot socket", "err", err)
		return
	}
	peer, ok := b.bootSrv.Peer(frames[0])
	if !ok {
		return
	}
	cred := fluxkit.Cred{Userid: b.p.ownerUID, Roles: fluxkit.RoleOwner}
	if peer.Key != b.p.owner {
		cred = fluxkit.Cred{Userid: b.p.guests[peer.Key], Roles: fluxkit.RoleUser}
	}
	b.bootPeers[id] = cred
	m.Userid, m.Rolemask = cred.Userid, cred.Roles
	m.PushRoute(id)
	b.routeRequest(m)
}

// publish takes an event from a local client or a child: rank 0 numbers
// and distributes it, other ranks pass it up.
func (b *Broker) publish(m *fluxkit.Message) {
	if b.rank != 0 {
		b.sendParent(m)
		return
	}
	b.seq++
	m.Seq = b.seq
	b.distribute(m)
}

// distribute delivers an event to local subscribers and online children.
func (b *Broker) distribute(m *fluxkit.Message) {
	for s := range b.subs {
		if !strings.HasPrefix(m.Topic, s.prefix) {
			continue
		}
		if m.Flags&fluxkit.FlagPrivate != 0 && !s.cred.IsOwner() && s.cred.Userid != m.Userid {
			continue
		}
		s.q.push(m.Clone())
	}
	for _, c := range b.children {
		if c.online {
			b.sendChild(c.uuid, m)
		}
	}
}

// notAllowed is the refusal of a sender without the roles a handler
// allows, in the words of flux-core's message dispatch.
func notAllowed(allow fluxkit.Role) error {
	if allow == 0 || allow == fluxkit.RoleOwner {
		return fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired)
	}
	return fluxkit.Errorf(fluxkit.EPERM, "Request rejected due to insufficient privilege")
}
