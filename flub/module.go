package flub

import (
	"cmp"
	"context"
	"errors"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
)

// ModuleFunc is the main loop of a Go broker module, the counterpart of a
// flux-core module's mod_main. It is started by module.load on a goroutine
// the broker owns, with a connection h of its own (owner credentials) and
// the load's arguments, and it runs until ctx is cancelled (module.remove,
// [Broker.Close], or the broker stopping on its own).
//
// The load is answered once the module is running: when it calls
// SetRunning on h (h implements interface{ SetRunning() }, so a module in
// another package needs no import of flub; [SetRunning] does the type
// assertion) or, failing that, never: a module that returns before it is
// running fails the load with its error. Register services before calling
// SetRunning so that a client that saw the load succeed finds them.
//
// Returning nil or an error wrapping ctx.Err() after cancellation is a clean
// exit; any other return is logged and the module is dropped from
// module.list. The broker closes h once the function has returned.
type ModuleFunc func(ctx context.Context, h fluxkit.Handle, args []string) error

// DefaultModuleTimeout bounds how long module.load waits for a module to
// call SetRunning.
const DefaultModuleTimeout = 30 * time.Second

// SetRunning tells the broker that the module whose handle is h is running,
// answering its module.load. It does nothing for a handle that is not a
// module's, and after the first call.
func SetRunning(h fluxkit.Handle) {
	if r, ok := h.(interface{ SetRunning() }); ok {
		r.SetRunning()
	}
}

// module states
const (
	modLoading = iota
	modRunning
	modRemoving
)

// module is one loaded (or loading) Go module.
type module struct {
	name, path string
	args       []string
	conn       *Conn
	cancel     context.CancelFunc
	running    chan struct{} // closed by SetRunning
	done       chan struct{} // closed once fn returned and conn is closed
	err        error         // fn's result, set before done closes
	state      int           // guarded by Broker.modMu
}

// modEntry is one element of module.list's "mods", as the test broker and
// flux-core list them.
type modEntry struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
}

// builtinModule is listed by module.list as flux-core lists its broker
// built-ins, so that consumers such as modprobe learn to skip them.
var builtinModule = modEntry{Name: "connector-local", Path: "builtin"}

// moduleKey is the registry key a load refers to: the base of its path
// without extension ("sdbus" for "/usr/lib/flux/modules/sdbus.so").
func moduleKey(p string) string {
	b := path.Base(p)
	return strings.TrimSuffix(b, path.Ext(b))
}

// lookupModule finds the func for a load: by path (the module that is
// loaded, as flux-core loads a DSO), then by name.
func (b *Broker) lookupModule(p, name string) (ModuleFunc, bool) {
	if fn, ok := b.p.modules[moduleKey(p)]; ok && p != "" {
		return fn, true
	}
	fn, ok := b.p.modules[name]
	return fn, ok
}

// moduleLoad serves module.load {"path","name"?,"args","exec"?}. It runs
// on the loop and answers from the module's starter goroutine.
func (b *Broker) moduleLoad(m *fluxkit.Message) {
	var in struct {
		Path string   `json:"path"`
		Name string   `json:"name"`
		Args []string `json:"args"`
		Exec bool     `json:"exec"` // accepted and ignored: Go modules run on goroutines
	}
	if !b.decode(m, &in) {
		return
	}
	name := in.Name
	if name == "" {
		name = moduleKey(in.Path)
	}
	if name == "" || name == "." || name == "/" {
		b.respondErr(m, fluxkit.Errorf(fluxkit.EINVAL, "module.load: missing module path"))
		return
	}
	fn, ok := b.lookupModule(in.Path, name)
	if !ok {
		key := moduleKey(in.Path)
		if in.Path == "" {
			key = name
		}
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOENT, "module %s: no such module on rank %d", key, b.rank))
		return
	}
	ctx, cancel := context.WithCancel(b.ctx)
	mod := &module{
		name: name, path: in.Path, args: slices.Clone(in.Args), cancel: cancel,
		running: make(chan struct{}), done: make(chan struct{}),
	}
	b.modMu.Lock()
	if b.modClosed {
		b.modMu.Unlock()
		cancel()
		b.respondErr(m, errClosed)
		return
	}
	if _, ok := b.mods[name]; ok {
		b.modMu.Unlock()
		cancel()
		b.respondErr(m, fluxkit.Errorf(fluxkit.EEXIST, "module %s is already loaded", name))
		return
	}
	b.mods[name] = mod
	b.modMu.Unlock()

	conn := b.newConn(b.self.cred)
	var once sync.Once
	conn.running = func() { once.Do(func() { close(mod.running) }) }
	b.clients[conn.id] = conn
	mod.conn = conn

	w := &responder{b: b, req: m}
	started := b.spawn(func() { b.runModule(ctx, mod, fn) })
	if !started {
		b.dropModule(mod)
		cancel()
		_ = conn.Close()
		close(mod.done)
		b.respondErr(m, errClosed)
		return
	}
	b.spawn(func() { b.awaitRunning(mod, w) })
}

// runModule is the module's goroutine: it runs fn, closes the module's
// connection and reports an unexpected end.
func (b *Broker) runModule(ctx context.Context, mod *module, fn ModuleFunc) {
	err := callModule(ctx, fn, mod)
	clean := err == nil && ctx.Err() != nil || ctx.Err() != nil && errors.Is(err, ctx.Err())
	_ = mod.conn.Close()
	mod.cancel()
	b.modMu.Lock()
	mod.err = err
	state := mod.state
	b.modMu.Unlock()
	wasRunning := false
	select {
	case <-mod.running:
		wasRunning = true
	default:
	}
	switch {
	case clean:
	case state == modLoading && !wasRunning:
		// awaitRunning reports it as the load's error.
	case err != nil:
		b.log.Error("module failed", "module", mod.name, "err", err)
	default:
		b.log.Warn("module exited", "module", mod.name)
	}
	b.dropModule(mod)
	close(mod.done)
}

// callModule runs fn, turning a panic into an error: a broken module must
// not take the broker down.
func callModule(ctx context.Context, fn ModuleFunc, mod *module) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fluxkit.Errorf(fluxkit.EINVAL, "module %s panicked: %v", mod.name, r)
		}
	}()
	return fn(ctx, mod.conn, slices.Clone(mod.args)) // a copy: module.list reads mod.args
}

func (b *Broker) dropModule(mod *module) {
	b.modMu.Lock()
	if b.mods[mod.name] == mod {
		delete(b.mods, mod.name)
	}
	b.modMu.Unlock()
}

// awaitRunning answers module.load once the module is running, has ended,
// or has taken longer than the module timeout to start.
func (b *Broker) awaitRunning(mod *module, w *responder) {
	t := time.NewTimer(b.p.moduleTimeout)
	defer t.Stop()
	select {
	case <-mod.running:
		b.modMu.Lock()
		if mod.state == modLoading {
			mod.state = modRunning
		}
		b.modMu.Unlock()
		_ = w.Respond(nil)
	case <-mod.done:
		err := mod.err
		if err == nil {
			err = fluxkit.Errorf(fluxkit.EINVAL, "module %s exited before it was running", mod.name)
		} else if fluxkit.ErrorText(err) == "" || !strings.Contains(fluxkit.ErrorText(err), mod.name) {
			err = fluxkit.Errorf(fluxkit.Errno(err), "module %s: %s", mod.name, err.Error())
		}
		_ = w.RespondError(err)
	case <-t.C:
		mod.cancel()
		<-mod.done
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ETIMEDOUT, "module %s was not running after %v", mod.name, b.p.moduleTimeout))
	case <-b.ctx.Done():
	}
}

// moduleRemove serves module.remove {"name"}: the module is cancelled and
// the answer sent once its function has returned and its connection is
// closed.
func (b *Broker) moduleRemove(m *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if !b.decode(m, &in) {
		return
	}
	b.modMu.Lock()
	mod := b.mods[in.Name]
	if mod == nil || mod.state != modRunning {
		b.modMu.Unlock()
		b.respondErr(m, fluxkit.Errorf(fluxkit.ENOENT, "module %s is not loaded", in.Name))
		return
	}
	mod.state = modRemoving
	b.modMu.Unlock()
	mod.cancel()
	w := &responder{b: b, req: m}
	b.spawn(func() {
		select {
		case <-mod.done:
			_ = w.Respond(nil)
		case <-b.ctx.Done():
		}
	})
}

// moduleList serves module.list: the built-in connector, then the running
// modules, sorted by name.
func (b *Broker) moduleList(m *fluxkit.Message) {
	mods := []modEntry{builtinModule}
	b.modMu.Lock()
	for _, mod := range b.mods {
		if mod.state == modRunning {
			mods = append(mods, modEntry{Name: mod.name, Path: mod.path, Args: mod.args})
		}
	}
	b.modMu.Unlock()
	slices.SortFunc(mods, func(a, b modEntry) int { return cmp.Compare(a.Name, b.Name) })
	b.respond(m, map[string]any{"mods": mods})
}

// stopModules cancels every module and waits for each to return; no module
// loads after it. Close calls it while the loop still runs, so modules can
// unregister and send their last messages.
func (b *Broker) stopModules() {
	b.modMu.Lock()
	b.modClosed = true
	all := make([]*module, 0, len(b.mods))
	for _, mod := range b.mods {
		mod.state = modRemoving
		all = append(all, mod)
	}
	b.modMu.Unlock()
	for _, mod := range all {
		mod.cancel()
	}
	for _, mod := range all {
		<-mod.done
	}
}
