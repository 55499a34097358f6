package flub

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
)

type builtinEntry struct {
	allow fluxkit.Role
	fn    func(*fluxkit.Message)
}

// builtin returns the broker's own service for topic. FLUB handlers are
// owner only (rolemask 0 in flux-core). The other services, their payloads
// and their roles are those of internal/testbroker, so that a component
// behaves the same on both: attr.get, config.get, broker.ping and
// module.list are open to guests; attr.set, broker.getenv/setenv and
// module.load/remove are owner only; rank 0 serves the KVS (package kvs)
// with flux-core's access rule.
func (b *Broker) builtin(topic string) (builtinEntry, bool) {
	switch topic {
	case TopicGetinfo:
		return builtinEntry{fluxkit.RoleNone, b.getinfo}, true
	case TopicKex:
		return builtinEntry{fluxkit.RoleNone, b.kex}, true
	case TopicReclaim:
		return builtinEntry{fluxkit.RoleNone, b.reclaim}, true
	case TopicGoodbye:
		return builtinEntry{fluxkit.RoleNone, b.goodbye}, true
	case "attr.get":
		return builtinEntry{fluxkit.RoleUser, b.attrGet}, true
	case "config.get":
		return builtinEntry{fluxkit.RoleUser, b.configGet}, true
	case "attr.set":
		return builtinEntry{fluxkit.RoleNone, b.attrSet}, true
	case "broker.getenv":
		return builtinEntry{fluxkit.RoleNone, b.getenv}, true
	case "broker.setenv":
		return builtinEntry{fluxkit.RoleNone, b.setenv}, true
	case "broker.ping":
		return builtinEntry{fluxkit.RoleUser, b.ping}, true
	case "module.load":
		return builtinEntry{fluxkit.RoleNone, b.moduleLoad}, true
	case "module.remove":
		return builtinEntry{fluxkit.RoleNone, b.moduleRemove}, true
	case "module.list":
		return builtinEntry{fluxkit.RoleUser, b.moduleList}, true
	case "kvs.lookup", "kvs.commit", "kvs.namespace-create", "kvs.namespace-remove":
		if b.rank == 0 {
			return builtinEntry{fluxkit.RoleUser, b.kvsOp}, true
		}
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

// hostOf is rank r's hostlist entry on rank 0.
func (b *Broker) hostOf(r uint32) string {
	if h, ok := b.hosts[r]; ok {
		return h
	}
	return "extra" + strconv.FormatUint(uint64(r), 10)
}

// currentHostlist is the instance hostlist: the joiners' hostnames and
// extra<rank> placeholders for the rest, built from the named ranks and
// the gaps between them, so its cost follows the ranks in use.
func (b *Broker) currentHostlist() string {
	if !b.hostsStale {
		return b.hostlist
	}
	ranks := make([]uint32, 0, len(b.hosts))
	for r := range b.hosts {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	var hb hostlist.Builder
	next := uint32(0)
	placeholders := func(lo, hi uint32) {
		// A bracket may name at most hostlist.MaxRangeSize hosts; the
		// builder joins the pieces back into one range.
		for lo <= hi {
			end := hi
			if hi-lo >= hostlist.MaxRangeSize {
				end = lo + hostlist.MaxRangeSize - 1
			}
			hb.AppendList(hostlist.MustParse(fmt.Sprintf("extra[%d-%d]", lo, end)))
			if end == hi {
				return
			}
			lo = end + 1
		}
	}
	for _, r := range ranks {
		if r > next {
			placeholders(next, r-1)
		}
		hb.Append(b.hosts[r])
		next = r + 1
	}
	if next < b.size {
		placeholders(next, b.size-1)
	}
	b.hostlist = hb.Hostlist().String()
	b.hostsStale = false
	return b.hostlist
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
			b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "%s: the joiner is configured with %s, the instance uses %s", TextTopoMismatch, t, b.p.topo))
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
	var req ReclaimRequest
	if err := decodeObject(m, &req); err != nil {
		b.respondErr(m, err)
		return
	}
	if b.rank != 0 || b.p.pool == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, TextNoRanks))
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
	c.online, c.lost, c.torpid = false, false, false
	delete(b.childByUUID, c.uuid)
	b.failInflight(c.pending, fmt.Sprintf("rank %d left", c.rank))
	b.memberChange(memberOp{Op: opLeave, Rank: c.rank})
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
		v, ok = b.currentHostlist(), true
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
	if err := decodeObject(m, &in); err != nil {
		b.respondErr(m, err)
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

// respondEmpty answers req with an empty payload, as the test broker's
// Respond(nil) does.
func (b *Broker) respondEmpty(req *fluxkit.Message) {
	if req.IsNoResponse() {
		return
	}
	b.routeResponse(fluxkit.ResponseTo(req, nil, 0))
}

// immutableAttrs are computed by the broker (or handed out by rank 0) and
// refused by attr.set.
var immutableAttrs = map[string]bool{
	"rank": true, "size": true, "tbon.fanout": true, "tbon.topo": true,
	"tbon.endpoint": true, "hostlist": true, "instance-level": true, "security.owner": true,
}

// attrSet serves attr.set {"name","value"}.
func (b *Broker) attrSet(m *fluxkit.Message) {
	var in struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	if err := decodeObject(m, &in); err != nil {
		b.respondErr(m, err)
		return
	}
	if in.Name == "" {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "attr.set: missing attribute name"))
		return
	}
	if immutableAttrs[in.Name] {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EPERM, "attribute %s is immutable", in.Name))
		return
	}
	b.attrMu.Lock()
	if b.p.attrs == nil {
		b.p.attrs = map[string]string{}
	}
	b.p.attrs[in.Name] = in.Value
	b.attrMu.Unlock()
	b.respondEmpty(m)
}

// getenv serves broker.getenv {"names":[...]} with {"env":{...}}: names
// that are not set are left out.
func (b *Broker) getenv(m *fluxkit.Message) {
	var in struct {
		Names []string `json:"names"`
	}
	if err := decodeObject(m, &in); err != nil {
		b.respondErr(m, err)
		return
	}
	env := map[string]string{}
	for _, n := range in.Names {
		if v, ok := b.env[n]; ok {
			env[n] = v
		}
	}
	b.respond(m, map[string]any{"env": env})
}

// setenv serves broker.setenv as flux-core's broker does: {"env": {NAME:
// VALUE or null}}, every name and value checked before any is applied.
func (b *Broker) setenv(m *fluxkit.Message) {
	var in struct {
		Env map[string]json.RawMessage `json:"env"`
	}
	if err := decodeObject(m, &in); err != nil {
		b.respondErr(m, err)
		return
	}
	if in.Env == nil {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EPROTO, "broker.setenv: env is not an object"))
		return
	}
	vals := make(map[string]*string, len(in.Env))
	for name, raw := range in.Env {
		var v *string
		if name == "" || strings.Contains(name, "=") || json.Unmarshal(raw, &v) != nil {
			b.respondErr(m, &fluxkit.Error{Errnum: fluxkit.EPROTO})
			return
		}
		vals[name] = v
	}
	for name, v := range vals {
		if v == nil {
			delete(b.env, name)
		} else {
			b.env[name] = *v
		}
	}
	b.respondEmpty(m)
}

// ping serves broker.ping by echoing the payload ({} when empty).
func (b *Broker) ping(m *fluxkit.Message) {
	p := m.Payload
	if len(p) == 0 {
		p = []byte("{}")
	}
	if m.IsNoResponse() {
		return
	}
	b.routeResponse(fluxkit.ResponseTo(m, append([]byte(nil), p...), 0))
}

// kvsOp serves rank 0's KVS: flux-core's protocol, answered by a
// kvs.Store.
func (b *Broker) kvsOp(m *fluxkit.Message) {
	p, err := b.kvs.Answer(m)
	if err != nil {
		b.respondErr(m, err)
		return
	}
	if m.IsNoResponse() {
		return
	}
	b.routeResponse(fluxkit.ResponseTo(m, p, 0))
}
