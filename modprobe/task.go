package modprobe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode"
)

// DefaultPriority is the priority of a task or module that sets none.
const DefaultPriority = 100

// Task is a start-up or shut-down task written in Go: the equivalent of a
// flux-core rc-file function declared with @task. Register it with an [RC].
type Task struct {
	// Name is required. A task whose name is already known (as a task, a
	// module or a service) is not added again; activating it activates
	// the existing entry, as in flux-core.
	Name string
	// Ranks is where the task runs. The zero Ranks is "all".
	Ranks Ranks
	// Provides lists services this task can stand in for.
	Provides []string
	// Requires activates these names too; it does not order them.
	Requires []string
	// Needs drops the task when a needed name has no enabled provider in
	// the plan.
	Needs []string
	// Before and After order the task against others. "*" means every
	// other task (except other tasks with the same "*").
	Before, After []string
	// NeedsAttrs, NeedsConfig and NeedsEnv name broker attributes, dotted
	// broker config keys and environment variables that must be set
	// ("!x": must be unset). Any value counts as set.
	NeedsAttrs, NeedsConfig, NeedsEnv []string
	// Priority chooses among alternatives (higher wins). Nil means
	// DefaultPriority; zero is a priority like any other (new(0)).
	Priority *int
	// Disabled disables the task; it can still be force-enabled.
	Disabled bool
	// Run does the work. Verbose runs log "start NAME" and "completed
	// NAME" around it; dry runs print "run NAME" instead of calling it.
	Run func(ctx context.Context, c *Context) error
}

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
func (e *entry) starAfter() bool  { return slices.Contains(e.after, "*") }

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

// checkName refuses names that the comma-separated disable lists, the "*"
// of before and after, or a terminal could not carry.
func checkName(name string) error {
	for _, r := range name {
		if r == ',' || r == '*' || unicode.IsControl(r) {
			return fmt.Errorf("invalid name %q: names must not contain commas, \"*\" or control characters", name)
		}
	}
	return nil
}

// checkSelf refuses an entry that names itself in an ordering or
// requirement list: flux-core's sorter reports such an edge as a cycle,
// and dropping it would hide the mistake.
func checkSelf(name, key string, list []string) error {
	if slices.Contains(list, name) {
		return fmt.Errorf("%s names %s itself: %w", key, name, &CycleError{Nodes: []string{name, name}})
	}
	return nil
}

// newTaskEntry validates a Go task.
func newTaskEntry(t Task) (*entry, error) {
	if t.Name == "" {
		return nil, errors.New(`task missing required name argument: @task("name")`)
	}
	if err := checkName(t.Name); err != nil {
		return nil, err
	}
	for _, p := range t.Provides {
		if err := checkName(p); err != nil {
			return nil, fmt.Errorf("%s: provides: %w", t.Name, err)
		}
	}
	for i, list := range [][]string{t.Requires, t.Before, t.After} {
		if err := checkSelf(t.Name, []string{"requires", "before", "after"}[i], list); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	e := &entry{
		name:        t.Name,
		kind:        kindTask,
		provides:    slices.Clone(t.Provides),
		requires:    slices.Clone(t.Requires),
		needs:       slices.Clone(t.Needs),
		before:      slices.Clone(t.Before),
		after:       slices.Clone(t.After),
		needsAttrs:  slices.Clone(t.NeedsAttrs),
		needsConfig: slices.Clone(t.NeedsConfig),
		needsEnv:    slices.Clone(t.NeedsEnv),
		ranks:       t.Ranks,
		priority:    DefaultPriority,
		disabled:    t.Disabled,
		run:         t.Run,
		origin:      "go",
	}
	if t.Priority != nil {
		e.priority = *t.Priority
	}
	if err := e.checkStar(); err != nil {
		return nil, err
	}
	return e, nil
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

// unknownKeyError is flux-core's "invalid config key KEY", with a hint.
type unknownKeyError struct {
	key  string
	hint string
}

func (e *unknownKeyError) Error() string {
	s := "invalid config key " + e.key
	if e.hint != "" {
		s += fmt.Sprintf(" (did you mean %q?)", e.hint)
	}
	return s
}

func newUnknownKey(key string, valid []string) error {
	return &unknownKeyError{key: key, hint: didYouMean(key, valid)}
}

// typeError names the key and the value that has the wrong type.
type typeError struct {
	key  string
	want string
	got  any
}

func (e *typeError) Error() string {
	return fmt.Sprintf("key %s: expected %s, got %s", e.key, e.want, describe(e.got))
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return "string " + strconv.Quote(x)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case int64:
		return "integer " + strconv.FormatInt(x, 10)
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func asString(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", &typeError{key: key, want: "a string", got: v}
	}
	return s, nil
}

func asStrings(key string, v any) ([]string, error) {
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, &typeError{key: key, want: "an array of strings", got: v}
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return slices.Clone(x), nil
	}
	return nil, &typeError{key: key, want: "an array of strings", got: v}
}

func asBool(key string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, &typeError{key: key, want: "a boolean", got: v}
	}
	return b, nil
}

func asInt(key string, v any) (int, error) {
	switch x := v.(type) {
	case int64:
		if x == int64(int(x)) {
			return int(x), nil
		}
	case int:
		return x, nil
	case float64: // broker config arrives as JSON
		if x == float64(int(x)) {
			return int(x), nil
		}
	}
	return 0, &typeError{key: key, want: "an integer", got: v}
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
