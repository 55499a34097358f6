package exec

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the agents' shim, as a program
// using the exec package does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ShimFlag {
		os.Exit(RunShim(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// testShim is the shim command of this test binary.
func testShim(t testing.TB) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, ShimFlag}
}

// shimSpec is a spawn of argv under the test shim, its record in dir.
func shimSpec(t *testing.T, dir string, argv ...string) spawnSpec {
	t.Helper()
	if err := makeEmpty(dir); err != nil {
		t.Fatal(err)
	}
	return spawnSpec{argv: argv, stdout: filepath.Join(dir, "stdout"), stderr: filepath.Join(dir, "stderr"),
		shim: testShim(t), dir: dir}
}

// A shell under the shim exits with its status known both to the agent
// that started it and to one in another process, which cannot wait for
// it: the shim recorded the status.
func TestShimRecordsStatus(t *testing.T) {
	checkLeaks(t)
	dir := filepath.Join(t.TempDir(), "rec")
	first := newReaper() // driven by hand: poll
	p, err := forkSpawn(shimSpec(t, dir, "/bin/sh", "-c", "echo out; echo err >&2; kill -TERM $$"), first)
	if err != nil {
		t.Fatal(err)
	}
	if p.pid == p.wpid || p.shimDir != dir {
		t.Fatalf("shell pid %d, shim pid %d, dir %q: not run under the shim", p.pid, p.wpid, p.shimDir)
	}
	// Another process's agent: it finds the shim is not its child.
	second := newReaper()
	q := adoptProc(p.pid, p.start, p.wpid, p.wstart, dir, p.out, second)
	q.child = false
	deadline := time.Now().Add(20 * time.Second)
	for !p.poll() {
		if time.Now().After(deadline) {
			t.Fatal("the shim did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for !q.poll() {
		if time.Now().After(deadline) {
			t.Fatal("the other agent did not see the shell end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, pr := range []*forkProc{p, q} {
		if raw, known := pr.status(); !known || syscall.WaitStatus(raw).Signal() != syscall.SIGTERM {
			t.Fatalf("status %#x known %v, want killed by SIGTERM", raw, known)
		}
	}
	if out, errs := readFile(t, p.out[0]), readFile(t, p.out[1]); out != "out\n" || errs != "err\n" {
		t.Fatalf("output %q, %q", out, errs)
	}
}

// The shim reports a shell it cannot start as a fork would fail.
func TestShimSpawnErrors(t *testing.T) {
	checkLeaks(t)
	r, _ := runReaper(t)
	_, err := forkSpawn(shimSpec(t, filepath.Join(t.TempDir(), "rec"), "/nonexistent/shell"), r)
	if spawnErrno(err) != syscall.ENOENT {
		t.Fatalf("ENOENT: %v -> %v", err, spawnErrno(err))
	}
}

// Signals reach the shell's process group, not the shim, and a shim
// killed before its shell ended leaves the shell watched on its own, its
// status unknown.
func TestShimSignalsAndLoss(t *testing.T) {
	checkLeaks(t)
	r, _ := runReaper(t)
	dir := filepath.Join(t.TempDir(), "rec")
	p, err := forkSpawn(shimSpec(t, dir, "/bin/sh", "-c", "sleep 30 & wait"), r)
	if err != nil {
		t.Fatal(err)
	}
	shim, shimStart := p.waited()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if err := syscall.Kill(shim, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * reapPoll)
	if !procAlive(shim, shimStart) {
		t.Fatal("the shim did not outlive polite signals")
	}
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * reapPoll)
	if !p.running() {
		t.Fatal("the shell counts as ended when only its shim was killed")
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if _, known := p.status(); known {
		t.Fatal("a status without the shim to record it")
	}
	groupGone(t, p.pid)
}
