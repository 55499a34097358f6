package journal

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit"
)

func eqIDs(t *testing.T, what string, got []fluxkit.JobID, want ...fluxkit.JobID) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func TestC1Deferral(t *testing.T) {
	p := newPipe(t)
	p.sched(1, 1, 5)
	p.run(2, 1, 10)
	p.connect()
	var order []string
	// Feed the backlog but hold back the sentinel.
	msgs, _ := p.s.Next(p.l, nil, 2)
	for _, m := range msgs {
		p.must(p.x.Journal(m))
	}
	reqs := []struct{ topic, payload string }{
		{TopicList, `{"max_entries":0,"attrs":[]}`},
		{TopicListID, `{"id":2,"attrs":["state"]}`},
		{TopicListAttrs, `{}`},
		{TopicStatsGet, `{}`},
	}
	var recs []*rec
	for i, q := range reqs {
		r := p.req(q.topic, q.payload, false)
		r.log, r.name = &order, fmt.Sprint(i)
		recs = append(recs, r)
		if len(r.msgs) != 0 || r.err != nil {
			t.Fatalf("%s answered before the sentinel", q.topic)
		}
	}
	// job-stats is answered at once, from empty counters.
	js := p.req(TopicJobStats, `{}`, false)
	if len(js.msgs) != 1 || js.obj(0)["job_states"].(map[string]any)["total"].(float64) != 0 {
		t.Fatalf("job-stats before sentinel: %v", js.msgs)
	}
	p.must(p.pump())
	if strings.Join(order, ",") != "0,1,2,3" {
		t.Errorf("answer order %v", order)
	}
	if n := len(recs[0].obj(0)["jobs"].([]any)); n != 2 {
		t.Errorf("list after sentinel: %d jobs", n)
	}
	if st := recs[1].obj(0)["job"].(map[string]any)["state"].(float64); st != 16 {
		t.Errorf("list-id state %v", st)
	}
	if recs[3].obj(0)["jobs"].(map[string]any)["pending"].(float64) != 1 {
		t.Errorf("stats-get %s", recs[3].msgs[0])
	}
}

func TestC3PendingOrder(t *testing.T) {
	p := newPipe(t).connect()
	for _, j := range []struct {
		id   fluxkit.JobID
		prio int
	}{{5, 31}, {2, 16}, {3, 16}, {1, 0}} {
		p.sched(j.id, 1, j.prio)
	}
	p.submit(6, 1, jobspecFor("d", "", 0, 1, 1, false, 0))
	p.post(6, 2, "validate", "")
	p.must(p.pump())
	eqIDs(t, "pending", p.ids(`{"max_entries":0,"attrs":[]}`), 5, 2, 3, 1, 6)
	if _, ok := p.job(6)["priority"]; ok {
		t.Error("DEPEND job has priority")
	}
	// The same order when the jobs arrive as a backlog.
	q := newPipe(t)
	q.s = p.s
	q.connect()
	q.must(q.pump())
	eqIDs(t, "backlog pending", q.ids(`{"max_entries":0,"attrs":[]}`), 5, 2, 3, 1, 6)
}

func TestC4Reprioritisation(t *testing.T) {
	p := newPipe(t).connect()
	p.sched(1, 1, 10)
	p.sched(2, 1, 20)
	p.post(1, 5, "priority", `{"priority":100}`)
	p.must(p.pump())
	eqIDs(t, "after priority", p.ids(`{"max_entries":0,"attrs":[]}`), 1, 2)
	if j := p.job(1); j["state"].(float64) != 8 || j["priority"].(float64) != 100 {
		t.Errorf("job 1: %v", j)
	}
	p.post(1, 6, "urgency", `{"urgency":3,"userid":100}`)
	p.must(p.pump())
	j := p.job(1)
	if j["state"].(float64) != 4 || j["urgency"].(float64) != 3 {
		t.Errorf("after urgency: %v", j)
	}
	if _, ok := j["priority"]; ok {
		t.Error("priority present after revert")
	}
	p.post(1, 7, "priority", `{"priority":1}`)
	p.must(p.pump())
	if j := p.job(1); j["state"].(float64) != 8 || j["priority"].(float64) != 1 {
		t.Errorf("after new priority: %v", j)
	}
	eqIDs(t, "resorted", p.ids(`{"max_entries":0,"attrs":[]}`), 2, 1)
}

func TestC5RunningOrder(t *testing.T) {
	p := newPipe(t).connect()
	p.run(1, 1, 5)
	p.run(2, 1, 7)
	p.run(3, 1, 6)
	p.post(3, 8, "finish", `{"status":0}`)
	p.must(p.pump())
	eqIDs(t, "running", p.ids(`{"max_entries":0,"attrs":[]}`), 2, 3, 1)
}

func TestC6CancelledPending(t *testing.T) {
	p := newPipe(t).connect()
	p.sched(1, 1, 16)
	p.must(p.pump())
	w := p.req(TopicListID, `{"id":1,"attrs":["all"],"state":16}`, false)
	if len(w.msgs) != 0 {
		t.Fatal("answered before INACTIVE")
	}
	p.post(1, 5, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.post(1, 6, "clean", "")
	p.must(p.pump())
	if len(w.msgs) != 1 {
		t.Fatalf("waiter not answered: %v", w.err)
	}
	j := w.obj(0)["job"].(map[string]any)
	want := map[string]any{"state": 64.0, "result": 4.0, "success": false, "exception_occurred": true,
		"exception_type": "cancel", "exception_severity": 0.0, "exception_note": "", "t_cleanup": 5.0}
	for k, v := range want {
		if j[k] != v {
			t.Errorf("%s = %v, want %v", k, j[k], v)
		}
	}
	for _, k := range []string{"t_run", "ranks", "nodelist", "waitstatus"} {
		if _, ok := j[k]; ok {
			t.Errorf("%s present", k)
		}
	}
}

func jobStats(p *pipe) map[string]any {
	return p.req(TopicJobStats, `{}`, false).obj(0)
}

func TestC7C8C9Results(t *testing.T) {
	p := newPipe(t).connect()
	p.run(7, 1, 5)
	p.post(7, 6, "exception", `{"type":"timeout","severity":0,"note":"time limit"}`)
	p.finish(7, 7, 9)
	p.run(8, 1, 5)
	p.finish(8, 6, 256)
	p.run(9, 1, 5)
	p.post(9, 6, "exception", `{"type":"foo","severity":1,"note":"x"}`)
	p.finish(9, 7, 0)
	p.must(p.pump())
	check := func(id fluxkit.JobID, want map[string]any) {
		t.Helper()
		j := p.job(id)
		for k, v := range want {
			if j[k] != v {
				t.Errorf("job %d: %s = %v, want %v", id, k, j[k], v)
			}
		}
	}
	check(7, map[string]any{"result": 8.0, "waitstatus": 9.0, "success": false, "exception_type": "timeout"})
	check(8, map[string]any{"result": 2.0, "success": false, "exception_occurred": false})
	check(9, map[string]any{"result": 1.0, "success": true, "exception_occurred": true, "exception_severity": 1.0, "state": 64.0})
	st := jobStats(p)
	if st["timeout"].(float64) != 1 || st["failed"].(float64) != 1 || st["successful"].(float64) != 1 {
		t.Errorf("stats %v", st)
	}
}

func TestC10Invalidate(t *testing.T) {
	p := newPipe(t).connect()
	p.submit(1, 1, jobspecFor("a", "", 0, 1, 1, false, 0))
	p.must(p.pump())
	w := p.req(TopicListID, `{"id":1,"attrs":[]}`, false)
	if len(w.msgs) != 0 || w.err != nil {
		t.Fatal("NEW job answered")
	}
	before := fmt.Sprint(jobStats(p))
	p.post(1, 2, "invalidate", "")
	p.must(p.pump())
	if len(p.ids(`{"max_entries":0,"attrs":[]}`)) != 0 {
		t.Error("invalidated job listed")
	}
	if after := fmt.Sprint(jobStats(p)); after != before {
		t.Errorf("stats changed: %s -> %s", before, after)
	}
	if errnoOf(w.err) != fluxkit.ENOENT {
		t.Errorf("waiter of invalidated job: %v", w.err)
	}
	r := p.req(TopicListID, `{"id":1,"attrs":[]}`, false)
	for _, f := range p.lookup {
		f()
	}
	if errnoOf(r.err) != fluxkit.ENOENT {
		t.Errorf("list-id after invalidate: %v", r.err)
	}
}

// raw feeds a handmade journal response.
func (p *pipe) raw(s string) error { return p.x.Journal([]byte(s)) }

func initialised(t *testing.T) *pipe {
	p := newPipe(t).connect()
	p.must(p.pump())
	return p
}

func TestC11UnknownJob(t *testing.T) {
	p := initialised(t)
	p.must(p.raw(`{"id":77,"events":[{"timestamp":1,"name":"depend"}]}`))
	p.must(p.raw(`{"id":78,"events":[{"timestamp":1,"name":"invalidate"}]}`))
	if !strings.Contains(strings.Join(p.logs, "\n"), "event depend: job "+fluxkit.JobID(77).F58()+" not in hash") {
		t.Errorf("logs %v", p.logs)
	}
	if len(p.ids(`{"max_entries":0,"attrs":[]}`)) != 0 || p.x.Err() != nil {
		t.Error("unknown job changed something")
	}
}

const submitOK = `{"timestamp":1,"name":"submit","context":{"userid":1,"urgency":16,"flags":0,"version":1}}`

func TestC12MalformedEntry(t *testing.T) {
	for _, bad := range []string{
		`{"id":5,"events":[` + submitOK + `,{"name":"depend"}]}`,
		`{"id":5,"events":[` + submitOK + `,{"timestamp":2,"name":"validate","context":[]}]}`,
		`{"id":5,"events":[` + submitOK + `,{"timestamp":"2","name":"validate"}]}`,
		`{"id":5,"events":{}}`,
		`{"id":5}`,
		`{"events":[]}`,
		`{"id":5,"events":[` + submitOK + `,{"timestamp":2,"name":7}]}`,
		`not json`,
	} {
		p := initialised(t)
		err := p.raw(bad)
		var pe *ProtocolError
		if !errors.As(err, &pe) || !errors.Is(err, fluxkit.EPROTO) {
			t.Errorf("%s: %v", bad, err)
			continue
		}
		if !p.x.Done() || p.x.Err() == nil {
			t.Errorf("%s: consumer not stopped", bad)
		}
		if strings.Contains(bad, "submit") {
			if pe.Job != 5 || pe.Index != 1 {
				t.Errorf("%s: error %+v", bad, pe)
			}
			// The entry before the bad one was applied.
			if _, ok := p.x.jobs[5]; !ok {
				t.Errorf("%s: submit before the bad entry not applied", bad)
			}
		}
		// Further input is refused with the same error.
		if err2 := p.raw(`{"id":-1,"events":[]}`); err2 != err {
			t.Errorf("after failure: %v", err2)
		}
	}
}

func TestC13MalformedContext(t *testing.T) {
	pre := `{"timestamp":1,"name":"submit","context":{"userid":1,"urgency":16,"flags":0,"version":1}},{"timestamp":2,"name":"validate"}`
	for _, c := range []struct{ ev, what string }{
		{`{"timestamp":1,"name":"submit","context":{"urgency":16}}`, "userid"},
		{`{"timestamp":3,"name":"urgency","context":{"urgency":32,"userid":1}}`, "urgency 32"},
		{`{"timestamp":3,"name":"exception","context":{"type":"x","severity":0}}`, "note"},
		{`{"timestamp":3,"name":"priority","context":{"priority":"x"}}`, "priority"},
		{`{"timestamp":3,"name":"finish","context":{}}`, "status"},
		{`{"timestamp":3,"name":"annotations","context":{}}`, "annotations"},
		{`{"timestamp":3,"name":"dependency-bogus","context":{"description":"x"}}`, "dependency-bogus"},
		{`{"timestamp":3,"name":"priority","context":{"priority":8.0}}`, "priority"},
	} {
		p := initialised(t)
		msg := `{"id":9,"events":[` + pre + `,` + c.ev + `]}`
		if strings.Contains(c.ev, `"submit"`) {
			msg = `{"id":9,"events":[` + c.ev + `]}`
		}
		err := p.raw(msg)
		var pe *ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.what) || pe.Job != 9 {
			t.Errorf("%s: %v", c.ev, err)
		}
	}
}

func TestC14SuperfluousKeys(t *testing.T) {
	p := initialised(t)
	evs := []string{
		`{"timestamp":1,"name":"submit","context":{"userid":1,"urgency":8,"flags":0,"version":1,"etc":1},"etc":1}`,
		`{"timestamp":2,"name":"validate","context":{"etc":1}}`,
		`{"timestamp":3,"name":"depend","context":{"etc":1}}`,
		`{"timestamp":4,"name":"priority","context":{"priority":5,"etc":1}}`,
		`{"timestamp":5,"name":"alloc","context":{"etc":1}}`,
		`{"timestamp":5.5,"name":"prolog-start","context":{"description":"p","etc":1}}`,
		`{"timestamp":5.6,"name":"prolog-finish","context":{"description":"p","status":0,"etc":1}}`,
		`{"timestamp":6,"name":"start","context":{"etc":1}}`,
		`{"timestamp":7,"name":"finish","context":{"status":0,"etc":1}}`,
		`{"timestamp":7.5,"name":"epilog-start","context":{"description":"e","etc":1}}`,
		`{"timestamp":7.6,"name":"epilog-finish","context":{"description":"e","status":0,"etc":1}}`,
		`{"timestamp":8,"name":"clean","context":{"etc":1}}`,
	}
	p.must(p.raw(`{"id":3,"events":[` + strings.Join(evs, ",") + `]}`))
	j := p.job(3)
	if j["urgency"].(float64) != 8 || j["state"].(float64) != 64 || j["result"].(float64) != 1 {
		t.Errorf("job %v", j)
	}
}

func TestC15C16Annotations(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 1)
	p.must(p.s.SetR(1, rFor("0", "0", "n", 0)))
	p.post(1, 5, "alloc", `{}`)
	p.must(p.pump())
	if _, ok := p.job(1)["annotations"]; ok {
		t.Error("C15: annotations present")
	}
	steps := []struct{ name, ctx, want string }{
		{"annotations", `{"annotations":{"sched":{"x":1}}}`, `map[sched:map[x:1]]`},
		{"annotations", `{"annotations":null}`, `<nil>`},
		{"memo", `{"k":"v"}`, `map[user:map[k:v]]`},
		{"memo", `{"k":null}`, `<nil>`},
	}
	for _, s := range steps {
		p.post(1, 6, s.name, s.ctx)
		p.must(p.pump())
		if got := fmt.Sprint(p.job(1)["annotations"]); got != s.want {
			t.Errorf("%s %s: annotations %s, want %s", s.name, s.ctx, got, s.want)
		}
	}
}

func TestC17Updates(t *testing.T) {
	p := initialised(t)
	p.submit(1, 1, jobspecFor("app", "batch", 0, 1, 1, false, 60))
	p.post(1, 2, "jobspec-update", `{"attributes.system.queue":"debug"}`)
	p.post(1, 3, "validate", "")
	p.must(p.pump())
	if q := p.job(1)["queue"]; q != "debug" {
		t.Errorf("queue %v", q)
	}
	st := jobStats(p)
	found := false
	for _, q := range st["queues"].([]any) {
		qm := q.(map[string]any)
		if qm["name"] == "debug" && qm["job_states"].(map[string]any)["depend"].(float64) == 1 {
			found = true
		}
		if qm["name"] == "batch" && qm["job_states"].(map[string]any)["total"].(float64) != 0 {
			t.Errorf("batch counts the job: %v", qm)
		}
	}
	if !found {
		t.Errorf("queue stats %v", st["queues"])
	}
	p.post(1, 4, "depend", "")
	p.post(1, 5, "priority", `{"priority":3}`)
	// A resource-update before R exists is logged and ignored.
	p.x.cfg.Logf("mark")
	p.must(p.raw(`{"id":1,"events":[{"timestamp":5.5,"name":"resource-update","context":{"expiration":2000}}]}`))
	if !strings.Contains(strings.Join(p.logs, "\n"), "received resource update before R") {
		t.Error("resource-update before R not logged")
	}
	p.post(1, 6, "jobspec-update", `{"attributes.system.duration":100}`)
	p.must(p.pump())
	if j := p.job(1); j["state"].(float64) != 4 || j["duration"].(float64) != 100 {
		t.Errorf("jobspec-update in SCHED: %v", j)
	}
	p.post(1, 7, "priority", `{"priority":3}`)
	p.must(p.s.SetR(1, rFor("0", "0", "n", 1000)))
	p.post(1, 8, "alloc", "")
	p.post(1, 9, "jobspec-update", `{"attributes.system.duration":200}`)
	p.post(1, 10, "resource-update", `{"expiration":2000}`)
	p.must(p.pump())
	if j := p.job(1); j["duration"].(float64) != 200 || j["expiration"].(float64) != 2000 || j["state"].(float64) != 16 {
		t.Errorf("updates in RUN: %v", j)
	}
	// A later full subscription reaches the same job.
	q := newPipe(t)
	q.s = p.s
	q.connect()
	q.must(q.pump())
	if !reflect.DeepEqual(q.job(1), p.job(1)) {
		t.Errorf("reconnected consumer differs:\n%v\n%v", q.job(1), p.job(1))
	}
}

func fiveJobs(p *pipe) {
	p.sched(1, 1, 1)
	p.sched(2, 1, 2)
	p.run(3, 1, 5)
	p.run(4, 1, 5)
	p.finish(4, 9, 0) // t_inactive 10
	p.run(5, 1, 5)
	p.finish(5, 19, 0) // t_inactive 20
	p.run(6, 1, 5)
	p.finish(6, 29, 0) // t_inactive 30
	p.must(p.pump())
}

func TestC18ListLimits(t *testing.T) {
	p := initialised(t)
	fiveJobs(p)
	eqIDs(t, "max 2", p.ids(`{"max_entries":2,"attrs":[]}`), 2, 1)
	eqIDs(t, "max 0", p.ids(`{"max_entries":0,"attrs":[]}`), 2, 1, 3, 6, 5, 4)
	r := p.req(TopicList, `{"max_entries":-1,"attrs":[]}`, false)
	if errnoOf(r.err) != fluxkit.EPROTO || r.err.Error() != "invalid payload: max_entries < 0 not allowed" {
		t.Errorf("max -1: %v", r.err)
	}
	s := p.req(TopicList, `{"max_entries":0,"attrs":["state"]}`, true)
	if len(s.msgs) != 6 || errnoOf(s.err) != fluxkit.ENODATA {
		t.Fatalf("streaming: %d %v", len(s.msgs), s.err)
	}
	for i := range s.msgs {
		m := s.obj(i)
		_, hasV := m["version"]
		if hasV != (i == 0) || len(m["jobs"].([]any)) != 1 {
			t.Errorf("response %d: %s", i, s.msgs[i])
		}
	}
	none := p.req(TopicList, `{"max_entries":0,"attrs":[],"constraint":{"userid":[9]}}`, true)
	if len(none.msgs) != 0 || errnoOf(none.err) != fluxkit.ENODATA {
		t.Errorf("empty streaming: %d %v", len(none.msgs), none.err)
	}
}

func TestC19Since(t *testing.T) {
	p := initialised(t)
	fiveJobs(p)
	eqIDs(t, "since 20", p.ids(`{"max_entries":0,"attrs":[],"since":20}`), 2, 1, 3, 6)
	eqIDs(t, "since 30", p.ids(`{"max_entries":0,"attrs":[],"since":30}`), 2, 1, 3)
	r := p.req(TopicList, `{"max_entries":0,"attrs":[],"since":-1}`, false)
	if r.err == nil || r.err.Error() != "invalid payload: since < 0.0 not allowed" {
		t.Errorf("since -1: %v", r.err)
	}
}

func TestC20AttrErrors(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 1)
	p.must(p.pump())
	if j := p.jobs(`{"max_entries":0,"attrs":[]}`); len(j) != 1 || len(j[0]) != 1 {
		t.Errorf("attrs []: %v", j)
	}
	for _, c := range []struct {
		payload, text string
		errno         syscall.Errno
	}{
		{`{"max_entries":0,"attrs":["foo"]}`, "foo is not a valid attribute", fluxkit.EINVAL},
		{`{"max_entries":0,"attrs":[5]}`, "attr has no string value", fluxkit.EINVAL},
		{`{"max_entries":0,"attrs":5}`, "invalid payload: attrs must be an array", fluxkit.EPROTO},
	} {
		r := p.req(TopicList, c.payload, false)
		if errnoOf(r.err) != c.errno || r.err.Error() != c.text {
			t.Errorf("%s: %v", c.payload, r.err)
		}
	}
	if j := p.jobs(`{"max_entries":0,"attrs":["foo"],"constraint":{"userid":[5]}}`); len(j) != 0 {
		t.Errorf("no match: %v", j)
	}
	r := p.req(TopicListAttrs, `{}`, false)
	if got := fmt.Sprint(r.obj(0)["attrs"]); !strings.HasPrefix(got, "[userid urgency priority t_submit") || !strings.HasSuffix(got, "dependencies all]") {
		t.Errorf("list-attrs %s", got)
	}
}

func TestC21Legacy(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 1)
	_, err := p.s.Submit(Submission{ID: 2, Timestamp: 1, Userid: 200, Urgency: 16, Jobspec: jobspecFor("b", "", 0, 1, 1, false, 0)})
	p.must(err)
	p.post(2, 2, "validate", "")
	p.must(p.pump())
	eqIDs(t, "user 100", p.ids(`{"max_entries":5,"userid":100,"states":0,"results":0,"attrs":[]}`), 1)
	eqIDs(t, "any user", p.ids(`{"max_entries":5,"userid":4294967295,"states":0,"results":0,"attrs":[]}`), 1, 2)
	eqIDs(t, "states", p.ids(`{"max_entries":5,"userid":4294967295,"states":2,"results":0,"attrs":[]}`), 2)
}

func TestC22ListIDWaiting(t *testing.T) {
	p := initialised(t)
	p.must(p.req(TopicPause, ``, false).err)
	p.submit(1, 1, jobspecFor("a", "", 0, 1, 1, false, 0))
	p.post(1, 2, "validate", "")
	p.post(1, 3, "depend", "")
	p.post(1, 4, "priority", `{"priority":1}`)
	p.post(1, 5, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.post(1, 6, "clean", "")
	p.kvs[1] = true
	p.must(p.pump())
	anyw := p.req(TopicListID, `{"id":1,"attrs":["state"]}`, false)
	w16 := p.req(TopicListID, `{"id":1,"attrs":["state"],"state":16}`, false)
	for _, f := range p.lookup {
		f()
	}
	st := p.req(TopicStatsGet, `{}`, false).obj(0)["idsync"].(map[string]any)
	if st["waits"].(float64) != 2 || st["lookups"].(float64) != 0 {
		t.Errorf("idsync %v", st)
	}
	p.must(p.req(TopicUnpause, ``, false).err)
	if len(anyw.msgs) != 1 || anyw.obj(0)["job"].(map[string]any)["state"].(float64) != 2 {
		t.Errorf("waiter without state: %v %v", anyw.msgs, anyw.err)
	}
	if len(w16.msgs) != 1 || w16.obj(0)["job"].(map[string]any)["state"].(float64) != 64 {
		t.Errorf("waiter state=16: %v", w16.err)
	}
	if r := p.req(TopicListID, `{"id":1,"attrs":[],"state":1}`, false); r.err == nil || r.err.Error() != "invalid payload: invalid state specified" {
		t.Errorf("state=1: %v", r.err)
	}
	r := p.req(TopicListID, `{"id":99,"attrs":[]}`, false)
	for _, f := range p.lookup[2:] {
		f()
	}
	if errnoOf(r.err) != fluxkit.ENOENT {
		t.Errorf("absent id: %v", r.err)
	}
	if st := p.req(TopicStatsGet, `{}`, false).obj(0)["idsync"].(map[string]any); st["waits"].(float64) != 0 {
		t.Errorf("idsync after %v", st)
	}
}

// Fix 2: a waiter of a job purged before it reaches the wanted state gets
// ENOENT and leaves the wait count.
func TestFixPurgedWaiter(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 1)
	p.post(1, 5, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.post(1, 6, "clean", "")
	p.kvs[2] = true
	w := p.req(TopicListID, `{"id":2,"attrs":[]}`, false)
	for _, f := range p.lookup {
		f()
	}
	p.must(p.pump())
	p.x.Purge([]fluxkit.JobID{1, 2})
	if errnoOf(w.err) != fluxkit.ENOENT {
		t.Errorf("waiter: %v", w.err)
	}
	if st := p.req(TopicStatsGet, `{}`, false).obj(0)["idsync"].(map[string]any); st["waits"].(float64) != 0 {
		t.Errorf("idsync %v", st)
	}
	if js := jobStats(p); js["inactive_purged"].(float64) != 1 || js["job_states"].(map[string]any)["inactive"].(float64) != 0 {
		t.Errorf("stats %v", js)
	}
}

// Fix 1: a purge event that arrives before the sentinel still removes the
// job once the backlog is applied.
func TestFixPurgeBeforeSentinel(t *testing.T) {
	p := newPipe(t)
	p.run(1, 1, 5)
	p.finish(1, 6, 0)
	p.run(2, 1, 5)
	p.finish(2, 6, 0)
	p.connect()
	msgs, _ := p.s.Next(p.l, nil, 1)
	p.must(p.x.Journal(msgs[0]))
	p.x.Purge([]fluxkit.JobID{1, 2})
	p.must(p.pump())
	if ids := p.ids(`{"max_entries":0,"attrs":[]}`); len(ids) != 0 {
		t.Errorf("purged jobs reappeared: %v", ids)
	}
	if js := jobStats(p); js["inactive_purged"].(float64) != 2 {
		t.Errorf("stats %v", js)
	}
}

func TestC24PauseUnpause(t *testing.T) {
	p := initialised(t)
	p.must(p.req(TopicPause, ``, false).err)
	p.sched(1, 1, 1)
	p.must(p.pump())
	if n := len(p.ids(`{"max_entries":0,"attrs":[]}`)); n != 0 {
		t.Errorf("paused list shows %d", n)
	}
	r := p.req(TopicUnpause, ``, false)
	if len(r.msgs) != 1 || r.err != nil {
		t.Error("unpause not answered")
	}
	eqIDs(t, "after unpause", p.ids(`{"max_entries":0,"attrs":[]}`), 1)
}

func TestC25Stats(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 1)
	p.sched(2, 1, 1)
	p.run(3, 1, 5)
	p.run(4, 1, 5)
	p.finish(4, 6, 0)
	p.run(5, 1, 5)
	p.finish(5, 6, 1)
	p.sched(6, 1, 1)
	p.post(6, 5, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.post(6, 6, "clean", "")
	p.run(7, 1, 5)
	p.post(7, 6, "exception", `{"type":"timeout","severity":0,"note":""}`)
	p.finish(7, 7, 9)
	p.submit(8, 1, jobspecFor("new", "", 0, 1, 1, false, 0))
	for _, pp := range []*pipe{p, nil} {
		if pp == nil {
			pp = newPipe(t)
			pp.s = p.s
			pp.connect()
		}
		pp.must(pp.pump())
		st := jobStats(pp)
		got := fmt.Sprint(st["job_states"], st["successful"], st["failed"], st["canceled"], st["timeout"], st["inactive_purged"])
		want := "map[cleanup:0 depend:0 inactive:4 priority:0 run:1 sched:2 total:7] 1 1 1 1 0"
		if got != want {
			t.Errorf("job-stats %s, want %s", got, want)
		}
		ms := pp.req(TopicStatsGet, `{}`, false).obj(0)
		if fmt.Sprint(ms["jobs"]) != "map[inactive:4 pending:2 running:1]" {
			t.Errorf("module stats %v", ms)
		}
	}
}

func TestC26JobStatsStreaming(t *testing.T) {
	p := initialised(t)
	w := p.req(TopicJobStats, `{}`, true)
	if len(w.msgs) != 1 {
		t.Fatal("no immediate response")
	}
	p.x.FlushStats()
	p.sched(1, 1, 1)
	p.sched(2, 1, 1)
	p.must(p.pump())
	p.x.FlushStats()
	p.x.FlushStats()
	if len(w.msgs) != 2 || w.obj(1)["job_states"].(map[string]any)["sched"].(float64) != 2 {
		t.Errorf("updates %d", len(w.msgs))
	}
	if p.req(TopicStatsGet, `{}`, false).obj(0)["stats_watchers"].(float64) != 1 {
		t.Error("watcher not counted")
	}
	p.req(TopicListDiscon, ``, false)
	if p.req(TopicStatsGet, `{}`, false).obj(0)["stats_watchers"].(float64) != 0 {
		t.Error("watcher not dropped")
	}
}

func TestDependencies(t *testing.T) {
	p := initialised(t)
	p.submit(1, 1, jobspecFor("a", "", 0, 1, 1, false, 0))
	p.post(1, 2, "dependency-add", `{"description":"after:5"}`)
	p.post(1, 2, "dependency-add", `{"description":"after:6"}`)
	p.post(1, 3, "validate", "")
	p.post(1, 4, "dependency-remove", `{"description":"after:5"}`)
	p.post(1, 4, "dependency-add", `{"description":"after:5"}`)
	p.must(p.pump())
	if got := fmt.Sprint(p.job(1)["dependencies"]); got != "[after:6]" {
		t.Errorf("dependencies %s", got)
	}
	p.post(1, 5, "dependency-remove", `{"description":"after:6"}`)
	p.must(p.pump())
	if got := fmt.Sprint(p.job(1)["dependencies"]); got != "[]" {
		t.Errorf("dependencies after removing all: %s", got)
	}
}
