package flub

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a flub-join process with its stdout as a line channel.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	lines  chan string
	done   chan struct{}
	err    error
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errBuf := &syncBuffer{}
	cmd.Stderr = errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: errBuf, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if testLogger() != nil {
		os.Stderr.Write(p)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// expect reads lines until one contains want and returns it.
func (p *proc) expect(t *testing.T, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before printing %q: %v", p.cmd.Args[1], want, p.err)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("%s did not print %q within %v", p.cmd.Args[1], want, timeout)
		}
	}
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(15 * time.Second):
		t.Fatal("process did not exit")
	}
	return nil
}

// TestEndToEndProcesses: flub-join binaries join an instance in another
// process; one is killed and replaced; one leaves cleanly.
func TestEndToEndProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flub-join")
	build := exec.Command("go", "build", "-o", bin, "../examples/flub-join")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cert := filepath.Join(dir, "owner.cert")
	timing := []string{"--heartbeat", "100ms", "--torpid-max", "3s"}
	root := startProc(t, bin, append([]string{"start", "--size", "4", "--topo", "kary:2", "--cert", cert, "--hostname", "host0"}, timing...)...)
	uri := strings.TrimPrefix(root.expect(t, "boot-uri: ", 20*time.Second), "boot-uri: ")
	root.expect(t, "status: partial", 5*time.Second)

	joiner := func(host string, extra ...string) *proc {
		args := append([]string{"join", "--boot", uri, "--cert", cert, "--topo", "kary:2", "--hostname", host}, timing...)
		return startProc(t, bin, append(args, extra...)...)
	}
	js := map[string]*proc{}
	for _, h := range []string{"node1", "node2", "node3"} {
		js[h] = joiner(h)
	}
	ranks := map[string]*proc{}
	for _, p := range js {
		ranks[p.expect(t, "rank: ", 30*time.Second)] = p
		p.expect(t, "state: online", 5*time.Second)
	}
	for _, want := range []string{"rank: 1", "rank: 2", "rank: 3"} {
		if ranks[want] == nil {
			t.Fatalf("no joiner printed %q", want)
		}
	}
	root.expect(t, "status: full", 10*time.Second)

	// Kill rank 3 (a leaf under rank 1): a crash, no goodbye.
	if err := ranks["rank: 3"].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	root.expect(t, "status: degraded", 10*time.Second)
	repl := joiner("node3b")
	if l := repl.expect(t, "rank: ", 30*time.Second); l != "rank: 3" {
		t.Fatalf("replacement got %q, want rank 3", l)
	}
	repl.expect(t, "parent: 1", 5*time.Second)
	root.expect(t, "status: full", 10*time.Second)

	// A clean leave: SIGINT, goodbye, exit 0; the instance becomes partial.
	if err := repl.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	repl.expect(t, "state: left", 10*time.Second)
	if err := repl.wait(t); err != nil {
		t.Fatalf("leaving joiner exited with %v", err)
	}
	root.expect(t, "status: partial", 10*time.Second)

	// A joiner with another instance's certificate is refused.
	bad := filepath.Join(dir, "other.cert")
	other := startProc(t, bin, "start", "--size", "1", "--cert", bad)
	otherURI := strings.TrimPrefix(other.expect(t, "boot-uri: ", 20*time.Second), "boot-uri: ")
	p := startProc(t, bin, "join", "--boot", uri, "--cert", bad, "--topo", "kary:2")
	if err := p.wait(t); err == nil {
		t.Fatal("joiner with a foreign certificate succeeded")
	}
	// F11: an instance without a size override has no rank to give.
	p = startProc(t, bin, "join", "--boot", otherURI, "--cert", bad)
	if err := p.wait(t); err == nil || !strings.Contains(p.stderr.String(), "flub-join: boot-flub: there are no available ranks") {
		t.Fatalf("join on a size-1 instance: %v, stderr %q", err, p.stderr.String())
	}
	for _, p := range []*proc{ranks["rank: 1"], ranks["rank: 2"], root, other} {
		_ = p.cmd.Process.Signal(os.Interrupt)
		if err := p.wait(t); err != nil {
			t.Errorf("%v exited with %v", p.cmd.Args[1:3], err)
		}
	}
}
