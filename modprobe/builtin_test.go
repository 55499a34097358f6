package modprobe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/realflux"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Commands the default rc1 and rc3 run, as flux-core's rc1.py and rc3.py
// run them.
const (
	checkCleanShutdown = "if ! flux startlog --check --quiet; then\n" +
		"    echo \"Flux was not shut down properly.  Data may have been lost.\"\nfi\n"
	fsckCommand    = "flux fsck --repair --job-aware --quiet"
	restoreCommand = "flux restore --sd-notify --quiet --checkpoint --size-limit=100M "
	dumpCommand    = "flux dump --sd-notify --quiet --ignore-failed-read --no-cache --maxreqs=128 --checkpoint "
	aCheckpoint    = `[{"version":1,"rootref":"sha1-8ce5cc58479ca64e9259aaf9cb5cbb3cffd1d83b","sequence":1,"timestamp":1.5}]`
)

// attrRmHandle answers attr.rm itself, which the in-process broker lacks,
// recording the names; every other request goes to the broker.
type attrRmHandle struct {
	fluxkit.Handle
	mu      sync.Mutex
	removed []string
}

func (a *attrRmHandle) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if req.Topic != "attr.rm" {
		return a.Handle.Request(ctx, req)
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(req.Payload, &in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.removed = append(a.removed, in.Name)
	a.mu.Unlock()
	return &answeredCall{msg: fluxkit.ResponseTo(req, nil, 0)}, nil
}

func (a *attrRmHandle) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.removed...)
}

// answeredCall is a call whose only response is already there.
type answeredCall struct {
	msg  *fluxkit.Message
	done bool
}

func (c *answeredCall) Matchtag() uint32 { return 0 }
func (c *answeredCall) Close()           {}
func (c *answeredCall) Recv(context.Context) (*fluxkit.Message, error) {
	if c.done {
		return nil, fluxkit.Errorf(fluxkit.ENODATA, "no more responses")
	}
	c.done = true
	return c.msg, nil
}

// rc1 runs the default rc1 on rank 0 with the fake services and sh.
func (h *harness) rc1(sh *fakeShell, mutate ...func(*Config)) error {
	h.t.Helper()
	h.stubServices(0)
	_, err := h.mp(0, append([]func(*Config){withShell(sh)}, mutate...)...).RC1(testutil.Context(h.t))
	return err
}

// rc3 runs the default rc1 on rank 0, then rc3 with sh.
func (h *harness) rc3(sh Shell) error {
	h.t.Helper()
	h.loadRC1(0)
	_, err := h.mp(0, withShell(sh)).RC3(testutil.Context(h.t))
	return err
}

// moduleArgs returns the arguments module was loaded with.
func (h *harness) moduleArgs(module string) []string {
	h.t.Helper()
	for _, op := range h.b.Rank(0).ModuleLog() {
		if op.Op == "load" && op.Name == module {
			return op.Args
		}
	}
	require.FailNow(h.t, module+" was not loaded")
	return nil
}

func TestFsckOnlyWhenACheckpointExists(t *testing.T) {
	// A first start has no checkpoint: nothing to check.
	h := newHarness(t, testbroker.Config{})
	sh := &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.NotContains(t, sh.commands(), fsckCommand)
	reqs := h.stubs[0].requests("content.checkpoint-get")
	require.Len(t, reqs, 1)
	assert.Empty(t, reqs[0].Payload, "flux-core sends no payload")
	assert.Equal(t, fluxkit.NodeidAny, reqs[0].Nodeid)

	// A checkpoint from an earlier run: the content store is checked
	// before the KVS loads.
	h = newHarness(t, testbroker.Config{})
	h.stubServices(0).set(aCheckpoint, nil)
	sh = &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Contains(t, sh.commands(), fsckCommand)

	// Not in recovery mode: the task is not even planned.
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"broker.recovery-mode": "1"}})
	h.stubServices(0).set(aCheckpoint, nil)
	sh = &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.NotContains(t, sh.commands(), fsckCommand)
	assert.Empty(t, h.stubs[0].requests("content.checkpoint-get"))
}

func TestFsckFailureRemovesContentDump(t *testing.T) {
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"content.dump": "auto"}})
	h.stubServices(0).set(aCheckpoint, nil)
	sh := &fakeShell{fail: map[string]error{fsckCommand: &ExitError{Code: 1}}}
	ah := &attrRmHandle{Handle: h.b.Owner(0)}
	h.via = ah
	err := h.rc1(sh)
	require.Error(t, err)
	assert.Contains(t, h.stderr.String(), "fsck: bash: exited with exit status 1\n")
	assert.Equal(t, []string{"content.dump"}, ah.names(), "rc3 must not dump what fsck could not repair")
	assert.NotContains(t, h.b.Rank(0).Modules(), "kvs", "the KVS never loads on a damaged store")

	// bash that cannot start is no verdict on the content: it stays.
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"content.dump": "auto"}})
	h.stubServices(0).set(aCheckpoint, nil)
	sh = &fakeShell{fail: map[string]error{fsckCommand: errors.New("bash: no such file")}}
	ah = &attrRmHandle{Handle: h.b.Owner(0)}
	h.via = ah
	require.Error(t, h.rc1(sh))
	assert.Empty(t, ah.names())
}

func TestFsckCheckpointLookupError(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.stubServices(0).set("", map[string]error{"content.checkpoint-get": fluxkit.Errorf(syscall.EIO, "disk on fire")})
	sh := &fakeShell{}
	require.Error(t, h.rc1(sh))
	assert.Contains(t, h.stderr.String(), "fsck: content.checkpoint-get: disk on fire\n")
	assert.NotContains(t, sh.commands(), fsckCommand)
}

func TestRestoreNamedDump(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump.tgz")
	require.NoError(t, os.WriteFile(dump, nil, 0o644))
	// The path is printed and used as pathlib spells it.
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"content.restore": dir + "//./dump.tgz/"}})
	h.stubServices(0).set(aCheckpoint, nil)
	sh := &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Equal(t, []string{"truncate"}, h.moduleArgs("content-sqlite"))
	assert.Equal(t, "restoring content from "+dump+"\n", h.stdout.String())
	assert.Contains(t, sh.commands(), restoreCommand+shellQuote(dump))
	assert.NotContains(t, sh.commands(), fsckCommand, "a restored dump needs no check")

	// A dump that is not there: the store is still truncated, nothing is
	// restored, and fsck checks what there is.
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"content.restore": filepath.Join(dir, "missing.tgz")}})
	h.stubServices(0).set(aCheckpoint, nil)
	sh = &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Equal(t, []string{"truncate"}, h.moduleArgs("content-sqlite"))
	assert.Equal(t, "restoring content from "+filepath.Join(dir, "missing.tgz")+"\n", h.stdout.String())
	assert.NotContains(t, strings.Join(sh.commands(), "\n"), "flux restore")
	assert.Contains(t, sh.commands(), fsckCommand)

	// A failed restore fails rc1.
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"content.restore": dump}})
	sh = &fakeShell{fail: map[string]error{restoreCommand + shellQuote(dump): &ExitError{Code: 1}}}
	require.Error(t, h.rc1(sh))
	assert.Contains(t, h.stderr.String(), "restore: bash: exited with exit status 1\n")
}

// autoDump makes statedir/dump/NAME and points RESTORE at it.
func autoDump(t *testing.T, statedir, name string, create bool) string {
	t.Helper()
	d := filepath.Join(statedir, "dump")
	require.NoError(t, os.MkdirAll(d, 0o755))
	if create {
		require.NoError(t, os.WriteFile(filepath.Join(d, name), nil, 0o644))
	}
	require.NoError(t, os.Symlink(name, filepath.Join(d, "RESTORE")))
	return filepath.Join(d, name)
}

func TestRestoreAuto(t *testing.T) {
	// The statedir is kept (statedir-cleanup=0): its dump/RESTORE link,
	// resolved, names the dump; the link goes once it is restored.
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "statedir")
	require.NoError(t, os.Symlink(real, link))
	dump := autoDump(t, real, "20260101_120000.tgz", true)
	kept := map[string]string{"content.restore": "auto", "statedir": link, "statedir-cleanup": "0"}
	h := newHarness(t, testbroker.Config{Attrs: kept})
	h.stubServices(0).set(aCheckpoint, nil)
	sh := &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Equal(t, "restoring content from "+dump+"\n", h.stdout.String())
	assert.Contains(t, sh.commands(), restoreCommand+shellQuote(dump))
	assert.NotContains(t, sh.commands(), fsckCommand)
	assert.Equal(t, []string{"truncate"}, h.moduleArgs("content-sqlite"))
	assert.NoFileExists(t, filepath.Join(real, "dump", "RESTORE"))
	assert.FileExists(t, dump)

	// No link: nothing to restore, and the store is not truncated.
	h = newHarness(t, testbroker.Config{Attrs: kept})
	sh = &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Empty(t, h.stdout.String())
	assert.Empty(t, h.moduleArgs("content-sqlite"))
	assert.NotContains(t, strings.Join(sh.commands(), "\n"), "flux restore")

	// A link to a dump that is gone: announced, not restored, and the
	// link stays (pathlib's exists() follows it).
	gone := t.TempDir()
	missing := autoDump(t, gone, "20260101_130000.tgz", false)
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"content.restore": "auto", "statedir": gone, "statedir-cleanup": "0"}})
	sh = &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Equal(t, "restoring content from "+missing+"\n", h.stdout.String())
	assert.NotContains(t, strings.Join(sh.commands(), "\n"), "flux restore")
	_, err := os.Lstat(filepath.Join(gone, "dump", "RESTORE"))
	assert.NoError(t, err)
}

func TestRestoreAutoInCurrentDirectory(t *testing.T) {
	// Without statedir-cleanup=0 the statedir goes away with the
	// instance, so "auto" dumps live in the current directory.
	dir := t.TempDir()
	t.Chdir(dir)
	dump := autoDump(t, ".", "20260101_120000.tgz", true)
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"content.restore": "auto", "statedir": t.TempDir(), "statedir-cleanup": "1"}})
	sh := &fakeShell{}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	abs := filepath.Join(dir, dump)
	assert.Equal(t, "restoring content from "+abs+"\n", h.stdout.String())
	assert.Contains(t, sh.commands(), restoreCommand+shellQuote(abs))
	assert.NoFileExists(t, filepath.Join(dir, "dump", "RESTORE"))
}

var dumpName = regexp.MustCompile(`^[0-9]{8}_[0-9]{6}\.tgz$`)

func TestContentDump(t *testing.T) {
	// A named file, used as given.
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"content.dump": "/x//y.tgz"}})
	sh := &fakeShell{}
	require.NoError(t, h.rc3(sh), h.stderr.String())
	assert.Equal(t, "dumping content to /x//y.tgz\n", h.stdout.String())
	assert.Contains(t, sh.commands(), dumpCommand+"'/x//y.tgz'")
	flush := h.stubs[0].requests("content.flush")
	require.Len(t, flush, 1)
	assert.Empty(t, flush[0].Payload, "flux-core sends no payload")
	assert.Equal(t, fluxkit.NodeidAny, flush[0].Nodeid)

	// "auto" in a kept statedir: a timestamped file, and RESTORE points at
	// it for the next start's content.restore=auto.
	statedir := t.TempDir()
	attrs := map[string]string{"content.dump": "auto", "statedir": statedir, "statedir-cleanup": "0"}
	h = newHarness(t, testbroker.Config{Attrs: attrs})
	sh = &fakeShell{}
	require.NoError(t, h.rc3(sh), h.stderr.String())
	file, ok := strings.CutPrefix(h.stdout.String(), "dumping content to "+filepath.Join(statedir, "dump")+"/")
	require.True(t, ok, h.stdout.String())
	file = strings.TrimSuffix(file, "\n")
	assert.Regexp(t, dumpName, file)
	assert.Contains(t, sh.commands(), dumpCommand+shellQuote(filepath.Join(statedir, "dump", file)))
	target, err := os.Readlink(filepath.Join(statedir, "dump", "RESTORE"))
	require.NoError(t, err)
	assert.Equal(t, file, target)

	// A RESTORE link left from before makes the task fail, as os.symlink
	// does in flux-core.
	h = newHarness(t, testbroker.Config{Attrs: attrs})
	require.Error(t, h.rc3(&fakeShell{}))
	assert.Contains(t, h.stderr.String(), "content-dump: symlink ")
	assert.Contains(t, h.stderr.String(), syscall.EEXIST.Error())

	// A failed dump leaves no link.
	statedir = t.TempDir()
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"content.dump": "auto", "statedir": statedir, "statedir-cleanup": "0"}})
	require.Error(t, h.rc3(prefixFail{prefix: dumpCommand, code: 2}))
	assert.Contains(t, h.stderr.String(), "content-dump: bash: exited with exit status 2\n")
	_, err = os.Lstat(filepath.Join(statedir, "dump", "RESTORE"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// prefixFail fails every command that starts with prefix.
type prefixFail struct {
	prefix string
	code   int
}

func (p prefixFail) Run(_ context.Context, command string, _ []string, _, _ io.Writer) error {
	if strings.HasPrefix(command, p.prefix) {
		return &ExitError{Code: p.code}
	}
	return nil
}

func TestContentDumpAutoInCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"content.dump": "auto"}})
	sh := &fakeShell{}
	require.NoError(t, h.rc3(sh), h.stderr.String())
	file, ok := strings.CutPrefix(h.stdout.String(), "dumping content to dump/")
	require.True(t, ok, h.stdout.String())
	file = strings.TrimSuffix(file, "\n")
	assert.Regexp(t, dumpName, file)
	assert.Contains(t, sh.commands(), dumpCommand+shellQuote("dump/"+file))
	target, err := os.Readlink(filepath.Join(dir, "dump", "RESTORE"))
	require.NoError(t, err)
	assert.Equal(t, file, target)
}

func TestPushCleanup(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	require.NoError(t, h.rc1(&fakeShell{}), h.stderr.String())
	reqs := h.stubs[0].requests("runat.push")
	require.Len(t, reqs, 1)
	assert.Equal(t, fluxkit.NodeidAny, reqs[0].Nodeid)
	assert.JSONEq(t, `{"name": "cleanup", "commands": [
		"flux queue idle --quiet",
		"flux cancel --user=all --quiet --states RUN",
		"flux resource acquire-mute",
		"flux queue stop --quiet --all --nocheckpoint"]}`, string(reqs[0].Payload))

	// FLUX_DISABLE_JOB_CLEANUP in the local environment, checked when the
	// task runs, turns it off ...
	h = newHarness(t, testbroker.Config{})
	h.env["FLUX_DISABLE_JOB_CLEANUP"] = ""
	s, err := h.mp(0).PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	assert.Contains(t, s.Plan().Names(), "push-cleanup", "the task is planned; it does nothing")
	require.NoError(t, h.rc1(&fakeShell{}), h.stderr.String())
	assert.Empty(t, h.stubs[0].requests("runat.push"))

	// ... the broker's environment does not.
	h = newHarness(t, testbroker.Config{Env: map[string]string{"FLUX_DISABLE_JOB_CLEANUP": "1"}})
	require.NoError(t, h.rc1(&fakeShell{}), h.stderr.String())
	assert.Len(t, h.stubs[0].requests("runat.push"), 1)
}

func TestTaskWhenConditions(t *testing.T) {
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"a": "1"}, Config: "[c]\nk = 5\n"})
	rc := h.write("rc.toml", `
[[tasks]]
name = "all-hold"
when-attrs = ["a=1"]
when-config = ["c.k=5", "!c.nope"]
when-env = ["E"]
print = "all-hold ran"

[[tasks]]
name = "attr-fails"
when-attrs = ["!a"]
print = "attr-fails ran"

[[tasks]]
name = "env-changed"
after = ["setter"]
when-env = ["!E"]
print = "env-changed ran"

[[tasks]]
name = "setter"
after = ["all-hold"]
setenv = { E = "" }
`)
	h.env["E"] = "x"
	s, err := h.mp(0).PrepareRunFile(testutil.Context(t), rc)
	require.NoError(t, err)
	rep, err := s.Execute(testutil.Context(t))
	require.NoError(t, err)
	assert.Equal(t, "all-hold ran\n", h.stdout.String())
	assert.Len(t, rep.Tasks, 4, "a task whose conditions fail still runs, doing nothing")
}

func TestSlurmExpirationSync(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["SLURM_JOB_ID"] = " 1_234 "
	require.NoError(t, h.rc1(&fakeShell{}), h.stderr.String())
	reqs := h.stubs[0].requests("rexec.exec")
	require.Len(t, reqs, 1)
	req := reqs[0]
	assert.Equal(t, fluxkit.NodeidAny, req.Nodeid)
	assert.False(t, req.IsStreaming(), "a non-streaming exec runs in the background")
	var in struct {
		Cmd struct {
			Cmdline  []string          `json:"cmdline"`
			Label    string            `json:"label"`
			Cwd      string            `json:"cwd"`
			Env      map[string]string `json:"env"`
			Opts     map[string]string `json:"opts"`
			Channels []string          `json:"channels"`
		} `json:"cmd"`
		Flags *int `json:"flags"`
	}
	require.NoError(t, json.Unmarshal(req.Payload, &in), string(req.Payload))
	assert.Equal(t, []string{"flux", "slurm-expiration-sync", "--jobid=1234"}, in.Cmd.Cmdline)
	assert.Equal(t, "slurm-sync", in.Cmd.Label)
	wd, _ := os.Getwd()
	assert.Equal(t, wd, in.Cmd.Cwd)
	assert.Equal(t, "flux", in.Cmd.Env["YOGRT_BACKEND"])
	assert.Equal(t, " 1_234 ", in.Cmd.Env["SLURM_JOB_ID"])
	assert.Equal(t, "t", in.Cmd.Env["FLUX_RC_USE_MODPROBE"])
	assert.Equal(t, map[string]string{}, in.Cmd.Opts)
	assert.Equal(t, []string{}, in.Cmd.Channels)
	require.NotNil(t, in.Flags)
	assert.Zero(t, *in.Flags)
	v, ok := h.b.Rank(0).Env("YOGRT_BACKEND")
	assert.True(t, ok)
	assert.Equal(t, "flux", v, "rc2 and rc3 inherit YOGRT_BACKEND")

	// SLURM_JOB_ID in the broker's environment only.
	h = newHarness(t, testbroker.Config{Env: map[string]string{"SLURM_JOB_ID": "77"}})
	require.NoError(t, h.rc1(&fakeShell{}), h.stderr.String())
	reqs = h.stubs[0].requests("rexec.exec")
	require.Len(t, reqs, 1)
	assert.Contains(t, string(reqs[0].Payload), `"--jobid=77"`)

	// Not a number: reported and skipped.
	h = newHarness(t, testbroker.Config{})
	h.env["SLURM_JOB_ID"] = "12a"
	require.NoError(t, h.rc1(&fakeShell{}), h.stderr.String())
	assert.Equal(t, "invalid SLURM_JOB_ID. Skipping expiration sync\n", h.stderr.String())
	assert.Empty(t, h.stubs[0].requests("rexec.exec"))
	_, ok = h.b.Rank(0).Env("YOGRT_BACKEND")
	assert.False(t, ok)

	// The broker refuses: rc1 fails.
	h = newHarness(t, testbroker.Config{})
	h.env["SLURM_JOB_ID"] = "5"
	h.stubServices(0).set("", map[string]error{"rexec.exec": fluxkit.Errorf(fluxkit.ENOSYS, "subprocess server is shutting down")})
	require.Error(t, h.rc1(&fakeShell{}))
	assert.Contains(t, h.stderr.String(), "slurm-expiration-sync: rexec flux slurm-expiration-sync --jobid=5: subprocess server is shutting down\n")

	// Another instance owner: the request would need an RFC 42 signature.
	h = newHarness(t, testbroker.Config{Attrs: map[string]string{"security.owner": strconv.Itoa(os.Getuid() + 1)}})
	h.env["SLURM_JOB_ID"] = "5"
	require.Error(t, h.rc1(&fakeShell{}))
	assert.Contains(t, h.stderr.String(), "needs flux-security")
	assert.Empty(t, h.stubs[0].requests("rexec.exec"))
}

func TestPyInt(t *testing.T) {
	for in, want := range map[string]string{
		"42": "42", " 42\n": "42", "+7": "7", "-7": "-7", "007": "7", "0": "0", "-0": "0",
		"1_000": "1000", "00_0": "0", "123456789012345678901234567890": "123456789012345678901234567890",
		"": "", " ": "", "+": "", "1_": "", "_1": "", "1__0": "", "1.0": "", "0x10": "", "12a": "", "- 1": "",
	} {
		got, ok := pyInt(in)
		assert.Equal(t, want != "", ok, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
}

func TestFakeResources(t *testing.T) {
	encode := "'flux' 'R' 'encode' '-r0-3' '-Hfake[0-3]' '-c' '0-63'"
	r := `{"version": 1, "execution": {"R_lite": [{"rank": "0-3", "children": {"core": "0-63"}}], "nodelist": ["fake[0-3]"]}}`
	h := newHarness(t, testbroker.Config{Config: "[fake-resources]\nnnodes = 4\n"})
	h.write("modprobe.d/resource.toml", "resource.args = [\"site-default\"]\n")
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	sh := &fakeShell{out: map[string]string{encode: r + "\n"}}
	require.NoError(t, h.rc1(sh), h.stderr.String())
	assert.Contains(t, sh.commands(), encode)
	got, ok := h.b.KVSGet("resource.R")
	require.True(t, ok)
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, []byte(r)))
	assert.Equal(t, compact.String(), string(got))
	assert.Equal(t, "Encoding fake R: 4 nodes, 64 cores/node, 0 GPUs/node\nFake resources injected.\n", h.stdout.String())
	assert.Equal(t, []string{"monitor-force-up", "noverify"}, h.moduleArgs("resource"), "the module's own arguments are replaced")
}

func TestFakeResourcesShapes(t *testing.T) {
	for _, c := range []struct{ config, command string }{
		{"nnodes = 1\ncores-per-node = 1\ngpus-per-node = 2\nhost-prefix = \"node\"",
			"'flux' 'R' 'encode' '-r0' '-Hnode[0-0]' '-c' '0' '-g' '0-1'"},
		{"nnodes = 2\ncores-per-node = 8\ngpus-per-node = 1",
			"'flux' 'R' 'encode' '-r0-1' '-Hfake[0-1]' '-c' '0-7' '-g' '0'"},
		{"nnodes = 1\nhwloc-xml-path = \"/x/top.xml\"", "'flux' 'R' 'encode' '--xml=/x/top.xml' '-r' '0' '-H' 'fake0'"},
		{"nnodes = 3\nhwloc-xml-path = \"/x/top.xml\"\ncores-per-node = 9", "'flux' 'R' 'encode' '--xml=/x/top.xml' '-r' '0-2' '-H' 'fake[0-2]'"},
		{"nnodes = 2\namend-r = \"my.mod:amend\"",
			"set -o pipefail; 'flux' 'R' 'encode' '-r0-1' '-Hfake[0-1]' '-c' '0-63' | flux python -c " + shellQuote(amendProgram) + " 'my.mod:amend'"},
		{"nnodes = 2\namend-r = \"/a.py\"\nhwloc-xml-path = \"/t.xml\"",
			"set -o pipefail; 'flux' 'R' 'encode' '--xml=/t.xml' '-r' '0-1' '-H' 'fake[0-1]' | flux python -c " + shellQuote(amendProgram) + " '/a.py' '/t.xml'"},
	} {
		h := newHarness(t, testbroker.Config{Config: "[fake-resources]\n" + c.config + "\n"})
		sh := &fakeShell{out: map[string]string{c.command: `{"version":1}`}}
		require.NoError(t, h.rc1(sh), "%s\n%s\n%q", c.config, h.stderr.String(), sh.commands())
		assert.Contains(t, sh.commands(), c.command)
		if strings.Contains(c.config, "xml") {
			assert.Equal(t, "Fake resources injected.\n", h.stdout.String())
		}
	}
}

func TestFakeResourcesErrors(t *testing.T) {
	encode := "'flux' 'R' 'encode' '-r0' '-Hfake[0-0]' '-c' '0-63'"
	for _, c := range []struct {
		config string
		out    string
		fail   error
		want   string
	}{
		{config: "fake-resources = 5", want: "fake-resources: [fake-resources] must be a table, got number 5"},
		{config: "[fake-resources]\ncores-per-node = 2", want: "fake-resources: [fake-resources] table requires the 'nnodes' key"},
		{config: "[fake-resources]\nnnodes = \"4\"", want: `fake-resources: [fake-resources] key nnodes: expected an integer, got string "4"`},
		{config: "[fake-resources]\nnnodes = 0", want: "fake-resources: [fake-resources] key nnodes: must be at least 1, got 0"},
		{config: "[fake-resources]\nnnodes = 1\ncores-per-node = true", want: "fake-resources: [fake-resources] key cores-per-node: expected an integer, got boolean true"},
		{config: "[fake-resources]\nnnodes = 1\ngpus-per-node = -1", want: "fake-resources: [fake-resources] key gpus-per-node: must be at least 0, got -1"},
		{config: "[fake-resources]\nnnodes = 1\nhost-prefix = 3", want: "fake-resources: [fake-resources] key host-prefix: expected a string, got number 3"},
		{config: "[fake-resources]\nnnodes = 1", fail: &ExitError{Code: 1}, want: "fake-resources: encoding R: bash: exited with exit status 1"},
		{config: "[fake-resources]\nnnodes = 1", out: "oops\n", want: `fake-resources: encoding R: the output is not a JSON object: "oops\n"`},
		{config: "[fake-resources]\nnnodes = 1", out: "[1]", want: `fake-resources: encoding R: the output is not a JSON object: "[1]"`},
	} {
		h := newHarness(t, testbroker.Config{Config: c.config + "\n"})
		sh := &fakeShell{out: map[string]string{encode: c.out}, fail: map[string]error{encode: c.fail}}
		require.Error(t, h.rc1(sh), c.config)
		assert.Contains(t, h.stderr.String(), c.want+"\n", c.config)
		_, ok := h.b.KVSGet("resource.R")
		assert.False(t, ok, c.config)
		assert.NotContains(t, h.b.Rank(0).Modules(), "resource", c.config)
	}
}

func TestFakeResourcesAmender(t *testing.T) {
	// The amend-r program against flux-core's own load_amender.
	flux := realflux.Require(t)
	dir := t.TempDir()
	amender := filepath.Join(dir, "amend.py")
	require.NoError(t, os.WriteFile(amender, []byte("def amend(R, hwloc_xml=None):\n    R['scheduling'] = {'xml': hwloc_xml}\n    return R\n"), 0o644))
	xml := filepath.Join(dir, "top.xml")
	require.NoError(t, os.WriteFile(xml, []byte("<topology/>"), 0o644))
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(flux, append([]string{"python", "-c", amendProgram}, args...)...)
		cmd.Stdin = strings.NewReader(`{"version": 1}`)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	out, stderr, err := run(amender, xml)
	require.NoError(t, err, stderr)
	assert.JSONEq(t, `{"version": 1, "scheduling": {"xml": "<topology/>"}}`, out)
	out, stderr, err = run(amender)
	require.NoError(t, err, stderr)
	assert.JSONEq(t, `{"version": 1, "scheduling": {"xml": null}}`, out)
	_, stderr, err = run(filepath.Join(dir, "nope.py"))
	require.Error(t, err)
	assert.Contains(t, stderr, "[fake-resources] amend-r: file not found: ")
}

func TestBuiltinTaskErrors(t *testing.T) {
	for src, want := range map[string]string{
		"[[tasks]]\nname = \"t\"\nbuiltin = \"fsk\"\n":                      `rc.toml:3: tasks[0].builtin: unknown builtin "fsk" (did you mean "fsck"?)`,
		"[[tasks]]\nname = \"t\"\nbuiltin = \"nothing-like-it\"\n":          `unknown builtin "nothing-like-it" (known: check-restore, content-dump, fake-resources, fsck, restore, slurm-expiration-sync)`,
		"[[tasks]]\nname = \"t\"\nbuiltin = \"fsck\"\nrun = \"true\"\n":     "rc.toml:4: tasks[0].run: t: run cannot be combined with builtin",
		"[[tasks]]\nname = \"t\"\nsetenv = {A = \"b\"}\nbuiltin = \"fsck\"": "tasks[0].setenv: t: setenv cannot be combined with builtin",
		"[[tasks]]\nname = \"t\"\nbuiltin = 3\n":                            "tasks[0].builtin: key builtin: expected a string, got integer 3",
		"[[tasks]]\nname = \"t\"\nwhen-env = \"X\"\n":                       "tasks[0].when-env: key when-env: expected an array of strings",
		"[[tasks]]\nname = \"t\"\nwhen-attr = [\"X\"]\n":                    `unknown task argument when-attr (did you mean "when-attrs"?)`,
	} {
		_, err := parseRCFile("rc.toml", []byte(src))
		require.Error(t, err, src)
		assert.Contains(t, err.Error(), want, src)
	}
	u, err := parseRCFile("rc.toml", []byte("[[tasks]]\nname = \"t\"\nbuiltin = \"fsck\"\nwhen-env = [\"X\"]\nafter = [\"kvs\"]\n"))
	require.NoError(t, err)
	assert.Equal(t, "fsck", u.tasks[0].action.builtin)
}

func TestPathlibString(t *testing.T) {
	for in, want := range map[string]string{
		"": ".", ".": ".", "./": ".", "a": "a", "a/": "a", "./a//b/./c/": "a/b/c", "a/../b": "a/../b",
		"/": "/", "//": "//", "///": "/", "//a": "//a", "///a//": "/a", "/./x": "/x", "./dump/RESTORE": "dump/RESTORE",
	} {
		assert.Equal(t, want, pathlibString(in), "%q", in)
	}
}

func TestRealpath(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "real", "sub"), 0o755))
	require.NoError(t, os.Symlink("real", filepath.Join(dir, "rel")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "real", "sub"), filepath.Join(dir, "abs")))
	require.NoError(t, os.Symlink("missing/file", filepath.Join(dir, "dangling")))
	require.NoError(t, os.Symlink("loop", filepath.Join(dir, "loop")))
	for in, want := range map[string]string{
		"rel/sub":          "real/sub",
		"abs/..":           "real",
		"rel/../rel/./sub": "real/sub",
		"dangling":         "missing/file",
		"nosuch/x":         "nosuch/x",
	} {
		got, err := realpath(dir + "/" + in) // not Join, which would clean it
		require.NoError(t, err, in)
		assert.Equal(t, filepath.Join(dir, want), got, in)
	}
	_, err = realpath(filepath.Join(dir, "loop"))
	assert.ErrorIs(t, err, syscall.ELOOP)

	t.Chdir(dir)
	got, err := realpath("rel/sub")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "real", "sub"), got, "relative to the current directory")
}

func TestCronLoad(t *testing.T) {
	// The shell loop of the default cron-load task, run by bash against a
	// stand-in flux that logs each crontab and refuses one saying "bad".
	bin := t.TempDir()
	cronLog := filepath.Join(t.TempDir(), "tabs")
	require.NoError(t, os.WriteFile(filepath.Join(bin, "flux"), []byte(`#!/bin/sh
case "$1" in
getattr) echo "$CRON_DIR" ;;
cron) tab=$(cat); echo "$tab" >> "$CRON_LOG"; case "$tab" in *bad*) exit 3 ;; esac ;;
esac
`), 0o755))
	run := func(dir string) (*harness, error) {
		h := newHarness(t, testbroker.Config{Attrs: map[string]string{"cron.directory": dir}})
		h.env["PATH"] = bin + ":" + os.Getenv("PATH")
		h.env["CRON_DIR"] = dir
		h.env["CRON_LOG"] = cronLog
		h.stubServices(0)
		_, err := h.mp(0).RC1(testutil.Context(t))
		return h, err
	}
	dir := t.TempDir()
	for name, tab := range map[string]string{"a": "1 * * * * a", ".hidden": "2 * * * * hidden"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(tab+"\n"), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "subdir"), 0o755))
	h, err := run(dir)
	require.NoError(t, err, h.stderr.String())
	b, err := os.ReadFile(cronLog)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"1 * * * * a", "2 * * * * hidden"}, testutil.Lines(string(b)), "every regular file, hidden ones too")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "b"), []byte("bad\n"), 0o644))
	h, err = run(dir)
	require.Error(t, err)
	assert.Contains(t, h.stderr.String(), "could not load crontab: "+filepath.Join(dir, "b")+"\n")
	assert.Contains(t, h.stderr.String(), "cron-load: bash: exited with exit status 1\n")

	// Not a directory: nothing to load.
	require.NoError(t, os.Remove(cronLog))
	h, err = run(filepath.Join(dir, "a"))
	require.NoError(t, err, h.stderr.String())
	assert.NoFileExists(t, cronLog)
}
