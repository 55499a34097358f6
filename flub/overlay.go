package flub

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/idset"
)

// This file is the overlay's membership as a parent and rank 0 see it:
// children lost, torpid or replaced, subtree status, heartbeats, and rank
// 0's broker.online, broker.torpid and rank pool as membership reports
// reach it. The hello exchange that brings a child in is in hello.go.

// child is the parent's record of one child rank.
type child struct {
	rank     uint32
	uuid     string    // routing id of its current connection
	key      curve.Key // the key that connection authenticated with
	host     string
	status   Status
	lastSeen time.Time
	online   bool
	lost     bool
	torpid   bool
	pending  inflight // requests forwarded to it
}

// hostname is the child's hostlist entry: what it said in hello, else the
// placeholder extra<rank>.
func (c *child) hostname() string {
	if c.host != "" {
		return c.host
	}
	return "extra" + strconv.FormatUint(uint64(c.rank), 10)
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
