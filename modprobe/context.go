package modprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/fluxkit/fluxkit"
)

// Context is what setup hooks and tasks get: flux-core's
// flux.modprobe.Context. It is shared by all tasks of a run and safe for
// concurrent use.
type Context struct {
	s *Session

	mu        sync.Mutex
	shared    map[string]any
	env       map[string]*string // local changes; nil value = unset
	brokerEnv map[string]*string // broker.getenv cache
	config    map[string]any
	configOK  bool
}

func newContext(s *Session) *Context {
	return &Context{s: s, shared: map[string]any{}, env: map[string]*string{}, brokerEnv: map[string]*string{}}
}

// Rank is the broker rank.
func (c *Context) Rank() uint32 { return c.s.m.rank }

// Handle is the broker handle.
func (c *Context) Handle() fluxkit.Handle { return c.s.m.h }

// DryRun reports whether this is a dry run.
func (c *Context) DryRun() bool { return c.s.m.cfg.DryRun }

// Stdout is where task output goes (flux-core tasks print to stdout).
func (c *Context) Stdout() io.Writer { return c.s.m.stdout }

// Print writes a line to stderr in verbose mode only.
func (c *Context) Print(args ...any) {
	if c.s.m.cfg.Verbose {
		fmt.Fprintln(c.s.m.stderr, args...)
	}
}

// Set stores a value shared by all tasks.
func (c *Context) Set(key string, value any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shared[key] = value
}

// Get returns a shared value, or def.
func (c *Context) Get(key string, def any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.shared[key]; ok {
		return v
	}
	return def
}

// AttrGet returns a broker attribute. A missing attribute is an error
// matching fluxkit.ENOENT.
func (c *Context) AttrGet(ctx context.Context, name string) (string, error) {
	var out struct {
		Value string `json:"value"`
	}
	if err := fluxkit.RPC(ctx, c.s.m.h, "attr.get", c.Rank(), map[string]string{"name": name}, &out); err != nil {
		return "", err
	}
	return out.Value, nil
}

// brokerConfig fetches the broker config once per run (configure has
// usually cached it already).
func (c *Context) brokerConfig(ctx context.Context) (map[string]any, error) {
	c.mu.Lock()
	cfg, ok := c.config, c.configOK
	c.mu.Unlock()
	if ok {
		return cfg, nil
	}
	if err := fluxkit.RPC(ctx, c.s.m.h, "config.get", c.Rank(), map[string]any{}, &cfg); err != nil {
		return nil, fmt.Errorf("config.get: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.config, c.configOK = cfg, true
	return cfg, nil
}

// ConfGet looks up a dotted key in the broker config.
func (c *Context) ConfGet(ctx context.Context, key string) (any, bool, error) {
	cfg, err := c.brokerConfig(ctx)
	if err != nil {
		return nil, false, err
	}
	v, ok := configLookup(cfg, key)
	return v, ok, nil
}

// lookupLocal consults the local environment with this run's changes.
func (c *Context) lookupLocal(name string) (string, bool) {
	c.mu.Lock()
	v, changed := c.env[name]
	c.mu.Unlock()
	if changed {
		if v == nil {
			return "", false
		}
		return *v, true
	}
	return c.s.m.lookupEnv(name)
}

// Getenv returns a variable from the local environment or, when it is not
// set there, from the broker's environment (broker.getenv, cached; an RPC
// error counts as unset).
func (c *Context) Getenv(ctx context.Context, name string) (string, bool) {
	if v, ok := c.lookupLocal(name); ok {
		return v, true
	}
	got := c.brokerGetenv(ctx, []string{name})
	v, ok := got[name]
	return v, ok
}

// brokerGetenv returns the broker's values of names, asking only about
// names not cached yet, in one RPC.
func (c *Context) brokerGetenv(ctx context.Context, names []string) map[string]string {
	c.mu.Lock()
	var ask []string
	for _, n := range names {
		if _, ok := c.brokerEnv[n]; !ok {
			ask = append(ask, n)
		}
	}
	c.mu.Unlock()
	if len(ask) > 0 {
		var out struct {
			Env map[string]string `json:"env"`
		}
		err := fluxkit.RPC(ctx, c.s.m.h, "broker.getenv", c.Rank(), map[string]any{"names": ask}, &out)
		c.mu.Lock()
		for _, n := range ask {
			if v, ok := out.Env[n]; ok && err == nil {
				c.brokerEnv[n] = &v
			} else {
				c.brokerEnv[n] = nil
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	res := map[string]string{}
	for _, n := range names {
		if v := c.brokerEnv[n]; v != nil {
			res[n] = *v
		}
	}
	return res
}

// Setenv sets a variable in the broker (broker.setenv, so rc2 and rc3
// inherit it) and in this run's local environment, which commands run by
// Bash see. The process environment itself is not changed. A dry run
// changes only the local copy.
func (c *Context) Setenv(ctx context.Context, name, value string) error {
	if name == "" || strings.Contains(name, "=") {
		return fmt.Errorf("setenv: invalid variable name %q", name)
	}
	return c.setenv(ctx, name, &value)
}

// Unsetenv unsets a variable in the broker (broker.setenv with a null
// value) and locally.
func (c *Context) Unsetenv(ctx context.Context, name string) error { return c.setenv(ctx, name, nil) }

// setenv sets (value) or unsets (nil) name in the broker, unless this is a
// dry run, and in this run's local environment.
func (c *Context) setenv(ctx context.Context, name string, value *string) error {
	if !c.DryRun() {
		// A nil *string encodes as null, which broker.setenv takes as unset.
		err := fluxkit.RPC(ctx, c.s.m.h, "broker.setenv", c.Rank(), map[string]any{"env": map[string]*string{name: value}}, nil)
		if err != nil {
			return fmt.Errorf("broker.setenv %s: %w", name, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.env[name] = value
	c.brokerEnv[name] = value
	return nil
}

// environ is the environment for commands: the process environment with
// this run's changes and FLUX_RC_USE_MODPROBE=t.
func (c *Context) environ() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	base := c.s.m.environ()
	out := make([]string, 0, len(base)+len(c.env)+1)
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, changed := c.env[name]; changed || name == "FLUX_RC_USE_MODPROBE" {
			continue
		}
		out = append(out, kv)
	}
	for _, name := range slices.Sorted(maps.Keys(c.env)) {
		if v := c.env[name]; v != nil {
			out = append(out, name+"="+*v)
		}
	}
	return append(out, "FLUX_RC_USE_MODPROBE=t")
}

// RPC sends a request to nodeid and decodes the response into out.
func (c *Context) RPC(ctx context.Context, topic string, nodeid uint32, in, out any) error {
	return fluxkit.RPC(ctx, c.s.m.h, topic, nodeid, in, out)
}

// Setopt appends whitespace-separated options to a module's (or
// service's) arguments. overwrite drops the module's default args but
// keeps earlier Setopt values.
func (c *Context) Setopt(module, options string, overwrite bool) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.db.setopt(module, options, overwrite)
}

// Getopts returns def unless overwritten, then the Setopt values of name,
// then those of each name in also.
func (c *Context) Getopts(name string, def []string, also ...string) []string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.db.getopts(name, def, also)
}

// LoadModules activates modules (names or services) and their direct
// requirements. Each name must be a module: "NAME is not a module".
func (c *Context) LoadModules(names ...string) error {
	return c.eachModule(names, func(n string, e *entry) {
		c.s.active = append(c.s.active, n)
		c.s.active = append(c.s.active, e.requires...)
	})
}

// RemoveModules marks modules (names or services) for removal and
// activates them, as rc3 does for every loaded module. No names means
// every loaded module.
func (c *Context) RemoveModules(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		loaded, err := c.s.m.loaded(ctx)
		if err != nil {
			return err
		}
		for _, l := range loaded {
			names = append(names, l.Name)
		}
	}
	return c.eachModule(names, func(_ string, e *entry) {
		c.s.markRemoval(e)
		c.s.active = append(c.s.active, e.name)
	})
}

// eachModule calls fn, with the session locked, for the module each name
// (a module or a service) resolves to; it stops at a name that is not a
// module: "NAME is not a module".
func (c *Context) eachModule(names []string, fn func(name string, e *entry)) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, n := range names {
		e, err := c.s.db.get(n)
		if err != nil {
			return err
		}
		if !e.isModule() {
			return fmt.Errorf("%s is not a module", n)
		}
		fn(n, e)
	}
	return nil
}

// SetAlternative selects module as the provider of service.
func (c *Context) SetAlternative(service, module string) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.db.setAlternative(service, module)
}

// Enable force-enables every provider of name, overriding ranks, disabled
// and needs-* conditions. Requirements are not enabled.
func (c *Context) Enable(name string) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.db.enable(name)
}

// Disable disables every provider of name.
func (c *Context) Disable(name string) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.db.disable(name)
}

// Bash runs command under "bash -c" with this run's environment, its
// output going to the run's stdout and stderr.
func (c *Context) Bash(ctx context.Context, command string) error {
	return c.s.m.shell.Run(ctx, command, c.environ(), c.s.m.stdout, c.s.m.stderr)
}

// RunRCScripts runs the legacy rcN.d scripts as flux-core's
// run_all_rc_scripts does: for CONFDIR (symbolic links resolved), then each
// directory of FLUX_RC_EXTRA, every executable file (links followed) of
// DIR/rcN.d in name order, each announced as "running FILE" on stdout. A
// script that fails, or a directory that cannot be read (or is not a
// directory), is reported on stderr and the others still run; then the
// task fails.
func (c *Context) RunRCScripts(ctx context.Context, n int) error {
	confdir := c.s.m.cfg.ConfDir
	if abs, err := filepath.Abs(confdir); err == nil {
		confdir = abs
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			confdir = r
		}
	}
	dirs := []string{confdir}
	if extra, ok := c.lookupLocal("FLUX_RC_EXTRA"); ok {
		dirs = append(dirs, splitPath(extra)...)
	}
	failed := false
	for _, d := range dirs {
		rcdir := filepath.Join(d, fmt.Sprintf("rc%d.d", n))
		ents, err := os.ReadDir(rcdir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil { // unreadable, or not a directory
			fmt.Fprintf(c.s.m.stderr, "Cannot access directory %s: %v\n", rcdir, pathCause(err))
			failed = true
			continue
		}
		for _, de := range ents { // ReadDir sorts by name
			f := filepath.Join(rcdir, de.Name())
			if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() || syscall.Access(f, accessX) != nil {
				continue
			}
			if err := c.printf("running %s\n", f); err != nil {
				return err
			}
			err := c.s.m.shell.Run(ctx, shellQuote(f), c.environ(), c.s.m.stdout, c.s.m.stderr)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ee *ExitError
			switch {
			case errors.As(err, &ee) && ee.Code >= 0:
				fmt.Fprintf(c.s.m.stderr, "%s failed with exit code %d\n", f, ee.Code)
			case errors.As(err, &ee):
				fmt.Fprintf(c.s.m.stderr, "%s failed with exit code %d\n", f, -ee.Signal)
			default:
				fmt.Fprintf(c.s.m.stderr, "Cannot execute %s: %v\n", f, err)
			}
			failed = true
		}
	}
	if failed {
		return fmt.Errorf("one or more rc%d.d scripts failed", n)
	}
	return nil
}
