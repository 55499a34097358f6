package journal

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{submitOK, `{"timestamp":1,"name":"x"}`, `{"name":"depend"}`,
		`{"timestamp":1,"name":"a","context":[]}`, `{"timestamp":"1","name":"a"}`, `{"timestamp":1.5e9,"name":"a\"b","context":{"x":{"y":[1]}}}`,
		`{"timestamp":1,"name":"a","timestamp":2}`, `[]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		// encoding/json matches struct keys case-insensitively; jansson
		// (and Flux) does not, so the reference decodes into a map.
		var ref struct{ Timestamp, Name, Context json.RawMessage }
		var m map[string]json.RawMessage
		refOK := json.Valid(b) && jsonscan.KindOf(jsonscan.Trim(b)) == jsonscan.Object && json.Unmarshal(b, &m) == nil
		ref.Timestamp, ref.Name, ref.Context = m["timestamp"], m["name"], m["context"]
		refOK = refOK &&
			(jsonscan.KindOf(ref.Timestamp) == jsonscan.Integer || jsonscan.KindOf(ref.Timestamp) == jsonscan.Real) && jsonscan.KindOf(ref.Name) == jsonscan.String &&
			(ref.Context == nil || jsonscan.KindOf(ref.Context) == jsonscan.Object) && bytes.Count(b, []byte("{"))+bytes.Count(b, []byte("[")) <= 200
		if refOK != (err == nil) {
			t.Fatalf("ParseEntry(%q) = %v, reference ok %v", b, err, refOK)
		}
		if err != nil {
			return
		}
		var name string
		_ = json.Unmarshal(ref.Name, &name)
		if utf8.Valid(b) && name != e.Name {
			t.Fatalf("name %q, reference %q", e.Name, name)
		}
		// Encoding and parsing again is lossless.
		e2, err := ParseEntry(AppendEntry(nil, e))
		if err != nil || e2.Name != e.Name || e2.Timestamp != e.Timestamp || !bytes.Equal(e2.Context, e.Context) {
			t.Fatalf("round trip of %q: %+v %v", b, e2, err)
		}
	})
}

func FuzzDecodeEventlog(f *testing.F) {
	f.Add([]byte(submitOK + "\n" + `{"timestamp":2,"name":"validate"}` + "\n"))
	f.Add([]byte(submitOK + "\ntrailing"))
	f.Add([]byte(submitOK))
	f.Add([]byte("\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeEventlog(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := EncodeEventlog(&buf, es); err != nil {
			t.Fatal(err)
		}
		es2, err := DecodeEventlog(&buf)
		if err != nil || len(es2) != len(es) {
			t.Fatalf("round trip: %v %d/%d", err, len(es2), len(es))
		}
		for i := range es {
			if es[i].Name != es2[i].Name || es[i].Timestamp != es2[i].Timestamp || !bytes.Equal(es[i].Context, es2[i].Context) {
				t.Fatalf("entry %d: %+v vs %+v", i, es[i], es2[i])
			}
		}
	})
}

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
	jobs := []*job{newJob(1), newJob(2)}
	jobs[1].state, jobs[1].mask, jobs[1].jsParsed, jobs[1].js.name = StateInactive, StateNew|StateInactive, true, "a"
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConstraint(b)
		if err != nil {
			if !strings.Contains(err.Error(), "constraint object invalid") {
				t.Fatalf("error text %v", err)
			}
			return
		}
		for _, j := range jobs {
			c.match(j)
		}
		_ = c.root.states()
	})
}

func FuzzJobspecR(f *testing.F) {
	f.Add(jobspecFor("a", "q", 4, 1, 4, true, 0))
	f.Add(rFor("0-3", "0-3", "n[1-4]", 5))
	f.Add([]byte(`{"version":1,"resources":[{"type":"slot","count":{"min":2},"with":[{"type":"core","count":1}]}],"attributes":{"system":{"duration":1,"shell":{"options":{"per-resource":{"type":"core","count":2}}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if jsonscan.Check(b) != nil || jsonscan.KindOf(jsonscan.Trim(b)) != jsonscan.Object {
			return
		}
		_, _ = parseJobspec(jsonscan.Trim(b))
		_, _ = parseR(jsonscan.Trim(b))
	})
}
