package flub

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proc is a flub-join process with its stdout as a line channel.
type proc struct {
	cmd    *exec.Cmd
	stderr *testutil.Buffer
	lines  chan string
	done   chan struct{}
	err    error
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &proc{cmd: cmd, stderr: &testutil.Buffer{}, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
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

// expect reads lines until one contains want and returns it.
func (p *proc) expect(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(testutil.DefaultTimeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				require.FailNow(t, "the process exited", "%s exited before printing %q: %v\n%s", p.cmd.Args[1], want, p.err, p.stderr)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			require.FailNow(t, "no line", "%s did not print %q\n%s", p.cmd.Args[1], want, p.stderr)
		}
	}
}

// wait waits for the process to exit and returns how it did.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(testutil.DefaultTimeout):
		require.FailNow(t, "process did not exit", "%v", p.cmd.Args)
	}
	return nil
}

// flub-join processes grow an instance run by another: a killed broker is
// replaced, one interrupted leaves cleanly, a joiner with another
// instance's certificate and one of an instance with no rank to give are
// refused.
func TestFlubJoinProcessesGrowAnInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	leakcheck.Check(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "flub-join")
	out, err := exec.Command("go", "build", "-o", bin, "../examples/flub-join").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	cert := filepath.Join(dir, "owner.cert")
	timing := []string{"--heartbeat", "100ms", "--torpid-max", "3s"}
	root := startProc(t, bin, append([]string{"start", "--size", "4", "--topo", "kary:2", "--cert", cert, "--hostname", "host0"}, timing...)...)
	uri := strings.TrimPrefix(root.expect(t, "boot-uri: "), "boot-uri: ")
	root.expect(t, "status: partial")

	joiner := func(host string, extra ...string) *proc {
		args := append([]string{"join", "--boot", uri, "--cert", cert, "--topo", "kary:2", "--hostname", host}, timing...)
		return startProc(t, bin, append(args, extra...)...)
	}
	var js []*proc
	for _, h := range []string{"node1", "node2", "node3"} {
		js = append(js, joiner(h))
	}
	ranks := map[string]*proc{}
	for _, p := range js {
		ranks[p.expect(t, "rank: ")] = p
		p.expect(t, "state: online")
	}
	for _, want := range []string{"rank: 1", "rank: 2", "rank: 3"} {
		require.Contains(t, ranks, want)
	}
	root.expect(t, "status: full")

	// Kill rank 3 (a leaf under rank 1): a crash, no goodbye.
	require.NoError(t, ranks["rank: 3"].cmd.Process.Signal(syscall.SIGKILL))
	root.expect(t, "status: degraded")
	repl := joiner("node3b")
	assert.Equal(t, "rank: 3", repl.expect(t, "rank: "))
	repl.expect(t, "parent: 1")
	root.expect(t, "status: full")

	// A clean leave: SIGINT, goodbye, exit 0; the instance becomes partial.
	require.NoError(t, repl.cmd.Process.Signal(os.Interrupt))
	repl.expect(t, "state: left")
	require.NoError(t, repl.wait(t), "the leaving joiner's exit")
	root.expect(t, "status: partial")

	bad := filepath.Join(dir, "other.cert")
	other := startProc(t, bin, "start", "--size", "1", "--cert", bad)
	otherURI := strings.TrimPrefix(other.expect(t, "boot-uri: "), "boot-uri: ")
	p := startProc(t, bin, "join", "--boot", uri, "--cert", bad, "--topo", "kary:2")
	require.Error(t, p.wait(t), "a joiner with a foreign certificate")
	// An instance started without a larger size has no rank to give.
	p = startProc(t, bin, "join", "--boot", otherURI, "--cert", bad)
	require.Error(t, p.wait(t), "a joiner of a size-1 instance")
	assert.Contains(t, p.stderr.String(), "flub-join: boot-flub: there are no available ranks")
	for _, p := range []*proc{ranks["rank: 1"], ranks["rank: 2"], root, other} {
		_ = p.cmd.Process.Signal(os.Interrupt)
		assert.NoError(t, p.wait(t), "%v", p.cmd.Args[1:3])
	}
}
