package modprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"time"
)

// ExecConfig tunes the executor.
type ExecConfig struct {
	// Limit caps the number of tasks running at once; 0 (the default)
	// means no cap, so the width of the graph alone limits parallelism.
	// Module loads are I/O bound: a small fixed pool only stretches the
	// makespan (flux-core's pool of 6 took 3.98 times the critical path).
	Limit int
	// TaskTimeout bounds each task; 0 (the default) means none. A task
	// that overruns gets its context cancelled and fails.
	TaskTimeout time.Duration
	// Logger receives debug records of task starts and ends. Default:
	// discard (in a Modprobe, Config.Logger).
	Logger *slog.Logger
}

// Validate reports the first field that is out of range, naming it. It
// does not change c; Execute and Config.Validate call it.
func (c *ExecConfig) Validate() error { return c.validate("ExecConfig.") }

// validate names the fields with prefix, the path to c.
func (c *ExecConfig) validate(prefix string) error {
	switch {
	case c.Limit < 0:
		return fmt.Errorf("modprobe: %sLimit %d is negative", prefix, c.Limit)
	case c.TaskTimeout < 0:
		return fmt.Errorf("modprobe: %sTaskTimeout %s is negative", prefix, c.TaskTimeout)
	}
	return nil
}

type finished struct {
	i   int32
	err error
	end time.Time
}

// execute runs tasks in dependency order: each task starts the moment its
// last predecessor finishes. It returns when every started task has
// returned; the error is a *RunError after task failures, or the context's
// error after cancellation. preds must be acyclic (see Plan.Check).
func execute(ctx context.Context, names []string, preds [][]int32, cfg ExecConfig, run func(ctx context.Context, i int) error) (*Report, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := len(names)
	rep := &Report{Tasks: make([]TaskResult, n), preds: preds, Start: time.Now()}
	for i, nm := range names {
		rep.Tasks[i].Name = nm
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newScheduler(preds, cfg.Limit)
	done := make(chan finished, n) // never blocks a task goroutine
	cancelled := ctx.Done()
	var ctxErr error
	for {
		for {
			i, ok := s.next()
			if !ok {
				break
			}
			rep.Tasks[i].Started = true
			rep.Tasks[i].Start = time.Now()
			log.Debug("task start", "task", names[i])
			go func() {
				err := runOne(runCtx, cfg.TaskTimeout, run, int(i))
				done <- finished{i: i, err: err, end: time.Now()}
			}()
		}
		if s.over() {
			break
		}
		select {
		case f := <-done:
			t := &rep.Tasks[f.i]
			t.End, t.Err = f.end, f.err
			log.Debug("task end", "task", t.Name, "err", f.err)
			if f.err != nil && ctxErr == nil {
				rep.Failures = append(rep.Failures, &TaskError{Task: t.Name, Err: f.err})
			}
			s.finish(f.i, f.err != nil)
		case <-cancelled:
			ctxErr = ctx.Err()
			cancelled = nil
			s.abort()
			cancel()
		}
	}
	rep.End = time.Now()
	for i := range rep.Tasks {
		if !rep.Tasks[i].Started {
			rep.Tasks[i].Skipped = true
			rep.Skipped = append(rep.Skipped, names[i])
		}
	}
	if ctxErr != nil {
		return rep, ctxErr
	}
	if len(rep.Failures) > 0 {
		return rep, &RunError{Failures: rep.Failures, Skipped: rep.Skipped}
	}
	return rep, nil
}

func runOne(ctx context.Context, timeout time.Duration, run func(context.Context, int) error, i int) (err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	err = run(ctx, i)
	if err != nil && timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return err
}

// Execute runs a predecessor map with the executor: run is called for
// each name once all of its predecessors returned nil. Predecessors that
// are not keys of preds are ignored. It fails with a *CycleError before
// running anything if the map has a cycle.
func Execute(ctx context.Context, preds map[string][]string, cfg ExecConfig, run func(ctx context.Context, name string) error) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(preds))
	idx := make(map[string]int32, len(names))
	for i, nm := range names {
		idx[nm] = int32(i)
	}
	pl := &Plan{entries: make([]*entry, len(names)), preds: make([][]int32, len(names))}
	for i, nm := range names {
		pl.entries[i] = &entry{name: nm}
		for _, q := range preds[nm] {
			if j, ok := idx[q]; ok && j != int32(i) {
				pl.preds[i] = append(pl.preds[i], j)
			}
		}
	}
	if err := pl.Check(); err != nil {
		return nil, err
	}
	return execute(ctx, names, pl.preds, cfg, func(ctx context.Context, i int) error { return run(ctx, names[i]) })
}
