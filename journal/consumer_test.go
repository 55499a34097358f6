package journal

import (
	"fmt"
	"strings"
	"sync"
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

// gated is a Responder whose client takes one response and then nothing
// until released: a slow "flux jobs -a".
type gated struct {
	mu      sync.Mutex
	n       int
	first   chan struct{}
	release chan struct{}
	end     error
	done    chan struct{}
}

func newGated() *gated {
	return &gated{first: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
}

func (g *gated) Respond([]byte) error {
	g.mu.Lock()
	g.n++
	n := g.n
	g.mu.Unlock()
	if n == 1 {
		close(g.first)
		<-g.release
	}
	return nil
}

func (g *gated) RespondError(err error) error {
	g.end = err
	close(g.done)
	return nil
}

// A client slow to take a large list answer holds up neither other
// clients' answers nor the indexing of new events.
func TestSlowListHoldsUpNothing(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 300; i++ {
		e.complete(fluxkit.JobID(i), float64(10*i), 0)
	}
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	slow := newGated()
	req := fluxkit.NewRequest(TopicList, 0, []byte(`{"max_entries":0,"attrs":["all"]}`))
	req.Flags |= fluxkit.FlagStreaming
	req.Route = []string{"slow-client"}
	c.handle(e.ctx, slow, req)
	select {
	case <-slow.first:
	case <-e.ctx.Done():
		t.Fatal("no first response")
	}
	// The slow client holds its answer; a new job is indexed and other
	// clients are answered meanwhile.
	e.complete(1000, 5000, 0)
	j, err := e.listID(1000, []string{"state"}, StateInactive)
	if err != nil || j["state"] != 64.0 {
		t.Fatalf("list-id while a list answer is held: %v %v", j, err)
	}
	out, err := rpc(e.ctx, e.ch, TopicList, map[string]any{"max_entries": 0, "attrs": []string{}})
	if err != nil || len(out["jobs"].([]any)) != 301 {
		t.Fatalf("another list while one is held: %v", err)
	}
	select {
	case <-slow.done:
		t.Fatal("the held answer ended early")
	default:
	}
	close(slow.release)
	select {
	case <-slow.done:
	case <-e.ctx.Done():
		t.Fatal("the held answer never ended")
	}
	if fluxkit.Errno(slow.end) != fluxkit.ENODATA || slow.n != 300 {
		t.Errorf("held answer: %d responses, end %v", slow.n, slow.end)
	}
}

func TestParseConfig(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want Config
		err  string
	}{
		{``, Config{MaxComparisons: DefaultMaxComparisons}, ""},
		{`{"queues":{"debug":{},"batch":{"policy":{}}},"job-list":{"max_comparisons":0},"access":{"private-mode":true}}`,
			Config{Queues: []string{"batch", "debug"}, PrivateMode: true}, ""},
		{`{"job-list":{"max_comparisons":-1}}`, Config{}, "job-list.max_comparisons must be >= 0"},
		{`{"job-list":{"max_comparisons":1.5}}`, Config{}, "max_comparisons is not an integer"},
		{`{"access":{"private-mode":1}}`, Config{}, "private-mode is not a boolean"},
	} {
		got, err := ParseConfig([]byte(c.doc))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.doc, err, c.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %+v %v, want %+v", c.doc, got, err, c.want)
		}
	}
}

// A configuration reload adds the new queues' (empty) statistics and
// applies the cap to later requests.
func TestConfigReload(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.complete(fluxkit.JobID(i), float64(10*i), 0)
	}
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	if err := fluxkit.RPC(e.ctx, e.ch, TopicConfigReload, fluxkit.NodeidAny, map[string]any{"queues": map[string]any{"gpu": map[string]any{}},
		"job-list": map[string]any{"max_comparisons": 2}}, nil); err != nil {
		t.Fatal(err)
	}
	stats, err := rpc(e.ctx, e.ch, TopicJobStats, map[string]any{})
	if err != nil || !strings.Contains(fmt.Sprint(stats["queues"]), "name:gpu") {
		t.Fatalf("job-stats after reload: %v %v", stats, err)
	}
	_, err = rpc(e.ctx, e.ch, TopicList, map[string]any{"max_entries": 0, "attrs": []string{}})
	if fluxkit.ErrorText(err) != "Excessive comparisons made, limit search via states or since" {
		t.Fatalf("list over the reloaded cap: %v", err)
	}
	if err := fluxkit.RPC(e.ctx, e.ch, TopicConfigReload, fluxkit.NodeidAny, map[string]any{"job-list": map[string]any{"max_comparisons": -1}}, nil); fluxkit.Errno(err) != fluxkit.EINVAL {
		t.Errorf("bad reload: %v", err)
	}
}

// A consumer serving under another name answers beside the default one,
// the same answers under its own topics.
func TestServiceName(t *testing.T) {
	e := newEnv(t)
	e.complete(1, 10, 0)
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	shadow, err := NewConsumer(e.b.Owner(0), ConsumerConfig{Service: "shadow"})
	if err != nil {
		t.Fatal(err)
	}
	defer shadow.Close()
	select {
	case <-shadow.Initialized():
	case <-e.ctx.Done():
		t.Fatal("shadow never initialised")
	}
	in := map[string]any{"max_entries": 0, "attrs": []string{"all"}}
	a, err := rpc(e.ctx, e.ch, TopicList, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rpc(e.ctx, e.ch, "shadow.list", in)
	if err != nil || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("shadow.list %v %v, job-list.list %v", b, err, a)
	}
	if _, err := NewConsumer(e.b.Owner(0), ConsumerConfig{Service: "a.b"}); err == nil {
		t.Error("a dotted service name was taken")
	}
}
