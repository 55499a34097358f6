package exec

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// fakeClock is a virtual clock: timers fire only when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at            time.Time
	f             func()
	stopped, done bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped && !t.done
		t.stopped = true
		return was
	}
}

// Advance moves time forward by d, firing due timers in time order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.done && !t.at.After(target) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.done = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = target
	c.mu.Unlock()
}

// TestKillEscalationDriver replays the kill escalation through the
// coordinator and the agents on a virtual clock: simulated shells that
// ignore every signal, kill-timeout 1 s, max-kill-count 2. Task kills at
// 1-4 s, shell kills at 5 and 7 s (the job's kill-timeout doubling to 2,
// then 4 s), drain and forced completion at 11 s — the time stats-get shows
// as effective-max-kill-timeout.
func TestKillEscalationDriver(t *testing.T) {
	checkLeaks(t)
	set := DefaultSettings()
	set.KillTimeout = time.Second
	set.MaxKillCount = 2
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	in := newInstance(t, instOpts{size: 2, set: &set})
	for _, a := range in.agents {
		a.deafTest = true
	}
	in.stopCoordinator()
	h := in.b.Owner(0)
	c, err := New(context.Background(), Config{Handle: h, Settings: &set, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	in.coord = c
	t.Cleanup(func() { c.Close(); h.Close() })

	id := fluxkit.JobID(30001)
	s := in.jm.start(id, in.b.OwnerID(), testJobspec(`{"run_duration":"0"}`), makeR("0-1", "n[0-1]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	in.jm.exception(id, 0, nil)
	waitFor(t, "exception", func() bool { return c.Stats().Jobs[id.F58Plain()].ExceptionInProgress })
	if got := c.Stats().EffectiveMaxKillTimeout; got != 11 {
		t.Fatalf("effective-max-kill-timeout %v, want 11", got)
	}
	type row struct {
		tasks, shells int
		kto           float64
		gone          bool // forced complete and retired
	}
	var timeline []row
	for sec := 1; sec <= 12; sec++ {
		clk.Advance(time.Second)
		c.quiesce() // the tick the clock just fired is applied
		if js := c.Stats().Jobs[id.F58Plain()]; js.Finalizing && js.ActiveShells == 0 {
			// Forced complete: it is retired once its namespace is
			// grafted, which takes no virtual time.
			waitFor(t, "retired", func() bool { _, ok := c.Stats().Jobs[id.F58Plain()]; return !ok })
		}
		js, ok := c.Stats().Jobs[id.F58Plain()]
		timeline = append(timeline, row{js.KillCount, js.KillShellCount, js.KillTimeout, !ok})
	}
	want := []row{{1, 0, 1, false}, {2, 0, 1, false}, {3, 0, 1, false}, {4, 0, 1, false}, {4, 1, 2, false}, {4, 1, 2, false},
		{4, 2, 4, false}, {4, 2, 4, false}, {4, 2, 4, false}, {4, 2, 4, false}, {0, 0, 0, true}, {0, 0, 0, true}}
	if len(timeline) != len(want) {
		t.Fatal(timeline)
	}
	for i := range want {
		if timeline[i] != want[i] {
			t.Fatalf("t=%ds: got %+v, want %+v (timeline %+v)", i+1, timeline[i], want[i], timeline)
		}
	}
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|finish {"status":256}|release {"final":true,"ranks":"0-1"}` {
		t.Fatal(got)
	}
	waitFor(t, "drain", func() bool { return len(in.jm.drainList()) == 1 })
	if d := in.jm.drainList()[0]; d != "0-1: unkillable user processes for job "+id.F58() {
		t.Fatal(d)
	}
}

// AC-15: expiration updates through the RPC.
func TestExpirationRPC(t *testing.T) {
	checkLeaks(t)
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	set := DefaultSettings()
	in := newInstance(t, instOpts{size: 1, set: &set})
	in.stopCoordinator()
	h := in.b.Owner(0)
	c, err := New(context.Background(), Config{Handle: h, Settings: &set, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	in.coord = c
	t.Cleanup(func() { c.Close(); h.Close() })
	id := fluxkit.JobID(30101)
	exp := float64(clk.Now().Add(10 * time.Second).Unix())
	s := in.jm.start(id, in.b.OwnerID(), testJobspec(`{"run_duration":"0"}`), makeR("0", "n0", exp), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	ctx := context.Background()
	if err := fluxkit.RPC(ctx, in.jm.h, "job-exec.expiration", 0, map[string]any{"id": 999, "expiration": 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "Job not found") {
		t.Fatalf("unknown id: %v", err)
	}
	if err := fluxkit.RPC(ctx, in.jm.h, "job-exec.expiration", 0, map[string]any{"id": id, "expiration": exp + 100}, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Second)
	c.quiesce()
	if slices.Contains(s.types(), "exception") {
		t.Fatal("expired at the old time")
	}
	clk.Advance(60 * time.Second)
	waitFor(t, "timeout", func() bool { return slices.Contains(s.types(), "exception") })
	if got := s.lines()[1]; got != `exception {"note":"resource allocation expired","severity":0,"type":"timeout"}` {
		t.Fatal(got)
	}
	s.wait(t) // SIGALRM completes a simulated shell
	// expiration 0 disables the timer
	id2 := fluxkit.JobID(30102)
	s = in.jm.start(id2, in.b.OwnerID(), testJobspec(`{"run_duration":"0"}`), makeR("0", "n0", float64(clk.Now().Add(time.Second).Unix())), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	if err := fluxkit.RPC(ctx, in.jm.h, "job-exec.expiration", 0, map[string]any{"id": id2, "expiration": 0}, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	c.quiesce()
	if slices.Contains(s.types(), "exception") {
		t.Fatal("expired with the timer disabled")
	}
	in.jm.exception(id2, 0, nil)
	s.wait(t)
}
