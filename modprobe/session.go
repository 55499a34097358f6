package modprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
)

// Session is a prepared run: configuration loaded, setup hooks run and
// the plan built. Execute runs it.
type Session struct {
	m      *Modprobe
	mu     sync.Mutex // guards db and active against Context calls
	db     *db
	active []string
	ctx    *Context
	facts  *facts
	plan   *Plan
	stats  []Stat
	t0     time.Time
	mark   time.Time
	// brokerConfig is the raw config.get object.
	brokerConfig []byte
}

func (m *Modprobe) newSession() *Session {
	s := &Session{m: m, db: newDB(), t0: m.created, mark: time.Now()}
	s.ctx = newContext(s)
	return s
}

// phase records a timing entry from the previous mark to now.
func (s *Session) phase(name string) {
	now := time.Now()
	s.stats = append(s.stats, Stat{Name: name, StartTime: s.mark.Sub(s.t0).Seconds(), Duration: now.Sub(s.mark).Seconds()})
	s.mark = now
}

// Plan is the session's plan.
func (s *Session) Plan() *Plan { return s.plan }

// Context is the session's task context.
func (s *Session) Context() *Context { return s.ctx }

func (s *Session) markRemoval(e *entry) {
	if e.removal || !e.isModule() {
		return
	}
	e.before, e.after = e.after, e.before
	e.needs, e.requires = nil, nil
	e.removal = true
}

// configure loads modprobe.toml, modprobe.d/*.toml along the search path
// and the broker config's [modules] table.
func (s *Session) configure(ctx context.Context) error {
	m := s.m
	err := m.readConfFiles("modprobe.toml", "modprobe.d", false, s.db.applyModulesFile)
	if err != nil {
		return err
	}
	// Kept raw: the [modules] table is applied in the order of its keys.
	var raw json.RawMessage
	if err := fluxkit.RPC(ctx, m.h, "config.get", m.rank, map[string]any{}, &raw); err != nil {
		return fmt.Errorf("config.get: %w", err)
	}
	s.brokerConfig = raw
	if err := s.db.applyBrokerModules(raw); err != nil {
		return err
	}
	var cfg map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("config.get: %w", err)
		}
	}
	s.ctx.mu.Lock()
	s.ctx.config, s.ctx.configOK = cfg, true
	s.ctx.mu.Unlock()
	return nil
}

// readConfFiles reads the built-in file name, then DIR/sub/*.toml in each
// directory of the search path, and hands each to apply. With python set,
// a flux-core Python rc file there is an error.
func (m *Modprobe) readConfFiles(name, sub string, python bool, apply func(file string, data []byte) error) error {
	builtin := path.Join(m.cfg.BuiltinDir, name)
	m.trace("checking %s", builtin)
	if data, err := fs.ReadFile(m.cfg.Builtin, name); err == nil {
		m.trace("loading %s", builtin)
		if err := apply(builtin, data); err != nil {
			return err
		}
	}
	for _, dir := range m.SearchPath() {
		m.trace("checking %s", path.Join(dir, sub, "*.toml"))
		fsys := m.dirFS(dir)
		files, err := confFiles(fsys, dir, sub, python)
		if err != nil {
			return err
		}
		for _, f := range files {
			file := path.Join(dir, sub, f)
			data, err := fs.ReadFile(fsys, path.Join(sub, f))
			if err != nil {
				return &ConfigError{File: file, Err: err}
			}
			m.trace("loading %s", file)
			if err := apply(file, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadRCFiles loads the declarative rc files of runlevel n (builtin rcN.toml
// then DIR/rcN.d/*.toml along the search path) and then the Go units.
func (s *Session) loadRCFiles(ctx context.Context, n int, units []RC) error {
	err := s.m.readConfFiles(fmt.Sprintf("rc%d.toml", n), fmt.Sprintf("rc%d.d", n), true, func(file string, data []byte) error {
		u, err := parseRCFile(file, data)
		if err != nil {
			return err
		}
		return s.addUnit(ctx, u)
	})
	if err != nil {
		return err
	}
	return s.addUnits(ctx, units)
}

// addUnits adds Go units in order.
func (s *Session) addUnits(ctx context.Context, units []RC) error {
	for _, rc := range units {
		u, err := rc.unit()
		if err != nil {
			return err
		}
		if err := s.addUnit(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// addUnit registers a unit's tasks (a name already known, even as a
// service, activates the existing entry) and runs its setup hook.
func (s *Session) addUnit(ctx context.Context, u *rcUnit) error {
	s.mu.Lock()
	for _, t := range u.tasks {
		if !s.db.known(t.name) {
			s.db.add(t.clone())
		}
		s.active = append(s.active, t.name)
	}
	s.mu.Unlock()
	if u.setup != nil {
		if err := u.setup(ctx, s.ctx); err != nil {
			return err
		}
	}
	return nil
}

// applyDisable applies FLUX_MODPROBE_DISABLE and extra -D lists.
func (s *Session) applyDisable(extra []string) error {
	var lists []string
	if v, ok := s.m.lookupEnv("FLUX_MODPROBE_DISABLE"); ok {
		lists = append(lists, v)
	}
	lists = append(lists, extra...)
	for _, l := range lists {
		if err := s.db.disableList(l); err != nil {
			return err
		}
	}
	return nil
}

// gather fetches what enablement needs: the attributes named by
// needs-attrs, the broker config and the environment named by needs-env.
func (s *Session) gather(ctx context.Context) error {
	f := &facts{Rank: s.m.rank, Attrs: map[string]string{}, Env: map[string]string{}}
	attrs, envs := map[string]bool{}, map[string]bool{}
	for _, e := range s.db.entries {
		for _, a := range e.needsAttrs {
			attrs[strings.TrimPrefix(a, "!")] = true
		}
		for _, v := range e.needsEnv {
			envs[strings.TrimPrefix(v, "!")] = true
		}
	}
	for _, a := range slices.Sorted(maps.Keys(attrs)) {
		v, err := s.ctx.AttrGet(ctx, a)
		switch {
		case err == nil:
			f.Attrs[a] = v
		case errors.Is(err, fluxkit.ENOENT):
		default:
			return fmt.Errorf("attr.get %s: %w", a, err)
		}
	}
	var missing []string
	for _, n := range slices.Sorted(maps.Keys(envs)) {
		if v, ok := s.ctx.lookupLocal(n); ok {
			f.Env[n] = v
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		for n, v := range s.ctx.brokerGetenv(ctx, missing) {
			f.Env[n] = v
		}
	}
	cfg, err := s.ctx.brokerConfig(ctx)
	if err != nil {
		return err
	}
	f.Config = cfg
	s.facts = f
	return nil
}

// Execute runs the plan. A cycle fails before anything runs. Failures are
// printed as "TASK: ERROR" on stderr and returned in a *RunError; tasks
// that never started are reported as skipped, without an error line.
func (s *Session) Execute(ctx context.Context) (*Report, error) {
	if err := s.plan.Check(); err != nil {
		return nil, err
	}
	cfg := s.m.cfg.Exec
	if s.m.cfg.DryRun {
		cfg.Limit = 1 // dry-run output in a deterministic order
	}
	s.phase("prepare")
	rep, err := execute(ctx, s.plan.Names(), s.plan.preds, cfg, func(ctx context.Context, i int) error {
		return s.runEntry(ctx, s.plan.entries[i])
	})
	for _, f := range rep.Failures {
		fmt.Fprintln(s.m.stderr, f.Error())
	}
	return rep, err
}

func (s *Session) runEntry(ctx context.Context, e *entry) error {
	m := s.m
	switch {
	case e.removal:
		if m.cfg.DryRun {
			_, err := fmt.Fprintf(m.stdout, "remove %s\n", e.name)
			return err
		}
		m.trace("module.remove %s", e.name)
		if err := m.modules.Remove(ctx, e.name); err != nil && !isNotLoaded(err) {
			return err
		}
		m.trace("removed %s", e.name)
	case e.isModule():
		s.mu.Lock()
		args := s.db.loadArgs(e)
		s.mu.Unlock()
		if m.cfg.DryRun {
			_, err := fmt.Fprintln(m.stdout, strings.Join(append([]string{"load", e.name}, args...), " "))
			return err
		}
		req := LoadRequest{Name: e.name, Path: e.module, Args: args, Exec: e.exec}
		if m.cfg.Verbose {
			b, _ := json.Marshal(loadPayload(req))
			m.trace("module.load %s", b)
		}
		if err := m.modules.Load(ctx, req); err != nil {
			return err
		}
		m.trace("loaded %s", e.name)
	default:
		if m.cfg.DryRun {
			_, err := fmt.Fprintf(m.stdout, "run %s\n", e.name)
			return err
		}
		m.trace("start %s", e.name)
		var err error
		switch {
		case e.run != nil:
			err = e.run(ctx, s.ctx)
		case e.action != nil:
			err = e.action.runAction(ctx, s.ctx)
		}
		if err != nil {
			return err
		}
		m.trace("completed %s", e.name)
	}
	return nil
}
