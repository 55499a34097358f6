package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/exec"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/realflux"
)

// instance is a real flux-core instance whose job-exec module is swapped
// for copies of this program, one per broker, run as children of the test.
type instance struct {
	t  testing.TB
	in *realflux.Instance
	// token is in the environment of every job the test submits (flux
	// copies the submitter's environment into the jobspec), so that its
	// tasks can be found in /proc.
	token string

	mu     sync.Mutex
	copies map[int]*runningCopy
}

// runningCopy is this program serving one rank.
type runningCopy struct {
	cmd    *osexec.Cmd
	stderr *syncBuffer
	waited chan struct{}
	err    error
}

// realInstance starts a real instance of size brokers and swaps job-exec
// for this program. It skips the test without flux-core.
func realInstance(t testing.TB, size int, config ...string) *instance {
	t.Helper()
	in := jobExecInstance(t, size, config...)
	in.swap(t)
	return in
}

// jobExecInstance starts a real instance of size brokers, with job-exec,
// configured with config (TOML).
func jobExecInstance(t testing.TB, size int, config ...string) *instance {
	t.Helper()
	in := &instance{t: t, in: realflux.Start(t, realflux.Options{Size: size, Config: strings.Join(config, "\n")}), copies: map[int]*runningCopy{},
		token: fmt.Sprintf("fje-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() {
		// Before the instance stops (cleanups run last first).
		for r := range in.copies {
			in.stopCopy(t, r)
		}
	})
	return in
}

// swap removes job-exec and starts this program on every rank, rank 0
// last, as an administrator would.
func (in *instance) swap(t testing.TB) {
	t.Helper()
	in.flux(t, 60*time.Second, "module", "remove", "job-exec").ok()
	for r := len(in.in.URIs) - 1; r >= 0; r-- {
		in.startCopy(t, r)
	}
}

// unswap stops the copies and loads job-exec again.
func (in *instance) unswap(t testing.TB) {
	t.Helper()
	for r := range in.in.URIs {
		in.stopCopy(t, r)
	}
	in.flux(t, 60*time.Second, "module", "load", "job-exec").ok()
}

// result is what a flux command did.
type result struct {
	t      testing.TB
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) ok() result {
	r.t.Helper()
	if r.code != 0 {
		r.t.Fatalf("flux %s: exit %d\n%s", strings.Join(r.args, " "), r.code, r.stderr)
	}
	return r
}

// flux runs a flux command in the instance (rank 0), the test's token in
// its environment.
func (in *instance) flux(t testing.TB, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, in.in.Flux, args...)
	cmd.Env = append(cleanEnv(), "FLUX_URI="+in.in.URIs[0], "FJE_TOKEN="+in.token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{t: t, args: args, stdout: out.String(), stderr: errb.String()}
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("flux %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// cleanEnv is the test's environment without what would tie a command to
// another instance.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "FLUX_URI", "FLUX_KVS_NAMESPACE", "FLUX_JOB_ID", mainEnv:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startCopy starts this program on rank r and waits until it says it
// serves.
func (in *instance) startCopy(t testing.TB, r int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &runningCopy{stderr: &syncBuffer{}, waited: make(chan struct{})}
	c.cmd = osexec.Command(exe, "-v")
	c.cmd.Env = append(cleanEnv(), "FLUX_URI="+in.in.URIs[r], mainEnv+"=1")
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.waited) }()
	in.mu.Lock()
	in.copies[r] = c
	in.mu.Unlock()
	line := "flux-job-exec: ready\n"
	if r != 0 {
		line = fmt.Sprintf("flux-job-exec: rank %d ready\n", r)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(c.stderr.String(), line) {
		select {
		case <-c.waited:
			t.Fatalf("rank %d's copy exited: %v\n%s", r, c.err, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rank %d's copy is not ready:\n%s", r, c.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopCopy ends rank r's copy with SIGTERM and checks that it exits 0.
func (in *instance) stopCopy(t testing.TB, r int) {
	t.Helper()
	in.endCopy(t, r, syscall.SIGTERM, true)
}

// killCopy ends rank r's copy with SIGKILL, as a crash would.
func (in *instance) killCopy(t testing.TB, r int) {
	t.Helper()
	in.endCopy(t, r, syscall.SIGKILL, false)
}

func (in *instance) endCopy(t testing.TB, r int, sig syscall.Signal, clean bool) {
	t.Helper()
	in.mu.Lock()
	c := in.copies[r]
	delete(in.copies, r)
	in.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.waited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.waited
		t.Errorf("rank %d's copy did not exit on %v", r, sig)
	}
	if clean && c.err != nil {
		t.Errorf("rank %d's copy: %v\n%s", r, c.err, c.stderr.String())
	}
}

// submit submits a job and returns its id.
func (in *instance) submit(t testing.TB, args ...string) string {
	t.Helper()
	return strings.TrimSpace(in.flux(t, 60*time.Second, append([]string{"submit"}, args...)...).ok().stdout)
}

// result is the job's result as flux jobs shows it.
func (in *instance) jobResult(t testing.TB, id string) string {
	t.Helper()
	return strings.TrimSpace(in.flux(t, 60*time.Second, "jobs", "-n", "-o", "{result}", id).ok().stdout)
}

// execEvents are the names in the job's exec eventlog, as flux job
// eventlog -p exec prints them.
func (in *instance) execEvents(t testing.TB, id string) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(in.flux(t, 60*time.Second, "job", "eventlog", "-p", "exec", id).ok().stdout), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			names = append(names, f[1])
		}
	}
	return names
}

// tasksLeft are the pids of processes that carry the test's token in
// their environment, other than this test and the agents' keepers.
func (in *instance) tasksLeft() []int { return in.tokenProcs(false) }

// keepersLeft are the pids of the agents' keepers still running.
func (in *instance) keepersLeft() []int { return in.tokenProcs(true) }

// tokenProcs are the pids of processes that carry the test's token in their
// environment: the keepers, or all the others but this test.
func (in *instance) tokenProcs(keepers bool) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(b, []byte("FJE_TOKEN="+in.token+"\x00")) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		if bytes.Contains(cmdline, []byte("\x00"+exec.KeeperFlag+"\x00")) != keepers {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// ordered reports whether want appears in got in order.
func ordered(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// The swap in a real two-broker instance: flux-core's own commands run
// jobs through fluxkit's exec service, with flux-core's job shell, and get
// what job-exec gives them; restarting the coordinator reattaches running
// jobs; and job-exec, loaded again, runs jobs as before.
func TestRealInstance(t *testing.T) {
	leakcheck.Check(t)
	in := realInstance(t, 2, "[exec]", `kill-timeout = "1s"`)

	t.Run("InstanceConfig", func(t *testing.T) {
		// flux module stats asks the exec service, which read [exec].
		var st struct {
			KillTimeout float64 `json:"kill-timeout"`
			Method      string  `json:"method"`
		}
		if err := json.Unmarshal([]byte(in.flux(t, 10*time.Second, "module", "stats", "job-exec").ok().stdout), &st); err != nil {
			t.Fatal(err)
		}
		if st.KillTimeout != 1 || st.Method != "bulk-exec" {
			t.Fatalf("stats %+v, want the configured kill-timeout 1", st)
		}
	})

	t.Run("TwoNodeHostname", func(t *testing.T) {
		r := in.flux(t, 60*time.Second, "run", "-N2", "-n2", "hostname").ok()
		if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || lines[0] == "" {
			t.Fatalf("output %q", r.stdout)
		}
		id := strings.TrimSpace(in.flux(t, 10*time.Second, "job", "last").ok().stdout)
		got := in.execEvents(t, id)
		if want := []string{"init", "starting", "shell.init", "shell.start", "complete", "done"}; !ordered(got, want) || got[0] != "init" || got[len(got)-1] != "done" {
			t.Fatalf("exec eventlog %v, want %v in order, init first and done last", got, want)
		}
		// flux job attach reads the job's output and exec eventlogs back.
		att := in.flux(t, 60*time.Second, "job", "attach", id).ok()
		if att.stdout != r.stdout {
			t.Fatalf("attach printed %q, run %q", att.stdout, r.stdout)
		}
	})

	t.Run("FalseFails", func(t *testing.T) {
		if r := in.flux(t, 60*time.Second, "run", "false"); r.code != 1 {
			t.Fatalf("flux run false: exit %d, want 1\n%s", r.code, r.stderr)
		}
		id := strings.TrimSpace(in.flux(t, 10*time.Second, "job", "last").ok().stdout)
		if got := in.jobResult(t, id); got != "FAILED" {
			t.Fatalf("result %q, want FAILED", got)
		}
		if r := in.flux(t, 10*time.Second, "jobs", "-n", "-f", "failed", "-o", "{id.f58}"); !strings.Contains(r.ok().stdout, id) {
			t.Fatalf("flux jobs -f failed does not list %s: %q", id, r.stdout)
		}
	})

	t.Run("BothStreams", func(t *testing.T) {
		r := in.flux(t, 60*time.Second, "run", "sh", "-c", "echo out; echo err >&2").ok()
		if r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") {
			t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
		}
	})

	t.Run("TimeLimit", func(t *testing.T) {
		start := time.Now()
		r := in.flux(t, 60*time.Second, "run", "-t", "1s", "sleep", "30")
		took := time.Since(start)
		if r.code == 0 || took > 10*time.Second {
			t.Fatalf("exit %d after %v\n%s", r.code, took, r.stderr)
		}
		id := strings.TrimSpace(in.flux(t, 10*time.Second, "job", "last").ok().stdout)
		if got := in.jobResult(t, id); got != "TIMEOUT" {
			t.Fatalf("result %q, want TIMEOUT", got)
		}
		ev := in.flux(t, 10*time.Second, "job", "eventlog", id).ok().stdout
		if !strings.Contains(ev, `exception type="timeout" severity=0`) {
			t.Fatalf("job eventlog:\n%s", ev)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		id := in.submit(t, "sleep", "300")
		in.flux(t, 60*time.Second, "job", "wait-event", "-t", "50", id, "start").ok()
		waitUntil(t, "the task runs", func() bool { return len(in.tasksLeft()) > 0 })
		in.flux(t, 60*time.Second, "cancel", id).ok()
		in.flux(t, 60*time.Second, "job", "wait-event", "-t", "50", id, "clean").ok()
		if got := in.jobResult(t, id); got != "CANCELED" {
			t.Fatalf("result %q, want CANCELED", got)
		}
		if left := in.tasksLeft(); len(left) > 0 {
			t.Fatalf("processes of the canceled job left: %v", left)
		}
		// The termination fluxkit records in the exec eventlog is an
		// RFC 18 entry flux-core's tools read like the others.
		if got := in.execEvents(t, id); !slices.Contains(got, "termination") || got[len(got)-1] != "done" {
			t.Fatalf("exec eventlog %v", got)
		}
		in.flux(t, 60*time.Second, "job", "attach", id) // must not hang; its exit says canceled
	})

	t.Run("CancelEscalates", func(t *testing.T) {
		// The task ignores the term-signal the shell forwards to it: one
		// kill-timeout later the first task kill ends it.
		id := in.submit(t, "sh", "-c", `trap "" TERM; sleep 300`)
		in.flux(t, 60*time.Second, "job", "wait-event", "-t", "50", id, "start").ok()
		waitUntil(t, "the task runs", func() bool { return len(in.tasksLeft()) > 0 })
		in.flux(t, 60*time.Second, "cancel", id).ok()
		in.flux(t, 60*time.Second, "job", "wait-event", "-t", "50", id, "clean").ok()
		if left := in.tasksLeft(); len(left) > 0 {
			t.Fatalf("processes of the canceled job left: %v", left)
		}
		stamps := map[string]float64{}
		for _, line := range strings.Split(in.flux(t, 10*time.Second, "job", "eventlog", id).ok().stdout, "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				stamps[f[1]], _ = strconv.ParseFloat(f[0], 64)
			}
		}
		if took := stamps["finish"] - stamps["exception"]; took < 0.9 || took > 5 {
			t.Fatalf("finish %.2fs after the exception, want about the kill-timeout (1s)", took)
		}
		if got := in.execEvents(t, id); !slices.Contains(got, "termination") {
			t.Fatalf("exec eventlog %v", got)
		}
	})

	t.Run("ManyJobs", func(t *testing.T) {
		ids := strings.Fields(in.flux(t, 120*time.Second, "submit", "--cc=1-200", "true").ok().stdout)
		if len(ids) != 200 {
			t.Fatalf("%d ids", len(ids))
		}
		in.flux(t, 300*time.Second, "queue", "drain").ok()
		res := in.flux(t, 60*time.Second, append([]string{"jobs", "-n", "-o", "{result}"}, ids...)...).ok().stdout
		if n := strings.Count(res, "COMPLETED"); n != 200 {
			t.Fatalf("%d of 200 completed:\n%s", n, res)
		}
	})

	t.Run("Testexec", func(t *testing.T) {
		in.flux(t, 60*time.Second, "run", "--setattr=system.exec.test.run_duration=0.01s", "hostname").ok()
		id := strings.TrimSpace(in.flux(t, 10*time.Second, "job", "last").ok().stdout)
		if got := in.execEvents(t, id); slices.Contains(got, "shell.init") || got[len(got)-1] != "done" {
			t.Fatalf("a simulated job's exec eventlog %v", got)
		}
	})

	t.Run("CoordinatorRestart", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "starts")
		var ids []string
		for i := 0; i < 4; i++ {
			ids = append(ids, in.submit(t, "sh", "-c", `echo $FLUX_JOB_ID >> `+log+`; sleep 5`))
		}
		for _, id := range ids {
			in.flux(t, 60*time.Second, "job", "wait-event", "-t", "50", id, "start").ok()
		}
		waitUntil(t, "every task started", func() bool {
			b, _ := os.ReadFile(log)
			return strings.Count(string(b), "\n") == len(ids)
		})
		in.killCopy(t, 0)
		in.startCopy(t, 0)
		for _, id := range ids {
			in.flux(t, 60*time.Second, "job", "wait-event", "-t", "50", id, "clean").ok()
			if got := in.jobResult(t, id); got != "COMPLETED" {
				t.Fatalf("%s: result %q, want COMPLETED", id, got)
			}
			if got := in.execEvents(t, id); !slices.Contains(got, "reattach") || got[len(got)-1] != "done" {
				t.Fatalf("%s: exec eventlog %v, want a reattach and done last", id, got)
			}
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != len(ids) {
			t.Fatalf("%d task starts for %d jobs:\n%s", len(lines), len(ids), b)
		}
	})

	t.Run("RestoreJobExec", func(t *testing.T) {
		in.unswap(t)
		r := in.flux(t, 60*time.Second, "run", "-N2", "-n2", "hostname").ok()
		if n := strings.Count(r.stdout, "\n"); n != 2 {
			t.Fatalf("output %q", r.stdout)
		}
	})
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Started the documented way, flux exec -r all --bg, the copies serve the
// instance (their ready lines in the broker's log), and they all end when
// the instance does.
func TestRealDocumentedLaunch(t *testing.T) {
	leakcheck.Check(t)
	in := jobExecInstance(t, 2)
	in.flux(t, 60*time.Second, "module", "remove", "job-exec").ok()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// flux exec passes its environment on: mainEnv makes the test binary
	// this program, and the token marks the copies.
	cmd := osexec.Command(in.in.Flux, "exec", "-r", "all", "--bg", exe)
	cmd.Env = append(cleanEnv(), "FLUX_URI="+in.in.URIs[0], "FJE_TOKEN="+in.token, mainEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("flux exec --bg: %v\n%s", err, out)
	}
	waitUntil(t, "ready in the broker's log", func() bool {
		return strings.Contains(in.flux(t, 10*time.Second, "dmesg").ok().stdout, "flux-job-exec: ready")
	})
	if copies := in.tasksLeft(); len(copies) != 2 {
		t.Fatalf("%d copies running, want 2", len(copies))
	}
	r := in.flux(t, 60*time.Second, "run", "-N2", "-n2", "hostname").ok()
	if n := strings.Count(r.stdout, "\n"); n != 2 {
		t.Fatalf("output %q", r.stdout)
	}
	if err := in.in.Stop(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the copies and their keepers are gone", func() bool {
		return len(in.tasksLeft()) == 0 && len(in.keepersLeft()) == 0
	})
}

// A copy whose broker goes away exits 0.
func TestRealExitsWithInstance(t *testing.T) {
	leakcheck.Check(t)
	in := realInstance(t, 1)
	in.flux(t, 60*time.Second, "run", "true").ok()
	c := in.copies[0]
	if err := in.in.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.waited:
	case <-time.After(30 * time.Second):
		t.Fatal("the copy outlived its broker")
	}
	if c.err != nil {
		t.Fatalf("exit: %v\n%s", c.err, c.stderr.String())
	}
	in.mu.Lock()
	delete(in.copies, 0)
	in.mu.Unlock()
}
