package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// TestMain lets a test run this package's main as a child process: the
// test binary re-executes itself with runMainEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const runMainEnv = "FLUXKIT_TEST_RUN_FLUX_MODPROBE"

// invokeFile is invoke with stdout going to an *os.File.
func invokeFile(t *testing.T, stdout *os.File, args ...string) result {
	t.Helper()
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errb bytes.Buffer
	env := map[string]string{"FLUX_MODPROBE_PATH": "(embedded)"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := run(ctx, args, stdout, &errb, lookup)
	return result{code: code, stderr: errb.String()}
}

func TestWriteErrorsFail(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("this test writes to /dev/full: %v", err)
	}
	defer full.Close()
	enospc := "write /dev/full: " + syscall.ENOSPC.Error()
	for _, args := range [][]string{
		{"show", "--offline", "kvs"},
		{"list-dependencies", "--offline", "-f", "job-manager"},
		{"rc1", "--offline", "--show-deps"},
		{"rc1", "--offline", "--dot"},
		{"--help"},
		{"rc1", "--offline", "--help"},
	} {
		r := invokeFile(t, full, args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "flux-modprobe: ERROR: ") || !strings.Contains(r.stderr, enospc) {
			t.Errorf("%q > /dev/full: want exit 1 naming the write error, got %+v", args, r)
		}
	}
	// Tasks that print fail, each reporting the write error.
	r := invokeFile(t, full, "rc1", "--offline", "--dry-run")
	if r.code != 1 || !strings.Contains(r.stderr, ": "+enospc+"\n") {
		t.Errorf("rc1 --dry-run > /dev/full: %+v", r)
	}
}

func TestTraceCheckedBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	rc := filepath.Join(dir, "rc.toml")
	if err := os.WriteFile(rc, []byte("[[tasks]]\nname = \"touch\"\nrun = \"touch "+marker+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "no-such-dir", "trace.json")
	r := invoke(t, nil, "run", "--offline", "--trace", bad, rc)
	want := "flux-modprobe: ERROR: --trace: open " + bad + ": " + syscall.ENOENT.Error() + "\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("want exit 1 and %q, got %+v", want, r)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a task ran although the trace file could not be created")
	}
	r = invoke(t, nil, "run", "--offline", "--trace", dir, rc)
	if r.code != 1 || !strings.Contains(r.stderr, "--trace: open "+dir+": ") {
		t.Fatalf("a directory as the trace file: %+v", r)
	}

	// A trace file the command created but never wrote is removed; an
	// existing one is left as it was.
	trace := filepath.Join(dir, "trace.json")
	r = invoke(t, nil, "rc1", "--offline", "--show-deps", "--trace", trace)
	if _, err := os.Stat(trace); r.code != 0 || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%+v: %v", r, err)
	}
	if err := os.WriteFile(trace, []byte("old trace"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = invoke(t, nil, "load", "--offline", "--trace", trace, "nosuch")
	if b, _ := os.ReadFile(trace); r.code != 1 || string(b) != "old trace" {
		t.Fatalf("%+v: trace now %q", r, b)
	}
	r = invoke(t, nil, "run", "--offline", "--trace", trace, rc)
	if b, _ := os.ReadFile(trace); r.code != 0 || !bytes.HasPrefix(b, []byte(`{"`)) || bytes.Contains(b, []byte("old trace")) {
		t.Fatalf("%+v: trace now %q", r, b)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the task did not run with a good trace file")
	}
}

func TestConfigSyntaxErrorIsLocated(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "broker.toml")
	if err := os.WriteFile(cfg, []byte("[resource]\nnoverify = true\n[modules]\nkvs.ranks = = \"0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := invoke(t, nil, "show", "--offline", "--config", cfg, "kvs")
	want := "flux-modprobe: ERROR: " + cfg + ":4:13: unexpected character U+003D '=' at start of value\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("want %q, got %+v", want, r)
	}
}

// The in-process instance costs what is used, whatever --size says.
func TestLargeSizes(t *testing.T) {
	for _, size := range []string{"1000000", "16777216"} {
		r := invoke(t, nil, "rc1", "--offline", "--dry-run", "--size", size, "--rank", "999999")
		if r.code != 0 || !strings.Contains(r.stdout, "load kvs\n") {
			t.Fatalf("--size %s: %+v", size, r)
		}
	}
	r := invoke(t, nil, "rc1", "--offline", "--timing", "--load-delay", "0s", "--size", "16777216")
	if r.code != 0 || !strings.Contains(r.stdout, "modprobe.stats (KVS of the in-process 16777216-rank instance):") {
		t.Fatalf("%+v", r)
	}
}

// blockedInFIFO reports whether a thread of process pid waits in the
// kernel for the other end of a FIFO.
func blockedInFIFO(pid int) bool {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "wchan"))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "wait_for_partner") {
			return true
		}
	}
	return false
}

func TestInterruptWhileOpeningFIFO(t *testing.T) {
	if _, err := os.Stat("/proc/self/wchan"); err != nil {
		t.Skip("needs /proc/PID/wchan to see that the command is blocked opening the FIFO")
	}
	leakcheck.Check(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"show", "--offline", "--config", fifo, "kvs"},     // opened for reading
		{"rc1", "--offline", "--dry-run", "--trace", fifo}, // opened for writing
		{"run", "--offline", fifo},                         // read by the modprobe package
	} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "FLUX_MODPROBE_PATH=(embedded)")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(20 * time.Second)
		for !blockedInFIFO(cmd.Process.Pid) {
			select {
			case err := <-done:
				t.Fatalf("%q ended before blocking on the FIFO: %v\n%s", args, err, stderr.String())
			case <-deadline:
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("%q never blocked on the FIFO", args)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 || stderr.String() != "flux-modprobe: interrupted\n" {
				t.Errorf("%q: want exit status 130 and \"interrupted\", got %v, stderr %q", args, err, stderr.String())
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%q: SIGINT did not end the command blocked opening a FIFO", args)
		}
	}
}
