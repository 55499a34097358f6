package modprobe

import (
	"context"
	"os"
	"slices"
)

// PrepareRC1 loads configuration and rc1 files, runs setup hooks and plans
// start-up.
func (m *Modprobe) PrepareRC1(ctx context.Context) (*Session, error) {
	return m.prepareStart(ctx, func(s *Session) error { return s.loadRCFiles(ctx, 1, m.cfg.RC1) })
}

// PrepareRun plans the given units alone, as "flux modprobe run FILE"
// does: configuration is loaded, rc1 files are not.
func (m *Modprobe) PrepareRun(ctx context.Context, units ...RC) (*Session, error) {
	return m.prepareStart(ctx, func(s *Session) error { return s.addUnits(ctx, units) })
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
	return m.prepareStart(ctx, func(s *Session) error { return s.addUnit(ctx, u) })
}

// prepareStart plans a start-up: configuration, then what add activates,
// then FLUX_MODPROBE_DISABLE, enablement and requires.
func (m *Modprobe) prepareStart(ctx context.Context, add func(*Session) error) (*Session, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	if err := add(s); err != nil {
		return nil, err
	}
	s.phase("configure")
	if err := s.applyDisable(nil); err != nil {
		return nil, err
	}
	if err := s.gather(ctx); err != nil {
		return nil, err
	}
	p := newPlanner(s.db, s.facts)
	tasks, err := p.startTasks(s.active)
	if err != nil {
		return nil, err
	}
	return s.order(p, tasks)
}

// planner ends the configure phase and gathers what enablement looks at.
func (s *Session) planner(ctx context.Context) (*planner, error) {
	s.phase("configure")
	if err := s.gather(ctx); err != nil {
		return nil, err
	}
	return newPlanner(s.db, s.facts), nil
}

// order builds the session's plan over tasks.
func (s *Session) order(p *planner, tasks []*entry) (*Session, error) {
	s.phase("solve")
	pl, err := p.graph(tasks)
	if err != nil {
		return nil, err
	}
	s.plan = pl
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
		s.db.prefer(e)
		s.markRemoval(e)
		s.active = append(s.active, e.name)
	}
	if err := s.loadRCFiles(ctx, 3, m.cfg.RC3); err != nil {
		return nil, err
	}
	p, err := s.planner(ctx)
	if err != nil {
		return nil, err
	}
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
	return s.order(p, tasks)
}

// PrepareLoad plans loading names and everything they require, skipping
// what is loaded. Disabled and rank-excluded modules are loaded when asked
// for explicitly. It fails with ErrAllLoaded when nothing is left to do.
func (m *Modprobe) PrepareLoad(ctx context.Context, names []string) (*Session, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return nil, err
	}
	p, err := s.planner(ctx)
	if err != nil {
		return nil, err
	}
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
		s.db.prefer(t)
	}
	p.reset()
	return s.order(p, kept)
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
	remove, err := removalSet(cand, names)
	if err != nil {
		return nil, err
	}
	for _, e := range remove {
		s.markRemoval(e)
	}
	s.facts = &facts{Rank: m.rank}
	return s.order(newPlanner(s.db, s.facts), remove)
}

// removalSet chooses, among the loaded modules cand, those to remove: the
// modules names resolve to (all of cand for none or "all") and, repeatedly,
// the requirements of removed modules that no module left loaded needs. A
// module that a module left loaded requires is an *InUseError.
func removalSet(cand []*entry, names []string) ([]*entry, error) {
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
				if !slices.ContainsFunc(dependents[r], func(d *entry) bool { return !set[d] }) {
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
			slices.Sort(users)
			return nil, &InUseError{Name: e.name, Users: users}
		}
		remove = append(remove, e)
	}
	return remove, nil
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
