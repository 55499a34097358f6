package journal

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit"
)

// jobspec builds a jobspec with the given resources and system
// attributes, and the command hostname.
func jobspec(resources, system string) []byte {
	return []byte(`{"version":1,"resources":` + resources + `,"tasks":[{"command":["hostname"],"slot":"task","count":{"per_slot":1}}],` +
		`"attributes":{"system":{"duration":0,"cwd":"/tmp/job"` + system + `}}}`)
}

const (
	res1slot     = `[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":1}]}]`
	res4slot     = `[{"type":"slot","count":4,"label":"task","with":[{"type":"core","count":1}]}]`
	res1slot4c   = `[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":4}]}]`
	res1node     = `[{"type":"node","count":1,"exclusive":true,"with":` + res1slot + `}]`
	res4node     = `[{"type":"node","count":4,"exclusive":true,"with":` + res1slot + `}]`
	res1node1s   = `[{"type":"node","count":1,"with":` + res1slot + `}]`
	res4node1s   = `[{"type":"node","count":4,"with":` + res1slot + `}]`
	res4node4s   = `[{"type":"node","count":4,"with":` + res4slot + `}]`
	perNode4     = `,"shell":{"options":{"per-resource":{"type":"node","count":4}}}`
	perCore4     = `,"shell":{"options":{"per-resource":{"type":"core","count":4}}}`
	r1node1core  = `{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0"}}],"starttime":0,"expiration":0,"nodelist":["node1"]}}`
	r1node4core  = `{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0-3"}}],"starttime":0,"expiration":0,"nodelist":["node1"]}}`
	r4node1core  = `{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0"}}],"starttime":0,"expiration":0,"nodelist":["node[1-4]"]}}`
	r4node4core  = `{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0-3"}}],"starttime":0,"expiration":0,"nodelist":["node[1-4]"]}}`
	rNoNodelist  = `{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0-3"}}],"expiration":100}}`
	rBadNodelist = `{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0-3"}}],"nodelist":["node[1-3]"]}}`
)

// The counts flux-core's job-list shows after the jobspec is parsed (at
// DEPEND) and after R is (at RUN): the cases of its job_data unit test.
func TestCountsFromJobspecThenR(t *testing.T) {
	for _, c := range []struct {
		name, res, sys, r                  string
		nnodes0, nnodes1, ntasks0, ntasks1 int32
		ncores0, ncores1                   int32
	}{
		{"1 slot", res1slot, "", r1node1core, -1, 1, 1, 1, 1, 1},
		{"4 slots", res4slot, "", r4node4core, -1, 4, 4, 4, 4, 16},
		{"4 slots on one node", res4slot, "", r1node4core, -1, 1, 4, 4, 4, 4},
		{"1 slot of 4 cores", res1slot4c, "", r1node4core, -1, 1, 1, 1, 4, 4},
		{"1 exclusive node", res1node, "", r1node4core, 1, 1, 1, 1, -1, 4},
		{"4 exclusive nodes", res4node, "", r4node4core, 4, 4, 4, 4, -1, 16},
		{"1 node per-resource node 4", res1node, perNode4, r1node4core, 1, 1, 4, 4, -1, 4},
		{"4 nodes per-resource node 4", res4node, perNode4, r4node4core, 4, 4, 16, 16, -1, 16},
		{"1 slot per-resource core 4", res1slot, perCore4, r1node4core, -1, 1, 4, 4, 1, 4},
		{"4 slots per-resource core 4", res4slot, perCore4, r1node4core, -1, 1, 16, 16, 4, 4},
		{"1 node per-resource core 4", res1node, perCore4, r1node4core, 1, 1, -1, 16, -1, 4},
		{"4 nodes per-resource core 4", res4node, perCore4, r4node4core, 4, 4, -1, 64, -1, 16},
		{"1 node 1 slot shared", res1node1s, "", r1node1core, 1, 1, 1, 1, 1, 1},
		{"4 nodes 1 slot shared", res4node1s, "", r4node1core, 4, 4, 4, 4, 4, 4},
		{"4 nodes 4 slots shared", res4node4s, "", r4node4core, 4, 4, 16, 16, 16, 16},
		{"per-resource node without nodes", res1slot, perNode4, r4node1core, -1, 4, -1, 16, 1, 4},
		{"R without a nodelist", res4slot, perCore4, rNoNodelist, -1, 4, 16, 16, 4, 4},
		{"R librlist refuses", res4slot, "", rBadNodelist, -1, -1, 4, 4, 4, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDeriver()
			j := newJob(1)
			if err := d.applyJobspec(j, jobspec(c.res, c.sys)); err != nil {
				t.Fatal(err)
			}
			if g := [3]int32{j.nnodes(), j.ntasks(), j.ncores()}; g != [3]int32{c.nnodes0, c.ntasks0, c.ncores0} {
				t.Errorf("after the jobspec nnodes, ntasks, ncores = %v, want %v", g, [3]int32{c.nnodes0, c.ntasks0, c.ncores0})
			}
			_ = d.applyR(j, []byte(c.r))
			if g := [3]int32{j.nnodes(), j.ntasks(), j.ncores()}; g != [3]int32{c.nnodes1, c.ntasks1, c.ncores1} {
				t.Errorf("after R nnodes, ntasks, ncores = %v, want %v", g, [3]int32{c.nnodes1, c.ntasks1, c.ncores1})
			}
		})
	}
}

func TestJobspecNamesAndStrings(t *testing.T) {
	d := newDeriver()
	for _, c := range []struct {
		doc                       string
		name, cwd, queue, project string
		duration                  float64
		fails                     bool
	}{
		{string(jobspec(res1slot, "")), "hostname", "/tmp/job", "", "", 0, false},
		{string(jobspec(res1slot, `,"job":{"name":"altname"},"queue":"batch","project":"p","bank":"b","duration":100`)), "altname", "/tmp/job", "batch", "p", 100, false},
		{strings.Replace(string(jobspec(res1slot, "")), `"hostname"`, `"/usr/bin/"`, 1), "/usr/bin/", "/tmp/job", "", "", 0, false},
		{strings.Replace(string(jobspec(res1slot, "")), `"hostname"`, `"/bin/sleep"`, 1), "sleep", "/tmp/job", "", "", 0, false},
		// No job name and no command: job-list sets nothing more.
		{`{"version":1,"resources":` + res1slot + `,"attributes":{"system":{"duration":0,"cwd":"/x"}}}`, "", "", "", "", -1, true},
		// A slot without cores: the names stand, the counts do not.
		{string(jobspec(`[{"type":"slot","count":1}]`, `,"queue":"q"`)), "hostname", "/tmp/job", "q", "", 0, true},
	} {
		j := newJob(1)
		err := d.applyJobspec(j, []byte(c.doc))
		if (err != nil) != c.fails || j.js.name != c.name || j.js.cwd != c.cwd || j.js.queue != c.queue ||
			j.js.project != c.project || j.js.duration != c.duration {
			t.Errorf("%s: %+v %v", c.doc, j.js, err)
		}
	}
	// A job key without a name keeps the name a previous parse gave.
	j := newJob(1)
	_ = d.applyJobspec(j, jobspec(res1slot, `,"job":{"name":"first"}`))
	_ = d.applyJobspec(j, jobspec(res1slot, `,"job":{}`))
	if j.js.name != "first" {
		t.Errorf("name after a job key without one: %q", j.js.name)
	}
	_ = d.applyJobspec(j, jobspec(res1slot, ``))
	if j.js.name != "hostname" {
		t.Errorf("name without a job key: %q", j.js.name)
	}
}

// A job object shows its attributes in the order the request names them,
// "all" in list-attrs order, each once at its first place.
func TestAttributeOrder(t *testing.T) {
	p := newPipe(t).connect()
	p.sched(1, 1, 16)
	p.must(p.pump())
	for _, c := range []struct{ attrs, keys string }{
		{`["state","userid","name"]`, "id,state,userid,name"},
		{`["name","all"]`, "id,name,userid,urgency,priority,t_submit,t_depend,t_priority,t_sched,state,cwd,ntasks,ncores,duration"},
		{`["all","userid"]`, "id,userid,urgency,priority,t_submit,t_depend,t_priority,t_sched,state,name,cwd,ntasks,ncores,duration"},
		{`["t_sched","t_sched","t_run"]`, "id,t_sched"},
	} {
		r := p.req(TopicList, `{"max_entries":0,"attrs":`+c.attrs+`}`, false)
		if r.err != nil {
			t.Fatal(r.err)
		}
		dec := json.NewDecoder(strings.NewReader(string(r.msgs[0])))
		var keys []string
		depth := 0
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch v := tok.(type) {
			case json.Delim:
				if v == '{' || v == '[' {
					depth++
				} else {
					depth--
				}
			case string:
				if depth == 3 && dec.More() {
					keys = append(keys, v)
					// skip the value
					var raw json.RawMessage
					if err := dec.Decode(&raw); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if got := strings.Join(keys, ","); got != c.keys {
			t.Errorf("attrs %s: keys %s, want %s", c.attrs, got, c.keys)
		}
	}
	r := p.req(TopicListAttrs, `{}`, false)
	if !strings.Contains(string(r.msgs[0]), `"t_depend","t_priority","t_sched","t_run"`) {
		t.Errorf("list-attrs %s", r.msgs[0])
	}
}

// t_priority and t_sched are the first entries to PRIORITY and SCHED: a
// job sent back from SCHED keeps them, and loses "priority" until the
// next priority event.
func TestPriorityAndSchedTimes(t *testing.T) {
	p := newPipe(t).connect()
	p.sched(1, 1, 16) // submit 1, validate 2, depend 3, priority 4
	p.post(1, 10, "urgency", `{"urgency":20,"userid":100}`)
	p.must(p.pump())
	j := p.job(1)
	if j["t_priority"] != 3.0 || j["t_sched"] != 4.0 || j["state"] != 4.0 || j["priority"] != nil {
		t.Errorf("after urgency: %v", j)
	}
	p.post(1, 11, "priority", `{"priority":20}`)
	p.must(p.pump())
	j = p.job(1)
	if j["t_priority"] != 3.0 || j["t_sched"] != 4.0 || j["state"] != 8.0 || j["priority"] != 20.0 || j["urgency"] != 20.0 {
		t.Errorf("after the next priority: %v", j)
	}
	if ids := p.ids(`{"max_entries":0,"attrs":[],"constraint":{"t_sched":["<=4"]}}`); len(ids) != 1 {
		t.Errorf("t_sched constraint: %v", ids)
	}
	if ids := p.ids(`{"max_entries":0,"attrs":[],"constraint":{"t_priority":[">3","<1"]}}`); len(ids) != 0 {
		t.Errorf("t_priority constraint reads only its first value: %v", ids)
	}
}

func TestMemoKeepsKeyOrder(t *testing.T) {
	for _, c := range []struct{ ann, memo, want string }{
		{``, `{"b":1,"a":2}`, `{"user":{"b":1,"a":2}}`},
		{`{"sched":{"z":1},"user":{"x":1,"y":2}}`, `{"a":3,"x":null}`, `{"sched":{"z":1},"user":{"y":2,"a":3}}`},
		{`{"user":{"x":1}}`, `{"x":null}`, ``},
		{`{"sched":{},"user":{"x":{"p":1}}}`, `{"x":{"q":2}}`, `{"user":{"x":{"p":1,"q":2}}}`},
		{`{"user":5}`, `{"a":1}`, `{"user":5}`},
	} {
		var ann []byte
		if c.ann != "" {
			ann = []byte(c.ann)
		}
		if got := string(mergeMemo(ann, []byte(c.memo))); got != c.want {
			t.Errorf("memo %s on %s = %s, want %s", c.memo, c.ann, got, c.want)
		}
	}
}

func TestHostlistAndRanksConstraints(t *testing.T) {
	p := newPipe(t).connect()
	for id, r := range map[fluxkit.JobID]string{1: `{"version":1,"execution":{"R_lite":[{"rank":"0-1","children":{"core":"0"}}],"nodelist":["node[0-1]"]}}`,
		2: `{"version":1,"execution":{"R_lite":[{"rank":"3","children":{"core":"0"}}],"nodelist":["node3"]}}`} {
		p.sched(id, float64(id), 16)
		p.must(p.s.SetR(id, []byte(r)))
		p.post(id, 10+float64(id), "alloc", "")
	}
	p.sched(3, 3, 16) // never ran: no nodelist, no ranks
	p.must(p.pump())
	for _, c := range []struct {
		cons string
		want []fluxkit.JobID
	}{
		{`{"hostlist":["node1"]}`, []fluxkit.JobID{1}},
		{`{"hostlist":["node[2-3]"]}`, []fluxkit.JobID{2}},
		{`{"hostlist":["node3","node0"]}`, []fluxkit.JobID{2, 1}},
		{`{"ranks":["1"]}`, []fluxkit.JobID{1}},
		{`{"ranks":["0,3"]}`, []fluxkit.JobID{2, 1}},
		{`{"not":[{"ranks":["0-3"]}]}`, []fluxkit.JobID{3}},
	} {
		got := p.ids(`{"max_entries":0,"attrs":[],"constraint":` + c.cons + `}`)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.cons, got, c.want)
		}
	}
	for _, c := range []struct{ cons, err string }{
		{`{"hostlist":[1]}`, "host value must be a string"},
		{`{"hostlist":[""]}`, "host value not in valid Hostlist format"},
		{`{"hostlist":["n[0-2000]"]}`, "too many hosts specified"},
		{`{"ranks":[1]}`, "ranks value must be a string"},
		{`{"ranks":["3,1"]}`, "ranks value '3,1': range '1' is out of order"},
		{`{"ranks":["0-5000"]}`, "too many ranks specified"},
	} {
		r := p.req(TopicList, `{"max_entries":0,"attrs":[],"constraint":`+c.cons+`}`, false)
		if want := "invalid payload: constraint object invalid: " + c.err; r.err == nil || fluxkit.ErrorText(r.err) != want {
			t.Errorf("%s: %v, want %q", c.cons, r.err, want)
		}
	}
}

// The comparisons cap counts as flux-core does, and the lists a constraint
// cannot match are not walked (so their jobs cost no comparisons).
func TestComparisonsCap(t *testing.T) {
	limit := uint64(5)
	p := newPipe(t)
	p.x = NewIndex(IndexConfig{MaxComparisons: &limit})
	p.connect()
	for id := fluxkit.JobID(1); id <= 3; id++ {
		p.run(id, float64(id), 10+float64(id))
		p.finish(id, 20+float64(id), 0)
	}
	p.sched(4, 1, 16)
	p.sched(5, 1, 16)
	p.must(p.pump())
	// Five jobs, one comparison each: within the cap.
	if ids := p.ids(`{"max_entries":0,"attrs":[]}`); len(ids) != 5 {
		t.Fatalf("list: %v", ids)
	}
	// Two userids for each of the five: over it.
	r := p.req(TopicList, `{"max_entries":0,"attrs":[],"constraint":{"userid":[7,100]}}`, false)
	if r.err == nil || fluxkit.ErrorText(r.err) != "Excessive comparisons made, limit search via states or since" || fluxkit.Errno(r.err) != fluxkit.EINVAL {
		t.Fatalf("over the cap: %v", r.err)
	}
	// Pending only: two comparisons for each pending job, and the
	// inactive list (three more) is never walked.
	if ids := p.ids(`{"max_entries":0,"attrs":[],"constraint":{"and":[{"states":["pending"]},{"userid":[100]}]}}`); len(ids) != 2 {
		t.Fatalf("pending: %v", ids)
	}
	// Not inactive: skipped too, by the state match.
	if ids := p.ids(`{"max_entries":0,"attrs":[],"constraint":{"and":[{"not":[{"states":["inactive"]}]},{"userid":[100]}]}}`); len(ids) != 2 {
		t.Fatalf("not inactive: %v", ids)
	}
}

func TestPrivateMode(t *testing.T) {
	p := newPipe(t)
	p.x = NewIndex(IndexConfig{PrivateMode: true})
	p.connect()
	p.sched(1, 1, 16) // userid 100
	p.must(p.pump())
	ask := func(topic, payload string, uid uint32, roles fluxkit.Role) *rec {
		r := &rec{}
		m := fluxkit.NewRequest(topic, 0, []byte(payload))
		m.Userid, m.Rolemask, m.Route = uid, roles, []string{"c"}
		p.x.Request(r, m)
		return r
	}
	list := `{"max_entries":0,"attrs":[]}`
	if r := ask(TopicList, list, 100, fluxkit.RoleUser); len(r.obj(0)["jobs"].([]any)) != 1 {
		t.Errorf("own jobs: %s", r.msgs[0])
	}
	if r := ask(TopicList, list, 200, fluxkit.RoleUser); len(r.obj(0)["jobs"].([]any)) != 0 {
		t.Errorf("another's jobs: %s", r.msgs[0])
	}
	if r := ask(TopicList, list, 200, fluxkit.RoleAdmin); len(r.obj(0)["jobs"].([]any)) != 1 {
		t.Errorf("admin: %s", r.msgs[0])
	}
	if r := ask(TopicListID, `{"id":1,"attrs":[]}`, 200, fluxkit.RoleUser); fluxkit.Errno(r.err) != fluxkit.ENOENT {
		t.Errorf("another's job by id: %v", r.err)
	}
	if r := ask(TopicJobStats, `{}`, 200, fluxkit.RoleUser); fluxkit.Errno(r.err) != fluxkit.EPERM {
		t.Errorf("job-stats for a guest: %v", r.err)
	}
	if r := ask(TopicJobStats, `{}`, 0, fluxkit.RoleOwner); r.err != nil {
		t.Errorf("job-stats for the owner: %v", r.err)
	}
}

// An event job-list does not know is logged and skipped, never fatal;
// the events it has no use for pass quietly.
func TestUnknownEventSkipped(t *testing.T) {
	p := newPipe(t).connect()
	p.sched(1, 1, 16)
	p.post(1, 10, "future-event", `{"x":1}`)
	p.post(1, 11, "set-flags", `{"flags":["debug"]}`)
	p.post(1, 12, "debug.alloc-request", "")
	p.must(p.pump())
	var logged []string
	for _, l := range p.logs {
		if strings.Contains(l, "does not know") {
			logged = append(logged, l)
		}
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "future-event") {
		t.Errorf("logged %q", logged)
	}
	if j := p.job(1); j["state"] != 8.0 {
		t.Errorf("job after unknown events: %v", j)
	}
}
