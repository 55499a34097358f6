package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/journal"
)

// The in-process instance: fluxkit's own job manager journal (package
// journal's Producer, which mirrors job directories into the test
// broker's KVS as flux-core's job-ingest does) and the program's serve on
// another connection, as flux-job-list runs beside a real broker.

const jobspecFmt = `{"version":1,"resources":[{"type":"node","count":%d,"with":[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":2}]}]}],` +
	`"tasks":[{"command":["/bin/%s","x"],"slot":"task","count":{"per_slot":1}}],"attributes":{"system":{"duration":60,"cwd":"/home/u","queue":"%s","environment":{"HOME":"/root"}}}}`

type instance struct {
	t   *testing.T
	b   *testbroker.Broker
	p   *journal.Producer
	h   fluxkit.Handle // a client's
	ctx context.Context
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	leakcheck.Check(t)
	b := brokertest.New(t, testbroker.Config{Size: 2, Config: "[queues.batch]\n[queues.debug]\n"})
	p, err := journal.NewProducer(b.Owner(0), journal.ProducerConfig{KVS: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() {
		cancel()
		_ = p.Close()
	})
	return &instance{t: t, b: b, p: p, h: b.Owner(1), ctx: ctx}
}

// job submits a job and runs it through the events named, RFC 21 order.
func (in *instance) job(cmd, queue string, nodes int, events ...string) fluxkit.JobID {
	in.t.Helper()
	id, err := in.p.Submit(journal.Submission{Userid: 1000, Urgency: 16, Jobspec: fmt.Appendf(nil, jobspecFmt, nodes, cmd, queue)})
	if err != nil {
		in.t.Fatal(err)
	}
	for _, e := range events {
		var ctx any
		switch e {
		case "priority":
			ctx = map[string]int{"priority": 16}
		case "alloc":
			r := fmt.Appendf(nil, `{"version":1,"execution":{"R_lite":[{"rank":"0-%d","children":{"core":"0-1"}}],"nodelist":["node[0-%d]"],"expiration":0}}`, nodes-1, nodes-1)
			if err := in.p.SetR(id, r); err != nil {
				in.t.Fatal(err)
			}
		case "finish":
			ctx = map[string]int{"status": 0}
		case "release":
			ctx = map[string]any{"ranks": "all", "final": true}
		case "fail":
			e, ctx = "finish", map[string]int{"status": 256}
		case "cancel":
			e, ctx = "exception", map[string]any{"type": "cancel", "severity": 0, "note": ""}
		}
		if err := in.p.Post(id, e, ctx); err != nil {
			in.t.Fatal(err)
		}
	}
	return id
}

var (
	toSched    = []string{"validate", "depend", "priority"}
	toRun      = append(toSched[:3:3], "alloc", "start")
	toComplete = append(toRun[:5:5], "finish", "release", "free", "clean")
)

// server runs serve in the background: ready is closed at its ready
// line, done when it has returned err.
type server struct {
	cancel context.CancelFunc
	ready  chan struct{}
	done   chan struct{}
	err    error
}

func (in *instance) serve(o options) *server {
	in.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	o.ready = func() { once.Do(func() { close(s.ready) }) }
	go func() {
		defer close(s.done)
		s.err = serve(ctx, in.b.Owner(0), o)
	}()
	in.t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

func (in *instance) waitReady(s *server) {
	in.t.Helper()
	select {
	case <-s.ready:
	case <-s.done:
		in.t.Fatalf("serve ended before ready: %v", s.err)
	case <-in.ctx.Done():
		in.t.Fatal("never ready")
	}
}

func (in *instance) rpc(topic string, req any) map[string]any {
	in.t.Helper()
	var out map[string]any
	if err := fluxkit.RPC(in.ctx, in.h, topic, fluxkit.NodeidAny, req, &out); err != nil {
		in.t.Fatalf("%s: %v", topic, err)
	}
	return out
}

// The service answers what flux jobs and flux job use, from the backlog
// and from live events: list (streaming and not), list-id (waiting for a
// job the KVS knows), list-attrs, job-stats with the configured queues,
// stats-get.
func TestServeInProcess(t *testing.T) {
	in := newInstance(t)
	done := in.job("hostname", "batch", 2, toComplete...)
	failed := in.job("false", "debug", 1, append(toRun, "fail", "release", "free", "clean")...)
	canceled := in.job("sleep", "batch", 1, append(toSched, "cancel", "clean")...)
	pending := in.job("sleep", "batch", 1, toSched...)
	s := in.serve(options{})
	in.waitReady(s)

	var list struct{ Jobs []map[string]any }
	if err := fluxkit.RPC(in.ctx, in.h, journal.TopicList, fluxkit.NodeidAny, map[string]any{"max_entries": 0, "attrs": []string{"all"}}, &list); err != nil {
		t.Fatal(err)
	}
	var ids []fluxkit.JobID
	for _, j := range list.Jobs {
		ids = append(ids, fluxkit.JobID(j["id"].(float64)))
	}
	// Pending first, then inactive by t_inactive, newest first.
	if fmt.Sprint(ids) != fmt.Sprint([]fluxkit.JobID{pending, canceled, failed, done}) {
		t.Errorf("list order %v", ids)
	}
	if d := list.Jobs[3]; d["nodelist"] != "node[0-1]" || d["ranks"] != "[0-1]" || d["name"] != "hostname" || d["result"] != 1.0 || d["ncores"] != 4.0 {
		t.Errorf("completed job %v", d)
	}

	// Streaming: one job per response, the first with the version, then
	// ENODATA.
	call, err := fluxkit.Stream(in.ctx, in.h, journal.TopicList, fluxkit.NodeidAny, map[string]any{"max_entries": 0, "attrs": []string{"name"},
		"constraint": map[string]any{"results": []string{"failed", "canceled"}}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		m, err := call.Recv(in.ctx)
		if fluxkit.Errno(err) == fluxkit.ENODATA {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && !bytes.Contains(m.Payload, []byte(`"version":1`)) {
			t.Errorf("first response %s", m.Payload)
		}
		n++
	}
	call.Close()
	if n != 2 {
		t.Errorf("%d streamed jobs, want 2", n)
	}

	// A job submitted now: list-id with a state waits until the journal
	// brings it there.
	late, err := in.p.Submit(journal.Submission{Userid: 1000, Urgency: 16, Jobspec: fmt.Appendf(nil, jobspecFmt, 1, "date", "debug")})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan map[string]any, 1)
	go func() {
		var out map[string]any
		_ = fluxkit.RPC(in.ctx, in.h, journal.TopicListID, fluxkit.NodeidAny, map[string]any{"id": late, "attrs": []string{"state", "t_sched"}, "state": 8}, &out)
		got <- out
	}()
	for _, e := range toSched {
		var ctx any
		if e == "priority" {
			ctx = map[string]int{"priority": 3}
		}
		if err := in.p.Post(late, e, ctx); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case out := <-got:
		j, _ := out["job"].(map[string]any)
		if j["state"] != 8.0 || j["t_sched"] == nil {
			t.Errorf("list-id of the late job: %v", out)
		}
	case <-in.ctx.Done():
		t.Fatal("list-id never answered")
	}
	// An id the KVS does not know: ENOENT.
	err = fluxkit.RPC(in.ctx, in.h, journal.TopicListID, fluxkit.NodeidAny, map[string]any{"id": 12345, "attrs": []string{}}, nil)
	if fluxkit.Errno(err) != fluxkit.ENOENT {
		t.Errorf("list-id of an unknown job: %v", err)
	}

	stats := in.rpc(journal.TopicJobStats, map[string]any{})
	if js := stats["job_states"].(map[string]any); js["inactive"] != 3.0 || js["sched"] != 2.0 || stats["failed"] != 1.0 || stats["canceled"] != 1.0 || stats["successful"] != 1.0 {
		t.Errorf("job-stats %v", stats)
	}
	if q := fmt.Sprint(stats["queues"]); !strings.Contains(q, "name:batch") || !strings.Contains(q, "name:debug") {
		t.Errorf("queues %s", q)
	}
	if a := in.rpc(journal.TopicListAttrs, map[string]any{}); len(a["attrs"].([]any)) != len(journal.AttrNames) {
		t.Errorf("list-attrs %v", a)
	}
	if sg := in.rpc(journal.TopicStatsGet, map[string]any{}); sg["jobs"].(map[string]any)["inactive"] != 3.0 {
		t.Errorf("stats-get %v", sg)
	}
	s.cancel()
	<-s.done
	if s.err != nil {
		t.Errorf("serve after cancel: %v", s.err)
	}
}

// The service ends cleanly when the job manager ends the journal, as
// flux-core's module exits; and serve refuses to start where the service
// is taken.
func TestServeEnds(t *testing.T) {
	in := newInstance(t)
	in.job("true", "batch", 1, toComplete...)
	s := in.serve(options{})
	in.waitReady(s)
	if err := in.p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("serve after the journal ended: %v", s.err)
		}
	case <-in.ctx.Done():
		t.Fatal("serve did not end with the journal")
	}

	in2 := newInstance(t)
	s1 := in2.serve(options{})
	in2.waitReady(s1)
	err := serve(in2.ctx, in2.b.Owner(0), options{})
	if err == nil || !strings.Contains(err.Error(), "job-list.list") {
		t.Errorf("a second job-list: %v", err)
	}
	// Under another name it runs beside.
	s2 := in2.serve(options{service: "shadow"})
	in2.waitReady(s2)
	in2.rpc("shadow.list-attrs", map[string]any{})
}

// The command line convention: help on stdout with exit 0, a usage error
// as one line on stderr with exit 2, a failure as one line with exit 1.
func TestCommandLine(t *testing.T) {
	leakcheck.Check(t)
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		args      []string
		code      int
		out, errs string // prefixes; errs is exactly one line
	}{
		{[]string{"--help"}, 0, "Usage: flux-job-list", ""},
		{[]string{"-h"}, 0, "Usage: flux-job-list", ""},
		{[]string{"--bogus"}, 2, "", "flux-job-list: flag provided but not defined: -bogus\n"},
		{[]string{"extra"}, 2, "", "flux-job-list: unexpected argument \"extra\"\n"},
		{nil, 1, "", "flux-job-list: "},
		{[]string{"--uri", "local:///nonexistent/sock"}, 1, "", "flux-job-list: "},
	} {
		var out, errs bytes.Buffer
		code := run(context.Background(), c.args, &out, &errs, noEnv)
		if code != c.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, c.code, errs.String())
		}
		if !strings.HasPrefix(out.String(), c.out) || (c.out == "" && out.Len() != 0) {
			t.Errorf("%q: stdout %q", c.args, out.String())
		}
		e := errs.String()
		if !strings.HasPrefix(e, c.errs) || (c.errs == "" && e != "") || (e != "" && strings.Count(e, "\n") != 1) {
			t.Errorf("%q: stderr %q", c.args, e)
		}
	}
}
