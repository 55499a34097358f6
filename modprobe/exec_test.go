package modprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSchedulerStateMachine(t *testing.T) {
	// a -> c, b -> c, c -> d; limit 1.
	s := newScheduler([][]int32{{}, {}, {0, 1}, {2}}, 1)
	i, ok := s.next()
	require.True(t, ok)
	assert.Equal(t, int32(0), i)
	_, ok = s.next()
	assert.False(t, ok, "limit 1")
	s.finish(0, false)
	i, _ = s.next()
	assert.Equal(t, int32(1), i)
	s.finish(1, false)
	i, _ = s.next()
	assert.Equal(t, int32(2), i, "c ready once both predecessors are done")
	s.finish(2, true)
	_, ok = s.next()
	assert.False(t, ok, "a failure stops new starts")
	assert.True(t, s.over())
	assert.Equal(t, stWaiting, s.state[3])
}

func chain(names ...string) map[string][]string {
	m := map[string][]string{}
	for i, n := range names {
		if i == 0 {
			m[n] = nil
		} else {
			m[n] = []string{names[i-1]}
		}
	}
	return m
}

// Each task starts the moment its last predecessor finishes, so the run
// takes exactly its critical path. The tasks sleep in a synctest bubble:
// time is virtual, so the start times are exact and the test takes no
// wall-clock time.
func TestExecuteStartsEachTaskWhenItsLastPredecessorFinishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		preds := map[string][]string{"a": nil, "b": nil, "c": {"a", "b"}, "d": {"a"}, "e": {"c", "d"}}
		took := map[string]time.Duration{"a": 10 * time.Millisecond, "b": 30 * time.Millisecond, "c": 5 * time.Millisecond, "d": 40 * time.Millisecond, "e": time.Millisecond}
		rep, err := Execute(context.Background(), preds, ExecConfig{}, func(_ context.Context, name string) error {
			time.Sleep(took[name])
			return nil
		})
		require.NoError(t, err)
		start := map[string]time.Duration{}
		for _, r := range rep.Tasks {
			start[r.Name] = r.Start.Sub(rep.Start)
			assert.Equal(t, took[r.Name], r.Duration(), r.Name)
		}
		ms := time.Millisecond
		assert.Equal(t, map[string]time.Duration{"a": 0, "b": 0, "c": 30 * ms, "d": 10 * ms, "e": 50 * ms}, start)
		assert.Equal(t, 51*ms, rep.Makespan())
		assert.Equal(t, rep.Makespan(), rep.CriticalPath())
	})
}

func TestExecuteUnlimitedWidth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 50 independent tasks that can only finish when all 50 run at once.
		const n = 50
		preds := map[string][]string{}
		for i := range n {
			preds[fmt.Sprint(i)] = nil
		}
		var arrived sync.WaitGroup
		arrived.Add(n)
		all := make(chan struct{})
		go func() { arrived.Wait(); close(all) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Execute(ctx, preds, ExecConfig{}, func(ctx context.Context, _ string) error {
			arrived.Done()
			select {
			case <-all:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		require.NoError(t, err)
	})
}

func TestExecuteLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		preds := map[string][]string{}
		for i := range 20 {
			preds[fmt.Sprint(i)] = nil
		}
		var mu sync.Mutex
		cur, peak := 0, 0
		full := make(chan struct{})
		_, err := Execute(context.Background(), preds, ExecConfig{Limit: 3}, func(context.Context, string) error {
			mu.Lock()
			cur++
			peak = max(peak, cur)
			if cur == 3 && full != nil {
				close(full) // the first three run together
				full = nil
			}
			wait := full
			mu.Unlock()
			if wait != nil {
				select {
				case <-wait:
				case <-time.After(10 * time.Second):
					return errors.New("three tasks never ran at once")
				}
			}
			mu.Lock()
			cur--
			mu.Unlock()
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, 3, peak)
	})
}

// endWatch is a slog handler that closes a channel when the executor
// records the end of one task, so a test can order events without sleeps.
type endWatch struct {
	task string
	once sync.Once
	seen chan struct{}
}

func (w *endWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *endWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *endWatch) WithGroup(string) slog.Handler            { return w }
func (w *endWatch) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "task end" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "task" && a.Value.String() == w.task {
			w.once.Do(func() { close(w.seen) })
		}
		return true
	})
	return nil
}

func TestExecuteFailureSkipsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		preds := map[string][]string{"first": nil, "bad": {"first"}, "slow": {"first"}, "after-bad": {"bad"}, "after-slow": {"slow"}, "tail": {"after-bad", "after-slow"}}
		w := &endWatch{task: "bad", seen: make(chan struct{})}
		var slowFinished atomic.Bool
		rep, err := Execute(context.Background(), preds, ExecConfig{Logger: slog.New(w)}, func(ctx context.Context, name string) error {
			switch name {
			case "bad":
				return errors.New("boom")
			case "slow": // still running when bad's failure is recorded
				select {
				case <-w.seen:
				case <-time.After(10 * time.Second):
					return errors.New("bad never ended")
				}
				slowFinished.Store(true)
			}
			return nil
		})
		var re *RunError
		require.ErrorAs(t, err, &re)
		require.Len(t, re.Failures, 1)
		assert.Equal(t, "bad: boom", re.Failures[0].Error())
		assert.True(t, slowFinished.Load(), "a running task finishes")
		assert.ElementsMatch(t, []string{"after-bad", "after-slow", "tail"}, re.Skipped)
		assert.ElementsMatch(t, re.Skipped, rep.Skipped)
	})
}

// A task that overruns TaskTimeout fails when the timeout expires, not
// later; virtual time (synctest) makes that exact.
func TestExecuteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rep, err := Execute(context.Background(), chain("a", "b"), ExecConfig{TaskTimeout: time.Minute}, func(ctx context.Context, name string) error {
			<-ctx.Done()
			return ctx.Err()
		})
		var re *RunError
		require.ErrorAs(t, err, &re)
		assert.Contains(t, re.Failures[0].Error(), "a: timed out after 1m0s")
		assert.Equal(t, []string{"b"}, re.Skipped)
		assert.Equal(t, time.Minute, rep.Tasks[0].Duration())
	})
}

func TestExecuteCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var bStarted atomic.Bool
		rep, err := Execute(ctx, chain("a", "b", "c"), ExecConfig{}, func(ctx context.Context, name string) error {
			if name == "b" {
				bStarted.Store(true)
				cancel()
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		assert.True(t, bStarted.Load())
		assert.Equal(t, []string{"c"}, rep.Skipped)
		assert.Empty(t, rep.Failures, "cancellation is not a task failure")
	})
}

func TestExecutePanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := Execute(context.Background(), chain("a"), ExecConfig{}, func(context.Context, string) error { panic("oops") })
		require.ErrorIs(t, err, ErrTaskFailed)
		assert.Contains(t, err.Error(), "a: panic: oops")
	})
}

func TestExecuteCycle(t *testing.T) {
	_, err := Execute(context.Background(), map[string][]string{"a": {"c"}, "b": {"a"}, "c": {"b"}, "d": nil}, ExecConfig{}, func(context.Context, string) error {
		assert.Fail(t, "a task ran despite the cycle")
		return nil
	})
	assert.EqualError(t, err, "('nodes are in a cycle', ['a', 'b', 'c', 'a'])")
}

func TestReportCriticalPathAndTrace(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	rep := &Report{
		Start: t0, End: at(40),
		Tasks: []TaskResult{
			{Name: "a", Started: true, Start: at(0), End: at(10)},
			{Name: "b", Started: true, Start: at(0), End: at(25)},
			{Name: "c", Started: true, Start: at(25), End: at(40)},
			{Name: "d", Skipped: true},
		},
		preds: [][]int32{{}, {}, {0, 1}, {2}},
	}
	assert.Equal(t, 40*time.Millisecond, rep.CriticalPath())
	assert.InDelta(t, 1.0, rep.Efficiency(), 1e-9)
	assert.Contains(t, rep.Summary(), "3 tasks ran, 0 failed, 0 skipped")

	var b strings.Builder
	require.NoError(t, rep.WriteTrace(&b, 2))
	var doc struct {
		TraceEvents []traceEvent `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.String()), &doc))
	require.Len(t, doc.TraceEvents, 4) // metadata + 3 tasks
	lanes := map[string]int{}
	for _, e := range doc.TraceEvents[1:] {
		assert.Equal(t, "X", e.Ph)
		assert.Equal(t, 2, e.Pid)
		lanes[e.Name] = e.Tid
	}
	assert.NotEqual(t, lanes["a"], lanes["b"], "overlapping tasks get separate lanes")
	assert.Equal(t, 15000.0, doc.TraceEvents[3].Dur)
}
