package exec

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	osexec "os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// A keeper is the parent of a rank's shells: one long-lived process per
// runtime directory, in a session of its own, that forks the shells the
// agent asks for and records each one's exit status in its record before
// it reaps it. It outlives the agent, so that an agent restarted in another
// process, which cannot wait for shells it did not fork, learns their
// statuses from their records; the keeper tells the connected agent when a
// shell ends, so that it looks at once. It costs one request per shell on
// a socket in the runtime directory, where starting a helper per shell
// would cost a process start. It ends once it has no shells and no agent.

// KeeperFlag is the argument that tells a program it was started as an
// agent's keeper: a program named in AgentConfig.Keeper as {program,
// KeeperFlag} calls RunKeeper with the arguments after the flag, first thing
// in main.
const KeeperFlag = "--exec-keeper"

const (
	// keeperSocket is the keeper's socket in the runtime directory, which
	// only the instance owner may enter.
	keeperSocket = "keeper.sock"
	// keeperDetached marks the keeper's second stage, detached from the
	// agent that started the first.
	keeperDetached = "--detached"
	// keeperIdle is how long a keeper with no shells and no agent waits
	// for one before it ends.
	keeperIdle = time.Second
	// keeperStart bounds the wait for a keeper an agent started.
	keeperStart = 10 * time.Second
	// keeperReply bounds the wait for the keeper's answer to a spawn.
	keeperReply = 30 * time.Second
	// maxSocketPath is the longest path a unix socket address holds.
	maxSocketPath = 107
)

// keeperReq asks the keeper to start a shell.
type keeperReq struct {
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"` // the shell's record
	Stdout string   `json:"stdout"`
	Stderr string   `json:"stderr"`
}

// keeperMsg is what the keeper sends: the answer to a spawn (Pid and
// Start, or Errno and Error), or Exited, a shell that ended and whose
// status is in its record.
type keeperMsg struct {
	Pid    int    `json:"pid,omitempty"`
	Start  uint64 `json:"start,omitempty"`
	Errno  int    `json:"errno,omitempty"`
	Error  string `json:"error,omitempty"`
	Exited int    `json:"exited,omitempty"`
}

// RunKeeper runs a keeper for the runtime directory args[0] and returns the
// program's exit code. Started by an agent, it starts a detached copy of
// itself (which the agent then finds through the socket) and returns at
// once; the copy serves until it has no shells and no agent.
func RunKeeper(args []string) int {
	if len(args) == 1 {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "exec keeper: %v\n", err)
			return 1
		}
		cmd := osexec.Command(exe, append(os.Args[1:], keeperDetached)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "exec keeper: %v\n", err)
			return 1
		}
		_ = cmd.Process.Release()
		return 0
	}
	if len(args) != 2 || args[1] != keeperDetached {
		fmt.Fprintln(os.Stderr, "exec keeper: usage: RUNTIME-DIR")
		return 2
	}
	// Caught, not ignored: an ignored signal would stay ignored in the
	// shells. Only the shells are the agent's to signal.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	k, err := newKeeper(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "exec keeper: %v\n", err)
		return 1
	}
	if k == nil {
		return 0 // another keeper serves the directory
	}
	k.run()
	return 0
}

// keeper is the keeper process's state, owned by its run loop. It serves
// every agent that connects (the ranks of an instance on one host may share
// a runtime directory): a spawn is answered to the agent that asked, an exit
// told to all.
type keeper struct {
	l     *net.UnixListener
	sock  string
	kids  map[int]string // shell pid -> record
	conns map[net.Conn]*json.Encoder
}

// newKeeper listens on dir's socket; it returns nil when another keeper
// answers there already.
func newKeeper(dir string) (*keeper, error) {
	sock := filepath.Join(dir, keeperSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if errors.Is(err, syscall.EADDRINUSE) {
		if c, derr := net.Dial("unix", sock); derr == nil {
			c.Close()
			return nil, nil
		}
		_ = os.Remove(sock) // left by a keeper that died
		l, err = net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	}
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(true)
	return &keeper{l: l, sock: sock, kids: map[int]string{}, conns: map[net.Conn]*json.Encoder{}}, nil
}

// keeperEvent is one input of the keeper's loop.
type keeperEvent struct {
	conn net.Conn   // a new agent
	req  *keeperReq // a spawn from the current agent
	from net.Conn   // the connection a request or an end came on
	gone bool       // from ended
}

func (k *keeper) run() {
	defer k.l.Close()
	events := make(chan keeperEvent, 16)
	go func() {
		for {
			c, err := k.l.Accept()
			if err != nil {
				return
			}
			events <- keeperEvent{conn: c}
		}
	}()
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	idle := time.NewTimer(keeperIdle)
	for {
		select {
		case ev := <-events:
			switch {
			case ev.conn != nil:
				k.conns[ev.conn] = json.NewEncoder(ev.conn)
				go k.read(ev.conn, events)
			case ev.gone:
				ev.from.Close()
				delete(k.conns, ev.from)
			default:
				if enc := k.conns[ev.from]; enc != nil {
					_ = enc.Encode(k.spawn(ev.req))
				}
			}
		case <-chld:
			k.reap()
		case <-idle.C:
			if len(k.kids) == 0 && len(k.conns) == 0 {
				return
			}
		}
		if len(k.kids) == 0 && len(k.conns) == 0 {
			idle.Reset(keeperIdle)
		} else {
			idle.Stop()
		}
	}
}

// read feeds the loop the requests of one agent connection.
func (k *keeper) read(c net.Conn, events chan<- keeperEvent) {
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var req keeperReq
		if err := dec.Decode(&req); err != nil {
			events <- keeperEvent{from: c, gone: true}
			return
		}
		events <- keeperEvent{from: c, req: &req}
	}
}

// tell sends m to every agent.
func (k *keeper) tell(m keeperMsg) {
	for _, enc := range k.conns {
		_ = enc.Encode(m)
	}
}

// spawn starts a shell in a process group of its own, its output appended
// to the request's files.
func (k *keeper) spawn(req *keeperReq) keeperMsg {
	fail := func(err error) keeperMsg {
		return keeperMsg{Errno: int(spawnErrno(err)), Error: err.Error()}
	}
	if len(req.Argv) == 0 || req.Dir == "" {
		return fail(fmt.Errorf("no command: %w", syscall.ENOENT))
	}
	path, err := lookPath(req.Argv[0], req.Env)
	if err != nil {
		return fail(err)
	}
	files, err := openOutputs(spawnSpec{stdout: req.Stdout, stderr: req.Stderr})
	if err != nil {
		return fail(err)
	}
	defer files[0].Close()
	defer files[1].Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	defer null.Close()
	pid, err := syscall.ForkExec(path, req.Argv, &syscall.ProcAttr{Env: req.Env,
		Files: []uintptr{null.Fd(), files[0].Fd(), files[1].Fd()}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		return fail(fmt.Errorf("%s: %w", req.Argv[0], err))
	}
	k.kids[pid] = req.Dir
	start, _ := procStart(pid)
	return keeperMsg{Pid: pid, Start: start}
}

// lookPath resolves a command as execvp does, with the PATH of env.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	path := "/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	denied := false
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 != 0 {
			return p, nil
		}
		denied = true
	}
	if denied {
		return "", fmt.Errorf("%s: %w", file, syscall.EACCES)
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH: %w", file, syscall.ENOENT)
}

// siginfo is Linux's siginfo_t for SIGCHLD on 64-bit systems: waitid
// fills it.
type siginfo struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Pid    int32
	Uid    uint32
	Status int32
	_      [100]byte
}

// The siginfo layout above is the 64-bit one.
var _ [unsafe.Sizeof(uintptr(0)) - 8]byte

// waitid codes of siginfo.Code, and the flag that leaves the child
// waitable.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
	wNoWait   = 0x1000000
)

// reap records the status of every shell that ended, then reaps it: the
// shell stays a zombie, and so alive to whoever watches its pid, until its
// status is in its record.
func (k *keeper) reap() {
	for {
		var si siginfo
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, 0 /* P_ALL */, 0, uintptr(unsafe.Pointer(&si)),
			syscall.WEXITED|syscall.WNOHANG|wNoWait, 0, 0)
		if e != 0 || si.Pid == 0 {
			return
		}
		pid := int(si.Pid)
		raw := 0
		switch si.Code {
		case cldExited:
			raw = int(si.Status&0xff) << 8
		case cldKilled:
			raw = int(si.Status)
		case cldDumped:
			raw = int(si.Status) | 0x80
		}
		if dir, ok := k.kids[pid]; ok {
			if err := (&record{dir: dir}).append("status", strconv.Itoa(raw)); err != nil {
				fmt.Fprintf(os.Stderr, "exec keeper: %v\n", err)
			}
			delete(k.kids, pid)
		}
		_, _ = syscall.Wait4(pid, nil, syscall.WNOHANG, nil)
		k.tell(keeperMsg{Exited: pid})
	}
}

// keeperClient is an agent's connection to its keeper, started on demand.
type keeperClient struct {
	dir    string
	cmd    []string
	log    *slog.Logger
	onExit func()       // a shell ended, or the keeper went away
	goFn   func(func()) // runs a goroutine the agent owns

	mu      sync.Mutex // one spawn at a time
	conn    net.Conn
	replies chan keeperMsg
}

// keeperSocketPath is dir's keeper socket, or an error when the path is too
// long for a socket address.
func keeperSocketPath(dir string) (string, error) {
	sock := filepath.Join(dir, keeperSocket)
	if len(sock) > maxSocketPath {
		return "", fmt.Errorf("keeper socket %s: longer than the %d bytes a socket address holds", sock, maxSocketPath)
	}
	return sock, nil
}

// connectLocked connects to the keeper, starting one when none answers.
func (k *keeperClient) connectLocked(ctx context.Context) error {
	sock, err := keeperSocketPath(k.dir)
	if err != nil {
		return err
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		cmd := osexec.CommandContext(ctx, k.cmd[0], append(append([]string{}, k.cmd[1:]...), k.dir)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("starting the keeper %s: %w: %s", k.cmd[0], err, strings.TrimSpace(string(out)))
		}
		deadline := time.Now().Add(keeperStart)
		for {
			if c, err = net.Dial("unix", sock); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the keeper %s started but does not answer on %s: %w", k.cmd[0], sock, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	replies := make(chan keeperMsg, 1)
	k.conn, k.replies = c, replies
	k.goFn(func() { k.read(c, replies) })
	return nil
}

// read hands the keeper's answers to spawn and its exits to onExit until
// the connection ends.
func (k *keeperClient) read(c net.Conn, replies chan<- keeperMsg) {
	defer close(replies)
	defer k.onExit() // whatever ended meanwhile is looked at through /proc
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var m keeperMsg
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				k.log.Warn("exec agent: keeper connection", "err", err)
			}
			return
		}
		if m.Exited != 0 {
			k.onExit()
			continue
		}
		select {
		case replies <- m:
		default:
			k.log.Warn("exec agent: unexpected keeper message", "msg", m)
		}
	}
}

// spawn has the keeper start spec's shell and returns its pid and start
// time.
func (k *keeperClient) spawn(ctx context.Context, spec spawnSpec) (int, uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn == nil {
		if err := k.connectLocked(ctx); err != nil {
			return 0, 0, err
		}
	}
	req := keeperReq{Argv: spec.argv, Env: spec.env, Dir: spec.dir, Stdout: spec.stdout, Stderr: spec.stderr}
	b, _ := json.Marshal(req)
	broken := func(err error) (int, uint64, error) {
		k.conn.Close()
		k.conn = nil
		return 0, 0, fmt.Errorf("keeper: %w", err)
	}
	if _, err := k.conn.Write(append(b, '\n')); err != nil {
		return broken(err)
	}
	select {
	case m, ok := <-k.replies:
		switch {
		case !ok:
			return broken(errors.New("the keeper went away"))
		case m.Pid == 0:
			return 0, 0, &shellError{errno: syscall.Errno(m.Errno), text: m.Error}
		}
		return m.Pid, m.Start, nil
	case <-time.After(keeperReply):
		return broken(errors.New("no answer"))
	case <-ctx.Done():
		return broken(ctx.Err())
	}
}

// close ends the connection; the keeper goes on while it has shells.
func (k *keeperClient) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.conn != nil {
		k.conn.Close()
		k.conn = nil
	}
}

// shellError is a shell the keeper could not start: its errno and text.
type shellError struct {
	errno syscall.Errno
	text  string
}

func (e *shellError) Error() string { return e.text }

// Unwrap gives the errno, so that spawnErrno classifies it as a fork's.
func (e *shellError) Unwrap() error { return e.errno }
