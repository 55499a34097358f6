package modprobe

import (
	"context"
	"fmt"
	"slices"
)

// kind of a database entry.
type kind uint8

const (
	kindTask kind = iota
	kindModule
)

// entry is one task database entry: a module from TOML, a Go task or a
// declarative rc task. Rc3 turns module entries into removal entries.
type entry struct {
	name     string
	kind     kind
	module   string
	args     []string
	exec     bool
	ranks    Ranks
	provides []string
	requires []string
	needs    []string
	before   []string
	after    []string

	needsAttrs, needsConfig, needsEnv []string

	priority     int
	disabled     bool
	forceEnabled bool
	removal      bool
	index        int

	run    func(ctx context.Context, c *Context) error
	action *action // declarative rc task
	origin string  // file or "go" that declared it
}

func (e *entry) isModule() bool { return e.kind == kindModule }

func (e *entry) starBefore() bool { return slices.Contains(e.before, "*") }

func (e *entry) starAfter() bool { return slices.Contains(e.after, "*") }

// checkStar enforces that "*" on one side leaves the other side empty.
func (e *entry) checkStar() error {
	if e.starBefore() && len(e.after) > 0 {
		return fmt.Errorf("%s: cannot specify 'before=[\"*\"]' when 'after' is also set (after=%s)", e.name, pyList(e.after))
	}
	if e.starAfter() && len(e.before) > 0 {
		return fmt.Errorf("%s: cannot specify 'after=[\"*\"]' when 'before' is also set (before=%s)", e.name, pyList(e.before))
	}
	return nil
}

func (e *entry) clone() *entry {
	c := *e
	return &c
}

// Module keys accepted in [[modules]] entries and <name>.<key> updates.
var moduleKeys = []string{
	"name", "module", "args", "ranks", "provides", "requires", "needs",
	"before", "after", "needs-attrs", "needs-config", "needs-env",
	"priority", "disabled", "exec",
}

// taskKeys are the attributes shared by modules and declarative tasks.
var taskKeys = []string{
	"name", "ranks", "provides", "requires", "needs", "before", "after",
	"needs-attrs", "needs-config", "needs-env", "priority", "disabled",
}

// setFields sets the keys of tbl, in the order of keys, then checks the
// "*" rule. The key "name" is skipped, or refused with nameErr when that is
// set. On error e is left as it was, and the key at fault is returned (""
// for the "*" rule).
func (e *entry) setFields(keys []string, tbl map[string]any, nameErr error) (string, error) {
	saved := *e
	for _, k := range keys {
		err := nameErr
		switch {
		case k != "name":
			err = e.setField(k, tbl[k])
		case nameErr == nil:
			continue
		}
		if err != nil {
			*e = saved
			return k, err
		}
	}
	if err := e.checkStar(); err != nil {
		*e = saved
		return "", err
	}
	return "", nil
}

// setField assigns one hyphenated key. Explicit nulls (JSON) restore the
// default, as flux-core does for None.
func (e *entry) setField(key string, v any) error {
	f, ok := entryFields[key]
	if !ok {
		return newUnknownKey(key, moduleKeys)
	}
	if v == nil {
		f.reset(e)
		return nil
	}
	return f.set(e, key, v)
}

// entryField sets one key of an entry from a decoded value, or resets it
// to its default.
type entryField struct {
	set   func(e *entry, key string, v any) error
	reset func(e *entry)
}

// entryFields are the keys of moduleKeys but "name", which names an entry
// rather than setting it.
var entryFields = map[string]entryField{
	"module": {
		set:   func(e *entry, key string, v any) (err error) { e.module, err = asString(key, v); return err },
		reset: func(e *entry) { e.module = e.name },
	},
	"args": listField(func(e *entry) *[]string { return &e.args }, nil),
	"ranks": {
		set: func(e *entry, key string, v any) error {
			s, err := asString(key, v)
			if err == nil {
				e.ranks, err = ParseRanks(s)
			}
			return err
		},
		reset: func(e *entry) { e.ranks = Ranks{} },
	},
	"provides": listField(func(e *entry) *[]string { return &e.provides }, func(e *entry, _ string, l []string) error {
		for _, p := range l {
			if err := checkName(p); err != nil {
				return err
			}
		}
		return nil
	}),
	"requires":     listField(func(e *entry) *[]string { return &e.requires }, notSelf),
	"needs":        listField(func(e *entry) *[]string { return &e.needs }, nil),
	"before":       listField(func(e *entry) *[]string { return &e.before }, notSelf),
	"after":        listField(func(e *entry) *[]string { return &e.after }, notSelf),
	"needs-attrs":  listField(func(e *entry) *[]string { return &e.needsAttrs }, nil),
	"needs-config": listField(func(e *entry) *[]string { return &e.needsConfig }, nil),
	"needs-env":    listField(func(e *entry) *[]string { return &e.needsEnv }, nil),
	"priority": {
		set:   func(e *entry, key string, v any) (err error) { e.priority, err = asInt(key, v); return err },
		reset: func(e *entry) { e.priority = DefaultPriority },
	},
	"disabled": boolField(func(e *entry) *bool { return &e.disabled }),
	"exec":     boolField(func(e *entry) *bool { return &e.exec }),
}

// listField is a list of names, nil by default; check, when set, vets a
// new value.
func listField(at func(*entry) *[]string, check func(e *entry, key string, l []string) error) entryField {
	return entryField{
		set: func(e *entry, key string, v any) error {
			l, err := asStrings(key, v)
			if err != nil {
				return err
			}
			*at(e) = l
			if check != nil {
				return check(e, key, l)
			}
			return nil
		},
		reset: func(e *entry) { *at(e) = nil },
	}
}

// boolField is a flag, false by default.
func boolField(at func(*entry) *bool) entryField {
	return entryField{
		set:   func(e *entry, key string, v any) (err error) { *at(e), err = asBool(key, v); return err },
		reset: func(e *entry) { *at(e) = false },
	}
}

// notSelf refuses an ordering or requirement list naming its own entry.
func notSelf(e *entry, key string, l []string) error { return checkSelf(e.name, key, l) }
