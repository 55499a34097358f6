package exec

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// Exception notes name ranks as "rank 5" or "ranks 2,7" and their hosts as
// a hostlist, and drain reasons are flux-core's own words: sites match on
// both.
func TestNotesAndDrainReasons(t *testing.T) {
	set := DefaultSettings()
	set.ShellExitTimeout = 2 * time.Second
	set.KillTimeout = time.Second
	set.MaxKillCount = 1

	h := newHarness(t, set, 4, 5, 6)
	h.start(at(0))
	h.j.exited(at(1), 4, 0)
	h.collect(at(1))
	h.runUntil(at(3))
	if got := h.responses()[1]; got != `exception {"note":"job shells still active on node[5-6] (ranks 5-6) 2s after leader shell exit","severity":0,"type":"exec"}` {
		t.Fatal(got)
	}
	h.runUntil(at(100))
	drain := ""
	for _, l := range h.log {
		if strings.Contains(l, " drain ") {
			drain = l
		}
	}
	if want := fmt.Sprintf(`drain 5-6 "unkillable user processes for job %s"`, h.j.id.F58()); !strings.HasSuffix(drain, want) {
		t.Fatalf("drain %q, want suffix %q", drain, want)
	}

	h = newHarness(t, set, 2, 3, 5, 7)
	h.start(at(0))
	h.j.barrierTimedOut(at(1), []uint32{5})
	h.collect(at(1))
	if got := h.responses()[1]; got != `exception {"note":"start barrier timeout waiting for 1/4 nodes (rank 5)","severity":0,"type":"exec"}` {
		t.Fatal(got)
	}

	h = newHarness(t, set, 2, 3, 5, 7)
	h.start(at(0))
	h.j.exitedBeforeBarrier(at(1), []uint32{2, 7}, []uint32{7}, true)
	h.j.exitedBeforeBarrier(at(1), []uint32{5}, []uint32{5}, true)
	h.collect(at(1))
	want := []string{
		`t=1 respond exception {"note":"node[2,7] (ranks 2,7) terminated before first barrier","severity":0,"type":"exec"}`,
		fmt.Sprintf(`t=1 drain 7 "%s terminated before first barrier"`, h.j.id.F58()),
		fmt.Sprintf(`t=1 drain 5 "%s terminated before first barrier"`, h.j.id.F58()),
	}
	var got []string
	for _, l := range h.log {
		if strings.Contains(l, " respond exception") || strings.Contains(l, " drain ") {
			got = append(got, l)
		}
	}
	equalLines(t, got, want)
}

// A second start for a job in progress is not an RPC error (which would
// tell the job manager that the exec service as a whole failed): the new
// request takes the job over, hears where it stands, and the service keeps
// running jobs.
func TestDuplicateStart(t *testing.T) {
	for _, reattach := range []bool{false, true} {
		t.Run(fmt.Sprint("reattach=", reattach), func(t *testing.T) {
			checkLeaks(t)
			in := newInstance(t, instOpts{size: 2})
			id := fluxkit.JobID(4401)
			dir := t.TempDir()
			cmd := fmt.Sprintf(`while [ ! -e %s/end ]; do sleep 0.02; done; exit 3`, dir)
			s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("0-1", "n[0-1]", 0), false)
			waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
			s2 := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("0-1", "n[0-1]", 0), reattach)
			first := "start {}"
			if reattach {
				first = "reattached {}"
			}
			waitFor(t, "the new stream's answer", func() bool { return len(s2.lines()) > 0 || s2.error() != nil })
			touch(t, dir+"/end")
			s2.wait(t)
			if err := s2.error(); err != nil {
				t.Fatalf("duplicate start answered with an error: %v", err)
			}
			if got := strings.Join(s2.lines(), "|"); got != first+`|finish {"status":768}|release {"final":true,"ranks":"0-1"}` {
				t.Fatal(got)
			}
			if n := in.spawnCount(id, 0) + in.spawnCount(id, 1); n != 2 {
				t.Fatalf("%d shells spawned for two ranks", n)
			}
			// The service is still up.
			s3 := in.jm.start(id+1, in.b.OwnerID(), shellJobspec("exit 0", ""), makeR("0-1", "n[0-1]", 0), false)
			s3.wait(t)
			if s3.error() != nil || s3.types()[0] != "start" {
				t.Fatalf("next job: %v %v", s3.lines(), s3.error())
			}
		})
	}
	// A duplicate after finish repeats finish and the releases so far.
	checkLeaks(t)
	h := newHarness(t, DefaultSettings(), 0, 1)
	h.start(at(0))
	h.j.exited(at(1), 0, 0)
	h.j.exited(at(1), 1, 0)
	h.j.releasedRanks(at(1), []uint32{0}, nil, "")
	h.collect(at(1))
	h.j.resume(true)
	h.collect(at(2))
	h.j.releasedRanks(at(3), []uint32{1}, nil, "")
	h.collect(at(3))
	equalLines(t, h.responses(), []string{`start {}`, `finish {"status":0}`, `release {"final":false,"ranks":"0"}`,
		`reattached {}`, `finish {"status":0}`, `release {"final":false,"ranks":"0"}`, `release {"final":true,"ranks":"1"}`})
}
