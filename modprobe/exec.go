package modprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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
	// discard.
	Logger *slog.Logger
}

// TaskResult is what happened to one task.
type TaskResult struct {
	Name    string
	Started bool
	Skipped bool // never started because of an earlier failure or cancellation
	Start   time.Time
	End     time.Time
	Err     error
}

// Duration is End - Start for a task that ran.
func (r TaskResult) Duration() time.Duration {
	if !r.Started {
		return 0
	}
	return r.End.Sub(r.Start)
}

// Report describes a run.
type Report struct {
	Start, End time.Time
	// Tasks in plan order.
	Tasks []TaskResult
	// Failures in the order they happened: root causes only.
	Failures []*TaskError
	// Skipped names every task that never started, once each.
	Skipped []string
	preds   [][]int32
}

// Makespan is the wall time of the run.
func (r *Report) Makespan() time.Duration { return r.End.Sub(r.Start) }

// CriticalPath is the longest chain of measured task durations through the
// predecessor graph: the makespan an executor with no overhead and no
// concurrency cap would reach.
func (r *Report) CriticalPath() time.Duration {
	n := len(r.Tasks)
	finish := make([]time.Duration, n)
	order := topoOrder(r.preds)
	var best time.Duration
	for _, i := range order {
		var start time.Duration
		for _, q := range r.preds[i] {
			start = max(start, finish[q])
		}
		finish[i] = start + r.Tasks[i].Duration()
		best = max(best, finish[i])
	}
	return best
}

// Efficiency is makespan divided by critical path (1.0 is ideal); 0 when
// nothing took measurable time.
func (r *Report) Efficiency() float64 {
	cp := r.CriticalPath()
	if cp <= 0 {
		return 0
	}
	return float64(r.Makespan()) / float64(cp)
}

// Summary is a one-line account of the run.
func (r *Report) Summary() string {
	ran := 0
	for _, t := range r.Tasks {
		if t.Started {
			ran++
		}
	}
	return fmt.Sprintf("%d tasks ran, %d failed, %d skipped; makespan %s, critical path %s, ratio %.2f",
		ran, len(r.Failures), len(r.Skipped), r.Makespan().Round(time.Microsecond),
		r.CriticalPath().Round(time.Microsecond), r.Efficiency())
}

func topoOrder(preds [][]int32) []int32 {
	n := len(preds)
	indeg := make([]int32, n)
	succ := make([][]int32, n)
	for i, ps := range preds {
		indeg[i] = int32(len(ps))
		for _, q := range ps {
			succ[q] = append(succ[q], int32(i))
		}
	}
	order := make([]int32, 0, n)
	for i := range indeg {
		if indeg[i] == 0 {
			order = append(order, int32(i))
		}
	}
	for k := 0; k < len(order); k++ {
		for _, s := range succ[order[k]] {
			if indeg[s]--; indeg[s] == 0 {
				order = append(order, s)
			}
		}
	}
	return order
}

type taskState uint8

const (
	stWaiting taskState = iota
	stReady
	stRunning
	stDone
	stFailed
)

// scheduler is the executor's pure state machine: it says which task may
// start and learns which finished. The driver owns goroutines and time.
type scheduler struct {
	succ    [][]int32
	waiting []int32 // unfinished predecessors
	state   []taskState
	ready   []int32 // FIFO
	running int
	limit   int
	aborted bool
}

func newScheduler(preds [][]int32, limit int) *scheduler {
	n := len(preds)
	s := &scheduler{succ: make([][]int32, n), waiting: make([]int32, n), state: make([]taskState, n), limit: limit}
	for i, ps := range preds {
		s.waiting[i] = int32(len(ps))
		for _, q := range ps {
			s.succ[q] = append(s.succ[q], int32(i))
		}
	}
	for i := range s.waiting {
		if s.waiting[i] == 0 {
			s.state[i] = stReady
			s.ready = append(s.ready, int32(i))
		}
	}
	return s
}

// next returns a task to start now, if any.
func (s *scheduler) next() (int32, bool) {
	if s.aborted || len(s.ready) == 0 || (s.limit > 0 && s.running >= s.limit) {
		return 0, false
	}
	i := s.ready[0]
	s.ready = s.ready[1:]
	s.state[i] = stRunning
	s.running++
	return i, true
}

// finish records the end of task i. A failure aborts the run: nothing
// else starts, and the tasks left are skipped.
func (s *scheduler) finish(i int32, failed bool) {
	s.running--
	if failed {
		s.state[i] = stFailed
		s.aborted = true
		return
	}
	s.state[i] = stDone
	for _, j := range s.succ[i] {
		if s.waiting[j]--; s.waiting[j] == 0 {
			s.state[j] = stReady
			s.ready = append(s.ready, j)
		}
	}
}

func (s *scheduler) abort() { s.aborted = true }

// over reports whether the driver can stop: nothing runs and nothing more
// can start.
func (s *scheduler) over() bool {
	return s.running == 0 && (s.aborted || len(s.ready) == 0)
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
	names := make([]string, 0, len(preds))
	for k := range preds {
		names = append(names, k)
	}
	sortStrings(names)
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
