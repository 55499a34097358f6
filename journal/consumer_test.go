package journal

import (
	"testing"

	"github.com/fluxkit/fluxkit"
)

// C2: the happy path, every attribute.
func TestC2HappyPath(t *testing.T) {
	e := newEnv(t)
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	const id = 42
	e.submit(id, 1, 100, 16, jobspecFor("hostname", "", 1, 1, 4, false, 0))
	e.post(id, 2, "validate", nil)
	e.post(id, 3, "depend", nil)
	e.post(id, 4, "priority", map[string]any{"priority": 16})
	if err := e.p.SetR(id, rFor("0", "0-3", "node1", 0)); err != nil {
		t.Fatal(err)
	}
	e.post(id, 5, "alloc", nil)
	e.post(id, 6, "start", nil)
	e.post(id, 7, "finish", map[string]any{"status": 0})
	e.post(id, 8, "release", map[string]any{"ranks": "all", "final": true})
	e.post(id, 9, "free", nil)
	e.post(id, 10, "clean", nil)
	j, err := e.listID(id, []string{"all"}, StateInactive)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": 42.0, "state": 64.0, "result": 1.0, "success": true, "t_submit": 1.0,
		"t_depend": 2.0, "t_priority": 3.0, "t_sched": 4.0, "t_run": 5.0, "t_cleanup": 7.0, "t_inactive": 10.0, "waitstatus": 0.0,
		"priority": 16.0, "nnodes": 1.0, "ranks": "0", "nodelist": "node1", "ncores": 4.0,
		"exception_occurred": false, "userid": 100.0, "urgency": 16.0, "name": "hostname",
		"cwd": "/home/u", "ntasks": 1.0, "duration": 0.0, "expiration": 0.0}
	for k, v := range want {
		if j[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, j[k], j[k], v)
		}
	}
	for _, k := range []string{"exception_type", "exception_severity", "exception_note", "annotations", "dependencies", "queue"} {
		if _, ok := j[k]; ok {
			t.Errorf("%s present: %v", k, j[k])
		}
	}
	if len(j) != len(want) {
		t.Errorf("job has %d keys, want %d: %v", len(j), len(want), j)
	}
	_ = fluxkit.JobIDAny
}
