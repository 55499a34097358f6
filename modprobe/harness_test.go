package modprobe

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/stretchr/testify/require"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/internal/testutil"
)

// harness is an in-process instance plus the local environment, output
// buffers and a scratch FLUX_MODPROBE_PATH directory for one test.
type harness struct {
	t      *testing.T
	b      *testbroker.Broker
	env    map[string]string
	dir    string
	stdout testutil.Buffer
	stderr testutil.Buffer
	stubs  map[uint32]*fakeServices
	// via, when set, is the handle every Modprobe of the test uses
	// instead of an owner handle to its rank.
	via fluxkit.Handle
}

func newHarness(t *testing.T, cfg testbroker.Config) *harness {
	t.Helper()
	leakcheck.Check(t)
	h := &harness{t: t, env: map[string]string{}, dir: t.TempDir()}
	h.b = brokertest.New(t, cfg)
	return h
}

// write creates a file under the scratch directory.
func (h *harness) write(rel, content string) string {
	h.t.Helper()
	p := filepath.Join(h.dir, rel)
	require.NoError(h.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(h.t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func (h *harness) lookup(name string) (string, bool) {
	v, ok := h.env[name]
	return v, ok
}

func (h *harness) environ() []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range h.env {
		out = append(out, k+"="+v)
	}
	return out
}

// mp returns a Modprobe on rank, with output captured and the confdir set
// to a directory that does not exist (no system files leak in).
func (h *harness) mp(rank uint32, mutate ...func(*Config)) *Modprobe {
	h.t.Helper()
	cfg := Config{
		LookupEnv: h.lookup,
		Environ:   h.environ,
		ConfDir:   filepath.Join(h.dir, "no-such-confdir"),
		Stdout:    &h.stdout,
		Stderr:    &h.stderr,
	}
	for _, f := range mutate {
		f(&cfg)
	}
	var hd fluxkit.Handle = h.b.Owner(rank)
	if h.via != nil {
		hd = h.via
	}
	m, err := New(hd, cfg)
	require.NoError(h.t, err)
	return m
}

func dryRun(c *Config)  { c.DryRun = true }
func verbose(c *Config) { c.Verbose = true }

// printTask is a task that prints its own name, or text when given.
func printTask(t Task, text ...string) Task {
	line := t.Name
	if len(text) > 0 {
		line = text[0]
	}
	t.Run = func(_ context.Context, c *Context) error {
		_, err := c.Stdout().Write([]byte(line + "\n"))
		return err
	}
	return t
}

// fakeShell records commands instead of running them. A command in out
// writes that text to stdout; one in fail returns that error.
type fakeShell struct {
	mu   sync.Mutex
	cmds []string
	envs [][]string
	fail map[string]error
	out  map[string]string
}

func (f *fakeShell) Run(_ context.Context, command string, env []string, stdout, _ io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, command)
	f.envs = append(f.envs, env)
	if out, ok := f.out[command]; ok {
		if _, err := io.WriteString(stdout, out); err != nil {
			return err
		}
	}
	return f.fail[command]
}

func (f *fakeShell) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

// fakeServices stands in for the flux-core services that the default rc
// tasks call and the in-process instance lacks: runat.push,
// content.flush, content.checkpoint-get (no checkpoint unless one is set,
// as at a first start) and rexec.exec. Every request is recorded.
type fakeServices struct {
	mu         sync.Mutex
	reqs       []*fluxkit.Message
	checkpoint string // JSON value; "" answers ENOENT
	errs       map[string]error
}

func (f *fakeServices) serve(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req.Clone())
	err, cp := f.errs[req.Topic], f.checkpoint
	f.mu.Unlock()
	switch {
	case err != nil:
		_ = w.RespondError(err)
	case req.Topic == "content.checkpoint-get" && cp == "":
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "no checkpoint"))
	case req.Topic == "content.checkpoint-get":
		_ = w.Respond([]byte(`{"value":` + cp + `}`))
	case req.Topic == "rexec.exec":
		_ = w.Respond([]byte(`{"type":"started","pid":4242}`))
	default:
		_ = w.Respond(nil)
	}
}

func (f *fakeServices) set(checkpoint string, errs map[string]error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpoint, f.errs = checkpoint, errs
}

// topics lists the topics requested, in order, leaving out ignore.
func (f *fakeServices) topics(ignore ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.reqs {
		if !slices.Contains(ignore, m.Topic) {
			out = append(out, m.Topic)
		}
	}
	return out
}

// requests returns the requests for topic.
func (f *fakeServices) requests(topic string) []*fluxkit.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fluxkit.Message
	for _, m := range f.reqs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// stubServices registers the fake services on rank, once.
func (h *harness) stubServices(rank uint32) *fakeServices {
	h.t.Helper()
	if f, ok := h.stubs[rank]; ok {
		return f
	}
	f := &fakeServices{}
	if h.stubs == nil {
		h.stubs = map[uint32]*fakeServices{}
	}
	h.stubs[rank] = f
	hd := h.b.Owner(rank)
	for _, topic := range []string{"runat.push", "content.flush", "content.checkpoint-get", "rexec.exec"} {
		_, err := hd.Register(topic, 0, f.serve)
		require.NoError(h.t, err)
	}
	return f
}

func withShell(s Shell) func(*Config) { return func(c *Config) { c.Shell = s } }

// loadRC1 runs rc1 for real on rank (fake shell, stub services) so that
// the rank's rc1 module set is loaded.
func (h *harness) loadRC1(rank uint32) {
	h.t.Helper()
	h.stubServices(rank)
	_, err := h.mp(rank, withShell(&fakeShell{})).RC1(testutil.Context(h.t))
	require.NoError(h.t, err, "rc1 stderr: %s", h.stderr.String())
	h.stdout.Reset()
	h.stderr.Reset()
}
