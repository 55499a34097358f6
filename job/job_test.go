package job_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/job"
)

// same is reflect.DeepEqual with nil and empty slices and maps alike (a
// reused destination keeps its storage where a fresh one has none).
func same(a, b any) bool { return sameValue(reflect.ValueOf(a), reflect.ValueOf(b)) }

func sameValue(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return string(a.Bytes()) == string(b.Bytes())
		}
		for i := 0; i < a.Len(); i++ {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !sameValue(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	case reflect.Struct:
		if m := a.MethodByName("Equal"); m.IsValid() && m.Type().NumIn() == 1 && m.Type().In(0) == a.Type() {
			return m.Call([]reflect.Value{b})[0].Bool()
		}
		for i := 0; i < a.NumField(); i++ {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return a.Interface() == b.Interface()
}

func jobspecWith(system, resources, tasks string) string {
	return `{"version":1,"resources":` + resources + `,"tasks":` + tasks +
		`,"attributes":{"system":` + system + `}}`
}

const (
	slot1    = `[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":1}]}]`
	hostname = `[{"command":["hostname"],"slot":"task","count":{"per_slot":1}}]`
)

// The corner cases of flux-core's job-list jobspec tests, as fluxkit reads
// them: a document job-list cannot read is refused here.
func TestParseJobspecCornerCases(t *testing.T) {
	for _, c := range []struct {
		name, doc, err string
	}{
		{"valid", jobspecWith(`{"duration":0,"cwd":"/tmp/job"}`, slot1, hostname), ""},
		{"invalid json", `{"version":1,`, "malformed JSON"},
		{"missing attributes", `{"version":1,"resources":` + slot1 + `,"tasks":` + hostname + `}`, "attributes.system.duration: missing"},
		{"attributes.system.job not an object", jobspecWith(`{"duration":0,"job":5}`, slot1, hostname), "attributes.system.job: not an object"},
		{"missing duration", jobspecWith(`{"cwd":"/"}`, slot1, hostname), "attributes.system.duration: missing"},
		{"duration a string", jobspecWith(`{"duration":"1h"}`, slot1, hostname), "attributes.system.duration: not a number"},
		{"tasks not an array", jobspecWith(`{"duration":0}`, slot1, `{}`), "tasks: not an array"},
		{"command a string", jobspecWith(`{"duration":0}`, slot1, `[{"command":"hostname"}]`), "tasks[0].command: not an array"},
		{"command of numbers", jobspecWith(`{"duration":0}`, slot1, `[{"command":[1]}]`), "tasks[0].command[0]: not a string"},
		{"per-resource without type", jobspecWith(`{"duration":0,"shell":{"options":{"per-resource":{"count":4}}}}`, slot1, hostname), "per-resource.type: missing"},
		{"per-resource count 0", jobspecWith(`{"duration":0,"shell":{"options":{"per-resource":{"type":"core","count":0}}}}`, slot1, hostname), "per-resource.count: out of range"},
		{"missing version", `{"resources":` + slot1 + `,"attributes":{"system":{"duration":0}}}`, "version: missing"},
		{"version 999 is read", strings.Replace(jobspecWith(`{"duration":0}`, slot1, hostname), `"version":1`, `"version":999`, 1), ""},
		{"missing resources", `{"version":1,"attributes":{"system":{"duration":0}}}`, "resources: missing"},
		{"resources not an array", jobspecWith(`{"duration":0}`, `{}`, hostname), "resources: not an array"},
		{"resource without type", jobspecWith(`{"duration":0}`, `[{"count":1}]`, hostname), "resources[0].type: missing"},
		{"resource type a number", jobspecWith(`{"duration":0}`, `[{"type":1,"count":1}]`, hostname), "resources[0].type: not a string"},
		{"resource without count", jobspecWith(`{"duration":0}`, `[{"type":"slot","with":[{"type":"core"}]}]`, hostname), "resources[0].count: missing"},
		{"count a real", jobspecWith(`{"duration":0}`, `[{"type":"slot","count":1.0}]`, hostname), "resources[0].count: not an integer"},
		{"nested count an object", jobspecWith(`{"duration":0}`, `[{"type":"slot","count":1,"with":[{"type":"core","count":{"min":1}}]}]`, hostname), "resources[0].with[0].count: not an integer"},
		{"exclusive a string", jobspecWith(`{"duration":0}`, `[{"type":"node","count":1,"exclusive":"yes"}]`, hostname), "resources[0].exclusive: not a boolean"},
		{"environment of numbers", jobspecWith(`{"duration":0,"environment":{"A":1}}`, slot1, hostname), "attributes.system.environment.A: not a string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := job.ParseJobspec([]byte(c.doc))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("ParseJobspec: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("ParseJobspec error %v, want one containing %q", err, c.err)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	for _, c := range []struct {
		name, resources string
		want            job.Counts
		err             string
	}{
		{"one slot", slot1, job.Counts{Slots: 1, SlotSize: 1}, ""},
		{"4 slots of 4 cores", `[{"type":"slot","count":4,"with":[{"type":"core","count":4}]}]`, job.Counts{Slots: 4, SlotSize: 4}, ""},
		{"4 exclusive nodes", `[{"type":"node","count":4,"exclusive":true,"with":` + slot1 + `}]`, job.Counts{Nodes: 4, Slots: 4, SlotSize: 1, Exclusive: true}, ""},
		{"4 nodes of 4 slots", `[{"type":"node","count":4,"with":[{"type":"slot","count":4,"with":[{"type":"core","count":1}]}]}]`, job.Counts{Nodes: 4, Slots: 16, SlotSize: 1}, ""},
		{"nodes under a switch multiply", `[{"type":"switch","count":2,"with":[{"type":"node","count":3,"with":` + slot1 + `}]}]`, job.Counts{Nodes: 6, Slots: 6, SlotSize: 1}, ""},
		{"gpus", `[{"type":"slot","count":2,"with":[{"type":"core","count":2},{"type":"gpu","count":1}]}]`, job.Counts{Slots: 2, SlotSize: 2, SlotGPUs: 1}, ""},
		{"unknown types are ignored", `[{"type":"slot","count":1,"with":[{"type":"core","count":1},{"type":"memory","count":4}]}]`, job.Counts{Slots: 1, SlotSize: 1}, ""},
		{"no slots", `[{"type":"core","count":1}]`, job.Counts{}, "unable to determine slot count"},
		{"no cores", `[{"type":"slot","count":1}]`, job.Counts{}, "unable to determine slot size"},
		{"zero count", `[{"type":"slot","count":0,"with":[{"type":"core","count":1}]}]`, job.Counts{}, "invalid count 0 for type 'slot'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			js, err := job.ParseJobspec([]byte(jobspecWith(`{"duration":0}`, c.resources, hostname)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := js.Counts()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Counts error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Counts = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestParseRCornerCases(t *testing.T) {
	const lite = `"R_lite":[{"rank":"0","children":{"core":"0"}}]`
	for _, c := range []struct{ name, doc, err string }{
		{"valid", `{"version":1,"execution":{` + lite + `,"starttime":0,"expiration":0,"nodelist":["node1"]}}`, ""},
		{"without starttime", `{"version":1,"execution":{` + lite + `,"expiration":0,"nodelist":["node1"]}}`, ""},
		{"without expiration", `{"version":1,"execution":{` + lite + `,"starttime":0,"nodelist":["node1"]}}`, ""},
		{"without nodelist", `{"version":1,"execution":{` + lite + `}}`, ""},
		{"invalid json", `{"version":1,"execution":{` + lite + `,}}`, "malformed JSON"},
		{"missing version", `{"execution":{` + lite + `}}`, "version: missing"},
		{"version 2", `{"version":2,"execution":{` + lite + `}}`, "version: 2 is not 1"},
		{"R_lite not an array", `{"version":1,"execution":{"R_lite":{}}}`, "execution.R_lite: not an array"},
		{"rank not an idset", `{"version":1,"execution":{"R_lite":[{"rank":"x","children":{"core":"0"}}]}}`, "execution.R_lite[0].rank"},
		{"core not an idset", `{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0-"}}]}}`, "execution.R_lite[0].children.core"},
		{"nodelist too short", `{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0"}}],"nodelist":["node[1-3]"]}}`, "3 hosts for 4 ranks"},
		{"nodelist not a hostlist", `{"version":1,"execution":{` + lite + `,"nodelist":["node[1"]}}`, "execution.nodelist"},
		{"property off R", `{"version":1,"execution":{` + lite + `,"properties":{"gpu":"1"}}}`, "ranks 1 not found"},
		{"property name", `{"version":1,"execution":{` + lite + `,"properties":{"a|b":"0"}}}`, "invalid character '|'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := job.ParseR([]byte(c.doc))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("ParseR: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("ParseR error %v, want one containing %q", err, c.err)
			}
		})
	}
}

func TestRHostsAndCounts(t *testing.T) {
	r, err := job.ParseR([]byte(`{"version":1,"execution":{"R_lite":[{"rank":"2-3","children":{"core":"0-3","gpu":"0"}},` +
		`{"rank":"0","children":{"core":"0-1"}}],"nodelist":["n[0,2]","n3"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Ranks().String(); got != "0,2-3" {
		t.Errorf("Ranks = %s", got)
	}
	if h.String() != "n[0,2-3]" || r.Count("core") != 10 || r.Count("gpu") != 2 {
		t.Errorf("Hosts %s, cores %d, gpus %d", h, r.Count("core"), r.Count("gpu"))
	}
	// A rank named twice has the union of its resources.
	r, err = job.ParseR([]byte(`{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0-1"}},{"rank":"0","children":{"core":"1-2"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Count("core"); n != 3 {
		t.Errorf("cores of a rank named twice = %d, want 3", n)
	}
	if _, err := r.Hosts(); !errors.Is(err, job.ErrNoHosts) {
		t.Errorf("Hosts without a nodelist: %v", err)
	}
}

// A destination reused for another document reads as a fresh one.
func TestDecoderReuse(t *testing.T) {
	docs := []string{
		jobspecWith(`{"duration":60,"cwd":"/a","queue":"batch","environment":{"A":"1"},"job":{"name":"x"},"shell":{"options":{"per-resource":{"type":"node","count":2}}}}`,
			`[{"type":"node","count":2,"with":[{"type":"slot","count":1,"with":[{"type":"core","count":4}]}]}]`,
			`[{"command":["a","b","c"],"slot":"task","count":{"total":5}},{"command":["d"]}]`),
		jobspecWith(`{"duration":0}`, slot1, hostname),
		`{"version":1,"resources":[{"type":"slot","count":1,"with":[{"type":"core","count":2}]}],"attributes":{"system":{"duration":1},"user":{"k":1}}}`,
	}
	var d job.Decoder
	var js job.Jobspec
	for round := 0; round < 2; round++ {
		for _, doc := range docs {
			if err := d.Jobspec([]byte(doc), &js); err != nil {
				t.Fatal(err)
			}
			fresh, err := job.ParseJobspec([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if !same(&js, fresh) {
				t.Fatalf("reused %+v\nfresh  %+v", js, *fresh)
			}
		}
	}
	rs := []string{
		`{"version":1,"execution":{"R_lite":[{"rank":"0-1","children":{"core":"0-3","gpu":"0"}},{"rank":"2","children":{}}],"nodelist":["n[0-2]"],"properties":{"big":"0"},"expiration":5}}`,
		`{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0"}}]},"scheduling":{"x":1}}`,
	}
	var r job.R
	for round := 0; round < 2; round++ {
		for _, doc := range rs {
			if err := d.R([]byte(doc), &r); err != nil {
				t.Fatal(err)
			}
			fresh, err := job.ParseR([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if !same(&r, fresh) {
				t.Fatalf("reused %+v\nfresh  %+v", r, *fresh)
			}
		}
	}
}

func TestEventChecks(t *testing.T) {
	for _, c := range []struct{ doc, err string }{
		{`{"timestamp":1,"name":"clean"}`, ""},
		{`{"timestamp":1,"name":"clean","context":{},"extra":[1]}`, ""},
		{`{"timestamp":"1","name":"clean"}`, "timestamp is not a number"},
		{`{"name":"clean"}`, "timestamp missing"},
		{`{"timestamp":1}`, "name missing"},
		{`{"timestamp":1,"name":5}`, "name is not a string"},
		{`{"timestamp":1,"name":"x","context":null}`, "context is not an object"},
		{`{"timestamp":"x","timestamp":2,"name":"x"}`, ""}, // the last of a repeated key counts
		{`[]`, "not a JSON object"},
	} {
		_, err := job.ParseEvent([]byte(c.doc))
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseEvent(%s) = %v, want %q", c.doc, err, c.err)
		}
		if err != nil && !errors.Is(err, job.ErrEvent) {
			t.Errorf("ParseEvent(%s) error %v does not match ErrEvent", c.doc, err)
		}
	}
	for _, c := range []struct {
		ts   float64
		name string
		ctx  string
	}{{-1, "x", ""}, {1, "", ""}, {1, "x", "[]"}, {1, "x", "{"}} {
		var ctx []byte
		if c.ctx != "" {
			ctx = []byte(c.ctx)
		}
		if _, err := job.NewEvent(c.ts, c.name, ctx); !errors.Is(err, job.ErrEvent) {
			t.Errorf("NewEvent(%v, %q, %q) = %v, want ErrEvent", c.ts, c.name, c.ctx, err)
		}
	}
	e, err := job.NewEvent(0, "start", nil)
	if err != nil || e.Timestamp < 1.7e9 {
		t.Errorf("NewEvent with timestamp 0 = %+v, %v: want now", e, err)
	}
	if _, err := job.DecodeEventlog(strings.NewReader(`{"timestamp":1,"name":"a"}`)); err == nil {
		t.Error("an eventlog without a newline decoded")
	}
	if _, err := job.DecodeEventlog(strings.NewReader("{\"timestamp\":1,\"name\":\"a\"}\n\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("empty line: %v", err)
	}
}
