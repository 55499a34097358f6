package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	ctx := testutil.Context(t)
	var errb bytes.Buffer
	env := map[string]string{"FLUX_MODPROBE_PATH": "(embedded)"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := run(ctx, args, stdout, &errb, lookup)
	return result{code: code, stderr: errb.String()}
}

func TestWriteErrorsFail(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	require.NoError(t, err, "this test writes to /dev/full")
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
		assert.Equal(t, 1, r.code, "%q > /dev/full", args)
		assert.True(t, strings.HasPrefix(r.stderr, "flux-modprobe: ERROR: "), "%q > /dev/full: %s", args, r.stderr)
		assert.Contains(t, r.stderr, enospc, "%q > /dev/full names the write error", args)
	}
	// Tasks that print fail, each reporting the write error.
	r := invokeFile(t, full, "rc1", "--offline", "--dry-run")
	assert.Equal(t, 1, r.code, "rc1 --dry-run > /dev/full")
	assert.Contains(t, r.stderr, ": "+enospc+"\n", "rc1 --dry-run > /dev/full")
}

func TestTraceCheckedBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	rc := filepath.Join(dir, "rc.toml")
	require.NoError(t, os.WriteFile(rc, []byte("[[tasks]]\nname = \"touch\"\nrun = \"touch "+marker+"\"\n"), 0o644))
	bad := filepath.Join(dir, "no-such-dir", "trace.json")
	r := invoke(t, nil, "run", "--offline", "--trace", bad, rc)
	want := "flux-modprobe: ERROR: --trace: open " + bad + ": " + syscall.ENOENT.Error() + "\n"
	require.Equal(t, result{code: 1, stderr: want}, r)
	require.NoFileExists(t, marker, "a task ran although the trace file could not be created")
	r = invoke(t, nil, "run", "--offline", "--trace", dir, rc)
	require.Equal(t, 1, r.code, "a directory as the trace file")
	require.Contains(t, r.stderr, "--trace: open "+dir+": ")

	// A trace file the command created but never wrote is removed; an
	// existing one is left as it was.
	trace := filepath.Join(dir, "trace.json")
	r = invoke(t, nil, "rc1", "--offline", "--show-deps", "--trace", trace)
	require.Equal(t, 0, r.code, r.stderr)
	require.NoFileExists(t, trace, "a trace file never written is removed")
	require.NoError(t, os.WriteFile(trace, []byte("old trace"), 0o644))
	r = invoke(t, nil, "load", "--offline", "--trace", trace, "nosuch")
	require.Equal(t, 1, r.code)
	b, _ := os.ReadFile(trace)
	require.Equal(t, "old trace", string(b), "an existing trace file is left alone")
	r = invoke(t, nil, "run", "--offline", "--trace", trace, rc)
	require.Equal(t, 0, r.code, r.stderr)
	b, _ = os.ReadFile(trace)
	require.True(t, bytes.HasPrefix(b, []byte(`{"`)), "trace now %q", b)
	require.NotContains(t, string(b), "old trace")
	require.FileExists(t, marker, "the task runs with a good trace file")
}

func TestConfigSyntaxErrorIsLocated(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "broker.toml")
	require.NoError(t, os.WriteFile(cfg, []byte("[resource]\nnoverify = true\n[modules]\nkvs.ranks = = \"0\"\n"), 0o644))
	r := invoke(t, nil, "show", "--offline", "--config", cfg, "kvs")
	want := "flux-modprobe: ERROR: " + cfg + ":4:13: unexpected character U+003D '=' at start of value\n"
	assert.Equal(t, result{code: 1, stderr: want}, r)
}

// The in-process instance costs what is used, whatever --size says.
func TestLargeSizes(t *testing.T) {
	for _, size := range []string{"1000000", "16777216"} {
		r := invoke(t, nil, "rc1", "--offline", "--dry-run", "--size", size, "--rank", "999999")
		require.Equal(t, 0, r.code, "--size %s: %s", size, r.stderr)
		assert.Contains(t, r.stdout, "load kvs\n", "--size %s", size)
	}
	r := invoke(t, nil, "rc1", "--offline", "--timing", "--load-delay", "0s", "--size", "16777216")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "modprobe.stats (KVS of the in-process 16777216-rank instance):")
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
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	for _, args := range [][]string{
		{"show", "--offline", "--config", fifo, "kvs"},     // opened for reading
		{"rc1", "--offline", "--dry-run", "--trace", fifo}, // opened for writing
		{"run", "--offline", fifo},                         // read by the modprobe package
	} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "FLUX_MODPROBE_PATH=(embedded)")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(20 * time.Second)
		for !blockedInFIFO(cmd.Process.Pid) {
			select {
			case err := <-done:
				require.FailNow(t, "ended before blocking on the FIFO", "%q: %v\n%s", args, err, stderr.String())
			case <-deadline:
				_ = cmd.Process.Kill()
				<-done
				require.FailNow(t, "never blocked on the FIFO", "%q", args)
			case <-time.After(10 * time.Millisecond):
			}
		}
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
		select {
		case err := <-done:
			var ee *exec.ExitError
			if assert.ErrorAs(t, err, &ee, "%q", args) {
				assert.Equal(t, 130, ee.ExitCode(), "%q", args)
			}
			assert.Equal(t, "flux-modprobe: interrupted\n", stderr.String(), "%q", args)
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			require.FailNow(t, "SIGINT did not end the command blocked opening a FIFO", "%q", args)
		}
	}
}
