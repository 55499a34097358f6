package flub

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/fluxkit/fluxkit"
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
	case topicGetinfo:
		return builtinEntry{fluxkit.RoleNone, b.getinfo}, true
	case topicKex:
		return builtinEntry{fluxkit.RoleNone, b.kex}, true
	case topicReclaim:
		return builtinEntry{fluxkit.RoleNone, b.reclaim}, true
	case topicGoodbye:
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
	case topicGroups:
		if b.rank == 0 {
			return builtinEntry{fluxkit.RoleUser, b.groupsGet}, true
		}
	}
	return builtinEntry{}, false
}

func (b *Broker) attrGet(m *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if !b.decode(m, &in) {
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
	if !b.decode(m, &in) {
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
	if !b.decode(m, &in) {
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
	if !b.decode(m, &in) {
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
	b.routeResponse(fluxkit.ResponseTo(m, bytes.Clone(p), 0))
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
