package testbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/kvs"
)

// builtins are the services a broker answers itself; rank0 marks those
// of rank 0 alone.
var builtins = []struct {
	topic string
	allow fluxkit.Role
	rank0 bool
	fn    func(r *Rank) fluxkit.HandlerFunc
}{
	{"attr.get", fluxkit.RoleUser, false, func(r *Rank) fluxkit.HandlerFunc { return r.attrGet }},
	{"attr.set", 0, false, func(r *Rank) fluxkit.HandlerFunc { return r.attrSet }},
	{"config.get", fluxkit.RoleUser, false, func(r *Rank) fluxkit.HandlerFunc { return r.configGet }},
	{"broker.getenv", 0, false, func(r *Rank) fluxkit.HandlerFunc { return r.getenv }},
	{"broker.setenv", 0, false, func(r *Rank) fluxkit.HandlerFunc { return r.setenv }},
	{"broker.ping", fluxkit.RoleUser, false, func(r *Rank) fluxkit.HandlerFunc { return r.ping }},
	{"module.load", 0, false, func(r *Rank) fluxkit.HandlerFunc { return r.moduleLoad }},
	{"module.remove", 0, false, func(r *Rank) fluxkit.HandlerFunc { return r.moduleRemove }},
	{"module.list", fluxkit.RoleUser, false, func(r *Rank) fluxkit.HandlerFunc { return r.moduleList }},
	{"kvs.get", 0, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.rank0kv.get }},
	{"kvs.put", 0, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.rank0kv.put }},
	{"kvs.commit", fluxkit.RoleUser, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.commit }},
	{"kvs.lookup", fluxkit.RoleUser, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.kvstore.ServeLookup }},
	{"kvs.namespace-create", 0, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.kvstore.ServeNamespaceCreate }},
	{"kvs.namespace-remove", 0, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.kvstore.ServeNamespaceRemove }},
	{"groups.get", fluxkit.RoleUser, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.online.get }},
	{"groups.disconnect", fluxkit.RoleUser, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.online.disconnect }},
}

// isBuiltin reports whether rank serves service by itself.
func isBuiltin(rank uint32, service string) bool {
	for _, e := range builtins {
		if (!e.rank0 || rank == 0) && len(e.topic) > len(service) && e.topic[len(service)] == '.' && strings.HasPrefix(e.topic, service) {
			return true
		}
	}
	return false
}

// startBuiltins connects the rank's own broker handle and registers the
// built-in services. It fails only when the instance is closed.
func (r *Rank) startBuiltins() {
	h := newHandle(r.b, r, fluxkit.Cred{Userid: r.b.owner, Roles: fluxkit.RoleOwner | fluxkit.RoleLocal})
	if !r.b.adopt(h) {
		return
	}
	for _, e := range builtins {
		if e.rank0 && r.id != 0 {
			continue
		}
		if _, err := h.Register(e.topic, e.allow, e.fn(r)); err != nil {
			return
		}
	}
}

func (r *Rank) attrGet(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	v, ok := r.Attr(in.Name)
	if !ok {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "unknown attribute %s", in.Name))
		return
	}
	_ = fluxkit.Respond(w, map[string]any{"value": v, "flags": 0})
}

func (r *Rank) attrSet(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	switch in.Name {
	case "rank", "size", "tbon.fanout":
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, "attribute %s is immutable", in.Name))
		return
	}
	r.SetAttr(in.Name, in.Value)
	_ = w.Respond(nil)
}

func (r *Rank) configGet(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
	r.mu.Lock()
	conf := r.config
	r.mu.Unlock()
	_ = w.Respond(conf)
}

func (r *Rank) getenv(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Names []string `json:"names"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	env := map[string]string{}
	for _, n := range in.Names {
		if v, ok := r.Env(n); ok {
			env[n] = v
		}
	}
	_ = fluxkit.Respond(w, map[string]any{"env": env})
}

// setenv answers broker.setenv as flux-core's broker does: {"env": {NAME:
// VALUE or null}}, every name and value checked before any is applied.
func (r *Rank) setenv(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Env map[string]json.RawMessage `json:"env"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	if in.Env == nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "broker.setenv: env is not an object"))
		return
	}
	vals := make(map[string]*string, len(in.Env))
	for name, raw := range in.Env {
		var v *string
		if name == "" || strings.Contains(name, "=") || json.Unmarshal(raw, &v) != nil {
			_ = w.RespondError(&fluxkit.Error{Errnum: fluxkit.EPROTO})
			return
		}
		vals[name] = v
	}
	for name, v := range vals {
		if v == nil {
			r.mu.Lock()
			delete(r.env, name)
			r.mu.Unlock()
		} else {
			r.SetEnv(name, *v)
		}
	}
	_ = w.Respond(nil)
}

func (r *Rank) ping(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	p := req.Payload
	if len(p) == 0 {
		p = []byte("{}")
	}
	_ = w.Respond(p)
}

// moduleLoad answers after the module's latency without holding the rank's
// dispatcher, so loads on one rank overlap as in flux-core, where each
// module starts in its own thread.
func (r *Rank) moduleLoad(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Path string   `json:"path"`
		Name string   `json:"name"`
		Args []string `json:"args"`
		Exec bool     `json:"exec"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	name := in.Name
	if name == "" {
		name = strings.TrimSuffix(path.Base(in.Path), path.Ext(in.Path))
	}
	if name == "" || name == "." || name == "/" {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "module.load: missing module path"))
		return
	}
	start := time.Now()
	r.mu.Lock()
	if _, ok := r.modules[name]; ok {
		r.mu.Unlock()
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EEXIST, "module %s is already loaded", name))
		return
	}
	mod := &module{name: name, path: in.Path, args: in.Args, loading: true}
	r.modules[name] = mod
	d := r.latency[name]
	r.mu.Unlock()
	finish := func() {
		r.mu.Lock()
		err := r.fail[name]
		if err != nil {
			delete(r.modules, name)
		} else {
			mod.loading = false
		}
		r.log = append(r.log, ModuleOp{Op: "load", Name: name, Args: in.Args, Start: start, End: time.Now(), Err: err})
		r.mu.Unlock()
		if err != nil {
			_ = w.RespondError(err)
			return
		}
		_ = w.Respond(nil)
	}
	if d > 0 {
		r.b.after(d, finish)
		return
	}
	finish()
}

func (r *Rank) moduleRemove(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	start := time.Now()
	r.mu.Lock()
	mod, ok := r.modules[in.Name]
	if !ok || mod.loading {
		r.mu.Unlock()
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "module %s is not loaded", in.Name))
		return
	}
	delete(r.modules, in.Name)
	d := r.latency[in.Name]
	r.mu.Unlock()
	finish := func() {
		r.mu.Lock()
		r.log = append(r.log, ModuleOp{Op: "remove", Name: in.Name, Start: start, End: time.Now()})
		r.mu.Unlock()
		_ = w.Respond(nil)
	}
	if d > 0 {
		r.b.after(d, finish)
		return
	}
	finish()
}

type modEntry struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
}

// builtinModule is listed by module.list as flux-core lists its broker
// built-ins, so that consumers learn to skip them.
var builtinModule = modEntry{Name: "connector-local", Path: "builtin"}

func (r *Rank) moduleList(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
	r.mu.Lock()
	mods := []modEntry{builtinModule}
	for _, m := range r.modules {
		if !m.loading {
			mods = append(mods, modEntry{Name: m.name, Path: m.path, Args: m.args})
		}
	}
	r.mu.Unlock()
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	_ = fluxkit.Respond(w, map[string]any{"mods": mods})
}

// commit answers kvs.commit: flux-core's protocol (a payload naming its
// namespace) goes to the KVS store; the older compact form
// ({"ops":[{"key","value"}]}) to the legacy map, until every component
// speaks the real protocol.
func (b *Broker) commit(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	if bytes.Contains(req.Payload, []byte(`"namespace"`)) {
		b.kvstore.ServeCommit(ctx, w, req)
		return
	}
	if !req.Cred().IsOwner() {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired))
		return
	}
	b.rank0kv.commit(ctx, w, req)
}

// KVS is rank 0's key-value store, which serves flux-core's kvs.lookup and
// kvs.commit.
func (b *Broker) KVS() *kvs.Store { return b.kvstore }

// kvs is rank 0's legacy key-value map (kvs.get, kvs.put and the compact
// kvs.commit), kept while components move to flux-core's protocol.
type legacyKV struct {
	mu sync.Mutex
	m  map[string]json.RawMessage
}

func newLegacyKV() *legacyKV { return &legacyKV{m: map[string]json.RawMessage{}} }

// KVSGet returns a value stored in rank 0's KVS (the primary namespace,
// or else the legacy map).
func (b *Broker) KVSGet(key string) (json.RawMessage, bool) {
	if t, err := b.kvstore.Lookup(kvs.Primary, key, 0); err == nil {
		v, err := t.Value()
		return v, err == nil
	}
	b.rank0kv.mu.Lock()
	defer b.rank0kv.mu.Unlock()
	v, ok := b.rank0kv.m[key]
	return v, ok
}

func (k *legacyKV) get(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Key string `json:"key"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	k.mu.Lock()
	v, ok := k.m[in.Key]
	k.mu.Unlock()
	if !ok {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "kvs key %s not found", in.Key))
		return
	}
	_ = fluxkit.Respond(w, map[string]json.RawMessage{"value": v})
}

type kvsOp struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

func (k *legacyKV) put(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var op kvsOp
	if !fluxkit.DecodeRequest(w, req, &op) {
		return
	}
	k.apply(w, []kvsOp{op})
}

func (k *legacyKV) commit(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	if ops, ok := commitOps(req.Payload); ok {
		k.apply(w, ops)
		return
	}
	var in struct {
		Ops []kvsOp `json:"ops"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	k.apply(w, in.Ops)
}

// commitOps decodes a kvs.commit payload in the compact form clients
// write ({"ops":[{"key":"k","value":v},...]} with plain ASCII keys and
// non-null values) without reflection: commits carry every job's exec
// eventlog, and decoding them was the broker's largest cost per job. It
// reports false for anything else, which DecodePayload then decodes (or
// refuses) as before. Values alias p; apply copies them.
func commitOps(p []byte) ([]kvsOp, bool) {
	if !json.Valid(p) {
		return nil, false
	}
	i := 0
	ws := func() {
		for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
			i++
		}
	}
	lit := func(s string) bool {
		ws()
		if len(p)-i >= len(s) && string(p[i:i+len(s)]) == s {
			i += len(s)
			return true
		}
		return false
	}
	if !lit("{") || !lit(`"ops"`) || !lit(":") || !lit("[") {
		return nil, false
	}
	ops := []kvsOp{}
	for !lit("]") {
		if !lit("{") || !lit(`"key"`) || !lit(":") || !lit(`"`) {
			return nil, false
		}
		start := i
		for i < len(p) && p[i] != '"' {
			if c := p[i]; c == '\\' || c < 0x20 || c >= 0x80 {
				return nil, false
			}
			i++
		}
		key := string(p[start:i])
		i++ // the closing quote: p is valid JSON
		if !lit(",") || !lit(`"value"`) || !lit(":") {
			return nil, false
		}
		ws()
		if i >= len(p) || p[i] == 'n' {
			return nil, false
		}
		start = i
		i = valueEnd(p, i)
		ops = append(ops, kvsOp{Key: key, Value: p[start:i]})
		if !lit("}") {
			return nil, false
		}
		if !lit(",") {
			if !lit("]") {
				return nil, false
			}
			break
		}
	}
	if !lit("}") {
		return nil, false
	}
	ws()
	return ops, i == len(p)
}

// valueEnd returns the end of the JSON value starting at p[i], which must
// be valid.
func valueEnd(p []byte, i int) int {
	depth, inStr := 0, false
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case inStr:
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
				if depth == 0 {
					return i + 1
				}
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return i // the end of a bare value inside the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return i
		}
	}
	return i
}

func (k *legacyKV) apply(w fluxkit.Responder, ops []kvsOp) {
	for _, op := range ops {
		if op.Key == "" || len(op.Value) == 0 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "kvs: each op needs a key and a value"))
			return
		}
	}
	k.mu.Lock()
	for _, op := range ops {
		if string(op.Value) == "null" {
			delete(k.m, op.Key)
			continue
		}
		k.m[op.Key] = append(json.RawMessage(nil), op.Value...)
	}
	k.mu.Unlock()
	_ = w.Respond(nil)
}

// onlineGroup serves groups.get for broker.online.
type onlineGroup struct {
	b        *Broker
	mu       sync.Mutex
	last     idset.Set
	watchers map[fluxkit.Responder]string // responder -> sender
}

func newOnlineGroup(b *Broker) *onlineGroup {
	return &onlineGroup{b: b, watchers: map[fluxkit.Responder]string{}}
}

func (g *onlineGroup) get(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	members := idset.Set{}
	if in.Name == "broker.online" {
		members = g.b.Online()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = fluxkit.Respond(w, map[string]string{"members": members.String()})
	if in.Name == "broker.online" && req.IsStreaming() {
		g.last = members
		g.watchers[w] = req.Sender()
	}
}

func (g *onlineGroup) disconnect(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for w, sender := range g.watchers {
		if sender == req.Sender() {
			delete(g.watchers, w)
		}
	}
}

func (g *onlineGroup) changed() {
	members := g.b.Online()
	g.mu.Lock()
	defer g.mu.Unlock()
	if members.Equal(g.last) {
		return
	}
	g.last = members
	p, _ := json.Marshal(map[string]string{"members": members.String()})
	for w := range g.watchers {
		_ = w.Respond(p)
	}
}
