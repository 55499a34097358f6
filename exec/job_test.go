package exec

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

var epoch = time.Unix(1_000_000, 0)

func at(sec float64) time.Time { return epoch.Add(time.Duration(sec * float64(time.Second))) }

func testRS(ranks ...uint32) *resourceSet {
	rs := &resourceSet{ranks: ranks, hosts: map[uint32]string{}}
	for _, r := range ranks {
		rs.hosts[r] = fmt.Sprintf("node%d", r)
	}
	return rs
}

// render turns actions into one line each, the vocabulary golden tests pin.
func render(now time.Time, acts []action) []string {
	var out []string
	t := now.Sub(epoch).Seconds()
	for _, a := range acts {
		var s string
		switch a.kind {
		case actRespond:
			b, _ := json.Marshal(a.resp.Data)
			s = fmt.Sprintf("respond %s %s", a.resp.Type, b)
		case actPost:
			b, _ := json.Marshal(a.event.Context)
			s = "post " + a.event.Name
			if a.event.Context != nil {
				s += " " + string(b)
			}
		case actKill:
			tgt := "shells"
			if a.tasks {
				tgt = "tasks"
			}
			s = fmt.Sprintf("kill %s %s %d", formatRanks(a.ranks), tgt, a.signal)
		case actCancel:
			s = "cancel"
		case actDrain:
			s = fmt.Sprintf("drain %s %q", formatRanks(a.ranks), a.reason)
		case actLostShell:
			s = fmt.Sprintf("lost-shell %d sev=%d %q", a.shellRank, a.severity, a.reason)
		}
		out = append(out, fmt.Sprintf("t=%g %s", t, s))
	}
	return out
}

type jobHarness struct {
	t   *testing.T
	j   *job
	log []string
}

func newHarness(t *testing.T, set Settings, ranks ...uint32) *jobHarness {
	h := &jobHarness{t: t}
	h.j = newJob(at(0), fluxkit.JobID(1234), 100, testRS(ranks...), set, false)
	h.collect(at(0))
	return h
}

func (h *jobHarness) collect(now time.Time) { h.log = append(h.log, render(now, h.j.take())...) }

// runUntil advances the virtual clock deadline by deadline up to end.
func (h *jobHarness) runUntil(end time.Time) {
	for {
		d, ok := h.j.next()
		if !ok || d.After(end) {
			return
		}
		h.j.tick(d)
		h.collect(d)
	}
}

func (h *jobHarness) responses() []string {
	var r []string
	for _, l := range h.log {
		if _, rest, ok := strings.Cut(l, " respond "); ok {
			r = append(r, rest)
		}
	}
	return r
}

func (h *jobHarness) start(now time.Time) {
	h.j.launch(now)
	h.j.started(now, h.j.rs.ranks)
	h.collect(now)
}

func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestKillEscalationTimeline pins fluxkit's termination schedule:
// term-signal at the exception, task kills every kto until 5·kto, shell
// kills from 5·kto after each of which the job's kill-timeout doubles and
// is the wait before the next (flux-core's timers: 5, 7, 11 for kto 1),
// and the drain one such wait after the max-kill-count'th shell kill.
func TestKillEscalationTimeline(t *testing.T) {
	set := DefaultSettings()
	set.KillTimeout = time.Second
	set.MaxKillCount = 3
	h := newHarness(t, set, 2, 3)
	h.start(at(0))
	h.j.exception(at(0), 0, nil)
	h.collect(at(0))
	h.runUntil(at(1000))
	equalLines(t, h.log, []string{
		"t=0 post init",
		"t=0 post starting",
		`t=0 respond start {}`,
		"t=0 cancel",
		"t=0 kill 2-3 shells 15",
		`t=0 post termination {"exception":true,"sent":false,"shells":0,"start":1000000,"tasks":0}`,
		"t=1 kill 2-3 tasks 9",
		`t=1 post termination {"exception":true,"sent":false,"shells":0,"start":1000000,"tasks":1}`,
		"t=2 kill 2-3 tasks 9",
		`t=2 post termination {"exception":true,"sent":false,"shells":0,"start":1000000,"tasks":2}`,
		"t=3 kill 2-3 tasks 9",
		`t=3 post termination {"exception":true,"sent":false,"shells":0,"start":1000000,"tasks":3}`,
		"t=4 kill 2-3 tasks 9",
		`t=4 post termination {"exception":true,"sent":false,"shells":0,"start":1000000,"tasks":4}`,
		"t=5 kill 2-3 shells 9",
		`t=5 post termination {"exception":true,"sent":false,"shells":1,"start":1000000,"tasks":4}`,
		"t=7 kill 2-3 shells 9",
		`t=7 post termination {"exception":true,"sent":false,"shells":2,"start":1000000,"tasks":4}`,
		"t=11 kill 2-3 shells 9",
		`t=11 post termination {"exception":true,"sent":false,"shells":3,"start":1000000,"tasks":4}`,
		`t=19 drain 2-3 "unkillable user processes for job ƒ` + fluxkit.JobID(1234).F58()[len("ƒ"):] + `"`,
		`t=19 post complete {"status":256}`,
		`t=19 respond finish {"status":256}`,
		"t=19 post done",
		`t=19 respond release {"final":true,"ranks":"2-3"}`,
	})
	if got := set.EffectiveMaxKillTimeout(); got != 19*time.Second {
		t.Fatalf("EffectiveMaxKillTimeout = %v, want 19s (the drain time above)", got)
	}
}

// The documented schedule with flux-core's defaults, its agreement with the
// stats estimate, and no step after a max-kill-timeout that comes first.
func TestKillScheduleDefaults(t *testing.T) {
	s := DefaultSettings()
	tasks, shells, drain := s.KillSchedule()
	want := "tasks=[5s 10s 15s 20s] shells=[25s 35s 55s 1m35s 2m55s 5m35s 10m35s 15m35s] drain=20m35s"
	if got := fmt.Sprintf("tasks=%v shells=%v drain=%v", tasks, shells, drain); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if s.EffectiveMaxKillTimeout() != drain {
		t.Fatalf("stats estimate %v, schedule drain %v", s.EffectiveMaxKillTimeout(), drain)
	}
	for _, c := range []struct {
		kto, max time.Duration
		want     string
	}{
		{5 * time.Second, 3 * time.Second, "tasks=[] shells=[] drain=3s"},
		{time.Second, 2500 * time.Millisecond, "tasks=[1s 2s] shells=[] drain=2.5s"},
		{time.Second, 8 * time.Second, "tasks=[1s 2s 3s 4s] shells=[5s 7s] drain=8s"},
		{time.Second, 7 * time.Second, "tasks=[1s 2s 3s 4s] shells=[5s] drain=7s"},
	} {
		s := DefaultSettings()
		s.KillTimeout, s.MaxKillTimeout = c.kto, c.max
		tasks, shells, drain := s.KillSchedule()
		if got := fmt.Sprintf("tasks=%v shells=%v drain=%v", tasks, shells, drain); got != c.want {
			t.Errorf("kto %v max-kill-timeout %v: %s, want %s", c.kto, c.max, got, c.want)
		}
		if s.EffectiveMaxKillTimeout() != drain {
			t.Errorf("stats estimate %v, drain %v", s.EffectiveMaxKillTimeout(), drain)
		}
	}
	// A long max-kill-count: the estimate agrees with the listed schedule.
	s.MaxKillCount = 50
	if _, _, d := s.KillSchedule(); d != s.EffectiveMaxKillTimeout() {
		t.Fatalf("count 50: schedule drain %v, estimate %v", d, s.EffectiveMaxKillTimeout())
	}
}

// Whatever the settings, the machine signals at exactly the schedule's
// offsets: the documented schedule is what the coordinator does.
func TestKillScheduleIsFollowed(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewSource(seed))
		set := DefaultSettings()
		set.KillTimeout = time.Duration(1+rng.Intn(4000)) * time.Millisecond
		set.MaxKillCount = 1 + rng.Intn(10)
		if rng.Intn(2) == 0 {
			set.MaxKillTimeout = time.Duration(1+rng.Intn(600)) * time.Second
		}
		h := newHarness(t, set, 0, 1)
		h.start(at(0))
		h.j.exception(at(0), 0, nil)
		h.collect(at(0))
		var tasks, shells []time.Duration
		var drain time.Duration
		for {
			d, ok := h.j.next()
			if !ok {
				break
			}
			h.j.tick(d)
			for _, l := range render(d, h.j.take()) {
				off := d.Sub(epoch)
				switch {
				case strings.Contains(l, " tasks 9"):
					tasks = append(tasks, off)
				case strings.Contains(l, " shells 9"):
					shells = append(shells, off)
				case strings.Contains(l, " drain "):
					drain = off
				}
			}
		}
		wt, ws, wd := set.KillSchedule()
		if fmt.Sprint(tasks, shells, drain) != fmt.Sprint(wt, ws, wd) {
			t.Fatalf("%+v: machine %v %v %v, schedule %v %v %v", set, tasks, shells, drain, wt, ws, wd)
		}
	}
}

// AC-12: max-kill-count=2, kto=1, shells never die.
func TestUnkillable(t *testing.T) {
	set := DefaultSettings()
	set.KillTimeout = time.Second
	set.MaxKillCount = 2
	h := newHarness(t, set, 0, 1)
	h.start(at(0))
	h.j.exception(at(0), 0, nil)
	h.collect(at(0))
	h.runUntil(at(100))
	var shellKills, drains int
	for _, l := range h.log {
		if strings.Contains(l, "shells 9") {
			shellKills++
		}
		if strings.Contains(l, "drain") {
			drains++
			if !strings.Contains(l, "unkillable user processes for job "+fluxkit.JobID(1234).F58()) {
				t.Fatalf("drain reason: %s", l)
			}
		}
	}
	if shellKills != 2 || drains != 1 {
		t.Fatalf("shell kills %d drains %d:\n%s", shellKills, drains, strings.Join(h.log, "\n"))
	}
	equalLines(t, h.responses(), []string{`start {}`, `finish {"status":256}`, `release {"final":true,"ranks":"0-1"}`})
	if _, ok := h.j.next(); ok {
		t.Fatal("timers left running after completion")
	}
}

// AC-13: max-kill-timeout wins over the count.
func TestMaxKillTimeoutWins(t *testing.T) {
	for _, count := range []int{100, 1} {
		set := DefaultSettings()
		set.KillTimeout = 100 * time.Millisecond
		set.MaxKillCount = count
		set.MaxKillTimeout = 3 * time.Second
		h := newHarness(t, set, 0)
		h.start(at(0))
		h.j.exception(at(0), 0, nil)
		h.collect(at(0))
		h.runUntil(at(100))
		var drainAt string
		for _, l := range h.log {
			if strings.Contains(l, " drain ") {
				drainAt = strings.Fields(l)[0]
			}
		}
		if drainAt != "t=3" {
			t.Fatalf("count=%d: drain at %q, want t=3\n%s", count, drainAt, strings.Join(h.log, "\n"))
		}
	}
}

// AC-04, AC-05, AC-16 and the lost-rank rule of I5.
func TestFinishStatus(t *testing.T) {
	sigkill := 9
	cases := []struct {
		name   string
		status []int
		exc    *int
		want   int
	}{
		{"max of exits", []int{0, 1 << 8, 2 << 8, 3 << 8}, nil, 768},
		{"one fails", []int{1 << 8, 0, 0, 0}, nil, 256},
		{"signalled raw", []int{15, 0}, nil, 15},
		{"exception wait_status", []int{0, 5 << 8}, &sigkill, (128 + 9) << 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ranks := make([]uint32, len(c.status))
			for i := range ranks {
				ranks[i] = uint32(i)
			}
			h := newHarness(t, DefaultSettings(), ranks...)
			h.start(at(0))
			if c.exc != nil {
				h.j.exception(at(0), 0, c.exc)
			}
			for i, st := range c.status {
				h.j.exited(at(1), uint32(i), st)
			}
			h.j.releasedRanks(at(1), ranks, nil, "")
			h.collect(at(1))
			var fin string
			for _, r := range h.responses() {
				if strings.HasPrefix(r, "finish") {
					fin = r
				}
			}
			if want := fmt.Sprintf(`finish {"status":%d}`, c.want); fin != want {
				t.Fatalf("got %q want %q\n%s", fin, want, strings.Join(h.log, "\n"))
			}
		})
	}
}

// AC-06: ENOENT on rank 5 of a 4-rank job.
func TestLaunchFailure(t *testing.T) {
	h := newHarness(t, DefaultSettings(), 2, 3, 5, 7)
	h.j.launch(at(0))
	h.j.started(at(0), []uint32{2, 3, 7})
	h.j.failed(at(0), 5, syscall.ENOENT, "No such file or directory")
	h.collect(at(0))
	h.j.batch(at(1), func() {
		for _, r := range []uint32{2, 3, 7} {
			h.j.exited(at(1), r, 15)
		}
		h.j.releasedRanks(at(1), []uint32{2, 3, 7}, nil, "")
	})
	h.collect(at(1))
	got := h.responses()
	if len(got) < 3 || !strings.HasPrefix(got[0], "exception") || !strings.Contains(got[0], "job shell exec error") ||
		!strings.Contains(got[0], "(rank 5)") || !strings.Contains(got[0], `"severity":0`) {
		t.Fatalf("responses %v", got)
	}
	nExc := 0
	for _, r := range got {
		if strings.HasPrefix(r, "exception") {
			nExc++
		}
		if strings.HasPrefix(r, "start") {
			t.Fatalf("start sent after a launch failure: %v", got)
		}
	}
	if nExc != 1 || got[len(got)-2] != fmt.Sprintf(`finish {"status":%d}`, 127<<8) ||
		!strings.Contains(got[len(got)-1], `"final":true`) {
		t.Fatalf("responses %v", got)
	}
	var kills int
	for _, l := range h.log {
		if strings.Contains(l, "kill 2-3,7 shells 15") {
			kills++
		}
	}
	if kills != 1 {
		t.Fatalf("term-signal to the others: %d\n%s", kills, strings.Join(h.log, "\n"))
	}

	h2 := newHarness(t, DefaultSettings(), 3, 4)
	h2.j.launch(at(0))
	h2.j.failed(at(0), 3, syscall.ENOSYS, "")
	h2.collect(at(0))
	if r := h2.responses(); !strings.Contains(r[0], "service is not loaded on") || !strings.Contains(r[0], "(rank 3)") {
		t.Fatalf("ENOSYS: %v", r)
	}
}

// AC-07 / AC-08: lost ranks, non-critical and critical.
func TestLostRank(t *testing.T) {
	h := newHarness(t, DefaultSettings(), 2, 3, 5, 7)
	if err := h.j.setCritical([]uint32{0}); err != nil {
		t.Fatal(err)
	}
	h.start(at(0))
	h.j.lost(at(1), 7)
	h.collect(at(1))
	want := `t=1 lost-shell 3 sev=2 "node failure on node7 (shell rank 3)"`
	found := false
	for _, l := range h.log {
		found = found || l == want
	}
	if !found {
		t.Fatalf("no %q in\n%s", want, strings.Join(h.log, "\n"))
	}
	h.j.batch(at(2), func() {
		for _, r := range []uint32{2, 3, 5} {
			h.j.exited(at(2), r, 2<<8)
		}
		h.j.releasedRanks(at(2), []uint32{2, 3, 5}, nil, "")
	})
	h.collect(at(2))
	equalLines(t, h.responses(), []string{
		`start {}`,
		`exception {"note":"node failure on node7 (shell rank 3)","severity":2,"type":"node-failure"}`,
		`finish {"status":512}`,
		`release {"final":true,"ranks":"2-3,5,7"}`,
	})

	h = newHarness(t, DefaultSettings(), 2, 3, 5, 7)
	h.start(at(0))
	h.j.lost(at(1), 7)
	h.collect(at(1))
	if r := h.responses(); !strings.Contains(r[1], `"note":"node failure on node7 (rank 7)","severity":0`) {
		t.Fatalf("critical: %v", r)
	}
	if err := h.j.setCritical([]uint32{4}); err == nil {
		t.Fatal("critical shell rank 4 of a 4-shell job accepted")
	}
}

// AC-10: cancel; a second job-exception re-sends term-signal without a
// second exception response.
func TestCancel(t *testing.T) {
	h := newHarness(t, DefaultSettings(), 0, 1)
	h.start(at(0))
	h.j.exception(at(0), 0, nil)
	h.j.exception(at(0.5), 0, nil)
	h.collect(at(0.5))
	h.j.exited(at(1), 0, 15)
	h.j.exited(at(1), 1, 15)
	h.j.releasedRanks(at(1), []uint32{0, 1}, nil, "")
	h.collect(at(1))
	terms := 0
	for _, l := range h.log {
		if strings.Contains(l, "shells 15") {
			terms++
		}
	}
	if terms != 2 {
		t.Fatalf("term-signal sent %d times, want 2 (one per job-exception)", terms)
	}
	equalLines(t, h.responses(), []string{`start {}`, `finish {"status":15}`, `release {"final":true,"ranks":"0-1"}`})
}

// AC-14: the time limit.
func TestExpiration(t *testing.T) {
	rs := testRS(0)
	rs.expiration = ts(at(10))
	j := newJob(at(0), 1, 100, rs, DefaultSettings(), false)
	j.launch(at(0))
	j.started(at(0), []uint32{0})
	j.take()
	j.tick(at(9.9))
	if a := j.take(); len(a) != 0 {
		t.Fatalf("early: %v", render(at(9.9), a))
	}
	j.tick(at(10))
	got := render(at(10), j.take())
	equalLines(t, got, []string{
		`t=10 respond exception {"note":"resource allocation expired","severity":0,"type":"timeout"}`,
		"t=10 kill 0 shells 14",
		`t=10 post termination {"exception":false,"sent":true,"shells":0,"start":1000010,"tasks":0}`,
	})
	j.exception(at(10.1), 0, nil) // the job manager's echo
	if got := render(at(10.1), j.take()); len(got) != 2 || !strings.HasSuffix(got[0], "shells 15") ||
		got[1] != `t=10.1 post termination {"exception":true,"sent":true,"shells":0,"start":1000010,"tasks":0}` {
		t.Fatalf("echo: %v", got)
	}
	// AC-15: expiration updates
	j2 := newJob(at(0), 2, 100, testRS(0), DefaultSettings(), false)
	j2.launch(at(0))
	j2.started(at(0), []uint32{0})
	j2.setExpiration(at(0), ts(at(100)))
	if d, _ := j2.next(); !d.Equal(at(100)) {
		t.Fatalf("next = %v", d)
	}
	j2.setExpiration(at(0), 0)
	if _, ok := j2.next(); ok {
		t.Fatal("expiration 0 did not disable the timer")
	}
}

// AC-27: partial release order.
func TestPartialReleaseOrder(t *testing.T) {
	h := newHarness(t, DefaultSettings(), 2, 3, 5, 7)
	h.start(at(0))
	for _, r := range []uint32{2, 3, 5, 7} {
		h.j.exited(at(0), r, 0)
	}
	h.collect(at(0))
	h.j.releasedRanks(at(1), []uint32{3}, nil, "")
	h.collect(at(1))
	h.j.releasedRanks(at(2), []uint32{5}, []uint32{5}, "exit 1")
	h.collect(at(2))
	h.j.releasedRanks(at(3), []uint32{2}, nil, "")
	h.collect(at(3))
	h.j.releasedRanks(at(4), []uint32{7}, nil, "")
	h.collect(at(4))
	equalLines(t, h.responses(), []string{
		`start {}`, `finish {"status":0}`,
		`release {"final":false,"ranks":"3"}`,
		`release {"final":false,"ranks":"5"}`,
		`release {"final":false,"ranks":"2"}`,
		`release {"final":true,"ranks":"7"}`,
	})
	drained := false
	for _, l := range h.log {
		drained = drained || strings.HasPrefix(l, "t=2 drain 5 ")
	}
	if !drained {
		t.Fatalf("failed epilog not drained:\n%s", strings.Join(h.log, "\n"))
	}
}

func TestShellExit(t *testing.T) {
	set := DefaultSettings()
	set.ShellExitTimeout = 2 * time.Second
	h := newHarness(t, set, 4, 5)
	h.start(at(0))
	h.j.exited(at(1), 4, 0)
	h.collect(at(1))
	h.runUntil(at(3))
	want := []string{
		`t=1 post shell-exit {"active_ranks":"5","rank":4,"wait_status":0}`,
		`t=3 respond exception {"note":"job shells still active on node5 (rank 5) 2s after leader shell exit","severity":0,"type":"exec"}`,
	}
	for _, w := range want {
		found := false
		for _, l := range h.log {
			found = found || l == w
		}
		if !found {
			t.Fatalf("missing %q in\n%s", w, strings.Join(h.log, "\n"))
		}
	}
	// AC-03: a single-rank job has no active_ranks.
	h = newHarness(t, set, 0)
	h.start(at(0))
	h.j.exited(at(1), 0, 0)
	h.collect(at(1))
	if h.log[3] != `t=1 post shell-exit {"rank":0,"wait_status":0}` {
		t.Fatalf("%v", h.log)
	}
}

// checkStream asserts I3, I4 and I8 over one job's actions.
func checkStream(t *testing.T, ranks []uint32, log []string, wantFinal bool) {
	t.Helper()
	var starts, finishes, finals int
	released := map[uint32]int{}
	var events []string
	sawFinal := false
	for _, l := range log {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		if sawFinal && (f[1] == "respond" || (f[1] == "post")) {
			t.Fatalf("I4/I8: %q after the final release\n%s", l, strings.Join(log, "\n"))
		}
		switch {
		case f[1] == "post":
			events = append(events, f[2])
		case f[1] == "respond" && (f[2] == "start" || f[2] == "reattached"):
			if finishes > 0 {
				t.Fatalf("I4: start after finish")
			}
			starts++
		case f[1] == "respond" && f[2] == "finish":
			finishes++
		case f[1] == "respond" && f[2] == "release":
			var d struct {
				Ranks string
				Final bool
			}
			_ = json.Unmarshal([]byte(strings.Join(f[3:], " ")), &d)
			ids, err := parseRanks(d.Ranks)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				released[id]++
			}
			if d.Final {
				finals++
				sawFinal = true
			}
		}
	}
	if starts > 1 || finishes > 1 || finals > 1 {
		t.Fatalf("I4: starts %d finishes %d finals %d\n%s", starts, finishes, finals, strings.Join(log, "\n"))
	}
	if wantFinal {
		if finals != 1 {
			t.Fatalf("I7: no final release\n%s", strings.Join(log, "\n"))
		}
		for _, r := range ranks {
			if released[r] != 1 {
				t.Fatalf("I3: rank %d released %d times\n%s", r, released[r], strings.Join(log, "\n"))
			}
		}
		if len(released) != len(ranks) {
			t.Fatalf("I3: released %v, R %v", released, ranks)
		}
	}
	if len(events) > 0 && events[0] != "init" && events[0] != "reattach" {
		t.Fatalf("I8: first event %s", events[0])
	}
	if finals == 1 && len(events) > 0 && events[len(events)-1] != "done" {
		t.Fatalf("I8: last event %s", events[len(events)-1])
	}
	ci, fi := -1, -1
	for i, l := range log {
		if strings.Contains(l, " post complete") {
			ci = i
		}
		if strings.Contains(l, " respond finish") {
			fi = i
		}
	}
	if fi >= 0 && len(events) > 0 && (ci < 0 || ci > fi) {
		t.Fatalf("I8: complete not before finish")
	}
}

// TestJobProperties drives the machine with random interleavings of
// starts, exits, failures, losses, exceptions, releases and timer ticks, and
// checks I3, I4, I5 (via the status rule's bound), I7 and I8.
func TestJobProperties(t *testing.T) {
	for seed := int64(0); seed < 500; seed++ {
		rng := rand.New(rand.NewSource(seed))
		n := 1 + rng.Intn(6)
		var ranks []uint32
		for r := uint32(0); len(ranks) < n; r++ {
			if rng.Intn(2) == 0 {
				ranks = append(ranks, r)
			}
		}
		set := DefaultSettings()
		set.KillTimeout = time.Duration(1+rng.Intn(3)) * time.Second
		set.MaxKillCount = 1 + rng.Intn(4)
		if rng.Intn(3) == 0 {
			set.MaxKillTimeout = time.Duration(1+rng.Intn(40)) * time.Second
		}
		h := &jobHarness{t: t}
		h.j = newJob(at(0), fluxkit.JobID(seed+1), 5, testRS(ranks...), set, false)
		h.collect(at(0))
		now := 0.0
		exited := map[uint32]bool{}
		for step := 0; step < 40 && !h.j.finalSent; step++ {
			now += rng.Float64() * 3
			tn := at(now)
			h.j.tick(tn)
			r := ranks[rng.Intn(len(ranks))]
			switch rng.Intn(9) {
			case 0:
				h.j.launch(tn)
			case 1:
				if h.j.launched {
					h.j.started(tn, []uint32{r})
				}
			case 2:
				if h.j.launched {
					h.j.exited(tn, r, rng.Intn(4)<<8)
					exited[r] = true
				}
			case 3:
				if h.j.launched && rng.Intn(3) == 0 {
					h.j.failed(tn, r, syscall.ENOENT, "x")
				}
			case 4:
				if rng.Intn(3) == 0 {
					h.j.lost(tn, r)
				}
			case 5:
				if rng.Intn(3) == 0 {
					h.j.exception(tn, 0, nil)
				}
			default:
				var done []uint32
				for x := range exited {
					done = append(done, x)
				}
				h.j.releasedRanks(tn, done, nil, "")
			}
			h.collect(tn)
		}
		// Let the job drain: shells exit on their own if the machine does not
		// drain them first, then the agents release.
		if !h.j.finalSent {
			h.j.exception(at(now), 0, nil)
			h.collect(at(now))
			h.runUntil(at(now + 100000))
			h.j.releasedRanks(at(now+100000), ranks, nil, "")
			h.collect(at(now + 100000))
		}
		if t.Failed() {
			return
		}
		checkStream(t, ranks, h.log, true)
	}
}

// max-start-delay-percent (#6781): a job that started late in a short
// allocation gets its expiration pushed back by the delay.
func TestMaxStartDelay(t *testing.T) {
	rs := testRS(0)
	rs.starttime = ts(at(0))
	rs.expiration = ts(at(10))
	j := newJob(at(0), 1, 1, rs, DefaultSettings(), false)
	j.launch(at(3)) // 30% of the allocation gone before start: > 25%
	j.started(at(3), []uint32{0})
	if d, _ := j.next(); !d.Equal(at(13)) {
		t.Fatalf("expiration %v, want pushed back to t=13", d.Sub(epoch))
	}
	rs2 := testRS(0)
	rs2.starttime = ts(at(0))
	rs2.expiration = ts(at(10))
	j2 := newJob(at(0), 2, 1, rs2, DefaultSettings(), false)
	j2.launch(at(2)) // 20%: kept
	j2.started(at(2), []uint32{0})
	if d, _ := j2.next(); !d.Equal(at(10)) {
		t.Fatalf("expiration %v, want t=10", d.Sub(epoch))
	}
}

// A rank whose shell exited but whose release (after its epilog) cannot
// come any more, because the rank or its agent is lost, is released all the
// same: the job ends.
func TestLostAfterExitIsReleased(t *testing.T) {
	h := newHarness(t, DefaultSettings(), 2, 3)
	h.start(at(0))
	h.j.exited(at(1), 2, 0)
	h.j.exited(at(1), 3, 0)
	h.j.releasedRanks(at(1), []uint32{2}, nil, "")
	h.collect(at(1))
	h.j.lost(at(2), 3)
	h.collect(at(2))
	equalLines(t, h.responses(), []string{`start {}`, `finish {"status":0}`,
		`release {"final":false,"ranks":"2"}`, `release {"final":true,"ranks":"3"}`})
}
