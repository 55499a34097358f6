package modprobe

import (
	"context"
	"errors"

	"github.com/fluxkit/fluxkit"
)

// LoadRequest is one module.load.
type LoadRequest struct {
	// Name is the name the module is loaded under; empty means Path.
	Name string
	// Path is the module to load (flux-core's "module" key).
	Path string
	Args []string
	// Exec runs the module as a separate process.
	Exec bool
}

// LoadedModule is one entry of module.list.
type LoadedModule struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Modules loads, removes and lists broker modules on the local rank.
// HandleModules implements it over a broker connection; tests may supply
// their own.
type Modules interface {
	Load(ctx context.Context, req LoadRequest) error
	// Remove fails with an error matching fluxkit.ENOENT when the module
	// is not loaded.
	Remove(ctx context.Context, name string) error
	// List includes builtin entries (Path "builtin"); callers skip them.
	List(ctx context.Context) ([]LoadedModule, error)
}

// HandleModules implements Modules with the broker's module.load,
// module.remove and module.list services on h's rank.
func HandleModules(h fluxkit.Handle) Modules { return handleModules{h: h} }

type handleModules struct{ h fluxkit.Handle }

// loadPayload is flux-core's module.load payload: name only when it
// differs from path.
func loadPayload(req LoadRequest) map[string]any {
	args := req.Args
	if args == nil {
		args = []string{}
	}
	p := map[string]any{"path": req.Path, "args": args, "exec": req.Exec}
	if req.Name != "" && req.Name != req.Path {
		p["name"] = req.Name
	}
	return p
}

func (m handleModules) Load(ctx context.Context, req LoadRequest) error {
	return fluxkit.RPC(ctx, m.h, "module.load", m.h.Rank(), loadPayload(req), nil)
}

func (m handleModules) Remove(ctx context.Context, name string) error {
	return fluxkit.RPC(ctx, m.h, "module.remove", m.h.Rank(), map[string]string{"name": name}, nil)
}

func (m handleModules) List(ctx context.Context) ([]LoadedModule, error) {
	var out struct {
		Mods []LoadedModule `json:"mods"`
	}
	if err := fluxkit.RPC(ctx, m.h, "module.list", m.h.Rank(), map[string]any{}, &out); err != nil {
		return nil, err
	}
	return out.Mods, nil
}

func isNotLoaded(err error) bool { return errors.Is(err, fluxkit.ENOENT) }
