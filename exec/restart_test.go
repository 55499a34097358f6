package exec

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// A termination in progress survives a coordinator restart: the new
// coordinator takes the escalation up where it stood, with the steps
// already taken not repeated (real shells that ignore term-signal, their
// tasks, a virtual clock).
func TestTerminationSurvivesRestart(t *testing.T) {
	t.Run("mid-escalation", func(t *testing.T) {
		checkLeaks(t)
		tj := terminatingJob(t)
		in, c, clk, id, dir, set := tj.in, tj.c, tj.clk, tj.id, tj.dir, tj.set
		clk.Advance(set.KillTimeout) // task kill 1
		c.quiesce()
		waitFor(t, "task kill 1", func() bool { return lineCount(dir+"/tasks.0") == 1 })
		c = restartOn(t, in, &set, clk)
		s2 := in.jm.start(id, in.b.OwnerID(), tj.spec, tj.R, true)
		waitFor(t, "restored termination", func() bool {
			js, ok := c.Stats().Jobs[id.F58Plain()]
			return ok && js.ExceptionInProgress && js.KillCount == 1 && js.ActiveRanks == "0-1"
		})
		time.Sleep(50 * time.Millisecond)
		c.quiesce()
		if n := lineCount(dir + "/tasks.0"); n != 1 {
			t.Fatalf("task kill repeated after the restart: %d", n)
		}
		for k := 2; k <= 4; k++ {
			waitFor(t, "tasks running", func() bool { return tasksUp(dir, k) })
			clk.Advance(set.KillTimeout)
			c.quiesce()
			waitFor(t, fmt.Sprintf("task kill %d after the restart", k), func() bool {
				return lineCount(dir+"/tasks.0") == k && lineCount(dir+"/tasks.1") == k
			})
		}
		if slices.Contains(s2.types(), "finish") {
			t.Fatalf("shells ended before the first shell kill: %v", s2.lines())
		}
		clk.Advance(set.KillTimeout) // 5 kto: shell kill
		c.quiesce()
		s2.wait(t)
		if got := strings.Join(s2.lines(), "|"); got != `finish {"status":9}|release {"final":true,"ranks":"0-1"}` {
			t.Fatal(got)
		}
	})
	t.Run("downtime past the first shell kill", func(t *testing.T) {
		checkLeaks(t)
		tj := terminatingJob(t)
		in, clk, id, dir, set := tj.in, tj.clk, tj.id, tj.dir, tj.set
		in.coord.Sync(context.Background())
		in.stopCoordinator()
		clk.Advance(6 * set.KillTimeout) // four task kills and a shell kill fall due unseen
		c := restartOn(t, in, &set, clk)
		s2 := in.jm.start(id, in.b.OwnerID(), tj.spec, tj.R, true)
		c.quiesce()
		s2.wait(t) // one catch-up step: the shell kill
		if got := strings.Join(s2.lines(), "|"); got != `finish {"status":9}|release {"final":true,"ranks":"0-1"}` {
			t.Fatal(got)
		}
		if n := lineCount(dir + "/tasks.0"); n != 0 {
			t.Fatalf("%d task kills replayed in a burst", n)
		}
	})
}

// terminating is a two-rank job of real shells that ignore SIGTERM (as do
// their tasks, which inherit that) and run sleep tasks, one after another:
// each time a task is killed the shell writes a line to tasks.<shell rank>
// and starts another, writing a line to up.<shell rank>. Its coordinator
// runs on a virtual clock, and the job has been cancelled.
type terminating struct {
	in      *instance
	c       *Coordinator
	clk     *fakeClock
	s       *jobStream
	spec, R string
	id      fluxkit.JobID
	dir     string
	set     Settings
}

func terminatingJob(t *testing.T) *terminating {
	t.Helper()
	tj := &terminating{set: DefaultSettings(), id: 32001, dir: t.TempDir()}
	tj.set.KillTimeout = 10 * time.Second
	tj.in = newInstance(t, instOpts{size: 2})
	tj.c, tj.clk = virtualCoordinator(t, tj.in, &tj.set)
	cmd := fmt.Sprintf(`trap '' TERM; while :; do sleep 1000 & echo up >> %[1]s/up.$FLUX_TASK_RANK; wait $!; echo killed >> %[1]s/tasks.$FLUX_TASK_RANK; done`, tj.dir)
	tj.spec, tj.R = shellJobspec(cmd, ""), makeR("0-1", "n[0-1]", 0)
	tj.s = tj.in.jm.start(tj.id, tj.in.b.OwnerID(), tj.spec, tj.R, false)
	waitFor(t, "start", func() bool { return slices.Contains(tj.s.types(), "start") && tasksUp(tj.dir, 1) })
	tj.in.jm.exception(tj.id, 0, nil)
	waitFor(t, "exception", func() bool { return tj.c.Stats().Jobs[tj.id.F58Plain()].ExceptionInProgress })
	return tj
}

// What a termination restores: the exception's wait_status decides finish,
// and exec's own exception, already sent, is not sent again.
func TestRestoreTerminationState(t *testing.T) {
	set := DefaultSettings()
	set.KillTimeout = time.Second
	j := newJob(at(0), 1, 100, testRS(0, 1), set, false)
	j.launch(at(0))
	j.started(at(0), []uint32{0, 1})
	j.fatal(at(1), "exec", "first")
	ws := 9
	j.exception(at(1), 0, &ws) // the job manager's echo has no effect on wait_status: exec raised first
	j.tick(at(2.5))
	var ctx map[string]any
	for _, a := range j.take() {
		if a.kind == actPost && a.event.Name == "termination" {
			ctx = a.event.Context
		}
	}
	if ctx == nil || ctx["tasks"] != 1 || ctx["sent"] != true {
		t.Fatalf("termination context %v", ctx)
	}
	// A new coordinator at t=3.5: the task kill at t=3 fell due unseen.
	k := newJob(at(3.5), 1, 100, testRS(0, 1), set, true)
	k.restoreTermination(at(3.5), jsonRoundTrip(t, ctx))
	k.take()
	if _, ok := k.next(); ok {
		t.Fatal("steps before the ranks are known again")
	}
	k.started(at(3.5), []uint32{0})
	k.exited(at(3.5), 1, 15)
	k.tick(at(3.5))
	got := render(at(3.5), k.take())
	if len(got) < 1 || got[0] != "t=3.5 kill 0 tasks 9" {
		t.Fatalf("catch-up: %v", got)
	}
	k.fatal(at(4), "exec", "second")
	k.exited(at(4), 0, 0)
	k.releasedRanks(at(4), []uint32{0, 1}, nil, "")
	for _, l := range render(at(4), k.take()) {
		if strings.Contains(l, "respond exception") {
			t.Fatalf("second exception sent: %s", l)
		}
		if strings.Contains(l, "respond finish") && !strings.Contains(l, `"status":15`) {
			t.Fatalf("finish: %s", l)
		}
	}
}

// After a coordinator restart that follows completed barriers, the leader
// reports them again, so normal shell exits are not taken for shells that
// ended before the first barrier.
func TestBarriersSurviveRestart(t *testing.T) {
	checkLeaks(t)
	in, dir, _, id := barrierInstance(t, 0)
	for b := 1; b <= 2; b++ {
		waitAll(t, nil, enter(in, id, 2), enter(in, id, 3), enter(in, id, 5), enter(in, id, 7))
	}
	in.coord.Sync(context.Background())
	in.stopCoordinator()
	in.startCoordinator(in.set)
	s := in.jm.start(id, in.b.OwnerID(), `{"version":1,"tasks":[{"command":["x"]}],"attributes":{"system":{}}}`,
		makeR("2-3,5,7", "node[2-3,5,7]", 0), true)
	waitFor(t, "reattached", func() bool { return slices.Contains(s.types(), "reattached") })
	writeCode(t, dir, 2, 0) // one shell exits first, alone
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 4; i++ {
		writeCode(t, dir, i, 0)
	}
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `reattached {}|finish {"status":0}|release {"final":true,"ranks":"2-3,5,7"}` {
		t.Fatal(got)
	}
	if d := in.jm.drainList(); len(d) != 0 {
		t.Fatalf("drained %v", d)
	}
}
