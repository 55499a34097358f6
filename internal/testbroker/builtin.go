package testbroker

import (
	"context"
	"encoding/json"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/fluxkit/fluxkit"
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
	{"kvs.commit", fluxkit.RoleUser, true, func(r *Rank) fluxkit.HandlerFunc { return r.b.kvstore.ServeCommit }},
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
	slices.SortFunc(mods, func(a, b modEntry) int { return strings.Compare(a.Name, b.Name) })
	_ = fluxkit.Respond(w, map[string]any{"mods": mods})
}
