package exec

import (
	"bufio"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ShimFlag is the argument that tells a program it was started as an
// agent's shim: a program named in AgentConfig.Shim as {program, ShimFlag}
// calls RunShim with the arguments after the flag, first thing in main.
const ShimFlag = "--exec-shim"

// shimHandshake bounds the wait for a shim to report its shell's pid.
const shimHandshake = 30 * time.Second

// RunShim runs one shell for an agent and records its exit status, so that
// an agent that restarts in another process still learns it: a process can
// wait only for its own children, and the shim outlives the agent that
// started it. It returns the program's exit code.
//
// The agent starts the shim in a session of its own with the arguments
// "<record directory> -- <shell argv...>", the shell's environment, stdin,
// stdout and stderr as its own, and a pipe as file descriptor 3. The shim
// starts the shell in a process group of its own, writes "pid <pid>
// <start time>" (or "error <errno> <text>" when it cannot) on the pipe and
// closes it, waits for the shell, and appends "status <raw wait status>"
// to the record. It ignores the signals that stop programs politely: only
// the shell is the agent's to signal.
func RunShim(args []string) int {
	report := os.NewFile(3, "report")
	if len(args) < 3 || args[1] != "--" || report == nil {
		fmt.Fprintln(os.Stderr, "exec shim: usage: RECORD-DIR -- COMMAND...")
		return 2
	}
	// Caught, not ignored: an ignored signal would stay ignored in the
	// shell.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	dir, argv := args[0], args[2:]
	cmd := osexec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(report, "error %d %s\n", spawnErrno(err), strings.ReplaceAll(err.Error(), "\n", " "))
		report.Close()
		return 127
	}
	start, _ := procStart(cmd.Process.Pid)
	fmt.Fprintf(report, "pid %d %d\n", cmd.Process.Pid, start)
	report.Close()
	_ = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return 1
	}
	rec := &record{dir: dir}
	if err := rec.append("status", strconv.Itoa(int(ws))); err != nil {
		fmt.Fprintf(os.Stderr, "exec shim: %v\n", err)
		return 1
	}
	return 0
}

// shimSpawn starts spec's shell under its shim, with files as its stdout
// and stderr, and waits for the shim's report.
func shimSpawn(spec spawnSpec, files [2]*os.File, r *reaper) (*forkProc, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	args := append(append(append([]string{}, spec.shim[1:]...), spec.dir, "--"), spec.argv...)
	cmd := osexec.Command(spec.shim[0], args...)
	cmd.Env = spec.env
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("shim %s: %w", spec.shim[0], err)
	}
	_ = pr.SetReadDeadline(time.Now().Add(shimHandshake))
	line, rerr := bufio.NewReader(io.LimitReader(pr, 4096)).ReadString('\n')
	kind, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	var pid int
	var start uint64
	switch {
	case rerr != nil && line == "":
	case kind == "pid":
		a, b, _ := strings.Cut(rest, " ")
		pid, _ = strconv.Atoi(a)
		start, _ = strconv.ParseUint(b, 10, 64)
	case kind == "error":
		a, text, _ := strings.Cut(rest, " ")
		errno, _ := strconv.Atoi(a)
		_ = cmd.Wait()
		return nil, &shimError{errno: syscall.Errno(errno), text: text}
	}
	if pid <= 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("shim %s: no report on the shell (%q, %v)", spec.shim[0], line, rerr)
	}
	p := &forkProc{pid: pid, start: start, out: [2]string{spec.stdout, spec.stderr}, fin: make(chan struct{}), child: true,
		shimDir: spec.dir}
	p.wpid = cmd.Process.Pid
	p.wstart, _ = procStart(p.wpid)
	_ = cmd.Process.Release()
	r.add(p)
	return p, nil
}

// shimError is the shim's failure to start a shell: its errno and text.
type shimError struct {
	errno syscall.Errno
	text  string
}

func (e *shimError) Error() string { return e.text }

// Unwrap gives the errno, so that spawnErrno classifies it as a fork's.
func (e *shimError) Unwrap() error { return e.errno }
