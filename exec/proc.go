package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"
)

// spawnSpec is what an agent asks a mechanism to start for one rank.
type spawnSpec struct {
	argv     []string
	env      []string
	outLimit int // bytes buffered per stream before back-pressure
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
	// done is closed once the shell is reaped and its output streams ended.
	done() <-chan struct{}
	// status is the raw wait(2) status; valid after done.
	status() int
	// output is the stream's buffer, nil for mechanisms without output.
	output(stream int) *outBuf
	// release frees what the proc holds once its output is acknowledged.
	release()
}

// forkProc is a real child process in its own process group.
type forkProc struct {
	cmd  *osexec.Cmd
	pgid int
	out  [2]*outBuf
	wg   sync.WaitGroup // pipe readers
	fin  chan struct{}
	raw  int

	mu     sync.Mutex
	reaped bool
}

// errno extracts the errno of a failed exec for the launch-failure table.
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

// forkSpawn starts argv with its stdout and stderr captured from the first
// byte: the pipes exist before the child does.
func forkSpawn(spec spawnSpec) (*forkProc, error) {
	if len(spec.argv) == 0 {
		return nil, fmt.Errorf("no command: %w", syscall.ENOENT)
	}
	p := &forkProc{fin: make(chan struct{})}
	cmd := osexec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Env = spec.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var readers [2]*os.File
	var writers [2]*os.File
	for i := range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			for j := 0; j < i; j++ {
				readers[j].Close()
				writers[j].Close()
			}
			return nil, fmt.Errorf("pipe: %w", err)
		}
		readers[i], writers[i] = r, w
		p.out[i] = newOutBuf(spec.outLimit)
	}
	cmd.Stdout, cmd.Stderr = writers[0], writers[1]
	err := cmd.Start()
	writers[0].Close()
	writers[1].Close()
	if err != nil {
		readers[0].Close()
		readers[1].Close()
		return nil, err
	}
	p.cmd = cmd
	p.pgid = cmd.Process.Pid
	for i := range 2 {
		p.wg.Add(1)
		go p.pump(readers[i], p.out[i])
	}
	go p.reap()
	return p, nil
}

// pump copies a pipe into its buffer, reading only when there is room, so
// a chatty shell blocks on write instead of growing memory.
func (p *forkProc) pump(r *os.File, b *outBuf) {
	defer p.wg.Done()
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n := b.space()
		if n == 0 { // abandoned: drain to let the writer finish
			_, _ = io.Copy(io.Discard, r)
			b.setEOF()
			return
		}
		k, err := r.Read(buf[:min(n, len(buf))])
		if k > 0 {
			b.write(buf[:k])
		}
		if err != nil {
			b.setEOF()
			return
		}
	}
}

// reap waits for the child exactly once, then kills what is left of its
// process group so that the pipes close, then waits for both streams' EOF.
func (p *forkProc) reap() {
	err := p.cmd.Wait()
	st := 0
	if ps := p.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			st = int(ws)
		}
	} else if err != nil {
		st = 1 << 8
	}
	p.mu.Lock()
	p.reaped = true
	p.raw = st
	p.mu.Unlock()
	// Stragglers in the group would hold the pipes open for ever.
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	p.wg.Wait()
	close(p.fin)
}

func (p *forkProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		// The leader is gone; its pgid may be reused, so only the leader's
		// reaper may still signal the group.
		return syscall.ESRCH
	}
	return syscall.Kill(-p.pgid, sig)
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
	for _, pid := range descendants(p.pgid) {
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
func (p *forkProc) status() int           { return p.raw }
func (p *forkProc) output(s int) *outBuf  { return p.out[s] }
func (p *forkProc) release() {
	p.out[0].abandon()
	p.out[1].abandon()
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
func (p *testProc) status() int           { p.mu.Lock(); defer p.mu.Unlock(); return p.raw }
func (p *testProc) output(int) *outBuf    { return nil }

// release ends even a deaf simulated shell: it is called when the agent
// forgets the job or closes.
func (p *testProc) release() { p.finish(int(syscall.SIGKILL)) }
