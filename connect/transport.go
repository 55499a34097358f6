package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// transport is the byte stream to a broker's local connector: a unix socket,
// or the stdio of "flux relay" run through ssh.
type transport interface {
	io.ReadWriter
	SetWriteDeadline(time.Time) error
	// Close ends the stream and releases what it holds (the ssh child is
	// reaped). It is safe to call more than once.
	Close() error
}

// Connect retry defaults, as flux-core's usock client: up to five retries,
// starting at 16 ms and doubling up to 2 s, so that a client started while
// its broker is still coming up waits for the socket.
const (
	retryCount    = 5
	retryMinDelay = 16 * time.Millisecond
	retryMaxDelay = 2 * time.Second
)

func dialLocal(ctx context.Context, path string, retries int) (transport, error) {
	var d net.Dialer
	delay := retryMinDelay
	for attempt := 0; ; attempt++ {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			if err := handshake(c); err != nil {
				c.Close()
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return c.(*net.UnixConn), nil
		}
		if attempt >= retries || ctx.Err() != nil {
			if errors.Is(err, syscall.ENOENT) {
				return nil, fmt.Errorf("broker socket %s was not found: %w", path, syscall.ENOENT)
			}
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, retryMaxDelay)
	}
}

// handshake reads the byte the server writes when it accepts a client: zero,
// or an errno saying why it refused (EPERM for a user without roles).
func handshake(r io.Reader) error {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("connection closed before the broker accepted it: %w", syscall.ECONNRESET)
		}
		return err
	}
	if b[0] != 0 {
		return fmt.Errorf("broker refused the connection: %w", syscall.Errno(b[0]))
	}
	return nil
}

// sshOptions are the environment-derived choices of the ssh connector.
type sshOptions struct {
	ssh      string // FLUX_SSH, default "ssh"
	rcmd     string // FLUX_SSH_RCMD: the remote flux command, if forced
	ldPath   string // LD_LIBRARY_PATH to forward
	pathEnv  string // local PATH, to find the local flux's directory
	lookPath func(string) (string, error)
}

// sshCommand builds the command flux-core's ssh connector runs:
//
//	ssh [-p port] [user@]host [env] [PATH=...] [LD_LIBRARY_PATH=...] flux relay /path
//
// When FLUX_SSH_RCMD is unset, PATH on the remote side starts with the
// instance's rundir/bin and the directory of the local flux command, as
// flux-core sets it, since ssh does not forward the environment.
func sshCommand(t target, o sshOptions) []string {
	argv := []string{o.ssh}
	if t.port != 0 {
		argv = append(argv, "-p", strconv.Itoa(t.port))
	}
	if t.user != "" {
		argv = append(argv, t.user+"@"+t.host)
	} else {
		argv = append(argv, t.host)
	}
	flux := o.rcmd
	if o.ldPath != "" || flux == "" {
		argv = append(argv, "env")
	}
	if flux == "" {
		path := filepath.Join(filepath.Dir(t.path), "bin")
		if dir := whichDir("flux", o.pathEnv); dir != "" {
			path += ":" + dir
		}
		argv = append(argv, "PATH="+path+":/bin:/usr/bin")
		flux = "flux"
	}
	if o.ldPath != "" {
		argv = append(argv, "LD_LIBRARY_PATH="+o.ldPath)
	}
	return append(argv, flux, "relay", t.path)
}

// whichDir is the directory of the first executable regular file named prog
// in the colon-separated pathEnv, or "".
func whichDir(prog, pathEnv string) string {
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return dir
		}
	}
	return ""
}

// sshTransport is a socketpair whose other end is the ssh child's stdin and
// stdout, as flux-core's popen2() sets it up. The child's stderr is kept
// (bounded) to explain a failed start.
type sshTransport struct {
	net.Conn
	cmd    *exec.Cmd
	stderr *boundedBuffer
	waited chan struct{}
	once   sync.Once
}

func dialSSH(ctx context.Context, t target, o sshOptions) (transport, error) {
	argv := sshCommand(t, o)
	path := argv[0]
	if o.lookPath != nil {
		p, err := o.lookPath(argv[0])
		if err != nil {
			return nil, fmt.Errorf("ssh connector: %s: %w (hint: set FLUX_SSH to choose the remote shell command)", argv[0], err)
		}
		path = p
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ssh connector: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ssh-connector"), os.NewFile(uintptr(fds[1]), "ssh-relay-stdio")
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("ssh connector: %w", err)
	}
	st := &sshTransport{Conn: conn, stderr: &boundedBuffer{max: 64 << 10}, waited: make(chan struct{})}
	st.cmd = &exec.Cmd{Path: path, Args: argv, Stdin: theirs, Stdout: theirs, Stderr: st.stderr,
		// The terminal's SIGINT is for us; we end the child by closing its stdin.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	err = st.cmd.Start()
	// Only the child holds its end now, so its exit is an EOF here.
	theirs.Close()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh connector: %s: %w (hint: set FLUX_SSH to choose the remote shell command)", argv[0], err)
	}
	go func() {
		_ = st.cmd.Wait()
		close(st.waited)
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	err = handshake(conn)
	stop()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		st.Close()
		if msg := strings.TrimSpace(st.stderr.String()); msg != "" {
			return nil, fmt.Errorf("ssh connector: %s: %w", msg, err)
		}
		return nil, fmt.Errorf("ssh connector: unable to establish a clean ssh connection (check that shell init files do not write to stdout when non-interactive): %w", err)
	}
	return st, nil
}

// Close closes our end of the child's stdio, which ends the relay, and
// reaps the child; a child that does not exit within a few seconds (an ssh
// stuck on a dead network) is killed with its process group.
func (s *sshTransport) Close() error {
	s.once.Do(func() {
		_ = s.Conn.Close()
		select {
		case <-s.waited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.waited
		}
	})
	return nil
}

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
