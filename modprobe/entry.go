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

// setField assigns one hyphenated key. Explicit nulls (JSON) restore the
// default, as flux-core does for None.
func (e *entry) setField(key string, v any) error {
	var err error
	if v == nil {
		switch key {
		case "module":
			e.module = e.name
		case "args":
			e.args = nil
		case "ranks":
			e.ranks = Ranks{}
		case "provides":
			e.provides = nil
		case "requires":
			e.requires = nil
		case "needs":
			e.needs = nil
		case "before":
			e.before = nil
		case "after":
			e.after = nil
		case "needs-attrs":
			e.needsAttrs = nil
		case "needs-config":
			e.needsConfig = nil
		case "needs-env":
			e.needsEnv = nil
		case "priority":
			e.priority = DefaultPriority
		case "disabled":
			e.disabled = false
		case "exec":
			e.exec = false
		}
		return nil
	}
	switch key {
	case "module":
		e.module, err = asString(key, v)
	case "args":
		e.args, err = asStrings(key, v)
	case "ranks":
		var s string
		if s, err = asString(key, v); err == nil {
			e.ranks, err = ParseRanks(s)
		}
	case "provides":
		if e.provides, err = asStrings(key, v); err == nil {
			for _, p := range e.provides {
				if err = checkName(p); err != nil {
					break
				}
			}
		}
	case "requires":
		if e.requires, err = asStrings(key, v); err == nil {
			err = checkSelf(e.name, key, e.requires)
		}
	case "needs":
		e.needs, err = asStrings(key, v)
	case "before":
		if e.before, err = asStrings(key, v); err == nil {
			err = checkSelf(e.name, key, e.before)
		}
	case "after":
		if e.after, err = asStrings(key, v); err == nil {
			err = checkSelf(e.name, key, e.after)
		}
	case "needs-attrs":
		e.needsAttrs, err = asStrings(key, v)
	case "needs-config":
		e.needsConfig, err = asStrings(key, v)
	case "needs-env":
		e.needsEnv, err = asStrings(key, v)
	case "priority":
		e.priority, err = asInt(key, v)
	case "disabled":
		e.disabled, err = asBool(key, v)
	case "exec":
		e.exec, err = asBool(key, v)
	default:
		return newUnknownKey(key, moduleKeys)
	}
	return err
}
