package job_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit/job"
)

// realJobspec is what flux-core v0.88's flux submit writes for
// "flux submit -n1 true" (the journal's copy, without the environment).
const realJobspec = `{"resources": [{"type": "slot", "count": 1, "with": [{"type": "core", "count": 1}], "label": "task"}], "tasks": [{"command": ["true"], "slot": "task", "count": {"per_slot": 1}}], "attributes": {"system": {"duration": 0, "cwd": "/tmp", "shell": {"options": {"rlimit": {"cpu": -1, "fsize": -1, "data": -1, "stack": 8388608, "core": 0, "nofile": 20000, "as": -1, "rss": -1, "nproc": 96367}}}}}, "version": 1}`

// realR is the R sched-simple allocates for that job.
const realR = `{"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}], "starttime": 1796403402.2938819, "expiration": 0.0, "nslots": 1, "nodelist": ["vm"]}}`

func ExampleParseJobspec() {
	js, err := job.ParseJobspec([]byte(realJobspec))
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := js.Counts()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(js.Tasks[0].Command, js.Attributes.System.Cwd, js.Attributes.System.Duration)
	fmt.Printf("slots %d of %d cores, nodes %d\n", c.Slots, c.SlotSize, c.Nodes)
	fmt.Println(string(js.Attributes.System.Other["shell"])[:22])
	// Output:
	// [true] /tmp 0
	// slots 1 of 1 cores, nodes 0
	// {"options": {"rlimit":
}

func ExampleParseJobspec_errors() {
	for _, s := range []string{
		`{"version":1,"resources":[{"type":"slot","count":8.0}],"attributes":{"system":{"duration":0}}}`,
		`{"version":1,"resources":[],"attributes":{"system":{}}}`,
		`{"version":1,"resources":[{"type":"slot","count":1}],"attributes":{"system":{"duration":0,"shell":{"options":{"per-resource":{"count":2}}}}}}`,
	} {
		_, err := job.ParseJobspec([]byte(s))
		fmt.Println(err)
	}
	// Output:
	// jobspec: resources[0].count: not an integer
	// jobspec: attributes.system.duration: missing
	// jobspec: attributes.system.shell.options.per-resource.type: missing
}

func ExampleJobspec_Counts() {
	js, _ := job.ParseJobspec([]byte(`{"version":1,"resources":[{"type":"node","count":2,"exclusive":true,` +
		`"with":[{"type":"slot","count":3,"label":"task","with":[{"type":"core","count":4},{"type":"gpu","count":1}]}]}],` +
		`"tasks":[{"command":["app"],"slot":"task","count":{"per_slot":1}}],"attributes":{"system":{"duration":60}}}`))
	c, _ := js.Counts()
	fmt.Printf("%+v\n", c)
	// Output:
	// {Nodes:2 Slots:6 SlotSize:4 SlotGPUs:1 Exclusive:true}
}

func ExampleParseR() {
	r, err := job.ParseR([]byte(realR))
	if err != nil {
		fmt.Println(err)
		return
	}
	hosts, _ := r.Hosts()
	fmt.Println("ranks", r.Ranks(), "cores", r.Count("core"), "hosts", hosts, "expiration", r.Execution.Expiration)
	_, err = job.ParseR([]byte(`{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0-3"}}],"nodelist":["node[1-3]"]}}`))
	fmt.Println(err)
	// Output:
	// ranks 0 cores 1 hosts vm expiration 0
	// R: execution.nodelist: 3 hosts for 4 ranks
}

func ExampleDecodeEventlog() {
	log := `{"timestamp":1796403402.262248,"name":"submit","context":{"userid":0,"urgency":16,"flags":0,"version":1}}
{"timestamp":1796403402.276703,"name":"validate"}
`
	events, err := job.DecodeEventlog(strings.NewReader(log))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range events {
		fmt.Printf("%.6f %s", e.Timestamp, e.Name)
		if e.Context != nil {
			fmt.Printf(" %s", e.Context)
		}
		fmt.Println()
	}
	var out bytes.Buffer
	_ = job.EncodeEventlog(&out, events)
	fmt.Print(out.String())
	_, err = job.ParseEvent([]byte(`{"timestamp":1,"name":"clean","context":[]}`))
	fmt.Println(err)
	// Output:
	// 1796403402.262248 submit {"userid":0,"urgency":16,"flags":0,"version":1}
	// 1796403402.276703 validate
	// {"timestamp":1796403402.262248,"name":"submit","context":{"userid":0,"urgency":16,"flags":0,"version":1}}
	// {"timestamp":1796403402.276703,"name":"validate"}
	// invalid eventlog entry: context is not an object
}

// A Decoder reuses the destination and remembers repeated strings and
// idsets, for a stream of jobs.
func ExampleDecoder() {
	var d job.Decoder
	var r job.R
	for _, s := range []string{
		`{"version":1,"execution":{"R_lite":[{"rank":"0-1","children":{"core":"0-3"}}],"nodelist":["node[0-1]"]}}`,
		`{"version":1,"execution":{"R_lite":[{"rank":"2","children":{"core":"0-3","gpu":"0"}}],"nodelist":["node2"]}}`,
	} {
		if err := d.R([]byte(s), &r); err != nil {
			fmt.Println(err)
			return
		}
		hosts, _ := r.Hosts()
		fmt.Println(r.Ranks(), hosts, r.Count("core"), r.Count("gpu"))
	}
	// Output:
	// 0-1 node[0-1] 8 0
	// 2 node2 4 1
}
