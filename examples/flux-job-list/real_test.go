package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/realflux"
)

// The differential tests run flux-core v0.88's own job-list module and
// this program against one real instance (flux start -s2, two queues) and
// require the same answers: flux jobs, flux job list and list-ids as the
// user sees them, and the raw job-list RPCs byte for byte but for
// spacing and number formatting.
//
// Fields flux-core computes from the wall clock, excluded where they are:
//   - runtime, t_remaining and contextual_time (TIME) of jobs in RUN or
//     CLEANUP: now - t_run, expiration - now;
//   - nothing else: pending jobs' contextual_info would read sched's
//     t_estimate against the clock, but sched-simple sets none.
//
// One more thing differs by design of flux-core v0.88 itself, not of
// either job-list: the job manager keeps journal-only events (the
// scheduler's annotations) out of a job's eventlog, so a job-list that
// starts after them never sees them; flux-core's own module, reloaded,
// loses them exactly as this program does. So every comparison is between
// a flux-core module and this program that started from the same journal
// position: both reloaded (from the backlog), or both running (live).

// realQueues is the instance's configuration: two queues, batch the
// default.
const realQueues = `
[queues.batch]
[queues.debug]
[policy.jobspec.defaults.system]
queue = "batch"
`

// cleanEnv is the environment without what would attach to an enclosing
// instance.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FLUX_URI=") || strings.HasPrefix(kv, "FLUX_KVS_NAMESPACE=") || strings.HasPrefix(kv, "FLUX_JOB_ID=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// buildProgram builds flux-job-list for the test.
func buildProgram(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), prog)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// program is a running flux-job-list.
type program struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	done   chan struct{}
	err    error
	mu     sync.Mutex
	stderr bytes.Buffer
}

func startProgram(t testing.TB, bin, uri string, args ...string) *program {
	t.Helper()
	p := &program{ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(cleanEnv(), "FLUX_URI="+uri)
	r, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.watch(r)
	t.Cleanup(func() { p.kill(syscall.SIGKILL) })
	select {
	case <-p.ready:
		t.Logf("%s %v ready in %v", prog, args, time.Since(start))
	case <-p.done:
		t.Fatalf("%s exited before ready: %v\n%s", prog, p.err, p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready in 60 s\n%s", prog, p.output())
	}
	return p
}

// watch reads the program's stderr, closes ready at its ready line, and
// done once it has exited.
func (p *program) watch(r io.Reader) {
	sc := bufio.NewScanner(r)
	once := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.stderr.WriteString(line + "\n")
		p.mu.Unlock()
		if line == prog+": ready" && !once {
			once = true
			close(p.ready)
		}
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *program) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// kill signals the program and waits for it.
func (p *program) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.done
}

// stop ends the program with SIGTERM, which must be a clean exit.
func (p *program) stop(t testing.TB) {
	t.Helper()
	p.kill(syscall.SIGTERM)
	if p.err != nil {
		t.Errorf("%s after SIGTERM: %v\n%s", prog, p.err, p.output())
	}
}

// realInstance is a running instance and the test's helpers over it.
type realInstance struct {
	t   *testing.T
	in  *realflux.Instance
	ctx context.Context
	h   *connect.Handle
}

func startReal(t *testing.T) *realInstance {
	t.Helper()
	in := realflux.Start(t, realflux.Options{Size: 2, Config: realQueues})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	h, err := connect.Open(ctx, in.URIs[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	r := &realInstance{t: t, in: in, ctx: ctx, h: h}
	r.flux("queue", "start", "--all")
	return r
}

// flux runs a flux command and returns its output; it must succeed.
func (r *realInstance) flux(args ...string) string {
	r.t.Helper()
	out, err := r.try(args...)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	return out
}

// try runs a flux command that may fail, returning its stdout and error.
func (r *realInstance) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Minute)
	defer cancel()
	return r.in.Run(ctx, args...)
}

// submit runs flux submit and returns the job ids it prints.
func (r *realInstance) submit(args ...string) []string {
	r.t.Helper()
	out, err := r.try(append([]string{"submit"}, args...)...)
	ids := strings.Fields(out)
	if err != nil && !slices.Contains(args, "--wait") {
		r.t.Fatalf("%v", err)
	}
	if len(ids) == 0 && !slices.Contains(args, "--quiet") {
		r.t.Fatalf("flux submit %v printed no id: %v", args, err)
	}
	return ids
}

func (r *realInstance) waitEvent(event string, ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		r.flux("job", "wait-event", "-q", "-t", "120", id, event)
	}
}

// history builds a mixed history of about 200 jobs: completed, failed,
// canceled running and pending, timed out, a non-fatal exception, two
// queues, named and multi-node jobs, some purged; and, left in place,
// running jobs that fill the instance, pending jobs behind them (urgency
// changed, jobspec updated, a memo), held jobs and jobs waiting on a
// dependency. It returns the ids of the jobs left active.
func (r *realInstance) history() (running, pending []string, purged string) {
	t := r.t
	t0 := time.Now()
	r.submit("--cc=1-100", "--quiet", "--wait", "true")
	r.submit("--cc=1-20", "--wait", "false")
	r.submit("--cc=1-8", "-q", "debug", "--job-name=dbg", "--wait", "hostname")
	r.submit("--cc=1-3", "-q", "debug", "-N2", "--exclusive", "--wait", "hostname")
	r.submit("--cc=1-3", "-N2", "-n4", "--wait", "true")
	r.submit("--cc=1-3", "--cores=2", "--wait", "true")
	r.submit("--cc=1-2", "-N2", "--tasks-per-node=2", "--wait", "true")
	r.submit("--cc=1-3", "-t", "1s", "--wait", "sleep", "5")
	c := r.submit("--cc=1-3", "sleep", "60")
	r.waitEvent("start", c...)
	r.flux(append([]string{"cancel"}, c...)...)
	r.waitEvent("clean", c...)
	h := r.submit("--cc=1-5", "--urgency=hold", "true")
	r.flux(append([]string{"cancel"}, h...)...)
	r.waitEvent("clean", h...)
	x := r.submit("sleep", "3")
	r.waitEvent("start", x...)
	r.flux("job", "raise", "--severity=1", "--type=test", x[0], "a", "note")
	r.waitEvent("clean", x...)
	held := r.allIDs()
	r.flux("job", "purge", "-f", "--num-limit=130")
	purged = r.purgedID(held, r.allIDs())
	r.submit("--cc=1-20", "--quiet", "--wait", "true")
	// What stays active.
	running = r.submit("--cc=1-4", "sleep", "3600")
	r.waitEvent("start", running...)
	sched := r.submit("--cc=1-6", "true")
	r.waitEvent("priority", sched...)
	r.flux("job", "urgency", sched[0], "31")
	r.flux("job", "urgency", sched[1], "5")
	r.flux("job", "wait-event", "-q", "-c", "2", "-t", "60", sched[0], "priority")
	r.flux("job", "wait-event", "-q", "-c", "2", "-t", "60", sched[1], "priority")
	r.flux("update", "--wait", sched[2], "duration=100")
	r.flux("job", "wait-event", "-q", "-c", "2", "-t", "60", sched[2], "priority")
	r.flux("job", "memo", sched[3], "note=hello", "n=5")
	r.flux("job", "wait-event", "-q", "-t", "60", sched[3], "memo")
	hold := r.submit("--cc=1-4", "--urgency=hold", "sleep", "1")
	r.waitEvent("priority", hold...)
	dep := r.submit("--cc=1-3", "--dependency=afterok:"+running[0], "true")
	r.waitEvent("dependency-add", dep...)
	pending = append(append(append(pending, sched...), hold...), dep...)
	t.Logf("history built in %v", time.Since(t0))
	return running, pending, purged
}

// The fields flux jobs -o shows: every heading but the instance.* ones,
// which read a job's own instance, not job-list.
var allFields = []string{"id", "id.dec", "id.hex", "id.f58", "id.f58plain", "id.emoji", "id.kvs", "id.words", "id.dothex",
	"userid", "username", "urgency", "priority", "state", "state_single", "state_emoji", "name", "cwd", "queue", "project",
	"bank", "ntasks", "ncores", "duration", "nnodes", "expiration", "t_remaining", "ranks", "nodelist", "success", "result",
	"result_abbrev", "result_emoji", "t_submit", "t_depend", "t_priority", "t_sched", "t_run", "t_cleanup", "t_inactive",
	"runtime", "status", "status_abbrev", "status_emoji", "waitstatus", "returncode", "exception.occurred",
	"exception.severity", "exception.type", "exception.note", "annotations", "dependencies", "contextual_info",
	"contextual_time", "inactive_reason", "annotations.sched.resource_summary", "sched", "sched.resource_summary",
	"user", "user.note", "uri"}

// clockFields are the -o fields flux-core computes from the wall clock for
// a running job.
var clockFields = []string{"runtime", "t_remaining", "contextual_time"}

const sep = "\x1f"

// views are what the user sees, from whichever job-list serves.
type views struct {
	json    []map[string]any
	stats   map[string]string // by queue ("" for all)
	table   [][]string        // flux jobs -a -o <allFields>
	list    []string          // flux job list -A: json_dumps of each job, list order
	listIDs []string          // flux job list-ids of every job, sorted
	purged  string            // flux job list-ids of a purged job: the error
}

func (r *realInstance) views(ids []string, purged string) views {
	r.t.Helper()
	var v views
	var j struct{ Jobs []map[string]any }
	if err := json.Unmarshal([]byte(r.flux("jobs", "-a", "-A", "--json")), &j); err != nil {
		r.t.Fatal(err)
	}
	v.json = j.Jobs
	v.stats = map[string]string{}
	for _, q := range []string{"", "batch", "debug"} {
		args := []string{"jobs", "--stats-only"}
		if q != "" {
			args = append(args, "-q", q)
		}
		out, _ := r.try(args...) // exit 1 when no job is active
		v.stats[q] = out
	}
	fmtStr := "{" + strings.Join(allFields, "}"+sep+"{") + "}"
	for _, line := range strings.Split(strings.TrimRight(r.flux("jobs", "-a", "-A", "-n", "-o", fmtStr), "\n"), "\n") {
		v.table = append(v.table, strings.Split(line, sep))
	}
	v.list = strings.Split(strings.TrimRight(r.flux("job", "list", "-A"), "\n"), "\n")
	v.listIDs = strings.Split(strings.TrimRight(r.flux(append([]string{"job", "list-ids"}, ids...)...), "\n"), "\n")
	sort.Strings(v.listIDs)
	_, err := r.try("job", "list-ids", purged)
	if err == nil {
		r.t.Fatalf("list-ids of purged job %s succeeded", purged)
	}
	// The command's words, without the test runner's prefix.
	msg := err.Error()
	v.purged = msg[strings.LastIndex(msg, "\n")+1:]
	return v
}

// running tells whether a flux jobs -o row is a job in RUN or CLEANUP.
func runningRow(row []string) bool {
	i := slices.Index(allFields, "state")
	return row[i] == "RUN" || row[i] == "CLEANUP"
}

func compareViews(t *testing.T, what string, want, got views) {
	t.Helper()
	if len(want.json) != len(got.json) {
		t.Errorf("%s: flux jobs --json: %d jobs, flux-core %d", what, len(got.json), len(want.json))
	}
	for i := range min(len(want.json), len(got.json)) {
		w, g := want.json[i], got.json[i]
		if s, _ := w["state"].(string); s == "RUN" || s == "CLEANUP" {
			for _, k := range []string{"runtime", "t_remaining"} {
				delete(w, k)
				delete(g, k)
			}
		}
		wb, _ := json.Marshal(w)
		gb, _ := json.Marshal(g)
		if !bytes.Equal(wb, gb) {
			t.Errorf("%s: flux jobs --json job %d:\n got %s\nwant %s", what, i, gb, wb)
		}
	}
	for q, w := range want.stats {
		if got.stats[q] != w {
			t.Errorf("%s: flux jobs --stats-only (queue %q): %q, flux-core %q", what, q, got.stats[q], w)
		}
	}
	if len(want.table) != len(got.table) {
		t.Errorf("%s: flux jobs -o: %d rows, flux-core %d", what, len(got.table), len(want.table))
	}
	for i := range min(len(want.table), len(got.table)) {
		w, g := want.table[i], got.table[i]
		for f, name := range allFields {
			if runningRow(w) && slices.Contains(clockFields, name) {
				continue
			}
			if f >= len(w) || f >= len(g) || w[f] != g[f] {
				t.Errorf("%s: flux jobs -o row %d field %s: %q, flux-core %q", what, i, name, at(g, f), at(w, f))
			}
		}
	}
	for _, c := range []struct {
		name      string
		want, got []string
	}{{"flux job list -A", want.list, got.list}, {"flux job list-ids", want.listIDs, got.listIDs}} {
		if !slices.Equal(c.want, c.got) {
			t.Errorf("%s: %s differs:\n got %s\nwant %s", what, c.name, strings.Join(c.got, "\n"), strings.Join(c.want, "\n"))
		}
	}
	if want.purged != got.purged {
		t.Errorf("%s: list-ids of a purged job: %q, flux-core %q", what, got.purged, want.purged)
	}
}

func at(row []string, i int) string {
	if i < len(row) {
		return row[i]
	}
	return "<missing>"
}

// allIDs are the ids of every job job-list holds.
func (r *realInstance) allIDs() []string {
	r.t.Helper()
	return strings.Fields(r.flux("jobs", "-a", "-A", "-n", "-o", "{id}"))
}

// purgedID finds a job that was purged: one that flux-core's job-list
// does not know but whose id lies among those it does.
func (r *realInstance) purgedID(before, after []string) string {
	r.t.Helper()
	for _, id := range before {
		if !slices.Contains(after, id) {
			return id
		}
	}
	r.t.Fatal("no purged job")
	return ""
}

// rpcView is job-list's raw answers to the requests flux jobs and flux job
// send, canonicalised (key order kept, spacing and number format
// normalised), from the service svc.
type rpcView map[string]string

// rpcRequests are the list requests compared: flux jobs -a -A, filters,
// every constraint operator.
var rpcRequests = []string{
	`{"max_entries":1000,"attrs":["all"],"since":0.0,"constraint":{"and":[]}}`,
	`{"max_entries":0,"attrs":["all"],"constraint":{"states":["pending"]}}`,
	`{"max_entries":0,"attrs":["all"],"constraint":{"states":["running"]}}`,
	`{"max_entries":0,"attrs":["userid","name","state","t_submit","t_inactive"],"constraint":{"or":[{"results":["failed","canceled"]},{"states":[4,8]}]}}`,
	`{"max_entries":5,"attrs":["queue","result","annotations"],"constraint":{"queue":["debug"]}}`,
	`{"max_entries":0,"attrs":["all"],"constraint":{"name":["dbg","sleep"]}}`,
	`{"max_entries":0,"attrs":["ranks","nodelist"],"constraint":{"ranks":["1"]}}`,
	`{"max_entries":0,"attrs":["ranks","nodelist"],"constraint":{"hostlist":["vm"]}}`,
	`{"max_entries":0,"attrs":["t_priority","t_sched","t_run"],"constraint":{"and":[{"t_sched":[">=1"]},{"not":[{"states":["inactive"]}]}]}}`,
	`{"max_entries":0,"attrs":["dependencies","urgency","priority"],"constraint":{"userid":[-1]}}`,
	`{"max_entries":3,"attrs":[],"since":1.0}`,
	`{"max_entries":0,"attrs":["bogus"]}`,
	`{"max_entries":0,"attrs":["all"],"constraint":{"t_run":["x"]}}`,
}

func (r *realInstance) rpcView(svc string, ids []string, sinceLoad bool) rpcView {
	r.t.Helper()
	v := rpcView{}
	for i, req := range rpcRequests {
		for _, streaming := range []bool{false, true} {
			v[fmt.Sprintf("list %d streaming=%v", i, streaming)] = r.listRaw(svc, req, streaming)
		}
	}
	for _, id := range ids {
		jid, err := fluxkit.ParseJobID(id)
		if err != nil {
			r.t.Fatal(err)
		}
		v["list-id "+id] = r.callRaw(svc+".list-id", fmt.Sprintf(`{"id":%d,"attrs":["all"]}`, uint64(jid)))
	}
	v["list-attrs"] = r.callRaw(svc+".list-attrs", `{}`)
	v["job-stats"] = r.jobStats(svc, sinceLoad)
	return v
}

// listRaw is a list answer: the jobs of every response, then how it ended.
func (r *realInstance) listRaw(svc, req string, streaming bool) string {
	r.t.Helper()
	m := fluxkit.NewRequest(svc+".list", fluxkit.NodeidAny, []byte(req))
	if streaming {
		m.Flags |= fluxkit.FlagStreaming
	}
	call, err := r.h.Request(r.ctx, m)
	if err != nil {
		r.t.Fatal(err)
	}
	defer call.Close()
	var b strings.Builder
	for {
		resp, err := call.Recv(r.ctx)
		if err != nil {
			fmt.Fprintf(&b, "end: %d %q", fluxkit.Errno(err), fluxkit.ErrorText(err))
			return b.String()
		}
		b.WriteString(canon(resp.Payload))
		b.WriteByte('\n')
		if !streaming {
			return b.String()
		}
	}
}

func (r *realInstance) callRaw(topic, req string) string {
	r.t.Helper()
	call, err := r.h.Request(r.ctx, fluxkit.NewRequest(topic, fluxkit.NodeidAny, []byte(req)))
	if err != nil {
		r.t.Fatal(err)
	}
	defer call.Close()
	resp, err := call.Recv(r.ctx)
	if err != nil {
		return fmt.Sprintf("error: %d %q", fluxkit.Errno(err), fluxkit.ErrorText(err))
	}
	return canon(resp.Payload)
}

// jobStats is job-stats with the queues in name order (flux-core's are in
// hash order). Without sinceLoad, inactive_purged is left out: it counts
// the purges a job-list has seen since it started.
func (r *realInstance) jobStats(svc string, sinceLoad bool) string {
	r.t.Helper()
	var st map[string]json.RawMessage
	if err := fluxkit.RPC(r.ctx, r.h, svc+".job-stats", fluxkit.NodeidAny, map[string]any{}, &st); err != nil {
		r.t.Fatal(err)
	}
	var qs []json.RawMessage
	_ = json.Unmarshal(st["queues"], &qs)
	var out []string
	for _, q := range qs {
		if !sinceLoad {
			q = withoutPurged(q)
		}
		out = append(out, canon(q))
	}
	sort.Strings(out)
	delete(st, "queues")
	if !sinceLoad {
		delete(st, "inactive_purged")
	}
	b, _ := json.Marshal(st)
	return canon(b) + " queues " + strings.Join(out, ",")
}

func withoutPurged(q json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(q, &m) != nil {
		return q
	}
	delete(m, "inactive_purged")
	b, _ := json.Marshal(m)
	return b
}

// canon rewrites JSON with its key order kept, no spacing, and numbers in
// one format, so that two encoders' output compares.
func canon(b []byte) string {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out strings.Builder
	var stack []byte // '{' or '['
	first := []bool{true}
	key := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "invalid JSON: " + string(b)
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out.WriteByte(byte(d))
			stack = stack[:len(stack)-1]
			first = first[:len(first)-1]
			key = len(stack) > 0 && stack[len(stack)-1] == '{'
			continue
		}
		if !first[len(first)-1] && !(len(stack) > 0 && stack[len(stack)-1] == '{' && !key) {
			out.WriteByte(',')
		}
		if len(stack) > 0 && stack[len(stack)-1] == '{' && !key {
			// a value after its key
		} else {
			first[len(first)-1] = false
		}
		switch v := tok.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, byte(v))
			first = append(first, true)
			key = v == '{'
			continue
		case string:
			s, _ := json.Marshal(v)
			out.Write(s)
			if key {
				out.WriteByte(':')
				key = false
				continue
			}
		case json.Number:
			f, err := strconv.ParseFloat(v.String(), 64)
			if err != nil {
				out.WriteString(v.String())
			} else {
				out.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
			}
		case bool:
			out.WriteString(strconv.FormatBool(v))
		case nil:
			out.WriteString("null")
		}
		if len(stack) > 0 && stack[len(stack)-1] == '{' {
			key = true
		}
	}
	return out.String()
}

// compareRPC compares two services' raw answers, retrying while the two
// consumers may still be catching up with the journal. sinceLoad tells
// that both started at the same journal position, so that the purges
// they have seen are the same.
func (r *realInstance) compareRPC(what, want, got string, ids []string, sinceLoad bool) {
	r.t.Helper()
	var diffs []string
	for try := 0; try < 20; try++ {
		a, b := r.rpcView(want, ids, sinceLoad), r.rpcView(got, ids, sinceLoad)
		diffs = diffs[:0]
		for k, v := range a {
			if b[k] != v {
				diffs = append(diffs, fmt.Sprintf("%s:\n got %s\nwant %s", k, b[k], v))
			}
		}
		if len(diffs) == 0 {
			r.t.Logf("%s: %d answers equal", what, len(a))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	sort.Strings(diffs)
	r.t.Errorf("%s: %d answers differ:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
}

// TestDifferentialAgainstFluxCore: see the comment at the top of the file.
func TestDifferentialAgainstFluxCore(t *testing.T) {
	realflux.Require(t)
	bin := buildProgram(t)
	r := startReal(t)
	uri := r.in.URIs[0]
	running, pending, purged := r.history()
	allBefore := r.allIDs()

	// 1. From the backlog: flux-core's module reloaded, then this program
	// in its place; the views the user sees are the same.
	r.flux("module", "reload", "job-list")
	ids := r.allIDs()
	a := r.views(ids, purged)
	if len(ids) < 150 || len(allBefore) != len(ids) {
		t.Fatalf("history of %d jobs (%d before the reload)", len(ids), len(allBefore))
	}
	r.flux("module", "remove", "job-list")
	p := startProgram(t, bin, uri)
	b := r.views(ids, purged)
	compareViews(t, "backlog", a, b)
	p.stop(t)

	// 2. Live: flux-core's module and this program beside it (as
	// "fluxkit-job-list") start from the same backlog, then follow the
	// same live events: submissions, cancels, urgency, a memo, a purge.
	r.flux("module", "load", "job-list")
	shadow := startProgram(t, bin, uri, "--service", "fluxkit-job-list")
	r.compareRPC("live, from the backlog", "job-list", "fluxkit-job-list", ids, true)
	r.submit("--cc=1-10", "--quiet", "--wait", "true")
	late := r.submit("--cc=1-3", "true") // pending behind the running jobs
	r.waitEvent("priority", late...)
	r.flux("cancel", late[0])
	r.flux("job", "urgency", late[1], "25")
	r.flux("job", "memo", late[2], "live=1")
	r.flux("cancel", pending[len(pending)-1])
	r.waitEvent("clean", late[0], pending[len(pending)-1])
	r.flux("job", "wait-event", "-q", "-c", "2", "-t", "60", late[1], "priority")
	r.flux("job", "wait-event", "-q", "-t", "60", late[2], "memo")
	r.flux("job", "purge", "-f", "--num-limit=120")
	ids = r.allIDs()
	r.compareRPC("live", "job-list", "fluxkit-job-list", ids, true)

	// 3. Restart: kill the program while jobs stream (held jobs submitted,
	// reprioritised, given memos and canceled, which the scheduler never
	// annotates), start it again: after ready it answers as the module
	// that kept running.
	stream := exec.Command(r.in.Flux, "python", "-c", streamScript)
	stream.Env = append(cleanEnv(), "FLUX_URI="+uri)
	var streamOut bytes.Buffer
	stream.Stdout, stream.Stderr = &streamOut, &streamOut
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	shadow.kill(syscall.SIGKILL)
	time.Sleep(500 * time.Millisecond)
	shadow = startProgram(t, bin, uri, "--service", "fluxkit-job-list")
	if err := stream.Wait(); err != nil {
		t.Fatalf("job stream: %v\n%s", err, streamOut.String())
	}
	t.Logf("job stream: %s", strings.TrimSpace(streamOut.String()))
	ids = r.allIDs()
	// The module kept running saw the purge above, the program restarted
	// did not: all answers but that count are equal; and to flux-core's
	// module reloaded now, all of them.
	r.compareRPC("after a restart mid-stream", "job-list", "fluxkit-job-list", ids, false)
	r.flux("module", "reload", "job-list")
	r.compareRPC("after a restart mid-stream, flux-core reloaded", "job-list", "fluxkit-job-list", ids, true)
	shadow.stop(t)

	// 4. The user's views once more, both from the backlog.
	r.flux("module", "reload", "job-list")
	a = r.views(ids, purged)
	r.flux("module", "remove", "job-list")
	p = startProgram(t, bin, uri)
	b = r.views(ids, purged)
	compareViews(t, "after live changes", a, b)
	p.stop(t)
	r.flux("module", "load", "job-list")
	r.flux(append([]string{"cancel"}, append(running, pending[:len(pending)-1]...)...)...)
}

// streamScript submits held jobs, changes their urgency, gives them memos
// and cancels them, for a few seconds, with flux-core's Python bindings.
const streamScript = `
import flux, time
from flux.job import JobspecV1, submit, cancel
h = flux.Flux()
n = 0
end = time.time() + 4
while time.time() < end:
    js = JobspecV1.from_command(["true"])
    js.cwd = "/tmp"
    ids = [submit(h, js, urgency=0) for _ in range(3)]
    for i in ids:
        h.rpc("job-manager.urgency", {"id": i, "urgency": 0}).get()
        h.rpc("job-manager.memo", {"id": i, "memo": {"k": n}}).get()
        cancel(h, i)
        n += 1
print(n, "jobs streamed")
`
