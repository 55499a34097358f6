package flub

import (
	"encoding/json"
	"fmt"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// This file is the hello exchange: the payload a child sends its parent on
// each new connection, the parent's checks and its answer.

// protocolVersion is the version brokers exchange in hello,
// (major<<16)|(minor<<8)|patch. Major and minor must match.
const protocolVersion uint32 = 1 << 8 // 0.1.0

func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>16&0xff, v>>8&0xff, v&0xff)
}

// helloPayload is the payload of overlay.hello. Hostname is flux-core master's
// optional key; Reconnect and Subtree are fluxkit's. A broker that lost
// its parent connection says hello again with Reconnect set: the parent
// then refuses it, rather than replacing anyone, when another key holds
// the rank. Subtree lists the broker's online descendants (an idset), which
// come back online with it.
type helloPayload struct {
	Rank      uint32 `json:"rank"`
	Version   uint32 `json:"version"`
	UUID      string `json:"uuid"`
	Status    Status `json:"status"`
	Hostname  string `json:"hostname,omitempty"`
	Reconnect bool   `json:"reconnect,omitempty"`
	Subtree   string `json:"subtree,omitempty"`
}

func decodeHello(m *fluxkit.Message) (helloPayload, error) {
	var raw struct {
		Rank      *int64  `json:"rank"`
		Version   *int64  `json:"version"`
		UUID      *string `json:"uuid"`
		Status    *int64  `json:"status"`
		Hostname  *string `json:"hostname"`
		Reconnect *bool   `json:"reconnect"`
		Subtree   *string `json:"subtree"`
	}
	if err := decodeObject(m, &raw); err != nil {
		return helloPayload{}, err
	}
	if raw.Rank == nil || raw.Version == nil || raw.UUID == nil || raw.Status == nil {
		return helloPayload{}, fluxkit.Errorf(fluxkit.EPROTO, "%s: rank, version, uuid and status are required", m.Topic)
	}
	if *raw.Rank < 0 || *raw.Rank > 1<<32-1 || *raw.Version < 0 || *raw.Version > 1<<32-1 || *raw.Status < 0 || *raw.Status > int64(StatusOffline) {
		return helloPayload{}, fluxkit.Errorf(fluxkit.EPROTO, "%s: rank, version or status out of range", m.Topic)
	}
	h := helloPayload{Rank: uint32(*raw.Rank), Version: uint32(*raw.Version), UUID: *raw.UUID, Status: Status(*raw.Status)}
	if raw.Hostname != nil {
		h.Hostname = *raw.Hostname
	}
	if raw.Reconnect != nil {
		h.Reconnect = *raw.Reconnect
	}
	if raw.Subtree != nil {
		if _, err := idset.Parse(*raw.Subtree); err != nil {
			return helloPayload{}, fluxkit.Errorf(fluxkit.EPROTO, "%s: subtree: %v", m.Topic, err)
		}
		h.Subtree = *raw.Subtree
	}
	return h, nil
}

// helloCheck holds what the parent knows when it checks a hello.
type helloCheck struct {
	me, size uint32
	topo     Topology
	version  uint32
	bound    int64 // rank bound to the authenticating key, -1 if none
}

// check applies the parent's checks of a hello in flux-core's order: owner
// credentials, the rank the key is bound to, a rank that is a child of
// this broker, the protocol version. Unpacking is decodeHello's; what to
// do about a rank that is online already is the caller's.
func (c helloCheck) check(h helloPayload, cred fluxkit.Cred) error {
	if !cred.IsOwner() {
		return fluxkit.Errorf(fluxkit.EPERM, "")
	}
	if c.bound >= 0 && int64(h.Rank) != c.bound {
		return fluxkit.Errorf(fluxkit.EPERM, "key is bound to rank %d, not rank %d", c.bound, h.Rank)
	}
	if h.Rank >= c.size || !c.topo.IsChild(c.me, h.Rank) {
		return fluxkit.Errorf(fluxkit.EINVAL, "rank %d is not a child of rank %d: mismatched config?", h.Rank, c.me)
	}
	if h.Version>>8 != c.version>>8 {
		return fluxkit.Errorf(fluxkit.EINVAL, "client (%s) version mismatched with server (%s)", versionString(h.Version), versionString(c.version))
	}
	return nil
}

// sendHello queues overlay.hello on a new uplink: again after a
// reconnection or rejoin, with the subtree that comes back with it.
func (b *Broker) sendHello(again bool) {
	h := helloPayload{Rank: b.rank, Version: b.p.version, UUID: b.up.id, Status: b.status, Hostname: b.p.hostname, Reconnect: again}
	if again && len(b.below) > 0 {
		h.Subtree = b.below.ids().String()
	}
	p, _ := json.Marshal(h)
	m := fluxkit.NewRequest(topicHello, fluxkit.NodeidAny, p)
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

// hello runs the parent's checks on a child's overlay.hello and, when they
// pass, takes the child in.
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
