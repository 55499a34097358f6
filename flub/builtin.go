package flub

import (
	"encoding/json"
	"strconv"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset/hostlist"
)

type builtinEntry struct {
	allow fluxkit.Role
	fn    func(*fluxkit.Message)
}

// builtin returns the broker's own service for topic. FLUB handlers are
// owner only (rolemask 0 in flux-core).
func (b *Broker) builtin(topic string) (builtinEntry, bool) {
	switch topic {
	case TopicGetinfo:
		return builtinEntry{fluxkit.RoleNone, b.getinfo}, true
	case TopicKex:
		return builtinEntry{fluxkit.RoleNone, b.kex}, true
	case TopicGoodbye:
		return builtinEntry{fluxkit.RoleNone, b.goodbye}, true
	case "attr.get":
		return builtinEntry{fluxkit.RoleUser, b.attrGet}, true
	case "config.get":
		return builtinEntry{fluxkit.RoleUser, b.configGet}, true
	case topicMember:
		if b.rank == 0 {
			return builtinEntry{fluxkit.RoleNone, b.member}, true
		}
	case TopicGroups:
		if b.rank == 0 {
			return builtinEntry{fluxkit.RoleUser, b.groupsGet}, true
		}
	}
	return builtinEntry{}, false
}

func (b *Broker) rebuildHostlist() {
	b.hostlist = hostlist.Of(b.hosts...).String()
}

// getinfo serves overlay.flub-getinfo (§3).
func (b *Broker) getinfo(m *fluxkit.Message) {
	req, err := decodeGetinfoRequest(m)
	if err != nil {
		b.respondErr(m, err)
		return
	}
	if b.rank != 0 || b.p.pool == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, TextNoRanks))
		return
	}
	r, err := b.p.pool.Allocate(b.p.now().Add(b.p.lease))
	if err != nil {
		b.respondErr(m, err)
		return
	}
	if req.Hostname != "" {
		b.pendingHost[r] = req.Hostname
	} else {
		delete(b.pendingHost, r)
	}
	b.log.Info("flub: allocated rank", "allocated", r)
	level := b.p.attrs["instance-level"]
	resp := map[string]any{
		"rank": r,
		"size": b.size,
		"attrs": map[string]string{
			"hostlist":       b.hostlist,
			"instance-level": level,
		},
		"config": b.p.config,
	}
	if b.p.getinfoHook != nil {
		b.p.getinfoHook(resp)
	}
	b.respond(m, resp)
}

// kex serves overlay.flub-kex (§4).
func (b *Broker) kex(m *fluxkit.Message) {
	req, err := decodeKexRequest(m)
	if err != nil {
		b.respondErr(m, err)
		return
	}
	if b.router == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, TextNoChildren))
		return
	}
	if err := b.keystore.authorize(req.Pubkey, req.Name); err != nil {
		b.respondErr(m, err)
		return
	}
	b.respond(m, KexResponse{
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
	c.online, c.lost = false, false
	delete(b.childByUUID, c.uuid)
	b.memberChange(c.rank, false)
	b.updateStatus()
}

func (b *Broker) attrGet(m *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeObject(m, &in); err != nil {
		b.respondErr(m, err)
		return
	}
	var v string
	var ok bool
	if in.Name == "hostlist" && b.rank == 0 {
		v, ok = b.hostlist, true
	} else {
		v, ok = b.Attr(in.Name)
	}
	if !ok {
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOENT, "unknown attribute %s", in.Name))
		return
	}
	b.respond(m, map[string]any{"value": v, "flags": 0})
}

func (b *Broker) configGet(m *fluxkit.Message) {
	c := b.p.config
	if len(c) == 0 {
		c = json.RawMessage("{}")
	}
	b.respond(m, c)
}

// member takes a parent's report that a child joined or left.
func (b *Broker) member(m *fluxkit.Message) {
	var in struct {
		Join  *uint32 `json:"join"`
		Leave *uint32 `json:"leave"`
	}
	if err := decodeObject(m, &in); err != nil {
		b.log.Info("malformed member update", "err", err)
		return
	}
	if in.Join != nil {
		b.setOnline(*in.Join, true)
	}
	if in.Leave != nil {
		b.setOnline(*in.Leave, false)
	}
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
	if err := decodeObject(m, &in); err != nil {
		b.respondErr(m, err)
		return
	}
	if !m.IsStreaming() {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EPROTO, "groups.get requires the streaming flag"))
		return
	}
	if in.Name != "broker.online" {
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOENT, "unknown group %q", in.Name))
		return
	}
	members, _ := json.Marshal(map[string]string{"members": b.Online().String()})
	if in.Until == nil {
		b.respond(m, json.RawMessage(members))
		b.waitAll = append(b.waitAll, &waiter{req: m, until: -1})
		return
	}
	u := *in.Until
	if u < 0 || u >= int64(b.size) {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "until: rank %d is not in an instance of size %d", u, b.size))
		return
	}
	if b.online[u] {
		b.respond(m, json.RawMessage(members))
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENODATA, ""))
		return
	}
	b.waitFor[uint32(u)] = append(b.waitFor[uint32(u)], &waiter{req: m, until: u})
}
