package flub

import (
	"encoding/json"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/go-zeromq/zmq4"
)

// sendTo queues m for socket s (with routing id id on a ROUTER). Each
// socket has its own writer goroutine, so a peer that stops reading holds
// up that socket's writes, never the loop.
func (b *Broker) sendTo(s zmq4.Socket, id string, m *fluxkit.Message) {
	frames := m.Frames()
	if id != "" {
		frames = append([][]byte{[]byte(id)}, frames...)
	}
	if q := b.writers[s]; q != nil && q.push(frames) {
		b.msgs.Add(1)
	}
}

// writer sends what sendTo queued for s until the broker stops.
func (b *Broker) writer(s zmq4.Socket, q *queue[[][]byte]) {
	for {
		frames, ok, _ := q.pop(b.ctx, nil)
		if !ok {
			return
		}
		if err := s.Send(zmq4.NewMsgFrom(frames...)); err != nil && b.ctx.Err() == nil {
			b.log.Debug("overlay send", "err", err)
		}
	}
}

func (b *Broker) sendParent(m *fluxkit.Message) {
	if b.dealer == nil {
		return
	}
	b.lastUp = b.p.now()
	b.sendTo(b.dealer, "", m)
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
			b.sendChild(c.uuid, m)
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
	case id == b.parentUUID && b.dealer != nil:
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
			b.respondErr(m, fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired))
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
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOSYS, "no service matches %s on rank %d", m.Topic, b.rank))
		return
	}
	if !m.Cred().Allowed(reg.allow) {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired))
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
	b.handlers[reg.topic] = reg
	svc, _, _ := strings.Cut(reg.topic, ".")
	b.services[svc]++
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
		if m.Type == fluxkit.TypeRequest && m.Topic == TopicHello && b.ctx.Err() == nil {
			b.hello(id, m)
			return
		}
		b.sendChild(id, b.control(fluxkit.ControlDisconnect, 0))
		return
	}
	c.lastSeen = b.p.now()
	switch m.Type {
	case fluxkit.TypeRequest:
		m.Rolemask &^= fluxkit.RoleLocal
		m.PushRoute(id)
		b.routeRequest(m)
	case fluxkit.TypeResponse:
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
	b.lastUp = b.p.now()
	if m.Type == fluxkit.TypeControl {
		if m.ControlType == fluxkit.ControlDisconnect {
			b.fail(ErrDisconnected)
		}
		return
	}
	if !b.helloOK {
		if m.Type == fluxkit.TypeResponse && m.Topic == TopicHello {
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
	for _, kid := range b.kids {
		if c := b.children[kid]; c != nil && c.online {
			b.sendChild(c.uuid, m)
		}
	}
}

// sendHello queues overlay.hello right after connecting (§14).
func (b *Broker) sendHello() {
	p, _ := json.Marshal(Hello{Rank: b.rank, Version: b.p.version, UUID: b.uuid, Status: b.status})
	m := fluxkit.NewRequest(TopicHello, fluxkit.NodeidAny, p)
	m.Rolemask = fluxkit.RoleOwner
	b.sendParent(m)
}

func (b *Broker) helloResponse(m *fluxkit.Message) {
	if err := fluxkit.ErrorFromResponse(m); err != nil {
		err = fluxkit.Errorf(fluxkit.Errno(err), "overlay.hello: %s", fluxkit.ErrorText(err))
		b.log.Info(err.Error())
		b.helloDone <- err
		b.fail(err)
		return
	}
	var r struct {
		UUID string `json:"uuid"`
	}
	if err := fluxkit.DecodePayload(m, &r); err != nil || r.UUID == "" {
		err := fluxkit.Errorf(fluxkit.EPROTO, "overlay.hello: malformed response")
		b.helloDone <- err
		b.fail(err)
		return
	}
	b.parentUUID = r.UUID
	b.helloOK = true
	b.helloDone <- nil
	// The status may have changed between hello and now.
	b.sendParent(b.control(fluxkit.ControlStatus, b.status))
}

// hello runs the parent's checks on a child's overlay.hello (§16).
func (b *Broker) hello(id string, m *fluxkit.Message) {
	m.PushRoute(id)
	reply := func(v any, err error) {
		var resp *fluxkit.Message
		if err != nil {
			resp = errorResponse(m, err)
		} else {
			p, _ := json.Marshal(v)
			resp = fluxkit.ResponseTo(m, p, 0)
		}
		resp.PopRoute()
		b.sendChild(id, resp)
	}
	h, err := decodeHello(m)
	if err != nil {
		reply(nil, err)
		return
	}
	peer, ok := b.srv.Peer([]byte(id))
	if !ok {
		b.log.Info("hello from a closed connection dropped", "uuid", id)
		return
	}
	bound := int64(-1)
	if r, ok := b.keystore.bound(peer.Key); ok {
		bound = r
	}
	chk := helloCheck{me: b.rank, size: b.size, topo: b.p.topo, version: b.p.version, bound: bound}
	if err := chk.check(h, m.Cred()); err != nil {
		b.log.Info("hello refused", "rank", h.Rank, "err", err)
		reply(nil, err)
		return
	}
	if old := b.children[h.Rank]; old != nil && old.online {
		b.log.Info("reconnected after crash, dropping old connection state", "child", h.Rank)
		b.loseChild(old, "replaced")
	}
	c := &child{rank: h.Rank, uuid: id, status: h.Status, lastSeen: b.p.now(), online: true}
	b.children[h.Rank] = c
	b.childByUUID[id] = c
	b.log.Info("accepting connection", "child", h.Rank, "status", h.Status)
	reply(map[string]string{"uuid": b.uuid}, nil)
	b.memberChange(h.Rank, true)
	b.updateStatus()
}

// loseChild marks an online child lost and tells rank 0.
func (b *Broker) loseChild(c *child, why string) {
	b.log.Info("child lost", "child", c.rank, "why", why)
	b.sendChild(c.uuid, b.control(fluxkit.ControlDisconnect, 0))
	c.online, c.lost = false, true
	delete(b.childByUUID, c.uuid)
	b.memberChange(c.rank, false)
	b.updateStatus()
}

// memberChange reports a child joining or leaving to rank 0.
func (b *Broker) memberChange(r uint32, join bool) {
	if b.rank == 0 {
		b.setOnline(r, join)
		return
	}
	key := "leave"
	if join {
		key = "join"
	}
	p, _ := json.Marshal(map[string]uint32{key: r})
	m := fluxkit.NewRequest(topicMember, 0, p)
	m.Flags |= fluxkit.FlagNoResponse
	m.Rolemask = fluxkit.RoleOwner
	b.sendParent(m)
}

// computeStatus derives the subtree status from the children.
func (b *Broker) computeStatus() Status {
	st := StatusFull
	for _, kid := range b.kids {
		c := b.children[kid]
		switch {
		case c == nil || (!c.online && !c.lost):
			if st == StatusFull {
				st = StatusPartial
			}
		case c.lost || c.status == StatusDegraded || c.status == StatusLost:
			return StatusDegraded
		case c.status != StatusFull:
			st = StatusPartial
		}
	}
	return st
}

func (b *Broker) updateStatus() {
	st := b.computeStatus()
	if st == b.status {
		return
	}
	b.status = st
	b.statusVal.Store(uint32(st))
	if b.helloOK {
		b.sendParent(b.control(fluxkit.ControlStatus, st))
	}
}

// tick runs heartbeats, liveness checks and lease expiry.
func (b *Broker) tick() {
	now := b.p.now()
	if b.dealer != nil && b.helloOK {
		if now.Sub(b.lastUp) >= b.p.heartbeat {
			b.sendParent(b.control(fluxkit.ControlHeartbeat, b.status))
		}
		// The CURVE client lists the parent while its connection is up;
		// zmq4 does not reconnect, so two empty looks mean it is gone.
		if len(b.cl.Peers()) == 0 {
			b.parentGone++
			if b.parentGone >= 2 {
				b.fail(ErrParentLost)
				return
			}
		} else {
			b.parentGone = 0
		}
	}
	for _, c := range b.children {
		if !c.online {
			continue
		}
		if _, ok := b.srv.Peer([]byte(c.uuid)); !ok {
			b.loseChild(c, "connection closed")
		} else if now.Sub(c.lastSeen) > b.p.lostTimeout {
			b.loseChild(c, "silent")
		}
	}
	if b.rank == 0 {
		for _, r := range b.p.pool.Expire(now) {
			b.log.Info("flub: lease expired, rank back in the pool", "expired", r)
		}
		for id := range b.bootPeers {
			if _, ok := b.bootSrv.Peer([]byte(id)); !ok {
				delete(b.bootPeers, id)
			}
		}
		b.pruneWaiters()
	}
}

// reachable reports whether a response to req could still be delivered:
// the next hop back is an online child, a local client or a connected
// boot client.
func (b *Broker) reachable(req *fluxkit.Message) bool {
	if len(req.Route) == 0 {
		return false
	}
	id := req.Route[len(req.Route)-1]
	if b.childByUUID[id] != nil || b.clients[id] != nil {
		return true
	}
	_, ok := b.bootPeers[id]
	return ok
}

// pruneWaiters drops broker.online watchers whose requester went away (a
// joiner that gave up), so abandoned streams do not accumulate.
func (b *Broker) pruneWaiters() {
	keep := b.waitAll[:0]
	for _, w := range b.waitAll {
		if b.reachable(w.req) {
			keep = append(keep, w)
		}
	}
	clear(b.waitAll[len(keep):])
	b.waitAll = keep
	for r, ws := range b.waitFor {
		k := ws[:0]
		for _, w := range ws {
			if b.reachable(w.req) {
				k = append(k, w)
			}
		}
		if len(k) == 0 {
			delete(b.waitFor, r)
		} else {
			b.waitFor[r] = k
		}
	}
}

// setOnline updates broker.online on rank 0, with rank r's subtree on a
// leave: its brokers lost their path to rank 0 with it.
func (b *Broker) setOnline(r uint32, on bool) {
	if r == 0 || r >= b.size {
		return
	}
	if on {
		if b.online[r] {
			return
		}
		b.online[r] = true
		b.p.pool.SetOnline(r)
		if h := b.pendingHost[r]; h != "" {
			b.hosts[r] = h
			delete(b.pendingHost, r)
			b.rebuildHostlist()
		}
	} else {
		changed := false
		for x := r; x < b.size; x++ {
			if !b.online[x] {
				continue
			}
			if x == r || func() bool { _, ok := b.p.topo.ChildToward(r, x); return ok }() {
				b.online[x] = false
				b.p.pool.SetOffline(x)
				changed = true
			}
		}
		if !changed {
			return
		}
	}
	b.publishOnline()
	set := b.Online()
	members, _ := json.Marshal(map[string]string{"members": set.String()})
	for _, w := range b.waitAll {
		b.routeResponse(fluxkit.ResponseTo(w.req, members, 0))
	}
	if on {
		ws := b.waitFor[r]
		delete(b.waitFor, r)
		for _, w := range ws {
			b.routeResponse(fluxkit.ResponseTo(w.req, members, 0))
			b.routeResponse(errorResponse(w.req, fluxkit.Errorf(fluxkit.ENODATA, "")))
		}
	}
}

func (b *Broker) publishOnline() {
	var bl idset.Builder
	for r, on := range b.online {
		if on {
			bl.Add(uint32(r))
		}
	}
	s := bl.Set()
	b.onlineSet.Store(&s)
}
