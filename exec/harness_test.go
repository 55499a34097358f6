package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
)

// checkLeaks fails the test if goroutines or child processes outlive it.
// Register it first: cleanups run in reverse, so it runs last.
func checkLeaks(t testing.TB) {
	t.Helper()
	leakcheck.Check(t)
}

// fakeJM plays the job manager's side of RFC 32.
type fakeJM struct {
	t  testing.TB
	h  *testbroker.Handle
	mu sync.Mutex
	// hellos received
	hellos   []string
	helloErr error
	streams  map[fluxkit.JobID]*jobStream
	drains   []string
	kills    []string // job-manager.kill requests, "<id> <signum>"
}

type jobStream struct {
	mu    sync.Mutex
	resps []Response
	final chan struct{}
	err   error
}

func (s *jobStream) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.resps {
		out = append(out, r.Type)
	}
	return out
}

// error is how the stream ended, if not by release final.
func (s *jobStream) error() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *jobStream) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.resps {
		b, _ := json.Marshal(r.Data)
		out = append(out, r.Type+" "+string(b))
	}
	return out
}

func (s *jobStream) wait(t testing.TB) {
	t.Helper()
	s.waitFor(t, 30*time.Second)
}

// waitFor is wait with a bound of d, for jobs that move a lot of data
// through the in-process KVS, which copies and re-encodes whole values.
func (s *jobStream) waitFor(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-s.final:
	case <-time.After(d):
		t.Fatalf("no release final; stream so far: %v (err %v)", s.lines(), s.error())
	}
}

func newFakeJM(t testing.TB, b *testbroker.Broker) *fakeJM {
	jm := &fakeJM{t: t, h: b.Owner(0), streams: map[fluxkit.JobID]*jobStream{}}
	t.Cleanup(func() { jm.h.Close() })
	_, err := jm.h.Register("job-manager.exec-hello", fluxkit.RoleNone, func(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ Service string }
		_ = json.Unmarshal(req.Payload, &in)
		jm.mu.Lock()
		jm.hellos = append(jm.hellos, in.Service)
		herr := jm.helloErr
		jm.mu.Unlock()
		if herr != nil {
			_ = w.RespondError(herr)
			return
		}
		_ = w.Respond(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = jm.h.Register("job-manager.kill", fluxkit.RoleNone, func(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct {
			ID     fluxkit.JobID `json:"id"`
			Signum int           `json:"signum"`
		}
		_ = json.Unmarshal(req.Payload, &in)
		jm.mu.Lock()
		jm.kills = append(jm.kills, fmt.Sprint(uint64(in.ID), " ", in.Signum))
		jm.mu.Unlock()
		_ = w.Respond(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = jm.h.Register("resource.drain", fluxkit.RoleNone, func(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ Targets, Reason string }
		_ = json.Unmarshal(req.Payload, &in)
		jm.mu.Lock()
		jm.drains = append(jm.drains, in.Targets+": "+in.Reason)
		jm.mu.Unlock()
		_ = w.Respond(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	return jm
}

func (jm *fakeJM) killList() []string {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return append([]string(nil), jm.kills...)
}

func (jm *fakeJM) drainList() []string {
	jm.mu.Lock()
	defer jm.mu.Unlock()
	return append([]string(nil), jm.drains...)
}

// start sends a start request and collects its responses until release
// final or the stream's end.
func (jm *fakeJM) start(id fluxkit.JobID, userid uint32, jobspec, R string, reattach bool) *jobStream {
	s := &jobStream{final: make(chan struct{})}
	jm.mu.Lock()
	jm.streams[id] = s
	jm.mu.Unlock()
	call, err := fluxkit.Stream(context.Background(), jm.h, "job-exec.start", 0, map[string]any{
		"id": id, "userid": userid, "jobspec": json.RawMessage(jobspec), "R": json.RawMessage(R), "reattach": reattach})
	if err != nil {
		s.err = err
		close(s.final)
		return s
	}
	go func() {
		defer call.Close()
		for {
			m, err := call.Recv(context.Background())
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			var r Response
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				jm.t.Errorf("bad response payload %q", m.Payload)
				return
			}
			s.mu.Lock()
			s.resps = append(s.resps, r)
			s.mu.Unlock()
			if r.Type == "release" && r.Data["final"] == true {
				close(s.final)
				return
			}
		}
	}()
	return s
}

func (jm *fakeJM) exception(id fluxkit.JobID, severity int, waitStatus *int) {
	p := map[string]any{"id": id, "type": "cancel", "severity": severity}
	if waitStatus != nil {
		p["wait_status"] = *waitStatus
	}
	b, _ := json.Marshal(p)
	if err := jm.h.Publish(context.Background(), "job-exception", b, 0); err != nil {
		jm.t.Fatal(err)
	}
}

func makeR(ranks string, hosts string, expiration float64) string {
	return fmt.Sprintf(`{"version":1,"execution":{"R_lite":[{"rank":%q,"children":{"core":"0"}}],"nodelist":[%q],"starttime":0,"expiration":%v}}`,
		ranks, hosts, expiration)
}

func shellJobspec(cmd string, system string) string {
	if system == "" {
		system = "{}"
	}
	c, _ := json.Marshal([]string{"/bin/sh", "-c", cmd})
	return fmt.Sprintf(`{"version":1,"tasks":[{"command":%s,"slot":"task","count":{"per_slot":1}}],"attributes":{"system":%s}}`, c, system)
}

func testJobspec(test string) string {
	return fmt.Sprintf(`{"version":1,"tasks":[{"command":["true"]}],"attributes":{"system":{"exec":{"test":%s}}}}`, test)
}

// instance is an in-process instance running the exec service.
type instance struct {
	t      testing.TB
	b      *testbroker.Broker
	jm     *fakeJM
	coord  *Coordinator
	coordH *testbroker.Handle
	agents []*Agent
	set    *Settings // the coordinator's, nil for the broker's configuration

	mu     sync.Mutex
	spawns map[string]int // "job/rank" -> count

	agentCfg   []AgentConfig // as each agent was started
	agentClose []func()      // closes each agent and its handle
}

type instOpts struct {
	size   int
	fanout int
	set    *Settings
	config string
	noRank []uint32 // ranks without an agent
	// runtime gives every agent a RuntimeDir of its own, so that its
	// shells outlive it.
	runtime bool
	agent   func(r uint32, c *AgentConfig) // adjusts each agent's configuration
}

func newInstance(t testing.TB, o instOpts) *instance {
	t.Helper()
	if o.size == 0 {
		o.size = 1
	}
	b := brokertest.New(t, testbroker.Config{Size: o.size, Fanout: max(o.fanout, 2), Config: o.config})
	in := &instance{t: t, b: b, spawns: map[string]int{}, set: o.set}
	in.jm = newFakeJM(t, b)
	skip := map[uint32]bool{}
	for _, r := range o.noRank {
		skip[r] = true
	}
	var rundir string
	if o.runtime {
		rundir = t.TempDir()
		// Shells outlive their agents: whatever a test leaves running is
		// killed and reaped here, after the agents close.
		t.Cleanup(func() { killRecorded(rundir) })
	}
	in.agents = make([]*Agent, o.size)
	in.agentCfg = make([]AgentConfig, o.size)
	in.agentClose = make([]func(), o.size)
	for r := 0; r < o.size; r++ {
		if skip[uint32(r)] {
			continue
		}
		cfg := AgentConfig{OnSpawn: func(id fluxkit.JobID, rank uint32) {
			in.mu.Lock()
			in.spawns[fmt.Sprintf("%d/%d", id, rank)]++
			in.mu.Unlock()
		}, Environ: append(os.Environ(), fmt.Sprint("TEST_BROKER_RANK=", r))}
		if o.runtime {
			// As a deployment does: shells outlive the agent, their
			// statuses recorded by the keeper.
			cfg.RuntimeDir = filepath.Join(rundir, fmt.Sprint("rank", r))
			cfg.Keeper = testKeeper(t)
		}
		if o.agent != nil {
			o.agent(uint32(r), &cfg)
		}
		in.agentCfg[r] = cfg
		in.startAgent(uint32(r))
	}
	in.startCoordinator(o.set)
	return in
}

// startAgent starts rank r's agent with its configuration.
func (in *instance) startAgent(r uint32) {
	in.t.Helper()
	h := in.b.Owner(r)
	cfg := in.agentCfg[r]
	cfg.Handle = h
	a, err := NewAgent(cfg)
	if err != nil {
		in.t.Fatal(err)
	}
	var once sync.Once
	closeIt := func() { once.Do(func() { a.Close(); h.Close() }) }
	in.agents[r], in.agentClose[r] = a, closeIt
	in.t.Cleanup(closeIt)
}

// restartAgent stops rank r's agent, as a crash or an upgrade would, and
// starts another with the same configuration.
func (in *instance) restartAgent(r uint32) {
	in.t.Helper()
	in.agentClose[r]()
	in.startAgent(r)
}

// killRecorded kills and reaps the shells recorded under rundir that are
// still there.
func killRecorded(rundir string) {
	dirs, _ := filepath.Glob(filepath.Join(rundir, "*", "*", recordName))
	for _, f := range dirs {
		rec := &record{dir: filepath.Dir(f)}
		if rec.read(0) != nil || rec.rec.Pid == 0 {
			continue
		}
		if procAlive(rec.rec.Pid, rec.rec.Start) {
			_ = syscall.Kill(-rec.rec.Pid, syscall.SIGKILL)
			_, _ = syscall.Wait4(rec.rec.Pid, nil, 0, nil)
		}
	}
}

func (in *instance) startCoordinator(set *Settings) {
	in.t.Helper()
	h := in.b.Owner(0)
	c, err := New(context.Background(), Config{Handle: h, Settings: set})
	if err != nil {
		in.t.Fatal(err)
	}
	in.coord, in.coordH = c, h
	in.t.Cleanup(func() { c.Close(); h.Close() })
}

// stopCoordinator simulates a crash: the coordinator and its connection go,
// so the job manager's start requests end with an error.
func (in *instance) stopCoordinator() {
	in.coord.Close()
	in.coordH.Close()
}

func (in *instance) spawnCount(id fluxkit.JobID, rank uint32) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.spawns[fmt.Sprintf("%d/%d", id, rank)]
}

func (in *instance) eventlog(id fluxkit.JobID) []Event {
	in.t.Helper()
	in.coord.Sync(context.Background())
	evs, err := loadEventlog(context.Background(), in.jm.h, id)
	if err != nil {
		in.t.Fatal(err)
	}
	return evs
}

func eventNames(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Name)
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(p string) error { return os.WriteFile(p, nil, 0o644) }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// startUntracked is start without keeping the stream in the fake's map, for
// benchmarks.
func (jm *fakeJM) startUntracked(id fluxkit.JobID, userid uint32, jobspec, R string) *jobStream {
	s := jm.start(id, userid, jobspec, R, false)
	jm.mu.Lock()
	delete(jm.streams, id)
	jm.mu.Unlock()
	return s
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// jsonRoundTrip gives v as it reads back from the KVS.
func jsonRoundTrip(t testing.TB, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
