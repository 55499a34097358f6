package exec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
)

// AC-01: hello, and a refused hello stops the coordinator.
func TestHello(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	if got := in.jm.hellos; len(got) != 1 || got[0] != "job-exec" {
		t.Fatalf("hellos %v", got)
	}
	in.stopCoordinator()
	in.jm.mu.Lock()
	in.jm.helloErr = fluxkit.Errorf(fluxkit.EINVAL, "no")
	in.jm.mu.Unlock()
	h := in.b.Owner(0)
	defer h.Close()
	if _, err := New(context.Background(), Config{Handle: h}); err == nil || !errors.Is(err, fluxkit.EINVAL) {
		t.Fatalf("New with a refused hello: %v", err)
	}
	// Nothing registered: a start request finds no service.
	err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.start", 0, map[string]any{"id": 1}, nil)
	if !errors.Is(err, fluxkit.ENOSYS) {
		t.Fatalf("start after a failed hello: %v", err)
	}
}

// AC-02 with real shells, plus I9: rank 0 forks nothing for a job that
// does not include it.
func TestFourRankJobOnEight(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 8})
	id := fluxkit.JobID(1001)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("exit 0", ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	s.wait(t)
	if got := s.lines(); strings.Join(got, "|") != `start {}|finish {"status":0}|release {"final":true,"ranks":"2-3,5,7"}` {
		t.Fatalf("stream %v", got)
	}
	for r := uint32(0); r < 8; r++ {
		want := 0
		if r == 2 || r == 3 || r == 5 || r == 7 {
			want = 1
		}
		if got := in.spawnCount(id, r); got != want {
			t.Fatalf("rank %d spawned %d shells, want %d", r, got, want)
		}
	}
	names := eventNames(in.eventlog(id))
	if names[0] != "init" || names[1] != "starting" || names[len(names)-1] != "done" || names[len(names)-2] != "complete" {
		t.Fatalf("eventlog %v", names)
	}
	if st := in.agents[0].Stats(); st.Messages != 0 || st.Spawned != 0 {
		t.Fatalf("rank 0 agent took part in a job without rank 0: %+v", st)
	}
}

// AC-04 / AC-05: statuses from real shells.
func TestRealStatus(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 4})
	s := in.jm.start(2001, in.b.OwnerID(), shellJobspec("exit $JOB_SHELL_RANK", ""), makeR("0-3", "n[0-3]", 0), false)
	s.wait(t)
	if got := s.lines(); got[1] != `finish {"status":768}` {
		t.Fatalf("stream %v", got)
	}
	s = in.jm.start(2002, in.b.OwnerID(), shellJobspec(`[ "$FLUX_TASK_RANK" = 0 ] && exit 1; exit 0`, ""), makeR("0-3", "n[0-3]", 0), false)
	s.wait(t)
	if got := s.types(); slices.Contains(got, "exception") || s.lines()[1] != `finish {"status":256}` {
		t.Fatalf("stream %v", s.lines())
	}
}

// The environment a job shell sees.
func TestShellEnvironment(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 3})
	id := fluxkit.JobID(2101)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(`echo "$FLUX_JOB_ID $FLUX_JOB_SIZE $FLUX_TASK_RANK $FLUX_KVS_NAMESPACE $MYVAR"`,
		`{"environment":{"MYVAR":"hello"}}`), makeR("1-2", "n[1-2]", 0), false)
	s.wait(t)
	var got []string
	for _, e := range in.eventlog(id) {
		if e.Name == "log" {
			got = append(got, e.Context["rank"].(string)+":"+e.Context["data"].(string))
		}
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("1:%s 2 0 job-%d hello\n", id.F58(), id),
		fmt.Sprintf("2:%s 2 1 job-%d hello\n", id.F58(), id),
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("log %q want %q", got, want)
	}
}

// AC-06: a launch failure on one rank.
func TestLaunchFailureReal(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 8})
	in.agents[5].spawnErr = func(fluxkit.JobID, uint32) error { return syscall.ENOENT }
	id := fluxkit.JobID(3001)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("sleep 30", ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	s.wait(t)
	lines := s.lines()
	var exc []string
	for _, l := range lines {
		if strings.HasPrefix(l, "exception") {
			exc = append(exc, l)
		}
	}
	if len(exc) != 1 || !strings.Contains(exc[0], "job shell exec error") || !strings.Contains(exc[0], "(rank 5)") ||
		!strings.Contains(exc[0], `"severity":0`) || !strings.Contains(exc[0], `"type":"exec"`) {
		t.Fatalf("exceptions %v", exc)
	}
	var fin int
	if _, err := fmt.Sscanf(lines[len(lines)-2], `finish {"status":%d}`, &fin); err != nil || fin < 127<<8 {
		t.Fatalf("finish %q", lines[len(lines)-2])
	}
	if in.spawnCount(id, 5) != 0 || in.spawnCount(id, 2) != 1 {
		t.Fatal("spawn counts")
	}
	// Variant: no agent on rank 3 → ENOSYS.
	in2 := newInstance(t, instOpts{size: 8, noRank: []uint32{3}})
	s = in2.jm.start(3002, in.b.OwnerID(), shellJobspec("sleep 30", ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	s.wait(t)
	// The note names the service that is missing: the agents'.
	if l := s.lines(); !strings.Contains(l[0], `"note":"exec-agent service is not loaded on node3 (rank 3)"`) {
		t.Fatalf("ENOSYS: %v", l)
	}
}

// AC-10: cancel kills real shells with term-signal; a second exception
// re-sends it.
func TestCancelReal(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 4})
	id := fluxkit.JobID(4001)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("sleep 30", ""), makeR("0-3", "n[0-3]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	in.jm.exception(id, 0, nil)
	s.wait(t)
	got := s.lines()
	if got[1] != `finish {"status":15}` || slices.Contains(s.types()[1:], "exception") {
		t.Fatalf("stream %v", got)
	}
}

// A shell that ignores SIGTERM is killed by the escalation (t2402: 137).
func TestIgnoreTermReal(t *testing.T) {
	checkLeaks(t)
	set := DefaultSettings()
	set.KillTimeout = 50 * time.Millisecond
	in := newInstance(t, instOpts{size: 2, set: &set})
	id := fluxkit.JobID(4101)
	dir := t.TempDir()
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(fmt.Sprintf("trap '' TERM; touch %s/$FLUX_TASK_RANK; while :; do sleep 0.05; done", dir), ""), makeR("0-1", "n[0-1]", 0), false)
	waitFor(t, "traps set", func() bool {
		return fileExists(dir+"/0") && fileExists(dir+"/1") && slices.Contains(s.types(), "start")
	})
	in.jm.exception(id, 0, nil)
	s.wait(t)
	if got := s.lines(); got[1] != `finish {"status":9}` {
		t.Fatalf("stream %v", got)
	}
}

// AC-16: an exception's wait_status decides finish.
func TestExceptionWaitStatus(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	id := fluxkit.JobID(4201)
	s := in.jm.start(id, in.b.OwnerID(), testJobspec(`{"run_duration":"0"}`), makeR("0", "n0", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	ws := 9
	in.jm.exception(id, 0, &ws)
	s.wait(t)
	if got := s.lines(); got[1] != fmt.Sprintf(`finish {"status":%d}`, (128+9)<<8) {
		t.Fatalf("stream %v", got)
	}
}

// AC-14: the time limit with a real clock.
func TestTimeLimit(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	id := fluxkit.JobID(4301)
	exp := float64(time.Now().Add(300*time.Millisecond).UnixNano()) / 1e9
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("trap 'exit 3' ALRM; while :; do sleep 0.02; done", ""), makeR("0", "n0", exp), false)
	s.wait(t)
	got := s.lines()
	want := []string{`start {}`, `exception {"note":"resource allocation expired","severity":0,"type":"timeout"}`, `finish {"status":768}`}
	if strings.Join(got[:3], "|") != strings.Join(want, "|") {
		t.Fatalf("stream %v", got)
	}
}

// AC-20 / AC-21: output from the first byte, lossless, in order, including
// data that looks like the old barrier protocol.
func TestOutputLossless(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 4})
	id := fluxkit.JobID(5001)
	cmd := `echo boom >&2; echo enter; head -c 1048576 /dev/zero | tr '\0' "$FLUX_TASK_RANK"; head -c 1048576 /dev/zero | tr '\0' e >&2; exit 1`
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("0-3", "n[0-3]", 0), false)
	// 8 MiB of output, in exec.eventlog, which is appended to and grafted
	// whole: in-process, that is many copies and encodings of it.
	s.waitFor(t, 3*time.Minute)
	if got := s.lines(); got[1] != `finish {"status":256}` {
		t.Fatalf("stream %v", got)
	}
	out := map[string]*strings.Builder{}
	var first string
	for _, e := range in.eventlog(id) {
		if e.Name != "log" {
			continue
		}
		k := e.Context["rank"].(string) + "/" + e.Context["stream"].(string)
		if out[k] == nil {
			out[k] = &strings.Builder{}
		}
		if first == "" && e.Context["stream"] == "stderr" {
			first = e.Context["data"].(string)
			if e.Context["component"] != "sh" {
				t.Fatalf("component %v", e.Context["component"])
			}
		}
		out[k].WriteString(e.Context["data"].(string))
	}
	for r := 0; r < 4; r++ {
		wantOut := "enter\n" + strings.Repeat(fmt.Sprint(r), 1<<20)
		wantErr := "boom\n" + strings.Repeat("e", 1<<20)
		if got := out[fmt.Sprintf("%d/stdout", r)].String(); got != wantOut {
			t.Fatalf("rank %d stdout: %d bytes, want %d", r, len(got), len(wantOut))
		}
		if got := out[fmt.Sprintf("%d/stderr", r)].String(); got != wantErr {
			t.Fatalf("rank %d stderr: %d bytes, want %d", r, len(got), len(wantErr))
		}
	}
	if !strings.HasPrefix(first, "boom\n") {
		t.Fatalf("first stderr %q", first)
	}
}

// AC-22 / AC-23: the coordinator restarts mid-job; shells that exited
// meanwhile are accounted for; nothing is spawned twice.
func TestCoordinatorRestart(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 8})
	id := fluxkit.JobID(6001)
	dir := t.TempDir()
	// Ranks 5 and 7 exit (0 and 2) once told to; ranks 2 and 3 wait longer.
	cmd := fmt.Sprintf(`while [ ! -e %s/go ]; do sleep 0.02; done; case $FLUX_TASK_RANK in 2) exit 0;; 3) exit 2;; esac; while [ ! -e %s/end ]; do sleep 0.02; done; echo bye; exit 0`, dir, dir)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	in.coord.Sync(context.Background())
	in.stopCoordinator()
	touch(t, dir+"/go")
	time.Sleep(200 * time.Millisecond) // ranks 5 and 7 exit while no coordinator runs
	in.startCoordinator(nil)
	s2 := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), true)
	waitFor(t, "reattached", func() bool { return slices.Contains(s2.types(), "reattached") })
	touch(t, dir+"/end")
	s2.wait(t)
	got := s2.lines()
	if got[0] != "reattached {}" || got[len(got)-2] != `finish {"status":512}` || slices.Contains(s2.types(), "start") {
		t.Fatalf("stream after restart %v", got)
	}
	for _, r := range []uint32{2, 3, 5, 7} {
		if n := in.spawnCount(id, r); n != 1 {
			t.Fatalf("rank %d spawned %d times", r, n)
		}
	}
	names := eventNames(in.eventlog(id))
	if !slices.Contains(names, "reattach") || names[0] != "init" || names[len(names)-1] != "done" {
		t.Fatalf("eventlog %v", names)
	}
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := writeFile(p); err != nil {
		t.Fatal(err)
	}
}

// AC-24: reattach without recoverable.
func TestReattachNotRecoverable(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	s := in.jm.start(6101, in.b.OwnerID(), shellJobspec("exit 0", ""), makeR("0-1", "n[0-1]", 0), true)
	s.wait(t)
	got := s.lines()
	if !strings.Contains(got[0], "job is not recoverable: no recoverable event") || len(got) != 2 || in.spawnCount(6101, 0)+in.spawnCount(6101, 1) != 0 {
		t.Fatalf("stream %v", got)
	}
	s = in.jm.start(6102, in.b.OwnerID(), `{"version":1,"attributes":{"system":{"exec":{"bypass":true}}}}`, makeR("0", "n0", 0), true)
	s.wait(t)
	if got := s.lines(); !strings.Contains(got[0], "reattach to running job is not implemented") {
		t.Fatalf("bypass reattach %v", got)
	}
}

// AC-25: start re-sent without reattach after a crash before the start
// response: the shells are adopted, none is spawned twice.
func TestStartResentAdopts(t *testing.T) {
	for _, adopt := range []bool{true, false} {
		t.Run(fmt.Sprint("adopt=", adopt), func(t *testing.T) {
			checkLeaks(t)
			set := DefaultSettings()
			set.Adopt = adopt
			in := newInstance(t, instOpts{size: 4, set: &set})
			id := fluxkit.JobID(6201)
			dir := t.TempDir()
			cmd := fmt.Sprintf(`while [ ! -e %s/end ]; do sleep 0.02; done; exit 0`, dir)
			s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("1-3", "n[1-3]", 0), false)
			waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
			in.stopCoordinator()
			in.startCoordinator(&set)
			s2 := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("1-3", "n[1-3]", 0), false)
			if adopt {
				waitFor(t, "start", func() bool { return slices.Contains(s2.types(), "start") })
				touch(t, dir+"/end")
			}
			s2.wait(t)
			got := s2.lines()
			if adopt && (got[0] != "start {}" || got[1] != `finish {"status":0}`) {
				t.Fatalf("adopt: %v", got)
			}
			if !adopt && !strings.Contains(got[0], "shells from a previous launch found on n[1-3] (ranks 1-3)") {
				t.Fatalf("no adopt: %v", got)
			}
			for r := uint32(1); r <= 3; r++ {
				if n := in.spawnCount(id, r); n != 1 {
					t.Fatalf("rank %d spawned %d", r, n)
				}
			}
		})
	}
}

// AC-07 / AC-08 with a stopped rank.
func TestLostRankReal(t *testing.T) {
	for _, critical := range []bool{false, true} {
		t.Run(fmt.Sprint("critical=", critical), func(t *testing.T) {
			checkLeaks(t)
			in := newInstance(t, instOpts{size: 8})
			id := fluxkit.JobID(7001)
			dir := t.TempDir()
			cmd := fmt.Sprintf(`while [ ! -e %s/end ]; do sleep 0.02; done; exit 2`, dir)
			s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
			waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
			if !critical {
				if err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.critical-ranks", 0,
					map[string]any{"id": id, "ranks": "0"}, nil); err != nil {
					t.Fatal(err)
				}
			}
			in.b.StopRank(7)
			if !critical {
				waitFor(t, "node-failure", func() bool { return slices.Contains(s.types(), "exception") })
				touch(t, dir+"/end")
			}
			s.wait(t)
			got := s.lines()
			if !critical {
				if got[1] != `exception {"note":"node failure on node7 (shell rank 3)","severity":2,"type":"node-failure"}` ||
					got[len(got)-2] != `finish {"status":512}` {
					t.Fatalf("stream %v", got)
				}
			} else if !strings.Contains(got[1], `"note":"node failure on node7 (rank 7)","severity":0`) {
				t.Fatalf("stream %v", got)
			}
			in.b.StartRank(7) // let the stranded agent's shell be killed by Close
		})
	}
}

// AC-09: critical-ranks validation.
func TestCriticalRanksValidation(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	id := fluxkit.JobID(7101)
	s := in.jm.start(id, in.b.OwnerID(), testJobspec(`{"run_duration":"0"}`), makeR("0-1", "n[0-1]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	ctx := context.Background()
	if err := fluxkit.RPC(ctx, in.jm.h, "job-exec.critical-ranks", 0, map[string]any{"id": 999, "ranks": "0"}, nil); !errors.Is(err, fluxkit.ENOENT) {
		t.Fatalf("unknown job: %v", err)
	}
	g := in.b.Guest(0, 77)
	defer g.Close()
	if err := fluxkit.RPC(ctx, g, "job-exec.critical-ranks", 0, map[string]any{"id": id, "ranks": "0"}, nil); !errors.Is(err, fluxkit.EPERM) {
		t.Fatalf("other user: %v", err)
	}
	if err := fluxkit.RPC(ctx, in.jm.h, "job-exec.critical-ranks", 0, map[string]any{"id": id, "ranks": "x"}, nil); !errors.Is(err, fluxkit.EINVAL) {
		t.Fatalf("bad idset: %v", err)
	}
	in.jm.exception(id, 0, nil)
	s.wait(t)
}

// AC-27 with real epilogs: releases follow epilog completion order (driven
// here by the test, so the order is deterministic), finish first, and a
// failed epilog still releases its rank and drains it.
func TestPartialReleaseReal(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	set := DefaultSettings()
	set.Epilog = []string{"/bin/sh", "-c", fmt.Sprintf(`while [ ! -e %s/ep$FLUX_JOB_RANKS ]; do sleep 0.01; done; [ $FLUX_JOB_RANKS = 5 ] && exit 1; exit 0`, dir)}
	in := newInstance(t, instOpts{size: 8, set: &set})
	id := fluxkit.JobID(8001)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("exit 0", ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	waitFor(t, "finish", func() bool { return slices.Contains(s.types(), "finish") })
	for i, r := range []string{"3", "5", "2", "7"} {
		touch(t, dir+"/ep"+r)
		waitFor(t, "release "+r, func() bool { return len(s.types()) == 3+i })
	}
	s.wait(t)
	want := []string{`start {}`, `finish {"status":0}`,
		`release {"final":false,"ranks":"3"}`, `release {"final":false,"ranks":"5"}`,
		`release {"final":false,"ranks":"2"}`, `release {"final":true,"ranks":"7"}`}
	if got := s.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("stream %v", got)
	}
	waitFor(t, "drain", func() bool { return len(in.jm.drainList()) == 1 })
	if d := in.jm.drainList()[0]; !strings.HasPrefix(d, "5: epilog failed for job") {
		t.Fatalf("drain %q", d)
	}
}

// AC-28: guests and testexec.
func TestGuestTestexec(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	owner := in.b.OwnerID()
	spec := testJobspec(`{"run_duration":"0.001s"}`)
	s := in.jm.start(9001, owner+1, spec, makeR("0", "n0", 0), false)
	s.wait(t)
	if got := s.lines(); len(got) != 2 || got[0] != `exception {"note":"guests may not use test exec implementation","severity":0,"type":"exec"}` {
		t.Fatalf("guest: %v", got)
	}
	if in.spawnCount(9001, 0) != 0 {
		t.Fatal("guest job spawned")
	}
	s = in.jm.start(9002, owner, spec, makeR("0", "n0", 0), false)
	s.wait(t)
	if got := s.types(); strings.Join(got, ",") != "start,finish,release" {
		t.Fatalf("owner: %v", s.lines())
	}
	// allow-guests through a config reload.
	if err := in.b.Rank(0).SetConfig("[exec.testexec]\nallow-guests = true\n"); err != nil {
		t.Fatal(err)
	}
	if err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.config-reload", 0, map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	s = in.jm.start(9003, owner+1, spec, makeR("0", "n0", 0), false)
	s.wait(t)
	if got := s.types(); strings.Join(got, ",") != "start,finish,release" {
		t.Fatalf("allowed guest: %v", s.lines())
	}
	// A bad reload keeps the old configuration.
	if err := in.b.Rank(0).SetConfig("[exec]\nkill-timeout = \"0\"\n"); err != nil {
		t.Fatal(err)
	}
	err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.config-reload", 0, map[string]any{}, nil)
	if err == nil || !strings.Contains(err.Error(), "invalid kill-timeout") || !in.coord.Settings().AllowGuests[MethodTestExec] {
		t.Fatalf("bad reload: %v", err)
	}
}

// AC-29: testexec semantics.
func TestTestexecSemantics(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	run := func(id fluxkit.JobID, test string) *jobStream {
		s := in.jm.start(id, in.b.OwnerID(), testJobspec(test), makeR("0-1", "n[0-1]", 0), false)
		return s
	}
	s := run(1, `{"run_duration":"0.0001s"}`)
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|finish {"status":0}|release {"final":true,"ranks":"0-1"}` {
		t.Fatal(got)
	}
	s = run(2, `{"run_duration":"0"}`)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	in.jm.exception(2, 0, nil)
	s.wait(t)
	if got := s.lines()[1]; got != `finish {"status":15}` {
		t.Fatal(got)
	}
	names := eventNames(in.eventlog(2))
	if !slices.Contains(names, "complete") {
		t.Fatalf("%v", names)
	}
	s = run(3, `{"mock_exception":"init"}`)
	s.wait(t)
	if got := s.lines(); len(got) != 2 || !strings.Contains(got[0], "mock initialization exception generated") {
		t.Fatal(got)
	}
	s = run(4, `{"mock_exception":"run","run_duration":"0"}`)
	s.wait(t)
	if got := s.lines(); strings.Join(got, "|") != `start {}|exception {"note":"mock run exception generated","severity":0,"type":"exec"}|finish {"status":15}|release {"final":true,"ranks":"0-1"}` {
		t.Fatal(got)
	}
	s = run(5, `{"wait_status":1234,"run_duration":"0.001s"}`)
	s.wait(t)
	if got := s.lines()[1]; got != `finish {"status":1234}` {
		t.Fatal(got)
	}
	s = run(6, `{"run_duration":1}`)
	s.wait(t)
	if got := s.lines(); !strings.Contains(got[0], `"note":"failed to initialize testconf"`) {
		t.Fatal(got)
	}
	// override and its error table.
	s = run(7, `{"override":1,"run_duration":"0"}`)
	ctx := context.Background()
	ov := func(h fluxkit.Handle, p map[string]any) error {
		return fluxkit.RPC(ctx, h, "job-exec.override", 0, p, nil)
	}
	jm := in.jm.h
	waitFor(t, "job known", func() bool {
		return ov(jm, map[string]any{"event": "bogus", "jobid": 7}) != nil && !errors.Is(ov(jm, map[string]any{"event": "bogus", "jobid": 7}), fluxkit.ENOENT)
	})
	g := in.b.Guest(0, 43)
	defer g.Close()
	cases := []struct {
		h    fluxkit.Handle
		p    map[string]any
		want string
	}{
		{jm, map[string]any{"event": "start", "jobid": 99}, "Job not found"},
		{g, map[string]any{"event": "start", "jobid": 7}, "Permission denied"},
		{jm, map[string]any{"event": "finish", "jobid": 7}, "Job not running"},
		{jm, map[string]any{"event": "bogus", "jobid": 7}, "Invalid event"},
	}
	// the owner's handle sends as uid 42 for these requests
	for _, c := range cases {
		err := ovAs(ctx, c.h, in.b.OwnerID(), c.p)
		if err == nil || err.Error() != c.want {
			t.Fatalf("%v: %v, want %q", c.p, err, c.want)
		}
	}
	if slices.Contains(s.types(), "start") {
		t.Fatal("start before override")
	}
	if err := ovAs(ctx, jm, in.b.OwnerID(), map[string]any{"event": "start", "jobid": 7}); err != nil {
		t.Fatal(err)
	}
	if err := ovAs(ctx, jm, in.b.OwnerID(), map[string]any{"event": "start", "jobid": 7}); err == nil || err.Error() != "Job already running" {
		t.Fatal(err)
	}
	if err := ovAs(ctx, jm, in.b.OwnerID(), map[string]any{"event": "finish", "jobid": 7, "status": 512}); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if got := s.lines()[1]; got != `finish {"status":512}` {
		t.Fatal(got)
	}
	s = run(8, `{"run_duration":"0.001s"}`)
	s.wait(t)
	if err := ovAs(ctx, jm, in.b.OwnerID(), map[string]any{"event": "start", "jobid": 8}); err == nil || err.Error() != "Job not found" {
		t.Fatal(err)
	}
	s = run(9, `{"run_duration":"0"}`)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	if err := ovAs(ctx, jm, in.b.OwnerID(), map[string]any{"event": "start", "jobid": 9}); err == nil || err.Error() != "Job not in exec override mode" {
		t.Fatal(err)
	}
	in.jm.exception(9, 0, nil)
	s.wait(t)
}

// ovAs sends an override request with userid uid (the owner may choose the
// userid its requests carry).
func ovAs(ctx context.Context, h fluxkit.Handle, uid uint32, p map[string]any) error {
	pl, _ := fluxkit.EncodePayload(p)
	req := fluxkit.NewRequest("job-exec.override", 0, pl)
	if h.Cred().IsOwner() {
		req.Userid, req.Rolemask = uid, fluxkit.RoleUser
	}
	call, err := h.Request(ctx, req)
	if err != nil {
		return err
	}
	defer call.Close()
	_, err = call.Recv(ctx)
	return err
}

// AC-30: exec bypass.
func TestBypass(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 3})
	owner := in.b.OwnerID()
	spec := `{"version":1,"attributes":{"system":{"exec":{"bypass":true}}}}`
	ctl := in.b.Owner(1)
	s := in.jm.start(10001, owner, spec, makeR("0-2", "n[0-2]", 0), false)
	ctx := context.Background()
	waitFor(t, "job", func() bool {
		return !errors.Is(fluxkit.RPC(ctx, ctl, "job-exec.bypass", 0, map[string]any{"id": 10001, "event": "nope"}, nil), fluxkit.ENOENT)
	})
	time.Sleep(20 * time.Millisecond)
	if len(s.types()) != 0 {
		t.Fatalf("responses before the controller's start: %v", s.lines())
	}
	if err := fluxkit.RPC(ctx, ctl, "job-exec.bypass", 0, map[string]any{"id": 10001, "event": "start"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := fluxkit.RPC(ctx, ctl, "job-exec.bypass", 0, map[string]any{"id": 10001, "event": "finish", "status": 3 << 8}, nil); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|finish {"status":768}|release {"final":true,"ranks":"0-2"}` {
		t.Fatal(got)
	}
	for r := uint32(0); r < 3; r++ {
		if in.spawnCount(10001, r) != 0 {
			t.Fatal("bypass spawned")
		}
	}
	// Controller disconnect mid-run.
	s = in.jm.start(10002, owner, spec, makeR("0-2", "n[0-2]", 0), false)
	waitFor(t, "job", func() bool {
		return !errors.Is(fluxkit.RPC(ctx, ctl, "job-exec.bypass", 0, map[string]any{"id": 10002, "event": "nope"}, nil), fluxkit.ENOENT)
	})
	if err := fluxkit.RPC(ctx, ctl, "job-exec.bypass", 0, map[string]any{"id": 10002, "event": "start"}, nil); err != nil {
		t.Fatal(err)
	}
	ctl.Close()
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|exception {"note":"bypass controller disconnected","severity":0,"type":"exec"}|finish {"status":256}|release {"final":true,"ranks":"0-2"}` {
		t.Fatal(got)
	}
	// A guest without allow-guests.
	s = in.jm.start(10003, owner+1, spec, makeR("0", "n0", 0), false)
	s.wait(t)
	if got := s.lines(); !strings.Contains(got[0], "guests may not use exec method 'bypass'") {
		t.Fatal(got)
	}
}

// AC-26 (exec side): an empty start payload is an RPC error EPROTO.
func TestStartProtocolErrors(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	call, err := fluxkit.Stream(context.Background(), in.jm.h, "job-exec.start", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	_, err = call.Recv(context.Background())
	if !errors.Is(err, fluxkit.EPROTO) {
		t.Fatalf("empty payload: %v", err)
	}
	var fe *fluxkit.Error
	if !errors.As(err, &fe) || fe.Errnum != 71 {
		t.Fatalf("errno %v", err)
	}
	// A bad R is a job exception with the allocation released.
	s := in.jm.start(11, in.b.OwnerID(), testJobspec(`{}`), `{"version":1,"execution":{"R_lite":[]}}`, false)
	s.wait(t)
	if got := s.lines(); len(got) != 2 || !strings.Contains(got[0], "R_lite is empty") {
		t.Fatal(got)
	}
}

func TestStatsGet(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	s := in.jm.start(12, in.b.OwnerID(), testJobspec(`{"run_duration":"0"}`), makeR("0-1", "n[0-1]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	var st Stats
	if err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.stats-get", 0, map[string]any{}, &st); err != nil {
		t.Fatal(err)
	}
	js, ok := st.Jobs[fluxkit.JobID(12).F58Plain()]
	if !ok || st.EffectiveMaxKillTimeout != DefaultSettings().EffectiveMaxKillTimeout().Seconds() ||
		js.TotalShells != 2 || js.ActiveRanks != "0-1" || js.Implementation != MethodTestExec || !js.Running {
		t.Fatalf("%+v", st)
	}
	g := in.b.Guest(0, 5)
	defer g.Close()
	if err := fluxkit.RPC(context.Background(), g, "job-exec.stats-get", 0, map[string]any{}, nil); !errors.Is(err, fluxkit.EPERM) {
		t.Fatalf("guest stats: %v", err)
	}
	in.jm.exception(12, 0, nil)
	s.wait(t)
}

var _ = testbroker.Config{}

// AC-22 (end): a cancel after reattach still kills the shells, and the
// leader shell's lost-shell service hears about a lost rank (AC-07).
func TestCancelAfterReattach(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 4})
	id := fluxkit.JobID(6301)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("sleep 30", ""), makeR("1-3", "n[1-3]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	in.coord.Sync(context.Background())
	in.stopCoordinator()
	in.startCoordinator(nil)
	s = in.jm.start(id, in.b.OwnerID(), shellJobspec("sleep 30", ""), makeR("1-3", "n[1-3]", 0), true)
	waitFor(t, "reattached", func() bool { return slices.Contains(s.types(), "reattached") })
	in.jm.exception(id, 0, nil)
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `reattached {}|finish {"status":15}|release {"final":true,"ranks":"1-3"}` {
		t.Fatal(got)
	}
}

func TestLostShellNotice(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 8})
	id := fluxkit.JobID(6401)
	notices := make(chan string, 4)
	shell := in.b.Owner(2) // the leader shell's service on the job's first rank
	defer shell.Close()
	topic := fmt.Sprintf("%d-shell-%s.exception", in.b.OwnerID(), id.F58Plain())
	if _, err := shell.Register(topic, fluxkit.RoleNone, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		notices <- string(req.Payload)
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(fmt.Sprintf(`while [ ! -e %s/end ]; do sleep 0.02; done`, dir), ""), makeR("2-3,5,7", "node[2-3,5,7]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	if err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.critical-ranks", 0, map[string]any{"id": id, "ranks": "0"}, nil); err != nil {
		t.Fatal(err)
	}
	in.b.StopRank(7)
	select {
	case n := <-notices:
		if n != `{"message":"node failure on node7 (shell rank 3)","severity":2,"shell_rank":3,"type":"lost-shell"}` {
			t.Fatal(n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no lost-shell notice")
	}
	touch(t, dir+"/end")
	s.wait(t)
	in.b.StartRank(7)
}

// flux-core's bulkexec jobspec keys: strict, with mock exceptions.
func TestBulkexecKeys(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	sys := func(b string) string { return fmt.Sprintf(`{"exec":{"bulkexec":%s}}`, b) }
	s := in.jm.start(1, in.b.OwnerID(), shellJobspec("sleep 30", sys(`{"bogus":1}`)), makeR("0-1", "n[0-1]", 0), false)
	s.wait(t)
	if got := s.lines()[0]; !strings.Contains(got, `failed to unpack system.exec.bulkexec for `+fluxkit.JobID(1).F58()+`: unknown key \"bogus\"`) {
		t.Fatal(got)
	}
	s = in.jm.start(2, in.b.OwnerID(), shellJobspec("sleep 30", sys(`{"mock_exception":"init"}`)), makeR("0-1", "n[0-1]", 0), false)
	s.wait(t)
	if got := s.lines(); len(got) != 2 || !strings.Contains(got[0], "mock init exception generated") {
		t.Fatal(got)
	}
	s = in.jm.start(3, in.b.OwnerID(), shellJobspec("sleep 30", sys(`{"mock_exception":"starting"}`)), makeR("0-1", "n[0-1]", 0), false)
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); !strings.Contains(got, `exception {"note":"mock starting exception generated","severity":0,"type":"exec"}|finish {"status":15}`) {
		t.Fatal(got)
	}
	if in.spawnCount(1, 0)+in.spawnCount(2, 0) != 0 {
		t.Fatal("spawned despite an init failure")
	}
}

// A guest's bulk-exec job needs the IMP (flux-core's multiuser rule).
func TestMultiuserNeedsIMP(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	s := in.jm.start(1, in.b.OwnerID()+1, shellJobspec("exit 0", ""), makeR("0", "n0", 0), false)
	s.wait(t)
	if got := s.lines(); len(got) != 2 || !strings.Contains(got[0], "unable run multiuser job with no IMP configured!") {
		t.Fatal(got)
	}
	if in.spawnCount(1, 0) != 0 {
		t.Fatal("spawned")
	}
}
