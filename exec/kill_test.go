package exec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// virtualCoordinator replaces in's coordinator with one on a virtual clock.
func virtualCoordinator(t *testing.T, in *instance, set *Settings) (*Coordinator, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	return restartOn(t, in, set, clk), clk
}

// restartOn stops in's coordinator (after its eventlog is stored) and
// starts another on clk.
func restartOn(t *testing.T, in *instance, set *Settings, clk *fakeClock) *Coordinator {
	t.Helper()
	in.coord.Sync(context.Background())
	in.stopCoordinator()
	h := in.b.Owner(0)
	c, err := New(context.Background(), Config{Handle: h, Settings: set, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	in.coord, in.coordH = c, h
	t.Cleanup(func() { c.Close(); h.Close() })
	return c
}

// tasksUp reports whether the shells of terminatingJob's kind have started
// their n'th task on both ranks.
func tasksUp(dir string, n int) bool {
	return lineCount(dir+"/up.0") >= n && lineCount(dir+"/up.1") >= n
}

func lineCount(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// Task kills reach the shell's tasks and not the shell: a shell that ignores
// term-signal outlives the task kills (1-4 kto) and dies at the first shell
// kill (5 kto), and the job's kill-timeout statistic doubles with it. Real
// shells and tasks, on a virtual clock.
func TestTaskKillsGoToTasks(t *testing.T) {
	checkLeaks(t)
	tj := terminatingJob(t)
	c, clk, s, id, dir, set := tj.c, tj.clk, tj.s, tj.id, tj.dir, tj.set
	for k := 1; k <= 4; k++ {
		waitFor(t, "tasks running", func() bool { return tasksUp(dir, k) })
		clk.Advance(set.KillTimeout)
		c.quiesce()
		waitFor(t, fmt.Sprintf("task kill %d on both ranks", k), func() bool {
			return lineCount(dir+"/tasks.0") >= k && lineCount(dir+"/tasks.1") >= k
		})
		js := c.Stats().Jobs[id.F58Plain()]
		if js.KillCount != k || js.KillShellCount != 0 || js.KillTimeout != 10 || slices.Contains(s.types(), "finish") {
			t.Fatalf("after task kill %d: %+v, stream %v", k, js, s.lines())
		}
	}
	clk.Advance(set.KillTimeout) // 5 kto: the first shell kill
	c.quiesce()
	s.wait(t)
	if got := s.lines(); got[1] != `finish {"status":9}` {
		t.Fatalf("stream %v", got)
	}
	tasks, shells, _ := set.KillSchedule()
	if len(tasks) != 4 || shells[0] != 5*set.KillTimeout {
		t.Fatalf("documented schedule %v %v", tasks, shells)
	}
}

// Kills are answered rank by rank. The leader holds its subtree's exits
// until all have exited, so a rank whose shell died at term-signal still
// looks active to the coordinator; its agent's answer (nothing left to kill)
// keeps the unkillable drain to the rank that really holds processes.
func TestKillAcksSpareEmptyRanks(t *testing.T) {
	checkLeaks(t)
	set := DefaultSettings()
	set.KillTimeout = time.Second
	set.MaxKillCount = 1
	set.KillSignal = syscall.SIGUSR1 // the leader traps it: unkillable for the test
	in := newInstance(t, instOpts{size: 2})
	c, clk := virtualCoordinator(t, in, &set)
	dir := t.TempDir()
	cmd := fmt.Sprintf(`if [ $FLUX_TASK_RANK = 0 ]; then trap '' TERM USR1; fi; touch %s/up.$FLUX_TASK_RANK; while :; do sleep 0.02; done`, dir)
	id := fluxkit.JobID(31101)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("0-1", "n[0-1]", 0), false)
	waitFor(t, "start", func() bool {
		return slices.Contains(s.types(), "start") && fileExists(dir+"/up.0") && fileExists(dir+"/up.1")
	})
	in.jm.exception(id, 0, nil)
	waitFor(t, "rank 1's shell gone", func() bool { return in.agents[1].Stats().Reaped == 1 })
	if act := c.Stats().Jobs[id.F58Plain()].ActiveRanks; act != "0-1" {
		t.Fatalf("active ranks %q: the leader should still hold rank 1's exit", act)
	}
	clk.Advance(set.KillTimeout) // the first task kill, which rank 1 answers holding nothing
	waitFor(t, "rank 1 known empty", func() bool { return c.holding(id) == "0" })
	for i := 0; i < 12; i++ {
		clk.Advance(set.KillTimeout)
		c.quiesce()
	}
	s.wait(t)
	waitFor(t, "drain", func() bool { return len(in.jm.drainList()) > 0 })
	if d := in.jm.drainList(); len(d) != 1 || d[0] != "0: unkillable user processes for job "+id.F58() {
		t.Fatalf("drains %q: only rank 0 holds processes", d)
	}
}

// A kill that cannot travel down the job's tree is answered as unreached
// for the subtree behind the break, and the coordinator delivers it to
// those ranks directly.
func TestKillUnreachedGoesDirect(t *testing.T) {
	checkLeaks(t)
	set := DefaultSettings()
	set.Fanout = 1 // a chain: 1 -> 2 -> 3
	in := newInstance(t, instOpts{size: 4, set: &set})
	in.agents[1].killFault = func(child uint32) error {
		return fluxkit.Errorf(fluxkit.EHOSTUNREACH, "test: no route to rank %d", child)
	}
	id := fluxkit.JobID(31201)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("sleep 1000", ""), makeR("1-3", "n[1-3]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	in.jm.exception(id, 0, nil)
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `finish {"status":15}|release {"final":true,"ranks":"1-3"}` &&
		got != `start {}|finish {"status":15}|release {"final":true,"ranks":"1-3"}` {
		t.Fatal(got)
	}
}

// The machine's side: answers mark ranks empty or holding, and an unreached
// rank gets the kill again, directly, once.
func TestKillAcked(t *testing.T) {
	h := newHarness(t, DefaultSettings(), 2, 3, 5, 7)
	h.start(at(0))
	h.j.exception(at(0), 0, nil)
	acts := h.j.take()
	var kill action
	for _, a := range acts {
		if a.kind == actKill {
			kill = a
		}
	}
	h.j.killAcked(kill, []uint32{2}, []uint32{3}, []uint32{5, 7})
	again := render(at(0), h.j.take())
	if len(again) != 1 || again[0] != "t=0 kill 5,7 shells 15" {
		t.Fatalf("resend: %v", again)
	}
	h.j.killAcked(action{kind: actKill, signal: 15, ranks: []uint32{5, 7}, direct: true}, nil, nil, []uint32{5, 7})
	if a := h.j.take(); len(a) != 0 {
		t.Fatalf("a direct kill was sent again: %v", render(at(0), a))
	}
	if got := formatRanks(h.j.holdingRanks()); got != "2,5,7" {
		t.Fatalf("holding %s", got)
	}
}

// A guest's shell runs under the IMP, which only the IMP may signal: the
// shell gets term-signal, task kills go through the job manager
// (job-manager.kill, whose shell-<id>.kill event the shells act on), and
// the shell kills are SIGUSR1, which the IMP turns into SIGKILL of the
// job's cgroup (RFC 15). The guest's shell environment names the IMP's
// helper.
func TestGuestKillsThroughJobManagerAndIMP(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	set := DefaultSettings()
	set.KillTimeout = 10 * time.Second
	set.IMP = fakeIMP(t, dir)
	set.JobShell = filepath.Join(dir, "shell.sh")
	script := fmt.Sprintf(`#!/bin/sh
echo "$FLUX_IMP_EXEC_HELPER" > %[1]s/helper
trap 'echo TERM >> %[1]s/sigs' TERM
trap 'echo USR1 >> %[1]s/sigs; exit 3' USR1
touch %[1]s/up
while :; do sleep 0.02; done
`, dir)
	if err := os.WriteFile(set.JobShell, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, instOpts{size: 2, set: &set})
	c, clk := virtualCoordinator(t, in, &set)
	id := fluxkit.JobID(31301)
	s := in.jm.start(id, 4242, `{"version":1,"tasks":[{"command":["x"]}],"attributes":{"system":{}}}`, makeR("1", "n1", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") && fileExists(dir+"/up") })
	if got := strings.TrimSpace(readFile(t, dir+"/helper")); got != fmt.Sprint("flux imp_exec_helper ", uint64(id)) {
		t.Fatalf("FLUX_IMP_EXEC_HELPER %q", got)
	}
	in.jm.exception(id, 0, nil)
	waitFor(t, "term-signal", func() bool { return lineCount(dir+"/sigs") == 1 })
	for k := 1; k <= 4; k++ {
		clk.Advance(set.KillTimeout)
		c.quiesce()
		waitFor(t, fmt.Sprintf("task kill %d", k), func() bool { return len(in.jm.killList()) == k })
	}
	if got := in.jm.killList(); got[3] != fmt.Sprint(uint64(id), " 9") || readFile(t, dir+"/sigs") != "TERM\n" {
		t.Fatalf("task kills %v, shell signals %q", got, readFile(t, dir+"/sigs"))
	}
	clk.Advance(set.KillTimeout) // 5 kto: the first shell kill
	c.quiesce()
	s.wait(t)
	if got := readFile(t, dir+"/sigs"); got != "TERM\nUSR1\n" {
		t.Fatalf("shell signals %q, want TERM then USR1", got)
	}
	if got := s.lines(); got[len(got)-2] != `finish {"status":768}` {
		t.Fatalf("stream %v", got)
	}
}
