package modprobe

import (
	"slices"
	"strings"
)

// facts is what enablement looks at: the local rank and the broker
// attributes, broker config and environment that needs-attrs,
// needs-config and needs-env name. Planning only reads it; the driver
// gathers it from the broker first, which keeps planning free of I/O.
type facts struct {
	Rank   uint32
	Attrs  map[string]string
	Config map[string]any
	// Env is the environment as a task sees it: the local environment,
	// with the broker's environment filling in names missing locally.
	Env map[string]string
}

func (f *facts) attrSet(name string) bool {
	_, ok := f.Attrs[name]
	return ok
}

func (f *facts) envSet(name string) bool {
	_, ok := f.Env[name]
	return ok
}

func (f *facts) configSet(key string) bool {
	_, ok := configLookup(f.Config, key)
	return ok
}

// configLookup finds a dotted key in a decoded config object.
func configLookup(cfg map[string]any, key string) (any, bool) {
	var cur any = cfg
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// specsPass evaluates needs-* specs: "x" passes when x is set, "!x" when
// it is unset. Any value, even false, 0 or "", counts as set.
func specsPass(specs []string, isSet func(string) bool) bool {
	for _, s := range specs {
		want := true
		if strings.HasPrefix(s, "!") {
			want, s = false, s[1:]
		}
		if isSet(s) != want {
			return false
		}
	}
	return true
}

// planner resolves services and builds plans over one database and one
// set of facts. It is pure: no goroutines, clock or I/O.
type planner struct {
	db    *db
	facts *facts

	sat []uint8 // by entry index: needs 1 visiting, 2 yes, 3 no
	on  []uint8 // by entry index: enabled 1 no, 2 yes
}

func newPlanner(d *db, f *facts) *planner {
	if f == nil {
		f = &facts{}
	}
	p := &planner{db: d, facts: f}
	p.reset()
	return p
}

// reset drops memoised answers after the database changed.
func (p *planner) reset() {
	n := len(p.db.entries)
	p.db.gen++ // drops memoised resolutions and marks
	p.sat = make([]uint8, n)
	p.on = make([]uint8, n)
}

func (p *planner) enabled(e *entry) bool {
	if e.index < len(p.on) && p.db.entries[e.index] == e {
		if v := p.on[e.index]; v != 0 {
			return v == 2
		}
		ok := p.checkEnabled(e)
		p.on[e.index] = 1
		if ok {
			p.on[e.index] = 2
		}
		return ok
	}
	return p.checkEnabled(e)
}

func (p *planner) checkEnabled(e *entry) bool {
	if e.forceEnabled {
		return true
	}
	if e.disabled || !e.ranks.Contains(p.facts.Rank) {
		return false
	}
	return specsPass(e.needsConfig, p.facts.configSet) &&
		specsPass(e.needsAttrs, p.facts.attrSet) &&
		specsPass(e.needsEnv, p.facts.envSet)
}

// needsOK reports whether every need of e has an enabled provider whose
// own needs are satisfiable; a cycle counts as unsatisfied.
func (p *planner) needsOK(e *entry) bool {
	if len(e.needs) == 0 {
		return true
	}
	if e.index >= len(p.sat) || p.db.entries[e.index] != e {
		p.reset() // the database grew since the planner was made
		if e.index >= len(p.sat) || p.db.entries[e.index] != e {
			return false // not in this database
		}
	}
	switch p.sat[e.index] {
	case 1, 3:
		return false
	case 2:
		return true
	}
	p.sat[e.index] = 1
	ok := true
	for _, n := range e.needs {
		found := false
		for _, q := range p.db.list(n) {
			if p.enabled(q) && p.needsOK(q) {
				found = true
				break
			}
		}
		if !found {
			ok = false
			break
		}
	}
	if ok {
		p.sat[e.index] = 2
	} else {
		p.sat[e.index] = 3
	}
	return ok
}

// resolve is flux-core's resolve_service: the best viable provider of
// name, or the best provider at all when none is viable.
func (p *planner) resolve(name string, ignoreNeeds bool) (*entry, error) {
	svc := p.db.providers[name]
	if svc == nil || len(svc.list) == 0 {
		return nil, notFound(name)
	}
	return p.resolveSvc(svc.scratch(p.db.gen), ignoreNeeds), nil
}

func (p *planner) resolveSvc(svc *service, ignoreNeeds bool) *entry {
	if ignoreNeeds && svc.marks&markLoose != 0 {
		return svc.loose
	}
	if !ignoreNeeds && svc.marks&markRes != 0 {
		return svc.res
	}
	var best, bestAny *entry
	for _, c := range svc.list {
		if bestAny == nil || better(c, bestAny) {
			bestAny = c
		}
		if best != nil && !better(c, best) {
			continue
		}
		if p.enabled(c) && (ignoreNeeds || p.needsOK(c)) {
			best = c
		}
	}
	if best == nil {
		best = bestAny
	}
	if ignoreNeeds {
		svc.loose, svc.marks = best, svc.marks|markLoose
	} else {
		svc.res, svc.marks = best, svc.marks|markRes
	}
	return best
}

// filterActive is the first planning step: keep active names whose entry is
// enabled, then drop those whose needs have no enabled provider among the
// active entries, cascading to whatever needs a dropped entry. Dropped
// entries are disabled so that requires closures skip them. The check is
// keyed by service, linear in names + needs.
func (p *planner) filterActive(active []string) ([]string, error) {
	list := make([]string, 0, len(active))
	for _, x := range active {
		e, err := p.db.get(x)
		if err != nil {
			return nil, err
		}
		if p.enabled(e) {
			list = append(list, x)
		}
	}
	gen := p.db.gen
	mark := func(name string) {
		if s := p.db.providers[name]; s != nil {
			s.scratch(gen).marks |= markPresent
		}
	}
	present := func(name string) bool {
		s := p.db.providers[name]
		return s != nil && s.gen == gen && s.marks&markPresent != 0
	}
	for _, x := range list {
		g, _ := p.db.get(x)
		if g.disabled {
			continue
		}
		mark(g.name)
		for _, s := range g.provides {
			mark(s)
		}
	}
	res := make([]*entry, len(list))
	needers := make(map[string][]int, len(list)/2)
	for i, x := range list {
		r, err := p.resolve(x, false)
		if err != nil {
			return nil, err
		}
		res[i] = r
		for _, n := range r.needs {
			needers[n] = append(needers[n], i)
		}
	}
	removed := make([]bool, len(list))
	var queue []int
	for i, r := range res {
		for _, n := range r.needs {
			if !present(n) {
				removed[i] = true
				queue = append(queue, i)
				break
			}
		}
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		r := res[i]
		for _, svc := range append([]string{r.name}, r.provides...) {
			for _, j := range needers[svc] {
				if !removed[j] {
					removed[j] = true
					queue = append(queue, j)
				}
			}
		}
	}
	out := list[:0:0]
	var drop []string
	for i, x := range list {
		if removed[i] {
			drop = append(drop, res[i].name)
		} else {
			out = append(out, x)
		}
	}
	for _, n := range drop {
		_ = p.db.disable(n) // known: it resolved
	}
	if len(drop) > 0 {
		p.reset()
	}
	return out, nil
}

// startTasks is what a start-up runs of the active names: those enabled
// here whose needs are met (filterActive), and their requires closure.
func (p *planner) startTasks(active []string) ([]*entry, error) {
	names, err := p.filterActive(active)
	if err != nil {
		return nil, err
	}
	return p.closure(names, false)
}

// closure is the second: resolve each name, keep enabled results, and recurse
// into requires whatever the result. The order is depth-first preorder,
// which makes plans deterministic.
func (p *planner) closure(names []string, loadMode bool) ([]*entry, error) {
	gen := p.db.gen
	in := make([]bool, len(p.db.entries))
	var out []*entry
	stack := make([]string, 0, len(names))
	for i := len(names) - 1; i >= 0; i-- {
		stack = append(stack, names[i])
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		svc := p.db.providers[n]
		if svc == nil || len(svc.list) == 0 {
			return nil, notFound(n)
		}
		svc.scratch(gen)
		if svc.marks&markVisited != 0 {
			continue
		}
		svc.marks |= markVisited
		t := p.resolveSvc(svc, loadMode)
		if (loadMode || p.enabled(t)) && !in[t.index] {
			in[t.index] = true
			out = append(out, t)
		}
		for i := len(t.requires) - 1; i >= 0; i-- {
			stack = append(stack, t.requires[i])
		}
	}
	return out, nil
}

// graph is the third: the predecessor map over tasks, with "*" handling.
// Every after/before target must be known even when it is not planned.
func (p *planner) graph(tasks []*entry) (*Plan, error) {
	pl := &Plan{entries: tasks, preds: make([][]int32, len(tasks))}
	pos := make([]int32, len(p.db.entries)) // entry index -> plan position + 1
	for i, t := range tasks {
		pos[t.index] = int32(i) + 1
	}
	at := func(e *entry) (int32, bool) {
		if e.index < len(pos) && p.db.entries[e.index] == e && pos[e.index] > 0 {
			return pos[e.index] - 1, true
		}
		return 0, false
	}
	var notStarAfter, notStarBefore []int32
	var starAfter, starBefore []int32
	for i, t := range tasks {
		if t.starAfter() {
			starAfter = append(starAfter, int32(i))
		} else {
			notStarAfter = append(notStarAfter, int32(i))
		}
		if t.starBefore() {
			starBefore = append(starBefore, int32(i))
		} else {
			notStarBefore = append(notStarBefore, int32(i))
		}
	}
	// planned resolves the names of list but "*" and returns the plan
	// positions of those planned. An edge to itself (through a service the
	// task provides) is kept: Check reports it as a cycle, as flux-core
	// does.
	var buf []int32
	planned := func(list []string) ([]int32, error) {
		buf = buf[:0]
		for _, n := range list {
			if n == "*" {
				continue
			}
			r, err := p.resolve(n, false)
			if err != nil {
				return nil, err
			}
			if j, ok := at(r); ok {
				buf = append(buf, j)
			}
		}
		return buf, nil
	}
	for i, t := range tasks {
		after, err := planned(t.after)
		if err != nil {
			return nil, err
		}
		pl.preds[i] = append(pl.preds[i], after...)
		before, err := planned(t.before)
		if err != nil {
			return nil, err
		}
		for _, j := range before {
			pl.preds[j] = append(pl.preds[j], int32(i))
		}
	}
	for _, i := range starAfter {
		pl.preds[i] = append(pl.preds[i], notStarAfter...)
	}
	for _, i := range starBefore {
		for _, k := range notStarBefore {
			pl.preds[k] = append(pl.preds[k], i)
		}
	}
	for i := range pl.preds {
		if len(pl.preds[i]) > 1 {
			slices.Sort(pl.preds[i])
			pl.preds[i] = slices.Compact(pl.preds[i])
		}
	}
	return pl, nil
}
