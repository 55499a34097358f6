package flub

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// waiter is a streaming groups.get on rank 0.
type waiter struct {
	req   *fluxkit.Message
	group string
	until int64 // -1: every change
}

// getinfo serves overlay.flub-getinfo: the lowest free rank, leased to the
// joiner, with the instance's attributes and configuration.
func (b *Broker) getinfo(m *fluxkit.Message) {
	req, err := decodeGetinfoRequest(m)
	if err != nil {
		b.respondErr(m, err)
		return
	}
	if b.rank != 0 || b.p.pool == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, textNoRanks))
		return
	}
	if req.Topo != "" {
		// Checked before allocating, so a misconfigured joiner costs no
		// rank: one that computed its parent from another tree would
		// never be found by its own children.
		t, err := ParseTopology(req.Topo)
		if err != nil {
			b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "error creating topology: %s", fluxkit.ErrorText(err)))
			return
		}
		if t != b.p.topo {
			b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "%s: the joiner is configured with %s, the instance uses %s", textTopoMismatch, t, b.p.topo))
			return
		}
	}
	r, err := b.p.pool.Allocate(b.p.now().Add(b.p.lease))
	if err != nil {
		b.respondErr(m, err)
		return
	}
	b.setPendingHost(r, req.Hostname)
	b.log.Info("flub: allocated rank", "allocated", r)
	b.respond(m, b.getinfoResponse(r))
}

func (b *Broker) setPendingHost(r uint32, host string) {
	if host != "" {
		b.pendingHost[r] = host
	} else {
		delete(b.pendingHost, r)
	}
}

// getinfoResponse is the answer to getinfo (and reclaim) for rank r.
func (b *Broker) getinfoResponse(r uint32) map[string]any {
	level, _ := b.Attr("instance-level")
	resp := map[string]any{
		"rank": r,
		"size": b.size,
		"attrs": map[string]string{
			"hostlist":       b.currentHostlist(),
			"instance-level": level,
			// Joiners stamp owner credentials with this userid, so
			// that every rank agrees on who the owner is.
			"security.owner": strconv.FormatUint(uint64(b.p.ownerUID), 10),
			// Joiners adopt the instance's tree, or refuse to join
			// when configured with another.
			"tbon.topo": b.p.topo.String(),
		},
		"config": b.p.config,
	}
	if b.p.getinfoHook != nil {
		b.p.getinfoHook(resp)
	}
	return resp
}

// reclaim serves overlay.flub-reclaim: a broker orphaned by the loss of
// an ancestor takes its rank back, and renews the hold on the online
// descendants it still serves, while no other broker holds them.
func (b *Broker) reclaim(m *fluxkit.Message) {
	var req reclaimRequest
	if !b.decode(m, &req) {
		return
	}
	if b.rank != 0 || b.p.pool == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, textNoRanks))
		return
	}
	var sub idset.Set
	if req.Subtree != "" {
		var err error
		if sub, err = idset.Parse(req.Subtree); err != nil {
			b.respondErr(m, fluxkit.Errorf(fluxkit.EPROTO, "%s: subtree: %v", m.Topic, err))
			return
		}
	}
	deadline := b.p.now().Add(b.p.lease)
	if err := b.p.pool.Reclaim(req.Rank, req.Holder, deadline); err != nil {
		b.respondErr(m, err)
		return
	}
	pool := b.p.pool
	for _, d := range announced(sub, req.Rank, b.p.topo, b.size, int(b.size), func(f func(uint32)) {
		pool.Each(func(r uint32, st RankState) {
			if st == Orphaned || st == Available {
				f(r)
			}
		})
	}) {
		pool.Orphan(d, deadline)
	}
	b.setPendingHost(req.Rank, req.Hostname)
	b.log.Info("flub: rank reclaimed", "reclaimed", req.Rank)
	b.respond(m, b.getinfoResponse(req.Rank))
}

// kex serves overlay.flub-kex: it authorizes the joiner's key on this
// broker's overlay socket and answers with this broker's key and URI.
func (b *Broker) kex(m *fluxkit.Message) {
	req, err := decodeKexRequest(m)
	if err != nil {
		b.respondErr(m, err)
		return
	}
	if b.router == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, textNoChildren))
		return
	}
	if err := b.keystore.authorize(req.Pubkey, req.Name); err != nil {
		b.respondErr(m, err)
		return
	}
	b.respond(m, kexResponse{
		Name:   strconv.FormatUint(uint64(b.rank), 10),
		Pubkey: b.p.keys.Public.String(),
		URI:    b.endpoint,
	})
}

// goodbye serves a child's overlay.goodbye: the child goes offline (not
// lost), so the subtree becomes partial rather than degraded.
func (b *Broker) goodbye(m *fluxkit.Message) {
	var c *child
	if n := len(m.Route); n > 0 {
		c = b.childByUUID[m.Route[n-1]]
	}
	if c == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EPROTO, "overlay.goodbye: sender is not a child of rank %d", b.rank))
		return
	}
	b.respond(m, map[string]any{})
	b.log.Info("child said goodbye", "child", c.rank)
	c.online, c.lost, c.torpid = false, false, false
	delete(b.childByUUID, c.uuid)
	b.failInflight(c.pending, fmt.Sprintf("rank %d left", c.rank))
	b.memberChange(memberOp{Op: opLeave, Rank: c.rank})
	b.updateStatus()
}

// member takes a parent's report of a change among its children.
func (b *Broker) member(m *fluxkit.Message) {
	var op memberOp
	if err := decodeObject(m, &op); err != nil {
		b.log.Info("malformed member update", "err", err)
		return
	}
	b.applyRoot(op)
}

// groupsGet serves a streaming groups.get for broker.online. fluxkit
// extension: with "until": R the stream answers once R is a member and
// then ends (ENODATA), so a waiting joiner costs rank 0 one response per
// join instead of one per membership change.
func (b *Broker) groupsGet(m *fluxkit.Message) {
	var in struct {
		Name  string `json:"name"`
		Until *int64 `json:"until"`
	}
	if !b.decode(m, &in) {
		return
	}
	if !m.IsStreaming() {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EPROTO, "groups.get requires the streaming flag"))
		return
	}
	var ids idset.Set
	switch in.Name {
	case "broker.online":
		ids = b.onlineIDs()
	case "broker.torpid":
		ids = b.torpid.ids()
	default:
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOENT, "unknown group %q", in.Name))
		return
	}
	members, _ := json.Marshal(map[string]string{"members": ids.String()})
	if in.Until == nil {
		b.respond(m, json.RawMessage(members))
		b.waitAll = append(b.waitAll, &waiter{req: m, group: in.Name, until: -1})
		return
	}
	u := *in.Until
	if in.Name != "broker.online" {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "until: only for broker.online"))
		return
	}
	if u < 0 || u >= int64(b.size) {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "until: rank %d is not in an instance of size %d", u, b.size))
		return
	}
	if ids.Contains(uint32(u)) {
		b.respond(m, json.RawMessage(members))
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENODATA, ""))
		return
	}
	b.waitFor[uint32(u)] = append(b.waitFor[uint32(u)], &waiter{req: m, group: in.Name, until: u})
}
