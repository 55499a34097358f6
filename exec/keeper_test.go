package exec

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the agents' keeper, as a program
// using the exec package does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == KeeperFlag {
		os.Exit(RunKeeper(os.Args[2:]))
	}
	// The reapers catch SIGCHLD. os/signal then runs a goroutine for the
	// rest of the process: start it before any test counts them.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGCHLD)
	signal.Stop(c)
	os.Exit(m.Run())
}

// testKeeper is the keeper command of this test binary.
func testKeeper(t testing.TB) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, KeeperFlag}
}

// keeperAgent is the agent side of a keeper for dir, with a reaper of its
// own, until the test ends.
type keeperAgent struct {
	kc *keeperClient
	r  *reaper
}

func newKeeperAgent(t *testing.T, dir string) *keeperAgent {
	t.Helper()
	r, _ := runReaper(t)
	var wg sync.WaitGroup
	ka := &keeperAgent{r: r, kc: &keeperClient{dir: dir, cmd: testKeeper(t), log: discardLogger(), onExit: r.poke,
		goFn: func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }}}
	t.Cleanup(func() { ka.kc.close(); wg.Wait() })
	ka.kc.mu.Lock()
	err := ka.kc.connectLocked(context.Background())
	ka.kc.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return ka
}

// spawn has the keeper start argv with its record under dir.
func (ka *keeperAgent) spawn(t *testing.T, dir string, argv ...string) (*forkProc, spawnSpec) {
	t.Helper()
	rec := filepath.Join(dir, "rec")
	if err := makeEmpty(rec); err != nil {
		t.Fatal(err)
	}
	spec := spawnSpec{argv: argv, env: os.Environ(), stdout: filepath.Join(rec, "stdout"), stderr: filepath.Join(rec, "stderr"), dir: rec}
	pid, start, err := ka.kc.spawn(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return keptProc(pid, start, spec, ka.r), spec
}

// keeperPid is the pid of the process serving dir's keeper socket.
func keeperPid(t *testing.T, dir string) int {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(dir, keeperSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Ucred
	if err := raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cred == nil {
		t.Fatalf("peer credentials: %v", err)
	}
	return int(cred.Pid)
}

// The keeper starts a shell with the signals at their defaults and its
// output in its files, and records its status before it reaps it, so that
// the agent, which is not the shell's parent, knows it.
func TestKeeperRecordsStatus(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	ka := newKeeperAgent(t, dir)
	// The keeper ignores none of the signals it catches for itself.
	p, _ := ka.spawn(t, dir, "/bin/sh", "-c", "echo out; echo err >&2; kill -TERM $$")
	waitDone(t, p)
	if raw, known := p.status(); !known || syscall.WaitStatus(raw).Signal() != syscall.SIGTERM {
		t.Fatalf("status %#x known %v, want killed by SIGTERM", raw, known)
	}
	if out, errs := readFile(t, p.out[0]), readFile(t, p.out[1]); out != "out\n" || errs != "err\n" {
		t.Fatalf("output %q, %q", out, errs)
	}
}

// The keeper outlives the agent that started it and the polite signals of
// those who stop agents; the next agent, in any process, connects to it and
// learns the status of a shell the first one started; with no shell and no
// agent left, the keeper ends.
func TestKeeperOutlivesAgents(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	first := newKeeperAgent(t, dir)
	p, spec := first.spawn(t, dir, "/bin/sh", "-c", "while [ ! -e "+dir+"/go ]; do sleep 0.01; done; exit 3")
	pid := keeperPid(t, dir)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	first.kc.close()
	time.Sleep(2 * keeperIdle)
	if !procAlive(pid, 0) || !p.running() {
		t.Fatal("the keeper or its shell ended with the agent")
	}
	second := newKeeperAgent(t, dir)
	if got := keeperPid(t, dir); got != pid {
		t.Fatalf("a second keeper %d beside %d", got, pid)
	}
	// Agents sharing a runtime directory share its keeper.
	third := newKeeperAgent(t, dir)
	sub := filepath.Join(dir, "third")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	r, _ := third.spawn(t, sub, "/bin/sh", "-c", "exit 4")
	waitDone(t, r)
	if raw, known := r.status(); !known || raw != 4<<8 {
		t.Fatalf("the third agent's shell: status %#x known %v, want exit 4", raw, known)
	}
	third.kc.close()
	q := adoptProc(p.pid, p.start, spec.dir, p.out, second.r)
	touch(t, dir+"/go")
	waitDone(t, q)
	if raw, known := q.status(); !known || raw != 3<<8 {
		t.Fatalf("status %#x known %v, want exit 3", raw, known)
	}
	second.kc.close()
	waitFor(t, "the idle keeper ends", func() bool { return !procAlive(pid, 0) })
	if _, err := os.Stat(filepath.Join(dir, keeperSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left: %v", err)
	}
}

// The keeper reports a shell it cannot start as a fork would fail.
func TestKeeperSpawnErrors(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	ka := newKeeperAgent(t, dir)
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		argv0 string
		want  syscall.Errno
	}{{"/nonexistent/shell", syscall.ENOENT}, {"no-such-command-anywhere", syscall.ENOENT}, {noexec, syscall.EACCES}} {
		rec := filepath.Join(dir, "rec-"+filepath.Base(tc.argv0))
		if err := makeEmpty(rec); err != nil {
			t.Fatal(err)
		}
		_, _, err := ka.kc.spawn(context.Background(), spawnSpec{argv: []string{tc.argv0}, env: os.Environ(),
			stdout: filepath.Join(rec, "stdout"), stderr: filepath.Join(rec, "stderr"), dir: rec})
		if spawnErrno(err) != tc.want {
			t.Errorf("%s: %v -> %v, want %v", tc.argv0, err, spawnErrno(err), tc.want)
		}
	}
}
