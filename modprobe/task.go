package modprobe

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
