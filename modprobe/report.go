package modprobe

import (
	"fmt"
	"time"
)

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
