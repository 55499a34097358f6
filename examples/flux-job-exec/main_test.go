package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/exec"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/kvs"
)

// mainEnv, set to "1", makes the test binary run this program's main, so
// that the real-instance tests run it as a child process, and the keepers
// it starts (main's first argument exec.KeeperFlag) run too.
const mainEnv = "FLUX_JOB_EXEC_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" || len(os.Args) > 1 && os.Args[1] == exec.KeeperFlag {
		main()
		return
	}
	// The agents' reapers catch SIGCHLD. os/signal then runs a goroutine
	// for the rest of the process: start it before any test counts them.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGCHLD)
	signal.Stop(c)
	os.Exit(m.Run())
}

// The command line: help on stdout, one-line usage errors with exit 2,
// and a clear failure outside an instance.
func TestCommandLine(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	noenv := func(string) string { return "" }
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-h"}, 0, "usage: flux-job-exec", ""},
		{[]string{"--help"}, 0, "flux exec -r all --bg flux-job-exec", ""},
		{[]string{"--bogus"}, 2, "", "flux-job-exec: flag provided but not defined: -bogus\n"},
		{[]string{"extra"}, 2, "", "flux-job-exec: unexpected argument \"extra\"\n"},
		{[]string{"--agent-wait", "-1s"}, 2, "", "flux-job-exec: --agent-wait -1s is negative\n"},
		{nil, 1, "", "flux-job-exec: ERROR: connect: FLUX_URI is not set"},
	} {
		var out, errb bytes.Buffer
		code := run(ctx, tc.args, &out, &errb, noenv)
		if code != tc.code || !strings.Contains(out.String(), tc.stdout) || tc.stdout == "" && out.Len() > 0 ||
			!strings.HasPrefix(errb.String(), tc.stderr) || tc.stderr == "" && errb.Len() > 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// jobManager plays the real job manager's side in the in-process instance:
// it accepts the hello and sends start requests.
type jobManager struct {
	h      *testbroker.Handle
	mu     sync.Mutex
	hellos []string
	refuse bool
}

func newJobManager(t *testing.T, b *testbroker.Broker) *jobManager {
	jm := &jobManager{h: b.Owner(0)}
	t.Cleanup(func() { jm.h.Close() })
	_, err := jm.h.Register("job-manager.exec-hello", fluxkit.RoleNone, func(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ Service string }
		_ = json.Unmarshal(req.Payload, &in)
		jm.mu.Lock()
		defer jm.mu.Unlock()
		jm.hellos = append(jm.hellos, in.Service)
		if jm.refuse {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "a job is still starting"))
			return
		}
		_ = w.Respond(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	return jm
}

// start sends a start request and returns the responses' types up to
// release final.
func (jm *jobManager) start(t *testing.T, id fluxkit.JobID, jobspec, R string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call, err := fluxkit.Stream(ctx, jm.h, "job-exec.start", 0, map[string]any{"id": id, "userid": jm.h.Cred().Userid,
		"jobspec": json.RawMessage(jobspec), "R": json.RawMessage(R), "reattach": false})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	var types []string
	for {
		m, err := call.Recv(ctx)
		if err != nil {
			t.Fatalf("start stream ended: %v after %v", err, types)
		}
		var r exec.Response
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		types = append(types, fmt.Sprintf("%s %v", r.Type, r.Data))
		if r.Type == "release" && r.Data["final"] == true {
			return types
		}
	}
}

// syncBuffer is a buffer written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveRank runs Serve for rank r of b until the test ends, and returns
// what it writes and a channel with its result.
func serveRank(t *testing.T, ctx context.Context, b *testbroker.Broker, r uint32, dir string) (*syncBuffer, chan error) {
	h := b.Owner(r)
	out := &syncBuffer{}
	done := make(chan error, 1)
	cfg := Config{RuntimeDir: filepath.Join(dir, fmt.Sprint(r)), AgentWait: 5 * time.Second, Ready: out, Environ: os.Environ()}
	go func() { done <- Serve(ctx, h, cfg); h.Close() }()
	return out, done
}

func waitReady(t *testing.T, out *syncBuffer, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q; output %q", line, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// served is a two-rank in-process instance served by Serve on each rank,
// rank 1 first; stop ends both copies and checks that they return nil.
type served struct {
	b    *testbroker.Broker
	jm   *jobManager
	ctx  context.Context
	stop func()
}

func serveTwoRanks(t *testing.T) *served {
	t.Helper()
	b := brokertest.New(t, testbroker.Config{Size: 2})
	jm := newJobManager(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	out1, done1 := serveRank(t, ctx, b, 1, dir)
	waitReady(t, out1, "flux-job-exec: rank 1 ready\n")
	out0, done0 := serveRank(t, ctx, b, 0, dir)
	waitReady(t, out0, "flux-job-exec: ready\n")
	return &served{b: b, jm: jm, ctx: ctx, stop: func() {
		t.Helper()
		cancel()
		for _, done := range []chan error{done0, done1} {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}}
}

// twoRankJob is a job of cmd on ranks 0-1: its jobspec and R.
func twoRankJob(cmd string) (jobspec, R string) {
	return fmt.Sprintf(`{"version":1,"tasks":[{"command":["/bin/sh","-c",%q]}],"attributes":{"system":{}}}`, cmd),
		`{"version":1,"execution":{"R_lite":[{"rank":"0-1","children":{"core":"0"}}],"nodelist":["n[0-1]"],"starttime":0,"expiration":0}}`
}

// In the in-process instance, one Serve per rank makes the exec service:
// rank 0 says hello once the other rank's agent answers, and says ready;
// a two-rank job runs through the agents to release final, its exec
// eventlog an RFC 18 eventlog grafted at the job's guest key; every copy
// returns nil when its context ends.
func TestServeInProcess(t *testing.T) {
	leakcheck.Check(t)
	sv := serveTwoRanks(t)
	ctx, jm := sv.ctx, sv.jm
	if jm.hellos[0] != "job-exec" {
		t.Fatalf("hellos %v", jm.hellos)
	}
	id := fluxkit.JobID(4242)
	spec, R := twoRankJob("echo hi")
	got := jm.start(t, id, spec, R)
	if want := []string{"start map[]", "finish map[status:0]", "release map[final:true ranks:0-1]"}; !slices.Equal(got, want) {
		t.Fatalf("responses %q, want %q", got, want)
	}
	raw, err := kvs.Lookup(ctx, jm.h, kvs.Primary, id.KVS()+".guest.exec.eventlog")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var e struct{ Name string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("eventlog line %q: %v", line, err)
		}
		names = append(names, e.Name)
	}
	if names[0] != "init" || names[len(names)-1] != "done" || !slices.Contains(names, "complete") {
		t.Fatalf("exec eventlog %v", names)
	}
	sv.stop()
}

// A refused hello is a failure, and says why; a second coordinator on a
// rank whose job-exec service is taken is told what to do.
func TestServeFailures(t *testing.T) {
	leakcheck.Check(t)
	b := brokertest.New(t, testbroker.Config{Size: 1})
	jm := newJobManager(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	jm.mu.Lock()
	jm.refuse = true
	jm.mu.Unlock()
	_, done := serveRank(t, ctx, b, 0, dir)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "exec-hello") || !strings.Contains(err.Error(), "a job is still starting") {
		t.Fatalf("refused hello: %v", err)
	}
	jm.mu.Lock()
	jm.refuse = false
	jm.mu.Unlock()
	out, first := serveRank(t, ctx, b, 0, dir)
	waitReady(t, out, "flux-job-exec: ready\n")
	_, second := serveRank(t, ctx, b, 0, t.TempDir())
	if err := <-second; err == nil || !strings.Contains(err.Error(), "flux module remove job-exec") {
		t.Fatalf("second copy: %v", err)
	}
	cancel()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// On a rank other than 0 the nearest job-exec service is the agent's: the
// requests other clients send there (critical-ranks, override) reach the
// coordinator with their sender's credentials.
func TestServeForwardsToCoordinator(t *testing.T) {
	leakcheck.Check(t)
	sv := serveTwoRanks(t)
	ctx, jm, b := sv.ctx, sv.jm, sv.b
	id := fluxkit.JobID(4343)
	spec, R := twoRankJob("sleep 30")
	call, err := fluxkit.Stream(ctx, jm.h, "job-exec.start", 0, map[string]any{"id": id, "userid": jm.h.Cred().Userid,
		"jobspec": json.RawMessage(spec), "R": json.RawMessage(R), "reattach": false})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if m, err := call.Recv(ctx); err != nil || !strings.Contains(string(m.Payload), `"type":"start"`) {
		t.Fatalf("first response %v, %v", m, err)
	}
	owner, guest := b.Owner(1), b.Guest(1, 4242)
	defer owner.Close()
	defer guest.Close()
	req := map[string]any{"id": id, "ranks": "0"}
	if err := fluxkit.RPC(ctx, owner, "job-exec.critical-ranks", fluxkit.NodeidAny, req, nil); err != nil {
		t.Fatalf("owner: %v", err)
	}
	if err := fluxkit.RPC(ctx, guest, "job-exec.critical-ranks", fluxkit.NodeidAny, req, nil); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("guest: %v, want the coordinator's Permission denied", err)
	}
	if err := fluxkit.RPC(ctx, owner, "job-exec.override", fluxkit.NodeidAny, map[string]any{"event": "start", "jobid": id}, nil); err == nil ||
		!strings.Contains(err.Error(), "Job not in exec override mode") {
		t.Fatalf("override: %v", err)
	}
	// Cancel the job: its shells end, its stream ends with release final.
	if err := jm.h.Publish(ctx, "job-exception", []byte(fmt.Sprintf(`{"id":%d,"type":"cancel","severity":0}`, uint64(id))), 0); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := call.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m.Payload), `"final":true`) {
			break
		}
	}
	sv.stop()
}

// Shells start from the broker's environment, as job-exec's: the flux
// command's variables as the broker has them, FLUX_URI naming the rank's
// broker, and the rest of this program's environment.
func TestBrokerEnviron(t *testing.T) {
	leakcheck.Check(t)
	b := brokertest.New(t, testbroker.Config{Size: 2, Env: map[string]string{"LUA_PATH": "/broker/?.lua", "UNRELATED": "x"},
		Attrs: map[string]string{"local-uri": "local:///run/flux/local-1"}})
	h := b.Owner(1)
	defer h.Close()
	ctx := context.Background()
	env := brokerEnviron(ctx, h, []string{"LUA_PATH=/mine/?.lua", "FLUX_URI=local:///elsewhere", "HOME=/home/me"}, slog.New(slog.DiscardHandler))
	want := []string{"HOME=/home/me", "FLUX_URI=local:///run/flux/local-1", "LUA_PATH=/broker/?.lua"}
	if !slices.Equal(env, want) {
		t.Fatalf("environment %q, want %q", env, want)
	}
}
