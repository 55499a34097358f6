package modprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/kvs"
)

// EmbeddedDir is the name under which the built-in configuration appears
// in the search path and in verbose traces.
const EmbeddedDir = "(embedded)"

// ErrAllLoaded is returned by Load when every module asked for and every
// dependency is already loaded; flux-modprobe reports it as INFO and
// succeeds.
//
//lint:ignore ST1005 flux-core's exact text
var ErrAllLoaded = errors.New("All modules and dependencies are already loaded")

// Config configures a Modprobe. Only Handle is required.
type Config struct {
	// Handle is the connection to the local broker. Required.
	Handle fluxkit.Handle
	// Modules loads and removes modules. Default: HandleModules(Handle).
	Modules Modules
	// LookupEnv reads the local environment (FLUX_MODPROBE_PATH,
	// FLUX_MODPROBE_DISABLE, needs-env, ...). Default: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Environ is the environment commands start from. Default:
	// os.Environ.
	Environ func() []string
	// Builtin holds the built-in modprobe.toml, rc1.toml and rc3.toml
	// (flux-core's datadir and libexecdir). Default: Defaults().
	Builtin fs.FS
	// BuiltinDir names Builtin in the search path and in traces; a
	// search path entry equal to it reads Builtin. Default: EmbeddedDir.
	BuiltinDir string
	// ConfDir is flux-core's confdir: DIR/modprobe is on the default
	// search path and DIR/rcN.d holds legacy rc scripts. Default
	// "/etc/flux".
	ConfDir string
	// RC1 and RC3 are Go units registered after the rc files of rc1 and
	// rc3, in order.
	RC1, RC3 []RC
	// DryRun prints what would run ("load NAME ARGS", "remove NAME",
	// "run TASK") without doing it, in a deterministic order.
	DryRun bool
	// Verbose traces files, modules and tasks on Stderr.
	Verbose bool
	// Stdout and Stderr default to os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Exec tunes the executor.
	Exec ExecConfig
	// Shell runs commands. Default: Bash.
	Shell Shell
	// Logger receives debug records. Default: discard.
	Logger *slog.Logger
}

// Modprobe plans and runs module loading, removal and tasks on one rank.
type Modprobe struct {
	cfg       Config
	rank      uint32
	created   time.Time
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(string) (string, bool)
	environ   func() []string
	shell     Shell
	modules   Modules
	log       *slog.Logger
}

// New validates cfg and returns a Modprobe.
func New(cfg Config) (*Modprobe, error) {
	if cfg.Handle == nil {
		return nil, errors.New("modprobe: Config.Handle is required")
	}
	if cfg.Exec.Limit < 0 || cfg.Exec.TaskTimeout < 0 {
		return nil, errors.New("modprobe: Exec.Limit and Exec.TaskTimeout must not be negative")
	}
	m := &Modprobe{cfg: cfg, rank: cfg.Handle.Rank(), created: time.Now()}
	if m.cfg.Builtin == nil {
		m.cfg.Builtin = Defaults()
	}
	if m.cfg.BuiltinDir == "" {
		m.cfg.BuiltinDir = EmbeddedDir
	}
	if m.cfg.ConfDir == "" {
		m.cfg.ConfDir = "/etc/flux"
	}
	out, errw := cfg.Stdout, cfg.Stderr
	if out == nil {
		out = os.Stdout
	}
	if errw == nil {
		errw = os.Stderr
	}
	m.stdout, m.stderr = &lockedWriter{w: out}, &lockedWriter{w: errw}
	m.lookupEnv = cfg.LookupEnv
	if m.lookupEnv == nil {
		m.lookupEnv = os.LookupEnv
	}
	m.environ = cfg.Environ
	if m.environ == nil {
		m.environ = os.Environ
	}
	m.shell = cfg.Shell
	if m.shell == nil {
		m.shell = Bash{}
	}
	m.modules = cfg.Modules
	if m.modules == nil {
		m.modules = HandleModules(cfg.Handle)
	}
	m.log = cfg.Logger
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.cfg.Exec.Logger == nil {
		m.cfg.Exec.Logger = m.log
	}
	return m, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (m *Modprobe) trace(format string, args ...any) {
	if m.cfg.Verbose {
		fmt.Fprintf(m.stderr, format+"\n", args...)
	}
}

// SearchPath is the modprobe search path: FLUX_MODPROBE_PATH or the
// default [BuiltinDir, ConfDir/modprobe], then FLUX_MODPROBE_PATH_APPEND,
// blank entries and duplicates dropped.
func (m *Modprobe) SearchPath() []string {
	return searchPath([]string{m.cfg.BuiltinDir, path.Join(m.cfg.ConfDir, "modprobe")}, m.lookupEnv)
}

func (m *Modprobe) dirFS(dir string) fs.FS {
	if dir == m.cfg.BuiltinDir {
		return m.cfg.Builtin
	}
	return os.DirFS(dir)
}

// Stat is one entry of the modprobe.stats timing array.
type Stat struct {
	Name      string  `json:"name"`
	StartTime float64 `json:"starttime"`
	Duration  float64 `json:"duration"`
}

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

// rpcRaw sends a request and returns the raw response payload.
func rpcRaw(ctx context.Context, h fluxkit.Handle, topic string, nodeid uint32, in any) ([]byte, error) {
	p, err := fluxkit.EncodePayload(in)
	if err != nil {
		return nil, err
	}
	call, err := h.Request(ctx, fluxkit.NewRequest(topic, nodeid, p))
	if err != nil {
		return nil, err
	}
	defer call.Close()
	msg, err := call.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return msg.Payload, nil
}

// configure loads modprobe.toml, modprobe.d/*.toml along the search path
// and the broker config's [modules] table.
func (s *Session) configure(ctx context.Context) error {
	m := s.m
	builtin := path.Join(m.cfg.BuiltinDir, "modprobe.toml")
	m.trace("checking %s", builtin)
	if data, err := fs.ReadFile(m.cfg.Builtin, "modprobe.toml"); err == nil {
		m.trace("loading %s", builtin)
		if err := s.db.applyModulesFile(builtin, data); err != nil {
			return err
		}
	}
	for _, dir := range m.SearchPath() {
		m.trace("checking %s", path.Join(dir, "modprobe.d/*.toml"))
		fsys := m.dirFS(dir)
		files, err := confFiles(fsys, dir, "modprobe.d", false)
		if err != nil {
			return err
		}
		for _, f := range files {
			file := path.Join(dir, "modprobe.d", f)
			data, err := fs.ReadFile(fsys, path.Join("modprobe.d", f))
			if err != nil {
				return &ConfigError{File: file, Err: err}
			}
			m.trace("loading %s", file)
			if err := s.db.applyModulesFile(file, data); err != nil {
				return err
			}
		}
	}
	raw, err := rpcRaw(ctx, m.cfg.Handle, "config.get", m.rank, map[string]any{})
	if err != nil {
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

// loadRCFiles loads the declarative rc files of runlevel n (builtin rcN.toml
// then DIR/rcN.d/*.toml along the search path) and then the Go units.
func (s *Session) loadRCFiles(ctx context.Context, n int, units []RC) error {
	m := s.m
	name := fmt.Sprintf("rc%d.toml", n)
	builtin := path.Join(m.cfg.BuiltinDir, name)
	m.trace("checking %s", builtin)
	if data, err := fs.ReadFile(m.cfg.Builtin, name); err == nil {
		m.trace("loading %s", builtin)
		u, err := parseRCFile(builtin, data)
		if err != nil {
			return err
		}
		if err := s.addUnit(ctx, u); err != nil {
			return err
		}
	}
	sub := fmt.Sprintf("rc%d.d", n)
	for _, dir := range m.SearchPath() {
		m.trace("checking %s", path.Join(dir, sub, "*.toml"))
		fsys := m.dirFS(dir)
		files, err := confFiles(fsys, dir, sub, true)
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
			u, err := parseRCFile(file, data)
			if err != nil {
				return err
			}
			if err := s.addUnit(ctx, u); err != nil {
				return err
			}
		}
	}
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
	for _, a := range sortedKeys(attrs) {
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
	for _, n := range sortedKeys(envs) {
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

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

// PrepareRC1 loads configuration and rc1 files, runs setup hooks and plans
// start-up.
func (m *Modprobe) PrepareRC1(ctx context.Context) (*Session, error) {
	return m.prepareStart(ctx, 1, m.cfg.RC1, true)
}

// PrepareRun plans the given units alone, as "flux modprobe run FILE"
// does: configuration is loaded, rc1 files are not.
func (m *Modprobe) PrepareRun(ctx context.Context, units ...RC) (*Session, error) {
	return m.prepareStart(ctx, 0, units, true)
}

// PrepareRunFile plans a declarative rc file alone.
func (m *Modprobe) PrepareRunFile(ctx context.Context, file string) (*Session, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	u, err := parseRCFile(file, data)
	if err != nil {
		return nil, err
	}
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	if err := s.addUnit(ctx, u); err != nil {
		return nil, err
	}
	s.phase("configure")
	return m.finishStart(ctx, s)
}

func (m *Modprobe) prepareStart(ctx context.Context, level int, units []RC, _ bool) (*Session, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	if level == 1 {
		if err := s.loadRCFiles(ctx, 1, units); err != nil {
			return nil, err
		}
	} else {
		for _, rc := range units {
			u, err := rc.unit()
			if err != nil {
				return nil, err
			}
			if err := s.addUnit(ctx, u); err != nil {
				return nil, err
			}
		}
	}
	s.phase("configure")
	return m.finishStart(ctx, s)
}

func (m *Modprobe) finishStart(ctx context.Context, s *Session) (*Session, error) {
	if err := s.applyDisable(nil); err != nil {
		return nil, err
	}
	if err := s.gather(ctx); err != nil {
		return nil, err
	}
	p := newPlanner(s.db, s.facts)
	names, err := p.filterActive(s.active)
	if err != nil {
		return nil, err
	}
	tasks, err := p.closure(names, false)
	if err != nil {
		return nil, err
	}
	s.phase("solve")
	if s.plan, err = p.graph(tasks); err != nil {
		return nil, err
	}
	s.phase("deps")
	return s, nil
}

// PrepareRC3 plans shut-down: every loaded module known to the
// configuration becomes a removal task (services resolve to what is
// loaded), then the rc3 tasks are added. There is no requires expansion
// and FLUX_MODPROBE_DISABLE is not applied.
func (m *Modprobe) PrepareRC3(ctx context.Context) (*Session, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	loaded, err := m.loaded(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range loaded {
		e := s.db.byName[l.Name]
		if e == nil || !e.isModule() {
			continue
		}
		for _, svc := range e.provides {
			_ = s.db.setAlternative(svc, e.name) // e provides svc
		}
		s.markRemoval(e)
		s.active = append(s.active, e.name)
	}
	if err := s.loadRCFiles(ctx, 3, m.cfg.RC3); err != nil {
		return nil, err
	}
	s.phase("configure")
	if err := s.gather(ctx); err != nil {
		return nil, err
	}
	p := newPlanner(s.db, s.facts)
	names, err := p.filterActive(s.active)
	if err != nil {
		return nil, err
	}
	var tasks []*entry
	seen := map[*entry]bool{}
	for _, n := range names {
		t, err := p.resolve(n, false)
		if err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			tasks = append(tasks, t)
		}
	}
	s.phase("solve")
	if s.plan, err = p.graph(tasks); err != nil {
		return nil, err
	}
	s.phase("deps")
	return s, nil
}

// loaded lists loaded modules without builtins.
func (m *Modprobe) loaded(ctx context.Context) ([]LoadedModule, error) {
	mods, err := m.modules.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("module.list: %w", err)
	}
	out := mods[:0:0]
	for _, l := range mods {
		if l.Path != "builtin" {
			out = append(out, l)
		}
	}
	return out, nil
}

// PrepareLoad plans loading names and everything they require, skipping
// what is loaded. Disabled and rank-excluded modules are loaded when asked
// for explicitly. It fails with ErrAllLoaded when nothing is left to do.
func (m *Modprobe) PrepareLoad(ctx context.Context, names []string) (*Session, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	s.phase("configure")
	if err := s.gather(ctx); err != nil {
		return nil, err
	}
	p := newPlanner(s.db, s.facts)
	tasks, err := p.closure(names, true)
	if err != nil {
		return nil, err
	}
	loaded, err := m.loaded(ctx)
	if err != nil {
		return nil, err
	}
	isLoaded := map[string]bool{}
	for _, l := range loaded {
		isLoaded[l.Name] = true
	}
	kept := tasks[:0]
	for _, t := range tasks {
		if !isLoaded[t.name] {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		return nil, ErrAllLoaded
	}
	for _, t := range kept {
		for _, svc := range t.provides {
			_ = s.db.setAlternative(svc, t.name) // t provides svc
		}
	}
	p.reset()
	s.phase("solve")
	if s.plan, err = p.graph(kept); err != nil {
		return nil, err
	}
	s.phase("deps")
	return s, nil
}

// PrepareRemove plans removing modules (all loaded modules when names is
// empty or holds "all") and the requirements nothing else uses any more.
// It refuses to remove a module that a loaded module outside the removal
// set still requires.
func (m *Modprobe) PrepareRemove(ctx context.Context, names []string) (*Session, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	s.phase("configure")
	loaded, err := m.loaded(ctx)
	if err != nil {
		return nil, err
	}
	var cand []*entry
	for _, l := range loaded {
		if e := s.db.byName[l.Name]; e != nil && e.isModule() {
			cand = append(cand, e)
		}
	}
	// Loaded module serving each name (its own or a provided service).
	bySvc := map[string]*entry{}
	for _, e := range cand {
		for _, svc := range append([]string{e.name}, e.provides...) {
			if _, ok := bySvc[svc]; !ok {
				bySvc[svc] = e
			}
		}
	}
	set := map[*entry]bool{}
	if len(names) == 0 || slices.Contains(names, "all") {
		for _, e := range cand {
			set[e] = true
		}
	} else {
		for _, n := range names {
			e := bySvc[n]
			if e == nil {
				return nil, &NotLoadedError{Name: n}
			}
			set[e] = true
		}
	}
	reqs := map[*entry][]*entry{}
	dependents := map[*entry][]*entry{}
	for _, e := range cand {
		for _, r := range e.requires {
			if q := bySvc[r]; q != nil && q != e && !slices.Contains(reqs[e], q) {
				reqs[e] = append(reqs[e], q)
				dependents[q] = append(dependents[q], e)
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, e := range cand {
			if !set[e] {
				continue
			}
			for _, r := range reqs[e] {
				if set[r] {
					continue
				}
				free := true
				for _, d := range dependents[r] {
					if !set[d] {
						free = false
						break
					}
				}
				if free {
					set[r] = true
					changed = true
				}
			}
		}
	}
	var remove []*entry
	for _, e := range cand {
		if !set[e] {
			continue
		}
		var users []string
		for _, d := range dependents[e] {
			if !set[d] {
				users = append(users, d.name)
			}
		}
		if len(users) > 0 {
			sortStrings(users)
			return nil, &InUseError{Name: e.name, Users: users}
		}
		remove = append(remove, e)
	}
	for _, e := range remove {
		s.markRemoval(e)
	}
	s.facts = &facts{Rank: m.rank}
	p := newPlanner(s.db, s.facts)
	s.phase("solve")
	if s.plan, err = p.graph(remove); err != nil {
		return nil, err
	}
	s.phase("deps")
	return s, nil
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

// Stats is the modprobe.stats array for a report: the planning phases,
// then every task that started, by start time, relative to the creation
// of the Modprobe.
func (s *Session) Stats(rep *Report) []Stat {
	out := slices.Clone(s.stats)
	var tasks []Stat
	for _, t := range rep.Tasks {
		if t.Started {
			tasks = append(tasks, Stat{Name: t.Name, StartTime: t.Start.Sub(s.t0).Seconds(), Duration: t.Duration().Seconds()})
		}
	}
	slices.SortStableFunc(tasks, func(a, b Stat) int {
		switch {
		case a.StartTime < b.StartTime:
			return -1
		case a.StartTime > b.StartTime:
			return 1
		}
		return 0
	})
	return append(out, tasks...)
}

// WriteStats stores the timing array under the KVS key modprobe.stats
// (rank 0 only; other ranks do nothing) and commits it, as flux-core's
// flux modprobe rc1 --timing does.
func (s *Session) WriteStats(ctx context.Context, rep *Report) error {
	if s.m.rank != 0 {
		return nil
	}
	var txn kvs.Txn
	if err := txn.PutJSON("modprobe.stats", s.Stats(rep)); err != nil {
		return err
	}
	if err := kvs.Commit(ctx, s.m.cfg.Handle, "", &txn); err != nil {
		return fmt.Errorf("modprobe.stats: %w", err)
	}
	return nil
}

// RC1 prepares and executes start-up.
func (m *Modprobe) RC1(ctx context.Context) (*Report, error) {
	s, err := m.PrepareRC1(ctx)
	if err != nil {
		return nil, err
	}
	return s.Execute(ctx)
}

// RC3 prepares and executes shut-down.
func (m *Modprobe) RC3(ctx context.Context) (*Report, error) {
	s, err := m.PrepareRC3(ctx)
	if err != nil {
		return nil, err
	}
	return s.Execute(ctx)
}

// Run prepares and executes the given units alone.
func (m *Modprobe) Run(ctx context.Context, units ...RC) (*Report, error) {
	s, err := m.PrepareRun(ctx, units...)
	if err != nil {
		return nil, err
	}
	return s.Execute(ctx)
}

// Load loads modules and their requirements.
func (m *Modprobe) Load(ctx context.Context, names ...string) (*Report, error) {
	s, err := m.PrepareLoad(ctx, names)
	if err != nil {
		return nil, err
	}
	return s.Execute(ctx)
}

// Remove removes modules and the requirements left unused.
func (m *Modprobe) Remove(ctx context.Context, names ...string) (*Report, error) {
	s, err := m.PrepareRemove(ctx, names)
	if err != nil {
		return nil, err
	}
	return s.Execute(ctx)
}
