package exec

import (
	"context"
	"errors"
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

// barrierShell writes a job shell that waits for dir/<broker rank>.exit
// (whose content is its exit code) or for SIGTERM. A job shell gets
// flux-core's environment, which does not name its rank: the harness gives
// every agent's shells TEST_BROKER_RANK.
func barrierShell(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "shell.sh")
	script := fmt.Sprintf("#!/bin/sh\nwhile [ ! -e %s/$TEST_BROKER_RANK.exit ]; do sleep 0.01; done\nexit $(cat %s/$TEST_BROKER_RANK.exit)\n", dir, dir)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// enter is a shell on rank r entering the barrier; the result arrives on
// the returned channel.
func enter(in *instance, id fluxkit.JobID, rank uint32) chan error {
	ch := make(chan error, 1)
	h := in.b.Owner(rank)
	go func() {
		defer h.Close()
		ch <- fluxkit.RPC(context.Background(), h, "exec-agent.barrier-enter", rank, barrierReq{ID: id, Rank: rank}, nil)
	}()
	return ch
}

func pending(chs ...chan error) bool {
	for _, c := range chs {
		select {
		case <-c:
			return false
		default:
		}
	}
	return true
}

func waitAll(t *testing.T, want error, chs ...chan error) {
	t.Helper()
	for i, c := range chs {
		select {
		case err := <-c:
			if (want == nil) != (err == nil) || want != nil && !errors.Is(err, want) {
				t.Fatalf("barrier entry %d: %v, want %v", i, err, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("barrier entry %d never answered", i)
		}
	}
}

func barrierInstance(t *testing.T, userid uint32, mods ...func(*Settings)) (*instance, string, *jobStream, fluxkit.JobID) {
	return barrierJob(t, userid, instOpts{}, mods...)
}

// barrierJob starts a job of barrierShell shells on ranks 2-3,5,7 of an
// 8-rank instance with o's agents.
func barrierJob(t *testing.T, userid uint32, o instOpts, mods ...func(*Settings)) (*instance, string, *jobStream, fluxkit.JobID) {
	dir := t.TempDir()
	set := DefaultSettings()
	for _, m := range mods {
		m(&set)
	}
	set.JobShell = barrierShell(t, dir)
	set.IMP = fakeIMP(t, dir)
	o.size, o.set = 8, &set
	in := newInstance(t, o)
	if userid == 0 {
		userid = in.b.OwnerID()
	}
	id := fluxkit.JobID(20001)
	s := in.jm.start(id, userid, `{"version":1,"tasks":[{"command":["x"]}],"attributes":{"system":{}}}`,
		makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	return in, dir, s, id
}

// AC-17: two barriers, released only when all four shells entered, with no
// barrier traffic at rank 0.
func TestBarriers(t *testing.T) {
	checkLeaks(t)
	in, dir, s, id := barrierInstance(t, 0)
	in.coord.Sync(context.Background()) // the start step's eventlog commit is not barrier traffic
	m0 := in.rank0Messages()
	for b := 1; b <= 2; b++ {
		a := enter(in, id, 2)
		c := enter(in, id, 3)
		d := enter(in, id, 5)
		time.Sleep(50 * time.Millisecond)
		if !pending(a, c, d) {
			t.Fatalf("barrier %d released before the fourth shell entered", b)
		}
		e := enter(in, id, 7)
		waitAll(t, nil, a, c, d, e)
	}
	// The leader reports the completed barriers once; nothing else reached
	// rank 0.
	in.coord.Sync(context.Background())
	if got := in.rank0Messages() - m0; got > 2 {
		t.Fatalf("rank 0 handled %d messages during barriers", got)
	}
	if st := in.agents[0].Stats(); st.Messages != 0 {
		t.Fatalf("rank 0 agent saw %d messages", st.Messages)
	}
	for i := 0; i < 4; i++ {
		writeCode(t, dir, i, 0)
	}
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|finish {"status":0}|release {"final":true,"ranks":"2-3,5,7"}` {
		t.Fatal(got)
	}
}

// writeCode makes the barrier job's shell of shellRank exit with code.
func writeCode(t *testing.T, dir string, shellRank, code int) {
	t.Helper()
	broker := []int{2, 3, 5, 7}[shellRank] // the job's R
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.exit", broker)), []byte(fmt.Sprint(code)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// AC-18: a guest job's shell exits before the first barrier.
func TestExitBeforeFirstBarrier(t *testing.T) {
	checkLeaks(t)
	in, dir, s, id := barrierInstance(t, 4242)
	a := enter(in, id, 2)
	c := enter(in, id, 3)
	time.Sleep(20 * time.Millisecond)
	writeCode(t, dir, 2, 1) // shell rank 2 = broker rank 5
	waitAll(t, syscall.EIO, a, c)
	s.wait(t)
	got := s.lines()
	if !strings.Contains(got[1], `"note":"node5 (rank 5) terminated before first barrier"`) || !strings.Contains(got[1], `"severity":0`) {
		t.Fatalf("stream %v", got)
	}
	// As in flux-core, the ranks drained are those whose shells ended
	// before the first barrier without entering it: rank 5, and rank 7,
	// which the termination then ends while still pending. Ranks 2 and 3
	// had entered and are not drained.
	drained := func() []string {
		var out []string
		for _, d := range in.jm.drainList() {
			targets, reason, _ := strings.Cut(d, ": ")
			if reason != id.F58()+" terminated before first barrier" {
				t.Fatalf("drain reason %q", d)
			}
			out = append(out, targets)
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, "drains", func() bool { return strings.Join(drained(), ",") == "5,7" })
	time.Sleep(50 * time.Millisecond)
	if d := drained(); strings.Join(d, ",") != "5,7" {
		t.Fatalf("drained %v", d)
	}
}

// AC-19: an exit while the others wait in the barrier; later entries fail
// too; a bad rank is refused.
func TestExitDuringBarrier(t *testing.T) {
	checkLeaks(t)
	in, dir, s, id := barrierInstance(t, 0)
	if err := <-enterAs(in, id, 2, 3); err == nil || err.Error() != "rank 3 is not pending in barrier" || !errors.Is(err, fluxkit.EINVAL) {
		t.Fatalf("bad rank: %v", err)
	}
	chs := []chan error{enter(in, id, 2), enter(in, id, 3), enter(in, id, 5)}
	time.Sleep(20 * time.Millisecond)
	writeCode(t, dir, 3, 0) // broker rank 7 exits instead of entering
	waitAll(t, syscall.EIO, chs...)
	if err := <-enter(in, id, 2); !errors.Is(err, syscall.EIO) {
		t.Fatalf("later entry: %v", err)
	}
	for i := 0; i < 3; i++ {
		writeCode(t, dir, i, 0)
	}
	s.wait(t)
}

// enterAs sends a barrier entry for rank to the agent on rank on.
func enterAs(in *instance, id fluxkit.JobID, on, rank uint32) chan error {
	ch := make(chan error, 1)
	h := in.b.Owner(on)
	go func() {
		defer h.Close()
		ch <- fluxkit.RPC(context.Background(), h, "exec-agent.barrier-enter", on, barrierReq{ID: id, Rank: rank}, nil)
	}()
	return ch
}

// The first-barrier timeout drains exactly the ranks whose shells never
// entered, found by a query reduced up the job's tree.
func TestBarrierTimeout(t *testing.T) {
	checkLeaks(t)
	in, dir, s, id := barrierInstance(t, 0, func(s *Settings) { s.BarrierTimeout = 300 * time.Millisecond })
	a := enter(in, id, 2)
	c := enter(in, id, 3)
	waitAll(t, syscall.EIO, a, c)
	waitFor(t, "exception", func() bool { return slices.Contains(s.types(), "exception") })
	if got := s.lines()[1]; got != `exception {"note":"start barrier timeout waiting for 2/4 nodes (ranks 5,7)","severity":0,"type":"exec"}` {
		t.Fatal(got)
	}
	waitFor(t, "drain", func() bool { return len(in.jm.drainList()) > 0 })
	if d := in.jm.drainList()[0]; d != "5,7: job "+id.F58()+" start timeout: possible node hang" {
		t.Fatal(d)
	}
	for i := 0; i < 4; i++ {
		writeCode(t, dir, i, 0)
	}
	s.wait(t)
}

// fakeIMP stands in for flux-imp: "imp exec CMD..." runs CMD (as t2404's
// fake IMP does), without switching users.
func fakeIMP(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "imp.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n[ \"$1\" = exec ] || exit 1\nshift\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A job shell enters its barriers as flux-shell does, through
// job-exec.shell-barrier on its own rank ({id, rank}), served there by the
// agent; the barriers behave as through barrier-enter, with flux-core's
// refusals. (flux-shell sends it with NORESPONSE and waits for a response
// built by hand: the real-instance tests of examples/flux-job-exec cover
// that part, which the in-process broker's responders do not model.)
func TestShellBarrierService(t *testing.T) {
	checkLeaks(t)
	in, dir, s, id := barrierJob(t, 0, instOpts{agent: func(r uint32, c *AgentConfig) {
		if r != 0 { // rank 0's job-exec is the coordinator's
			c.ShellService = "job-exec"
		}
	}})
	shellEnter := func(rank uint32, body any) chan error {
		ch := make(chan error, 1)
		h := in.b.Owner(rank)
		go func() {
			defer h.Close()
			ch <- fluxkit.RPC(context.Background(), h, "job-exec.shell-barrier", fluxkit.NodeidAny, body, nil)
		}()
		return ch
	}
	if err := <-shellEnter(2, map[string]any{"id": 999, "rank": 2}); !errors.Is(err, fluxkit.ENOENT) {
		t.Fatalf("unknown job: %v", err)
	}
	if err := <-shellEnter(2, map[string]any{"id": id, "rank": 4}); err == nil || err.Error() != "rank 4 is not pending in barrier" {
		t.Fatalf("bad rank: %v", err)
	}
	for b := 1; b <= 2; b++ {
		chs := []chan error{shellEnter(2, map[string]any{"id": id, "rank": 2}), shellEnter(3, map[string]any{"id": id, "rank": 3}),
			shellEnter(5, map[string]any{"id": id, "rank": 5})}
		time.Sleep(50 * time.Millisecond)
		if !pending(chs...) {
			t.Fatalf("barrier %d released before the fourth shell entered", b)
		}
		waitAll(t, nil, append(chs, shellEnter(7, map[string]any{"id": id, "rank": 7}))...)
	}
	for i := 0; i < 4; i++ {
		writeCode(t, dir, i, 0)
	}
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|finish {"status":0}|release {"final":true,"ranks":"2-3,5,7"}` {
		t.Fatal(got)
	}
}
