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
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
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

func TestExecuteStartsWhenLastPredecessorFinishes(t *testing.T) {
	leakcheck.Check(t)
	preds := map[string][]string{"a": nil, "b": nil, "c": {"a", "b"}, "d": {"a"}}
	var mu sync.Mutex
	done := map[string]bool{}
	dStarted := make(chan struct{})
	rep, err := Execute(context.Background(), preds, ExecConfig{}, func(_ context.Context, name string) error {
		mu.Lock()
		for _, p := range preds[name] {
			if !done[p] {
				mu.Unlock()
				return fmt.Errorf("%s started before %s finished", name, p)
			}
		}
		mu.Unlock()
		switch name {
		case "b": // d must not wait for b, which runs until d has started
			select {
			case <-dStarted:
			case <-time.After(10 * time.Second):
				return errors.New("d did not start while b was running")
			}
		case "d":
			close(dStarted)
		}
		mu.Lock()
		done[name] = true
		mu.Unlock()
		return nil
	})
	require.NoError(t, err)
	byName := map[string]TaskResult{}
	for _, r := range rep.Tasks {
		byName[r.Name] = r
	}
	assert.False(t, byName["c"].Start.Before(byName["b"].End))
}

func TestExecuteUnlimitedWidth(t *testing.T) {
	leakcheck.Check(t)
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
}

func TestExecuteLimit(t *testing.T) {
	leakcheck.Check(t)
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
	leakcheck.Check(t)
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
}

func TestExecuteTimeout(t *testing.T) {
	leakcheck.Check(t)
	_, err := Execute(context.Background(), chain("a", "b"), ExecConfig{TaskTimeout: 10 * time.Millisecond}, func(ctx context.Context, name string) error {
		<-ctx.Done()
		return ctx.Err()
	})
	var re *RunError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Failures[0].Error(), "a: timed out after 10ms")
	assert.Equal(t, []string{"b"}, re.Skipped)
}

func TestExecuteCancel(t *testing.T) {
	leakcheck.Check(t)
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
}

func TestExecutePanic(t *testing.T) {
	leakcheck.Check(t)
	_, err := Execute(context.Background(), chain("a"), ExecConfig{}, func(context.Context, string) error { panic("oops") })
	require.ErrorIs(t, err, ErrTaskFailed)
	assert.Contains(t, err.Error(), "a: panic: oops")
}

func TestExecuteCycle(t *testing.T) {
	_, err := Execute(context.Background(), map[string][]string{"a": {"c"}, "b": {"a"}, "c": {"b"}, "d": nil}, ExecConfig{}, func(context.Context, string) error {
		t.Error("nothing runs")
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
