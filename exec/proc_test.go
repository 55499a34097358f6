package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// spawnIn starts argv with its output files in dir, reaped by r.
func spawnIn(t *testing.T, r *reaper, dir string, argv []string, env []string) *forkProc {
	t.Helper()
	spec := spawnSpec{argv: argv, env: env, stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr")}
	for _, f := range []string{spec.stdout, spec.stderr} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := forkSpawn(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runReaper runs a reaper until the test ends.
func runReaper(t *testing.T) (*reaper, context.CancelFunc) {
	r := newReaper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, cancel
}

func waitDone(t *testing.T, p proc) {
	t.Helper()
	select {
	case <-p.done():
	case <-time.After(20 * time.Second):
		t.Fatal("process not reaped")
	}
}

func groupGone(t *testing.T, pgid int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process group %d still has members", pgid)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestForkOutputAndStatus(t *testing.T) {
	checkLeaks(t)
	r, _ := runReaper(t)
	dir := t.TempDir()
	p := spawnIn(t, r, dir, []string{"/bin/sh", "-c", `printf out; echo err >&2; echo "$FOO"; exit 3`}, []string{"FOO=bar"})
	waitDone(t, p)
	if out, errs := readFile(t, p.output(streamStdout)), readFile(t, p.output(streamStderr)); out != "outbar\n" || errs != "err\n" {
		t.Fatalf("stdout %q stderr %q", out, errs)
	}
	if st, known := p.status(); !known || st != 3<<8 {
		t.Fatalf("status %d known %v", st, known)
	}
	groupGone(t, p.pid)
}

// A shell writing far more than any buffer never waits for the agent: its
// output goes to its files, byte for byte.
func TestForkOutputNeverBlocks(t *testing.T) {
	checkLeaks(t)
	r, _ := runReaper(t)
	dir := t.TempDir()
	p := spawnIn(t, r, dir, []string{"/bin/sh", "-c", "head -c 4194304 /dev/urandom | tee /dev/stderr"}, nil)
	waitDone(t, p) // no reader at all
	out, errs := readFile(t, p.output(streamStdout)), readFile(t, p.output(streamStderr))
	if len(out) != 4<<20 || out != errs {
		t.Fatalf("stdout %d bytes, stderr %d bytes, equal %v", len(out), len(errs), out == errs)
	}
}

func TestForkKillGroup(t *testing.T) {
	checkLeaks(t)
	r, _ := runReaper(t)
	p := spawnIn(t, r, t.TempDir(), []string{"/bin/sh", "-c", "trap '' TERM; sleep 100 & sleep 100; wait"}, nil)
	time.Sleep(50 * time.Millisecond)
	if err := p.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if st, _ := p.status(); !syscall.WaitStatus(st).Signaled() || syscall.WaitStatus(st).Signal() != syscall.SIGKILL {
		t.Fatalf("status %#x", st)
	}
	groupGone(t, p.pid)
	if err := p.signal(syscall.SIGTERM); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("signal after reap: %v", err)
	}
}

// A task kill reaches the shell's descendants, in its group or not, and
// not the shell, which goes on.
func TestSignalTasks(t *testing.T) {
	checkLeaks(t)
	r, _ := runReaper(t)
	dir := t.TempDir()
	// The second task sits in a process group of its own, as a job shell's
	// tasks do.
	p := spawnIn(t, r, dir, []string{"/bin/sh", "-c",
		`sleep 1000 & setsid sleep 1000 & echo up; wait; echo "tasks ended"; exit 7`}, nil)
	waitFor(t, "tasks", func() bool { return len(descendants(p.pid)) == 2 })
	if err := p.signalTasks(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if st, known := p.status(); !known || st != 7<<8 {
		t.Fatalf("the shell did not survive its tasks: status %#x", st)
	}
	if got := readFile(t, p.output(streamStdout)); got != "up\ntasks ended\n" {
		t.Fatalf("stdout %q", got)
	}
}

// A reaper takes over a shell another reaper of the process started, and
// gets its status; a recorded pid now held by another process is never
// waited for.
func TestReaperAdopts(t *testing.T) {
	checkLeaks(t)
	first, stopFirst := runReaper(t)
	dir := t.TempDir()
	p := spawnIn(t, first, dir, []string{"/bin/sh", "-c", "sleep 0.2; exit 5"}, nil)
	other := spawnIn(t, first, t.TempDir(), []string{"/bin/sh", "-c", "sleep 0.3; exit 6"}, nil)
	stopFirst() // the first agent goes away without reaping
	second, _ := runReaper(t)
	adopted := adoptProc(p.pid, p.start, "", p.out, second)
	impostor := adoptProc(other.pid, other.start+1, "", other.out, second) // same pid, another start time
	waitDone(t, impostor)
	if _, known := impostor.status(); known {
		t.Fatal("a process with another start time was waited for")
	}
	waitDone(t, adopted)
	if st, known := adopted.status(); !known || st != 5<<8 {
		t.Fatalf("adopted status %#x known %v", st, known)
	}
	real := adoptProc(other.pid, other.start, "", other.out, second)
	waitDone(t, real)
	if st, known := real.status(); !known || st != 6<<8 {
		t.Fatalf("status %#x known %v", st, known)
	}
}

func TestForkSpawnErrors(t *testing.T) {
	r, _ := runReaper(t)
	dir := t.TempDir()
	spec := spawnSpec{argv: []string{"/nonexistent/shell"}, stdout: filepath.Join(dir, "o"), stderr: filepath.Join(dir, "e")}
	for _, f := range []string{spec.stdout, spec.stderr} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := forkSpawn(spec, r)
	if spawnErrno(err) != syscall.ENOENT {
		t.Fatalf("ENOENT: %v -> %v", err, spawnErrno(err))
	}
	f := filepath.Join(dir, "noexec")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec.argv = []string{f}
	_, err = forkSpawn(spec, r)
	if spawnErrno(err) != syscall.EACCES {
		t.Fatalf("EACCES: %v -> %v", err, spawnErrno(err))
	}
}
