package journal

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/job"
)

// FuzzIndex feeds arbitrary journal responses (after a valid backlog) and
// then queries: the consumer must never panic, and after an error it
// refuses further input.
func FuzzIndex(f *testing.F) {
	f.Add([]byte(`{"id":5,"events":[`+submitOK+`,{"timestamp":2,"name":"validate"}],"jobspec":`+string(jobspecFor("a", "q", 2, 1, 2, true, 5))+`}`), []byte(`{"max_entries":0,"attrs":["all"]}`))
	f.Add([]byte(`{"id":5,"events":[`+submitOK+`,{"timestamp":2,"name":"alloc"}],"R":`+string(rFor("0-3", "0-1", "n[1-4]", 3))+`}`), []byte(`{"max_entries":1,"attrs":["all"],"constraint":{"or":[{"states":["run"]}]}}`))
	f.Add([]byte(`{"id":-1,"events":[]}`), []byte(`{"max_entries":0,"attrs":[],"userid":1,"states":0,"results":0}`))
	f.Add([]byte(`{"id":5,"events":[{"timestamp":1,"name":"memo","context":{"a":null}}]}`), []byte(`{}`))
	f.Add([]byte(`{"id":5,"events":[`+submitOK+`,{"timestamp":2,"name":"validate"},{"timestamp":3,"name":"depend"},`+
		`{"timestamp":4,"name":"priority","context":{"priority":1}},{"timestamp":5,"name":"exception","context":{"type":"cancel","severity":0,"note":""}},`+
		`{"timestamp":6,"name":"clean"},{"timestamp":3,"name":"depend"},{"timestamp":7,"name":"finish","context":{"status":0}},`+
		`{"timestamp":8,"name":"clean"},`+submitOK+`]}`), []byte(`{"id":5,"attrs":["all"],"state":0}`))
	f.Fuzz(func(t *testing.T, msg, query []byte) {
		p := initialised(t)
		err := p.x.Journal(msg)
		if err != nil && p.x.Journal([]byte(`{"id":-1,"events":[]}`)) == nil {
			t.Fatal("input accepted after a terminal error")
		}
		for _, topic := range []string{TopicList, TopicListID} {
			r := &rec{}
			m := fluxkit.NewRequest(topic, 0, query)
			p.x.Request(r, m)
			m.Flags |= fluxkit.FlagStreaming
			p.x.Request(&rec{}, m)
			if r.err == nil && len(r.msgs) == 1 && topic == TopicList && !json.Valid(r.msgs[0]) {
				t.Fatalf("invalid JSON answer %q", r.msgs[0])
			}
		}
	})
}

func FuzzConstraint(f *testing.F) {
	for _, s := range []string{`{}`, `{"and":[]}`, `{"not":[{"userid":[1]}]}`, `{"states":["pd",64]}`,
		`{"results":["CD"]}`, `{"t_submit":[">=1.5"]}`, `{"t_run":["<"]}`, `{"name":["a","b"]}`, `{"a":1,"b":2}`, `[]`} {
		f.Add([]byte(s))
	}
	jobs := []*jobRec{newJob(1), newJob(2)}
	jobs[1].state, jobs[1].mask, jobs[1].js.name = StateInactive, StateNew|StateInactive, "a"
	jobs[1].r = rFields{ok: true, hasNodelist: true, nodelist: "n[1-2]", ranks: "[0-1]"}
	x := NewIndex(IndexConfig{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConstraint(b)
		if err != nil {
			if !strings.Contains(err.Error(), "constraint object invalid") {
				t.Fatalf("error text %v", err)
			}
			return
		}
		m := x.matcher(c)
		for _, j := range jobs {
			_, _ = m.match(j)
		}
		for s := StateDepend; s <= StateInactive; s <<= 1 {
			_ = c.mayMatch(s)
		}
	})
}

// FuzzDerive: whatever the jobspec and R, deriving job-list's fields
// from them never panics (the consumer's decoder trusts that they are
// JSON, as journal responses are checked whole), and valid JSON that the
// job package refuses as a jobspec or R changes nothing.
func FuzzDerive(f *testing.F) {
	f.Add(jobspecFor("a", "q", 4, 1, 4, true, 0), rFor("0-3", "0-3", "n[1-4]", 5))
	f.Add([]byte(`{"version":1,"resources":[{"type":"slot","count":{"min":2},"with":[{"type":"core","count":1}]}],"attributes":{"system":{"duration":1,"shell":{"options":{"per-resource":{"type":"core","count":2}}}}}}`), []byte(`{}`))
	d := newDeriver()
	f.Fuzz(func(t *testing.T, js, r []byte) {
		j := newJob(1)
		before := *j
		_ = d.applyJobspec(j, js)
		if _, err := job.ParseJobspec(js); err != nil && json.Valid(js) && !reflect.DeepEqual(*j, before) {
			t.Fatalf("%q: refused (%v) but changed %+v", js, err, *j)
		}
		before = *j
		_ = d.applyR(j, r)
		if _, err := job.ParseR(r); err != nil && json.Valid(r) && !reflect.DeepEqual(*j, before) {
			t.Fatalf("%q: refused (%v) but changed %+v", r, err, *j)
		}
	})
}
