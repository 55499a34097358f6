package modprobe

import (
	"fmt"
	"slices"
	"strings"
)

// db is the task database: every entry registered under its own name and
// under each service it provides, with a global insertion index that breaks
// priority ties (the later entry wins).
type db struct {
	entries   []*entry
	byName    map[string]*entry
	providers map[string]*service
	opts      map[string]*moduleOpts
	// gen invalidates the planner scratch of every service at once.
	gen uint32
}

// service is a name and its providers in index order, plus scratch
// space the planner uses so that each name reference costs one map
// lookup. Scratch is valid only while gen equals the database's.
type service struct {
	list []*entry

	gen   uint32
	marks uint8
	res   *entry // needs-aware resolution
	loose *entry // resolution ignoring needs
}

const (
	markRes     uint8 = 1 << iota // res is set
	markLoose                     // loose is set
	markVisited                   // closure reached this name
	markPresent                   // an active entry provides this name
)

// scratch returns s with its planner scratch valid for gen.
func (s *service) scratch(gen uint32) *service {
	if s.gen != gen {
		s.gen, s.marks, s.res, s.loose = gen, 0, nil, nil
	}
	return s
}

// list returns the providers of name.
func (d *db) list(name string) []*entry {
	if s := d.providers[name]; s != nil {
		return s.list
	}
	return nil
}

// moduleOpts are setopt values for one name.
type moduleOpts struct {
	values    []string
	overwrite bool
}

func newDB() *db {
	return &db{
		byName:    make(map[string]*entry),
		providers: make(map[string]*service),
		opts:      make(map[string]*moduleOpts),
	}
}

// clone copies the database so that a plan can mutate it (rc3 removal
// entries, set_alternative, disable) without touching the original.
func (d *db) clone() *db {
	c := &db{
		entries:   make([]*entry, len(d.entries)),
		byName:    make(map[string]*entry, len(d.byName)),
		providers: make(map[string]*service, len(d.providers)),
		opts:      make(map[string]*moduleOpts, len(d.opts)),
	}
	m := make(map[*entry]*entry, len(d.entries))
	for i, e := range d.entries {
		n := e.clone()
		c.entries[i] = n
		m[e] = n
		c.byName[n.name] = n
	}
	for name, svc := range d.providers {
		np := make([]*entry, len(svc.list))
		for i, p := range svc.list {
			np[i] = m[p]
		}
		c.providers[name] = &service{list: np}
	}
	for k, o := range d.opts {
		c.opts[k] = &moduleOpts{values: slices.Clone(o.values), overwrite: o.overwrite}
	}
	return c
}

// known reports whether name is a task, module or service.
func (d *db) known(name string) bool { return len(d.list(name)) > 0 }

// add registers a new entry under its name and services.
func (d *db) add(e *entry) {
	e.index = len(d.entries)
	d.entries = append(d.entries, e)
	d.byName[e.name] = e
	d.register(e, e.name)
	for _, s := range e.provides {
		d.register(e, s)
	}
}

func (d *db) register(e *entry, svc string) {
	s := d.providers[svc]
	if s == nil {
		s = &service{}
		d.providers[svc] = s
	}
	if slices.Contains(s.list, e) {
		return
	}
	// Keep providers in index order; a merge may re-register an old entry.
	i, _ := slices.BinarySearchFunc(s.list, e.index, func(p *entry, idx int) int { return p.index - idx })
	s.list = slices.Insert(s.list, i, e)
}

func (d *db) unregister(e *entry, svc string) {
	s := d.providers[svc]
	if s == nil {
		return
	}
	if i := slices.Index(s.list, e); i >= 0 {
		s.list = slices.Delete(s.list, i, i+1)
		if len(s.list) == 0 {
			delete(d.providers, svc)
		}
	}
}

// reprovide re-registers e after its provides list changed, so that
// service lookups follow merges and updates.
func (d *db) reprovide(e *entry, old []string) {
	for _, s := range old {
		if s != e.name && !slices.Contains(e.provides, s) {
			d.unregister(e, s)
		}
	}
	for _, s := range e.provides {
		d.register(e, s)
	}
}

func better(a, b *entry) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.index > b.index
}

// get returns the provider of service with the highest (priority, index)
// among those not disabled, or among all when every one is disabled.
func (d *db) get(service string) (*entry, error) {
	ps := d.list(service)
	if len(ps) == 0 {
		return nil, notFound(service)
	}
	var best, bestAny *entry
	for _, p := range ps {
		if bestAny == nil || better(p, bestAny) {
			bestAny = p
		}
		if !p.disabled && (best == nil || better(p, best)) {
			best = p
		}
	}
	if best == nil {
		best = bestAny
	}
	return best, nil
}

// setAlternative makes name the provider of service by raising its
// priority above every competitor.
func (d *db) setAlternative(service, name string) error {
	ps := d.list(service)
	if len(ps) == 0 {
		return fmt.Errorf("no such service %s", service)
	}
	var chosen *entry
	top := ps[0].priority
	for _, p := range ps {
		if p.name == name {
			chosen = p
		}
		top = max(top, p.priority)
	}
	if chosen == nil {
		return fmt.Errorf("no module %s provides %s", name, service)
	}
	if len(ps) == 1 {
		return nil
	}
	chosen.priority = top + 1
	return nil
}

// prefer makes e the provider of every service it provides, as loading it
// does.
func (d *db) prefer(e *entry) {
	for _, svc := range e.provides {
		_ = d.setAlternative(svc, e.name) // e provides svc: cannot fail
	}
}

func noSuchModuleOrTask(name string) error {
	return fmt.Errorf("no such module or task %s", pyQuote(name))
}

// disable disables every provider of name.
func (d *db) disable(name string) error {
	return d.eachProvider(name, func(p *entry) { p.disabled = true })
}

// enable force-enables every provider of name.
func (d *db) enable(name string) error {
	return d.eachProvider(name, func(p *entry) { p.forceEnabled = true })
}

// eachProvider calls fn for every provider of name, which must be known.
func (d *db) eachProvider(name string, fn func(*entry)) error {
	ps := d.list(name)
	if len(ps) == 0 {
		return noSuchModuleOrTask(name)
	}
	for _, p := range ps {
		fn(p)
	}
	return nil
}

// disableList applies a comma-separated list (FLUX_MODPROBE_DISABLE, -D).
// Items are not trimmed and an empty item is an error, as in flux-core.
func (d *db) disableList(list string) error {
	for _, item := range strings.Split(list, ",") {
		if err := d.disable(item); err != nil {
			return err
		}
	}
	return nil
}

// setopt appends whitespace-separated options for name.
func (d *db) setopt(name, options string, overwrite bool) {
	o := d.opts[name]
	if o == nil {
		o = &moduleOpts{}
		d.opts[name] = o
	}
	o.values = append(o.values, strings.Fields(options)...)
	if overwrite {
		o.overwrite = true
	}
}

// getopts returns def unless overwritten, then the setopt values of name,
// then those of each name in also.
func (d *db) getopts(name string, def []string, also []string) []string {
	overwritten := false
	if o := d.opts[name]; o != nil && o.overwrite {
		overwritten = true
	}
	for _, a := range also {
		if o := d.opts[a]; o != nil && o.overwrite {
			overwritten = true
		}
	}
	var out []string
	if !overwritten {
		out = append(out, def...)
	}
	if o := d.opts[name]; o != nil {
		out = append(out, o.values...)
	}
	for _, a := range also {
		if o := d.opts[a]; o != nil {
			out = append(out, o.values...)
		}
	}
	return out
}

// loadArgs are the arguments module e is loaded with.
func (d *db) loadArgs(e *entry) []string {
	return d.getopts(e.name, e.args, e.provides)
}
