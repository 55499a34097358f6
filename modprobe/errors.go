package modprobe

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. The concrete errors carry flux-core's exact texts and
// match these with errors.Is.
var (
	// ErrNotFound: a name that is neither a task, a module nor a service.
	ErrNotFound = errors.New("no such task or module")
	// ErrCycle: the ordering constraints of a plan form a cycle.
	ErrCycle = errors.New("nodes are in a cycle")
	// ErrConfig: a configuration or rc file is malformed.
	ErrConfig = errors.New("invalid configuration")
	// ErrNotLoaded: remove was asked for a module that is not loaded.
	ErrNotLoaded = errors.New("module is not loaded")
	// ErrInUse: remove would leave a loaded module without a requirement.
	ErrInUse = errors.New("module still in use")
	// ErrTaskFailed: at least one task of a run failed.
	ErrTaskFailed = errors.New("task failed")
)

// NotFoundError is flux-core's "no such task or module NAME".
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return "no such task or module " + e.Name }

// Is matches ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// CycleError reports a cycle of the predecessor graph. Nodes lists the
// cycle in execution order (each node must run before the next), closed by
// repeating its first node; the start is the cycle's node that comes first in
// plan order, so the text is the same on every run.
type CycleError struct{ Nodes []string }

func (e *CycleError) Error() string {
	q := make([]string, len(e.Nodes))
	for i, n := range e.Nodes {
		q[i] = pyQuote(n)
	}
	return "('nodes are in a cycle', [" + strings.Join(q, ", ") + "])"
}

// Is matches ErrCycle.
func (e *CycleError) Is(target error) bool { return target == ErrCycle }

// ConfigError locates a configuration error: the file, the line (0 when
// unknown), the column of syntax errors, and the key path at fault.
type ConfigError struct {
	File string
	Line int
	Col  int
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap exposes the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is matches ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// NotLoadedError is "module NAME is not loaded" from remove.
type NotLoadedError struct{ Name string }

func (e *NotLoadedError) Error() string { return "module " + e.Name + " is not loaded" }

// Is matches ErrNotLoaded.
func (e *NotLoadedError) Is(target error) bool { return target == ErrNotLoaded }

// InUseError is "NAME still in use by A, B" from remove.
type InUseError struct {
	Name  string
	Users []string // sorted
}

func (e *InUseError) Error() string {
	return e.Name + " still in use by " + strings.Join(e.Users, ", ")
}

// Is matches ErrInUse.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// TaskError is one task's failure: "NAME: ERR".
type TaskError struct {
	Task string
	Err  error
}

func (e *TaskError) Error() string { return e.Task + ": " + e.Err.Error() }

// Unwrap exposes the task's own error.
func (e *TaskError) Unwrap() error { return e.Err }

// RunError is the outcome of a run in which tasks failed. Failures holds
// the root causes only; Skipped names every task that never started because
// of them, each once.
type RunError struct {
	Failures []*TaskError
	Skipped  []string
}

func (e *RunError) Error() string {
	msg := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		msg[i] = f.Error()
	}
	s := strings.Join(msg, "; ")
	if len(e.Skipped) > 0 {
		s += fmt.Sprintf(" (%d tasks skipped)", len(e.Skipped))
	}
	return s
}

// Is matches ErrTaskFailed.
func (e *RunError) Is(target error) bool { return target == ErrTaskFailed }

// Unwrap exposes the failures, so errors.Is finds a task's own error.
func (e *RunError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

func notFound(name string) error { return &NotFoundError{Name: name} }

// pyQuote renders s as Python's repr of a str would, so that messages that
// flux-core formats from Python lists read the same.
func pyQuote(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	var b strings.Builder
	b.WriteString(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case string(r) == q:
			b.WriteString(`\` + q)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(q)
	return b.String()
}

func pyList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = pyQuote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// didYouMean suggests the closest of candidates to key, or "".
func didYouMean(key string, candidates []string) string {
	best, bestD := "", 3
	if len(key) > 8 {
		bestD = 4
	}
	for _, c := range candidates {
		d := editDistance(key, c)
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
