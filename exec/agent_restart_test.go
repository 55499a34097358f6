package exec

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// recordOf reads the record rank r's agent keeps for job id.
func recordOf(t *testing.T, in *instance, id fluxkit.JobID, r uint32) (recordFile, bool) {
	t.Helper()
	rec := &record{dir: recordDir(in.agentCfg[r].RuntimeDir, id, r)}
	if err := rec.read(r); err != nil {
		return recordFile{}, false
	}
	return rec.rec, true
}

// An agent restart (a non-leader's, then the leader's) leaves the shells
// running; the new agents find them through their records and the live
// processes, nothing is started twice, and the job ends normally with
// every status and every byte of output, written before, during and after
// the restarts, exactly once.
func TestAgentRestartAdoptsShells(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 4, runtime: true})
	id := fluxkit.JobID(34001)
	dir := t.TempDir()
	cmd := fmt.Sprintf(`echo before; while [ ! -e %[1]s/go.$FLUX_TASK_RANK ]; do sleep 0.01; done; echo after; exit $((FLUX_TASK_RANK + 1))`, dir)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("1-3", "n[1-3]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	pids := map[uint32]int{}
	for r := uint32(1); r <= 3; r++ {
		rec, ok := recordOf(t, in, id, r)
		if !ok || rec.Pid == 0 || !procAlive(rec.Pid, rec.Start) {
			t.Fatalf("rank %d: record %+v", r, rec)
		}
		pids[r] = rec.Pid
	}
	in.restartAgent(2)
	touch(t, dir+"/go.1") // rank 2 (shell rank 1) ends while its agent restarts
	in.restartAgent(2)
	in.restartAgent(1) // the leader
	touch(t, dir+"/go.0")
	touch(t, dir+"/go.2")
	s.wait(t)
	if got := strings.Join(s.lines(), "|"); got != `start {}|finish {"status":768}|release {"final":true,"ranks":"1-3"}` {
		t.Fatal(got)
	}
	out := outputOf(t, in.eventlog(id))
	for r := 1; r <= 3; r++ {
		if got := out[fmt.Sprint(r, "/stdout")]; !bytes.Equal(got, []byte("before\nafter\n")) {
			t.Fatalf("rank %d stdout %q", r, got)
		}
		if n := in.spawnCount(id, uint32(r)); n != 1 {
			t.Fatalf("rank %d: %d shells started", r, n)
		}
	}
	waitFor(t, "records removed", func() bool {
		for r := uint32(1); r <= 3; r++ {
			if _, ok := recordOf(t, in, id, r); ok {
				return false
			}
		}
		return true
	})
}

// A job that ended while a rank's agent was down left that rank's shell
// running, its forget lost: the new agent finds the record, no launch
// claims it, the job's exec eventlog says it is done, and the shell is
// killed and its record removed. Nothing is orphaned.
func TestAgentRestartKillsOrphans(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 3, runtime: true, agent: func(_ uint32, c *AgentConfig) {
		c.ReconnectTimeout = 200 * time.Millisecond
		c.OrphanCheck = 50 * time.Millisecond
	}})
	id := fluxkit.JobID(34101)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("sleep 1000", ""), makeR("1-2", "n[1-2]", 0), false)
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	rec, ok := recordOf(t, in, id, 2)
	if !ok || !procAlive(rec.Pid, rec.Start) {
		t.Fatalf("record %+v", rec)
	}
	in.agentClose[2]() // gone, its shell running on
	s.wait(t)          // rank 2 counts as lost once the leader gives up on it
	if got := s.lines(); !strings.Contains(got[1], "node failure on n2 (rank 2)") {
		t.Fatalf("stream %v", got)
	}
	if !procAlive(rec.Pid, rec.Start) {
		t.Fatal("the shell of a closed agent with a runtime directory was killed")
	}
	in.startAgent(2)
	waitFor(t, "orphan killed", func() bool { return !procAlive(rec.Pid, rec.Start) })
	waitFor(t, "record removed", func() bool { _, ok := recordOf(t, in, id, 2); return !ok })
	if n := in.spawnCount(id, 2); n != 1 {
		t.Fatalf("%d shells started", n)
	}
}

// A record written before a fork that was never recorded as done may stand
// for a shell nothing can find: a new agent never starts another for that
// rank, and the job fails saying why.
func TestRecordWithoutPidNeverRespawns(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2, runtime: true})
	id := fluxkit.JobID(34201)
	lr := launchReq{ID: id, Userid: in.b.OwnerID(), Ranks: "0-1", Fanout: 8, Method: MethodBulkExec,
		Argv: []string{"/bin/sh", "-c", "exit 0"}, Service: "job-exec"}
	in.agentClose[1]()
	if err := os.MkdirAll(in.agentCfg[1].RuntimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := createRecord(in.agentCfg[1].RuntimeDir, &lr, 1, ""); err != nil {
		t.Fatal(err)
	}
	in.startAgent(1)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec("exit 0", ""), makeR("0-1", "n[0-1]", 0), false)
	s.wait(t)
	if got := s.lines(); !strings.Contains(got[0], "job shell exec error on broker n1 (rank 1): the agent restarted while starting this shell") {
		t.Fatalf("stream %v", got)
	}
	if n := in.spawnCount(id, 1); n != 0 {
		t.Fatalf("rank 1 started %d shells", n)
	}
}
