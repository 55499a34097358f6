package flub

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// This file is the overlay's membership: hello and its answer, children
// lost, torpid or replaced, subtree status, and rank 0's broker.online,
// broker.torpid and rank pool as membership reports reach it.

func (c *child) hostname() string {
	if c.host != "" {
		return c.host
	}
	return "extra" + strconv.FormatUint(uint64(c.rank), 10)
}

// sendHello queues overlay.hello on a new uplink (§14): again after a
// reconnection or rejoin, with the subtree that comes back with it.
func (b *Broker) sendHello(again bool) {
	h := Hello{Rank: b.rank, Version: b.p.version, UUID: b.up.id, Status: b.status, Hostname: b.p.hostname, Reconnect: again}
	if again && len(b.below) > 0 {
		h.Subtree = b.below.ids().String()
	}
	p, _ := json.Marshal(h)
	m := fluxkit.NewRequest(TopicHello, fluxkit.NodeidAny, p)
	m.Rolemask = fluxkit.RoleOwner
	b.sendUp(m)
}

func (b *Broker) helloResponse(m *fluxkit.Message) {
	if err := fluxkit.ErrorFromResponse(m); err != nil {
		err = fluxkit.Errorf(fluxkit.Errno(err), "overlay.hello: %s", fluxkit.ErrorText(err))
		b.log.Info(err.Error())
		if b.joined && fluxkit.Errno(err) == fluxkit.EEXIST {
			err = fmt.Errorf("%w: %w", ErrReplaced, err)
		}
		select {
		case b.helloDone <- err:
		default:
		}
		b.fail(err)
		return
	}
	var r struct {
		UUID string `json:"uuid"`
	}
	if err := fluxkit.DecodePayload(m, &r); err != nil || r.UUID == "" {
		err := fluxkit.Errorf(fluxkit.EPROTO, "overlay.hello: malformed response")
		select {
		case b.helloDone <- err:
		default:
		}
		b.fail(err)
		return
	}
	if b.joined {
		b.log.Info("reconnected to parent", "parent", b.Parent(), "uri", b.p.parentURI)
	}
	b.parentUUID = r.UUID
	b.helloOK, b.joined = true, true
	select {
	case b.helloDone <- nil:
	default:
	}
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
	old := b.children[h.Rank]
	if old != nil && old.online {
		if h.Reconnect && old.key != peer.Key {
			// A broker cut off from us comes back to find its rank held by
			// another key: it was replaced meanwhile and must not displace
			// the replacement.
			err := fluxkit.Errorf(fluxkit.EEXIST, "rank %d is held by another broker", h.Rank)
			b.log.Info("hello refused", "rank", h.Rank, "err", err)
			reply(nil, err)
			return
		}
		if h.Reconnect {
			b.log.Info("child reconnected, dropping its old connection", "child", h.Rank)
		} else {
			b.log.Error(fmt.Sprintf("%s (rank %d) reconnected after crash, dropping old connection state", old.hostname(), h.Rank))
		}
		b.sendChild(old.uuid, b.control(fluxkit.ControlDisconnect, 0))
		delete(b.childByUUID, old.uuid)
		b.failInflight(old.pending, fmt.Sprintf("rank %d reconnected: its old connection is gone", h.Rank))
	}
	c := &child{rank: h.Rank, uuid: id, key: peer.Key, host: h.Hostname, status: h.Status, lastSeen: b.p.now(), online: true, pending: inflight{}}
	b.children[h.Rank] = c
	b.childByUUID[id] = c
	b.log.Info(fmt.Sprintf("accepting connection from %s (rank %d) status %s", c.hostname(), h.Rank, h.Status))
	reply(map[string]string{"uuid": *b.uuid.Load()}, nil)
	// One report whether the rank is new or changed hands: rank 0 never
	// sees it offline in between.
	b.memberChange(memberOp{Op: opJoin, Rank: h.Rank, Subtree: h.Subtree})
	b.updateStatus()
}

// loseChild marks an online child lost (its connection failed, or it was
// disconnected) and tells rank 0.
func (b *Broker) loseChild(c *child, why string) {
	b.log.Error(fmt.Sprintf("%s (rank %d) %s", c.hostname(), c.rank, why))
	b.sendChild(c.uuid, b.control(fluxkit.ControlDisconnect, 0))
	c.online, c.lost, c.torpid = false, true, false
	delete(b.childByUUID, c.uuid)
	b.failInflight(c.pending, fmt.Sprintf("lost connection to rank %d", c.rank))
	b.memberChange(memberOp{Op: opLost, Rank: c.rank})
	b.updateStatus()
}

// memberChange applies a change among this broker's children to its view
// of its subtree and reports it towards rank 0, which applies it to
// broker.online, broker.torpid and the rank pool.
func (b *Broker) memberChange(op memberOp) {
	if b.rank == 0 {
		b.applyRoot(op)
		return
	}
	b.applyBelow(op)
	m := fluxkit.NewRequest(topicMember, 0, op.encode())
	m.Flags |= fluxkit.FlagNoResponse
	m.Rolemask = fluxkit.RoleOwner
	b.sendParent(m)
}

// snoopMember applies a report passing up from the subtree to this
// broker's view of it, so that a hello after a reconnection can announce
// the subtree.
func (b *Broker) snoopMember(m *fluxkit.Message) {
	var op memberOp
	if err := decodeObject(m, &op); err != nil {
		return // rank 0 logs it
	}
	b.applyBelow(op)
}

func (b *Broker) applyBelow(op memberOp) {
	if op.Rank == b.rank || !b.p.topo.Contains(b.rank, op.Rank) {
		return
	}
	var sub []uint32
	if op.Op == opJoin && op.Subtree != "" {
		set, err := idset.Parse(op.Subtree)
		if err != nil {
			return
		}
		sub = announced(set, op.Rank, b.p.topo, b.size, maxAnnounced, nil)
	}
	applyMember(b.below, b.p.topo, b.size, op, sub)
}

// applyRoot applies a membership report on rank 0.
func (b *Broker) applyRoot(op memberOp) {
	if op.Rank == 0 || op.Rank >= b.size {
		return
	}
	switch op.Op {
	case opTorpid:
		if b.below.has(op.Rank) && !b.torpid.has(op.Rank) {
			b.torpid[op.Rank] = struct{}{}
			b.groupChanged("broker.torpid")
		}
		return
	case opResponsive:
		if b.torpid.has(op.Rank) {
			delete(b.torpid, op.Rank)
			b.groupChanged("broker.torpid")
		}
		return
	case opJoin, opLost, opLeave:
	default:
		b.log.Info("malformed member update", "op", op.Op)
		return
	}
	var sub []uint32
	if op.Op == opJoin && op.Subtree != "" {
		set, err := idset.Parse(op.Subtree)
		if err != nil {
			b.log.Info("malformed member update", "err", err)
			return
		}
		// Only ranks the pool has seen can be in use: walking those
		// instead of a bogus huge idset keeps the cost real.
		pool := b.p.pool
		sub = announced(set, op.Rank, b.p.topo, b.size, int(b.size), func(f func(uint32)) {
			if set.Len() <= len(pool.slots) {
				for d := range set.All() {
					f(d)
				}
				return
			}
			pool.Each(func(r uint32, _ RankState) { f(r) })
		})
	}
	ch := applyMember(b.below, b.p.topo, b.size, op, sub)
	deadline := b.p.now().Add(b.p.lease)
	for _, r := range ch.online {
		b.p.pool.SetOnline(r)
		if h := b.pendingHost[r]; h != "" {
			b.hosts[r] = h
			delete(b.pendingHost, r)
			b.hostsStale = true
		}
	}
	for _, r := range ch.offline {
		b.p.pool.SetOffline(r)
	}
	for _, r := range ch.orphaned {
		b.p.pool.Orphan(r, deadline)
		b.log.Info("flub: rank orphaned by the loss of an ancestor", "orphaned", r, "until", deadline)
	}
	torpidChanged := false
	for _, r := range append(ch.offline, ch.orphaned...) {
		if b.torpid.has(r) {
			delete(b.torpid, r)
			torpidChanged = true
		}
	}
	if torpidChanged {
		b.groupChanged("broker.torpid")
	}
	if len(ch.online)+len(ch.offline)+len(ch.orphaned) == 0 {
		return
	}
	b.onlineChanged()
	b.groupChanged("broker.online")
	if op.Op == opJoin {
		members, _ := json.Marshal(map[string]string{"members": b.onlineIDs().String()})
		for _, r := range ch.online {
			ws := b.waitFor[r]
			delete(b.waitFor, r)
			for _, w := range ws {
				b.routeResponse(fluxkit.ResponseTo(w.req, members, 0))
				b.routeResponse(errorResponse(w.req, fluxkit.Errorf(fluxkit.ENODATA, "")))
			}
		}
	}
}

// groupChanged answers the watchers of every change to group.
func (b *Broker) groupChanged(group string) {
	var ids idset.Set
	if group == "broker.online" {
		ids = b.onlineIDs()
	} else {
		ids = b.torpid.ids()
	}
	members, _ := json.Marshal(map[string]string{"members": ids.String()})
	for _, w := range b.waitAll {
		if w.group == group {
			b.routeResponse(fluxkit.ResponseTo(w.req, members, 0))
		}
	}
}

// onlineChanged drops rank 0's cached broker.online.
func (b *Broker) onlineChanged() {
	b.onlineCache = nil
	b.onlineSet.Store(nil)
}

// onlineIDs is broker.online on rank 0, built once per change.
func (b *Broker) onlineIDs() idset.Set {
	if b.onlineCache == nil {
		var bl idset.Builder
		bl.Add(0)
		for _, r := range b.below.sorted() {
			bl.Add(r)
		}
		s := bl.Set()
		b.onlineCache = &s
		b.onlineSet.Store(&s)
	}
	return *b.onlineCache
}

// computeStatus derives the subtree status from the children, without
// listing the children the topology allows (rank 0 of a flat instance may
// have 2^31 of them): those without a record are missing.
func (b *Broker) computeStatus() Status {
	st := StatusFull
	present := uint32(0)
	for _, c := range b.children {
		switch {
		case c.lost:
			return StatusDegraded
		case !c.online:
			continue
		case c.status == StatusDegraded || c.status == StatusLost:
			return StatusDegraded
		case c.status != StatusFull:
			st = StatusPartial
		}
		present++
	}
	if present < b.p.topo.NumChildren(b.rank, b.size) {
		st = StatusPartial
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
	if b.up != nil {
		if b.helloOK && now.Sub(b.lastUp) >= b.p.heartbeat {
			b.sendParent(b.control(fluxkit.ControlHeartbeat, b.status))
		}
		// The CURVE client lists the parent while its connection is up;
		// zmq4 does not reconnect, so two empty looks mean it is gone.
		if len(b.up.cl.Peers()) == 0 {
			if b.up.gone++; b.up.gone >= 2 {
				b.parentLost("connection closed")
			}
		} else {
			b.up.gone = 0
		}
	}
	for _, c := range b.children {
		if !c.online {
			continue
		}
		if _, ok := b.srv.Peer([]byte(c.uuid)); !ok {
			b.loseChild(c, "lost connection")
			continue
		}
		// Silence makes a child torpid, never lost (flux-core's
		// tbon.torpid_max): only its connection failing does.
		if silent := now.Sub(c.lastSeen); silent >= b.p.torpidMax && !c.torpid {
			c.torpid = true
			b.log.Error(fmt.Sprintf("broker on %s (rank %d) has been unresponsive for %v", c.hostname(), c.rank, silent.Round(time.Second)))
			b.memberChange(memberOp{Op: opTorpid, Rank: c.rank})
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

// pruneWaiters drops group watchers whose requester went away (a joiner
// that gave up), so abandoned streams do not accumulate.
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
