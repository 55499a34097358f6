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
