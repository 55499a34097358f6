package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// spawnSpec is what an agent asks a mechanism to start for one rank.
type spawnSpec struct {
	argv []string
	env  []string
	// stdout and stderr are the files the shell writes its output to,
	// appending; the agent reads them from any offset.
	stdout, stderr string
	// dir is the shell's record, where a keeper writes its exit status.
	dir string
}

// proc is a started shell as the agent sees it.
type proc interface {
	// signal delivers sig to the shell's process group: a shell kill.
	signal(sig syscall.Signal) error
	// signalTasks delivers sig to the processes the shell started, not to
	// the shell itself: a task kill.
	signalTasks(sig syscall.Signal) error
	// running reports whether the shell has not been reaped yet.
	running() bool
	// done is closed once the shell has ended.
	done() <-chan struct{}
	// status is the raw wait(2) status, and whether it is known; valid
	// after done. It is unknown for a shell that ended while no process
	// that could wait for it watched it, and that no keeper recorded.
	status() (raw int, known bool)
	// output is the path of the stream's file, "" for mechanisms without
	// output.
	output(stream int) string
	// release ends what the proc holds that is not a process (a simulated
	// shell's timer).
	release()
}

// forkProc is a real shell in its own process group, writing its output
// to files. A shell that is a child of this process (forked by an agent
// of this process) is reaped by the agent's reaper, by pid; one that is
// not (a keeper's, or a restarted agent's predecessor's) is watched
// through /proc, and its exit status is the one its record holds once it
// is gone: a keeper records it before it reaps the shell.
type forkProc struct {
	pid   int    // the shell: signals go to its process group
	start uint64 // /proc start time, to tell the process from a successor with its pid
	dir   string // its record ("": none)
	out   [2]string
	fin   chan struct{}

	mu     sync.Mutex
	child  bool // wait4 can reap it
	reaped bool
	raw    int
	known  bool
}

// spawnErrno extracts the errno of a failed exec for the launch-failure
// table.
func spawnErrno(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, osexec.ErrNotFound) {
		return syscall.ENOENT
	}
	if errors.Is(err, os.ErrPermission) {
		return syscall.EACCES
	}
	return syscall.EINVAL
}

// openOutputs opens the spec's output files for appending.
func openOutputs(spec spawnSpec) ([2]*os.File, error) {
	var files [2]*os.File
	for i, path := range []string{spec.stdout, spec.stderr} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			if i == 1 {
				files[0].Close()
			}
			return files, fmt.Errorf("output: %w", err)
		}
		files[i] = f
	}
	return files, nil
}

// forkSpawn starts argv in its own process group, its stdout and stderr
// appended to the spec's files from the first byte, and hands it to r.
func forkSpawn(spec spawnSpec, r *reaper) (*forkProc, error) {
	if len(spec.argv) == 0 {
		return nil, fmt.Errorf("no command: %w", syscall.ENOENT)
	}
	files, err := openOutputs(spec)
	if err != nil {
		return nil, err
	}
	defer files[0].Close()
	defer files[1].Close()
	cmd := osexec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Env = spec.env
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &forkProc{pid: cmd.Process.Pid, dir: spec.dir, out: [2]string{spec.stdout, spec.stderr}, fin: make(chan struct{}), child: true}
	p.start, _ = procStart(p.pid)
	// The reaper waits for it by pid; os/exec must not.
	_ = cmd.Process.Release()
	r.add(p)
	return p, nil
}

// adoptProc takes over a shell a previous agent or a keeper started (pid,
// started at start, its record in dir), whatever its state: running, a
// zombie, or gone.
func adoptProc(pid int, start uint64, dir string, out [2]string, r *reaper) *forkProc {
	p := &forkProc{pid: pid, start: start, dir: dir, out: out, fin: make(chan struct{}), child: true}
	if now, err := procStart(pid); err != nil || now != start {
		// The pid is free or someone else's now, maybe another child of
		// this process: never wait for it.
		p.child = false
	}
	r.add(p)
	return p
}

// keptProc is a shell a keeper started for spec: not this process's child.
func keptProc(pid int, start uint64, spec spawnSpec, r *reaper) *forkProc {
	p := &forkProc{pid: pid, start: start, dir: spec.dir, out: [2]string{spec.stdout, spec.stderr}, fin: make(chan struct{})}
	r.add(p)
	return p
}

// endedProc is a shell whose exit a previous agent recorded.
func endedProc(raw int, out [2]string) *forkProc {
	p := &forkProc{out: out, fin: make(chan struct{}), reaped: true, raw: raw, known: true}
	close(p.fin)
	return p
}

// poll reaps p if it ended. It reports whether p is done with.
func (p *forkProc) poll() bool {
	p.mu.Lock()
	child := p.child
	p.mu.Unlock()
	if child {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
		switch {
		case pid == p.pid:
			p.exit(int(ws), true, true)
			return true
		case errors.Is(err, syscall.ECHILD):
			// Started by another process, which reaps it.
			p.mu.Lock()
			p.child = false
			p.mu.Unlock()
		default:
			return false // running, or interrupted: next time
		}
	}
	if procAlive(p.pid, p.start) {
		return false
	}
	// Its group may outlive it, but only if no other process took its
	// pid: a pid is not reused while a group of that id has members.
	group := errors.Is(syscall.Kill(p.pid, 0), syscall.ESRCH)
	if p.dir != "" {
		rec := &record{dir: p.dir}
		if err := rec.read(0); (err == nil || errors.Is(err, errNoLaunch)) && rec.rec.Status != nil {
			p.exit(*rec.rec.Status, true, group)
			return true
		}
	}
	p.exit(0, false, group)
	return true
}

// exit records the end of the shell and, when its group is known to be
// its own, kills what is left of it: stragglers would go on writing its
// output.
func (p *forkProc) exit(raw int, known, group bool) {
	p.mu.Lock()
	p.reaped, p.raw, p.known = true, raw, known
	p.mu.Unlock()
	if group {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	close(p.fin)
}

func (p *forkProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		// The leader is gone; its pgid may be reused.
		return syscall.ESRCH
	}
	return syscall.Kill(-p.pid, sig)
}

// signalTasks signals every descendant of the shell, found through /proc,
// but not the shell: a job shell's tasks may sit in process groups of
// their own, and a shell that outlives its tasks is killed by the shell
// kills that follow, not by this.
func (p *forkProc) signalTasks(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return syscall.ESRCH
	}
	var first error
	for _, pid := range descendants(p.pid) {
		if err := syscall.Kill(pid, sig); err != nil && first == nil && !errors.Is(err, syscall.ESRCH) {
			first = err
		}
	}
	return first
}

func (p *forkProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.reaped
}

func (p *forkProc) done() <-chan struct{} { return p.fin }

func (p *forkProc) status() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw, p.known
}

func (p *forkProc) output(s int) string { return p.out[s] }
func (p *forkProc) release()            {}

// reaper reaps an agent's shells by pid: at once on SIGCHLD, and by a
// periodic look at those it cannot wait for. It never waits for any other
// child of the process (epilogs, or anything else the program runs).
type reaper struct {
	mu    sync.Mutex
	procs map[*forkProc]struct{}
	wake  chan struct{}
}

// reapPoll is how often shells are looked at without a SIGCHLD: those a
// previous agent process started, which this process cannot wait for.
const reapPoll = 200 * time.Millisecond

func newReaper() *reaper {
	return &reaper{procs: map[*forkProc]struct{}{}, wake: make(chan struct{}, 1)}
}

func (r *reaper) add(p *forkProc) {
	r.mu.Lock()
	r.procs[p] = struct{}{}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// poke makes the reaper look at its shells now: a keeper says one ended.
func (r *reaper) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// live counts the shells not reaped yet.
func (r *reaper) live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.procs)
}

// run reaps until ctx ends.
func (r *reaper) run(ctx context.Context) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	tick := time.NewTicker(reapPoll)
	defer tick.Stop()
	for {
		r.mu.Lock()
		ps := make([]*forkProc, 0, len(r.procs))
		for p := range r.procs {
			ps = append(ps, p)
		}
		r.mu.Unlock()
		for _, p := range ps {
			if p.poll() {
				r.mu.Lock()
				delete(r.procs, p)
				r.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-chld:
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// testProc is a simulated shell (testexec): it "exits" after run_duration
// with wait_status, or with the signal number when signalled, as flux-core's
// testexec does.
type testProc struct {
	mu   sync.Mutex
	fin  chan struct{}
	raw  int
	stop func() bool
	deaf bool // ignores signals (tests of unkillable shells)
}

func newTestProc(clk Clock, tc *testConf, deaf bool) *testProc {
	p := &testProc{fin: make(chan struct{}), deaf: deaf}
	if tc.runDuration > 0 {
		p.mu.Lock()
		p.stop = clk.AfterFunc(tc.runDuration, func() { p.finish(tc.waitStatus) })
		p.mu.Unlock()
	}
	return p
}

func (p *testProc) finish(st int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.fin:
		return false
	default:
	}
	if p.stop != nil {
		p.stop()
	}
	p.raw = st
	close(p.fin)
	return true
}

func (p *testProc) signal(sig syscall.Signal) error {
	if p.deaf {
		return nil
	}
	if !p.finish(int(sig)) {
		return syscall.ESRCH
	}
	return nil
}

// signalTasks does nothing: a simulated shell has no tasks (flux-core's
// task kills reach testexec jobs only as events no shell listens to).
func (p *testProc) signalTasks(syscall.Signal) error { return nil }

func (p *testProc) running() bool {
	select {
	case <-p.fin:
		return false
	default:
		return true
	}
}

func (p *testProc) done() <-chan struct{} { return p.fin }
func (p *testProc) status() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw, true
}
func (p *testProc) output(int) string { return "" }

// release ends even a deaf simulated shell: it is called when the agent
// forgets the job or closes.
func (p *testProc) release() { p.finish(int(syscall.SIGKILL)) }
