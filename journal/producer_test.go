package journal

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

func openStream(t *testing.T, e *env, h fluxkit.Handle, payload string, streaming bool) fluxkit.Call {
	t.Helper()
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	req := fluxkit.NewRequest(TopicJournal, fluxkit.NodeidAny, p)
	if streaming {
		req.Flags |= fluxkit.FlagStreaming
	}
	call, err := h.Request(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(call.Close)
	return call
}

// backlog reads responses up to and including the sentinel.
func backlog(t *testing.T, e *env, call fluxkit.Call) []map[string]any {
	t.Helper()
	var out []map[string]any
	for {
		r, err := collect(e.ctx, call, 1)
		if err != nil {
			t.Fatalf("backlog: %v (after %d)", err, len(out))
		}
		out = append(out, r[0])
		if r[0]["id"].(float64) == -1 {
			return out
		}
	}
}

func eventNames(r map[string]any) []string {
	var out []string
	for _, ev := range r["events"].([]any) {
		out = append(out, ev.(map[string]any)["name"].(string))
	}
	return out
}

func (e *env) listeners() int {
	return e.p.Stats().Listeners
}

func TestP1P2Validation(t *testing.T) {
	e := newEnv(t)
	h := e.b.Owner(0)
	defer h.Close()
	cases := []struct {
		payload   string
		streaming bool
		text      string
	}{
		{`{}`, false, "job-manager.events requires streaming RPC flag"},
		{``, true, ""},
		{`{"full":1}`, true, ""},
		{`{"full":"true"}`, true, ""},
		{`[]`, true, ""},
		{`{"allow":5}`, true, "job-manager.events allow should be an object"},
		{`{"deny":[]}`, true, "job-manager.events deny should be an object"},
	}
	for _, c := range cases {
		call := openStream(t, e, h, c.payload, c.streaming)
		_, err := collect(e.ctx, call, 1)
		if errnoOf(err) != fluxkit.EPROTO {
			t.Errorf("%q streaming=%v: %v, want EPROTO", c.payload, c.streaming, err)
		}
		if c.text != "" && (err == nil || err.Error() != c.text) {
			t.Errorf("%q: text %v, want %q", c.payload, err, c.text)
		}
	}
	if n := e.listeners(); n != 0 {
		t.Errorf("listeners = %d", n)
	}
}

func TestP3GuestDenied(t *testing.T) {
	e := newEnv(t)
	own := e.b.Owner(0)
	defer own.Close()
	call := openStream(t, e, own, `{}`, true)
	backlog(t, e, call)
	g := e.b.Guest(0, 4242)
	defer g.Close()
	gcall := openStream(t, e, g, `{}`, true)
	_, err := collect(e.ctx, gcall, 1)
	if errnoOf(err) != fluxkit.EPERM || !strings.Contains(err.Error(), "Request requires owner credentials") {
		t.Errorf("guest: %v", err)
	}
	if err := fluxkit.Notify(e.ctx, g, TopicJournalCancel, fluxkit.NodeidAny, map[string]any{"matchtag": call.Matchtag()}); err != nil {
		t.Fatal(err)
	}
	e.submit(1, 1, 1, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
	r, err := collect(e.ctx, call, 1)
	if err != nil || r[0]["id"].(float64) != 1 {
		t.Errorf("stream after guest cancel: %v %v", r, err)
	}
}

func TestP4EmptyInstance(t *testing.T) {
	e := newEnv(t)
	call := openStream(t, e, e.ph, `{}`, true)
	r, err := collect(e.ctx, call, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r[0])
	if string(b) != `{"events":[],"id":-1}` {
		t.Errorf("got %s", b)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := call.Recv(ctx); err != context.DeadlineExceeded {
		t.Errorf("stream not open: %v", err)
	}
}

// p5Jobs: inactive A=1, B=2; C=3 in RUN; D=4 in SCHED.
func p5Jobs(e *env) {
	e.complete(1, 10, 0)
	e.complete(2, 20, 0)
	e.toRun(3, 30, rFor("0-1", "0-3", "node[1-2]", 100))
	e.toSched(4, 40, 7, jobspecFor("d", "", 0, 1, 1, false, 0))
}

func TestP5P6Backlog(t *testing.T) {
	e := newEnv(t)
	p5Jobs(e)
	for _, full := range []bool{false, true} {
		pl := `{"full":false}`
		if full {
			pl = `{"full":true}`
		}
		rs := backlog(t, e, openStream(t, e, e.ph, pl, true))
		var got []float64
		for _, r := range rs {
			got = append(got, r["id"].(float64))
		}
		if full {
			if len(got) != 5 || !sameSet(got[:2], 1, 2) || !sameSet(got[2:4], 3, 4) {
				t.Errorf("full backlog order %v", got)
			}
		} else if len(got) != 3 || !sameSet(got[:2], 3, 4) {
			t.Errorf("backlog order %v", got)
		}
		for _, r := range rs[:len(rs)-1] {
			id := fluxkit.JobID(r["id"].(float64))
			names := eventNames(r)
			want, _ := e.p.Eventlog(id)
			if names[0] != "submit" || len(names) != strings.Count(string(want), "\n") {
				t.Errorf("job %d events %v", id, names)
			}
			js, ok := r["jobspec"].(map[string]any)
			if !ok {
				t.Errorf("job %d: no jobspec object", id)
				continue
			}
			sys := js["attributes"].(map[string]any)["system"].(map[string]any)
			if _, ok := sys["environment"]; ok {
				t.Errorf("job %d: environment not redacted", id)
			}
			R, hasR := r["R"].(map[string]any)
			if id == 4 && hasR {
				t.Errorf("SCHED job has R")
			}
			if id != 4 {
				if !hasR {
					t.Errorf("job %d has no R", id)
				} else if _, ok := R["scheduling"]; ok {
					t.Errorf("job %d: scheduling not redacted", id)
				}
			}
		}
	}
}

func sameSet(got []float64, want ...float64) bool {
	g := append([]float64(nil), got...)
	sort.Float64s(g)
	if len(g) != len(want) {
		return false
	}
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

func TestP7FilteredBacklog(t *testing.T) {
	e := newEnv(t)
	p5Jobs(e)
	rs := backlog(t, e, openStream(t, e, e.ph, `{"full":true,"allow":{"clean":1}}`, true))
	if len(rs) != 5 {
		t.Fatalf("%d responses", len(rs))
	}
	for _, r := range rs[:4] {
		names := eventNames(r)
		id := r["id"].(float64)
		if id <= 2 && (len(names) != 1 || names[0] != "clean") {
			t.Errorf("job %v: %v", id, names)
		}
		if id > 2 && len(names) != 0 {
			t.Errorf("job %v: %v", id, names)
		}
	}
}

func liveNames(t *testing.T, e *env, call fluxkit.Call, id float64, until string) []string {
	t.Helper()
	var names []string
	for {
		r, err := collect(e.ctx, call, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r[0]["id"].(float64) != id {
			continue
		}
		ev := r[0]["events"].([]any)
		if len(ev) != 1 {
			t.Fatalf("live response with %d events", len(ev))
		}
		n := ev[0].(map[string]any)["name"].(string)
		names = append(names, n)
		if n == until {
			return names
		}
	}
}

func TestP8AllowDeny(t *testing.T) {
	e := newEnv(t)
	a := openStream(t, e, e.ph, `{"allow":{"depend":1,"finish":1,"clean":1},"deny":{"depend":1}}`, true)
	d := openStream(t, e, e.ph, `{"deny":{"depend":1,"finish":1,"release":1}}`, true)
	backlog(t, e, a)
	backlog(t, e, d)
	e.complete(5, 1, 0)
	if got := strings.Join(liveNames(t, e, a, 5, "clean"), ","); got != "finish,clean" {
		t.Errorf("allow/deny: %s", got)
	}
	if got := strings.Join(liveNames(t, e, d, 5, "clean"), ","); got != "submit,validate,priority,alloc,start,free,clean" {
		t.Errorf("deny: %s", got)
	}
}

func TestP9P10LiveFraming(t *testing.T) {
	e := newEnv(t)
	all := openStream(t, e, e.ph, `{}`, true)
	cl := openStream(t, e, e.ph, `{"allow":{"clean":1}}`, true)
	backlog(t, e, all)
	backlog(t, e, cl)
	e.toRun(4, 1, rFor("0", "0-3", "node1", 0))
	rs, err := collect(e.ctx, all, 6)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		name := eventNames(r)[0]
		_, js := r["jobspec"]
		_, R := r["R"]
		if js != (name == "submit") || R != (name == "alloc") {
			t.Errorf("%s: jobspec %v R %v", name, js, R)
		}
		if len(r) != 2+btoi(js)+btoi(R) {
			t.Errorf("%s: extra keys %v", name, r)
		}
	}
	e.post(4, 7, "finish", map[string]any{"status": 0})
	e.post(4, 8, "clean", nil)
	r, err := collect(e.ctx, cl, 1)
	if err != nil || eventNames(r[0])[0] != "clean" {
		t.Errorf("allow clean listener got %v %v first", r, err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestP11MissingR(t *testing.T) {
	e := newEnv(t)
	call := openStream(t, e, e.ph, `{}`, true)
	backlog(t, e, call)
	e.toSched(4, 1, 1, jobspecFor("x", "", 0, 1, 1, false, 0))
	e.p.ClearR(4)
	e.post(4, 5, "alloc", nil)
	e.post(4, 6, "start", nil)
	names := liveNames(t, e, call, 4, "start")
	if strings.Join(names, ",") != "submit,validate,depend,priority,start" {
		t.Errorf("got %v", names)
	}
	if st, _ := e.p.store.JobState(4); st != StateRun {
		t.Errorf("state %v", st)
	}
}

func TestP12Cancel(t *testing.T) {
	e := newEnv(t)
	s := e.b.Owner(0)
	defer s.Close()
	other := e.b.Owner(0)
	defer other.Close()
	call := openStream(t, e, s, `{}`, true)
	backlog(t, e, call)
	tag := call.Matchtag()
	for _, c := range []struct {
		h   fluxkit.Handle
		tag uint32
	}{{s, tag + 1}, {other, tag}} {
		if err := fluxkit.Notify(e.ctx, c.h, TopicJournalCancel, fluxkit.NodeidAny, map[string]any{"matchtag": c.tag}); err != nil {
			t.Fatal(err)
		}
	}
	e.submit(1, 1, 1, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
	if r, err := collect(e.ctx, call, 1); err != nil || r[0]["id"].(float64) != 1 {
		t.Fatalf("after wrong cancels: %v %v", r, err)
	}
	if err := fluxkit.Notify(e.ctx, s, TopicJournalCancel, fluxkit.NodeidAny, map[string]any{"matchtag": tag}); err != nil {
		t.Fatal(err)
	}
	_, err := collect(e.ctx, call, -1)
	if errnoOf(err) != fluxkit.ENODATA {
		t.Errorf("after cancel: %v", err)
	}
	e.sync0()
	if n := e.listeners(); n != 0 {
		t.Errorf("listeners %d", n)
	}
}

// sync0 waits for the producer's handlers to have run everything sent so
// far, using stats-get as a barrier.
func (e *env) sync0() {
	e.t.Helper()
	if _, err := rpc(e.ctx, e.ph, TopicStats, map[string]any{}); err != nil {
		e.t.Fatal(err)
	}
}

func TestP13Disconnect(t *testing.T) {
	e := newEnv(t)
	s := e.b.Owner(0)
	tt := e.b.Owner(0)
	defer tt.Close()
	s1 := openStream(t, e, s, `{}`, true)
	s2 := openStream(t, e, s, `{}`, true)
	t1 := openStream(t, e, tt, `{}`, true)
	for _, c := range []fluxkit.Call{s1, s2, t1} {
		backlog(t, e, c)
	}
	if n := e.listeners(); n != 3 {
		t.Fatalf("listeners %d", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.listeners() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.listeners(); n != 1 {
		t.Fatalf("listeners after disconnect %d", n)
	}
	e.submit(9, 1, 1, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
	if r, err := collect(e.ctx, t1, 1); err != nil || r[0]["id"].(float64) != 9 {
		t.Errorf("T: %v %v", r, err)
	}
}

func TestP13DisconnectExplicit(t *testing.T) {
	e := newEnv(t)
	s := e.b.Owner(0)
	defer s.Close()
	s1 := openStream(t, e, s, `{}`, true)
	backlog(t, e, s1)
	if err := fluxkit.Notify(e.ctx, s, TopicDisconnect, fluxkit.NodeidAny, nil); err != nil {
		t.Fatal(err)
	}
	e.sync0()
	if n := e.listeners(); n != 0 {
		t.Fatalf("listeners %d", n)
	}
	e.submit(9, 1, 1, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancel()
	if m, err := s1.Recv(ctx); err != context.DeadlineExceeded {
		t.Errorf("disconnected stream got %v %v", m, err)
	}
}

func TestP14Shutdown(t *testing.T) {
	e := newEnv(t)
	a := openStream(t, e, e.ph, `{}`, true)
	b := openStream(t, e, e.ph, `{"full":true}`, true)
	backlog(t, e, a)
	backlog(t, e, b)
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []fluxkit.Call{a, b} {
		if _, err := collect(e.ctx, c, -1); errnoOf(err) != fluxkit.ENODATA {
			t.Errorf("after shutdown: %v", err)
		}
	}
}

func TestP15Purge(t *testing.T) {
	e := newEnv(t)
	sub, err := e.ph.Subscribe(e.ctx, EventPurge)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	p5Jobs(e)
	ids, err := e.p.PurgeIDs(e.ctx, []fluxkit.JobID{1, 3})
	if err != nil || len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("purge: %v %v", ids, err)
	}
	m, err := sub.Recv(e.ctx)
	if err != nil || string(m.Payload) != `{"jobs":[1]}` {
		t.Fatalf("event %s %v", m.Payload, err)
	}
	rs := backlog(t, e, openStream(t, e, e.ph, `{"full":true}`, true))
	var got []float64
	for _, r := range rs {
		got = append(got, r["id"].(float64))
	}
	if !sameSet(got, -1, 2, 3, 4) {
		t.Errorf("after purge: %v", got)
	}
	// Purge by request: keep 0 inactive jobs.
	out, err := rpc(e.ctx, e.ph, TopicPurge, map[string]any{"num": 0, "force": true})
	if err != nil || out["count"].(float64) != 1 {
		t.Fatalf("purge rpc: %v %v", out, err)
	}
	if st := e.p.Stats(); st.InactiveJobs != 0 || st.ActiveJobs != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestStatsGet(t *testing.T) {
	e := newEnv(t)
	p5Jobs(e)
	backlog(t, e, openStream(t, e, e.ph, `{}`, true))
	out, err := rpc(e.ctx, e.ph, TopicStats, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	want := `{"active_jobs":2,"inactive_jobs":2,"journal":{"events":30,"listeners":1},"max_jobid":4}`
	if string(b) != want {
		t.Errorf("stats %s, want %s", b, want)
	}
}

func TestGetattrEventlog(t *testing.T) {
	e := newEnv(t)
	e.submit(7, 1, 555, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
	e.post(7, 2, "validate", nil)
	out, err := rpc(e.ctx, e.ph, TopicGetattr, map[string]any{"id": 7, "attrs": []string{"eventlog", "jobspec"}})
	if err != nil || len(out["eventlog"].([]any)) != 2 || len(out) != 2 {
		t.Fatalf("%v %v", out, err)
	}
	if env := out["jobspec"].(map[string]any)["attributes"].(map[string]any)["system"].(map[string]any)["environment"]; env != nil {
		t.Errorf("jobspec not redacted: %v", env)
	}
	g := e.b.Guest(0, 556)
	defer g.Close()
	// flux-core's answers, errno and text.
	for _, c := range []struct {
		h     fluxkit.Handle
		id    int
		attrs []string
		want  error
	}{
		{e.ph, 8, nil, fluxkit.Errorf(fluxkit.EINVAL, "unknown job")},
		{e.ph, 7, []string{"R"}, fluxkit.Errorf(fluxkit.ENOENT, "R is NULL")},
		{e.ph, 7, []string{"eventlog", "x"}, fluxkit.Errorf(fluxkit.ENOENT, "unknown attr x")},
		{g, 7, []string{"eventlog"}, fluxkit.Errorf(fluxkit.EPERM, "guests can only access their own jobs")},
	} {
		_, err := rpc(e.ctx, c.h, TopicGetattr, map[string]any{"id": c.id, "attrs": append([]string{}, c.attrs...)})
		if errnoOf(err) != fluxkit.Errno(c.want) || err.Error() != c.want.Error() {
			t.Errorf("getattr %d %v: %v, want %v", c.id, c.attrs, err, c.want)
		}
	}
	g2 := e.b.Guest(0, 555)
	defer g2.Close()
	if _, err := rpc(e.ctx, g2, TopicGetattr, map[string]any{"id": 7, "attrs": []string{"eventlog"}}); err != nil {
		t.Errorf("own guest: %v", err)
	}
}
