package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/realflux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests boot real flux-core instances whose rc1 and rc3 are this
// command (the test binary, see TestMain), and compare them with instances
// booted by flux-core's own flux modprobe rc1/rc3.

// booter starts flux instances in a scratch directory.
type booter struct {
	t    *testing.T
	flux string
	self string // this command, as the broker runs it
	dir  string
}

func newBooter(t *testing.T) *booter {
	t.Helper()
	flux := realflux.Require(t)
	leakcheck.Check(t)
	self, err := os.Executable()
	require.NoError(t, err)
	return &booter{t: t, flux: flux, self: "'" + strings.ReplaceAll(self, "'", `'\''`) + "'", dir: t.TempDir()}
}

// boot is one finished flux start.
type boot struct {
	stdout string
	log    string // flux start's stderr: the broker log at info level
	err    error
}

// ok fails the test unless the instance exited 0.
func (b boot) ok(t *testing.T) {
	t.Helper()
	require.NoError(t, b.err, "flux start failed\nstdout:\n%s\nlog:\n%s", b.stdout, b.log)
}

// lines returns the lines of stdout that start with prefix, without it.
func (b boot) lines(prefix string) []string {
	var out []string
	for _, l := range strings.Split(b.stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// rcOutput returns what rcN printed on rank r, in order.
func (b boot) rcOutput(n, r int) []string {
	re := regexp.MustCompile(`\[` + strconv.Itoa(r) + `\]: rc` + strconv.Itoa(n) + `\.0: (.*)$`)
	var out []string
	for _, l := range strings.Split(b.log, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

var cleanupLine = regexp.MustCompile(`broker\.info\[0\]: cleanup\.\d+: (.*) Exited`)

// cleanup lists the commands runat ran in the cleanup phase, in order.
func (b boot) cleanup() []string {
	var out []string
	for _, m := range cleanupLine.FindAllStringSubmatch(b.log, -1) {
		out = append(out, m[1])
	}
	return out
}

// rc chooses who runs rc1 and rc3.
type rc int

const (
	coreRC rc = iota // flux-core's flux modprobe
	kitRC            // this command, rc3 verbose
	noRC             // none: only the broker's built-in modules
)

// start runs flux start -s size with the given rc, extra arguments and
// environment, and the initial program, and waits for it to exit.
func (b *booter) start(who rc, size int, env, args []string, program ...string) boot {
	b.t.Helper()
	full := []string{"start", "-s", strconv.Itoa(size), "-Slog-stderr-level=6"}
	switch who {
	case kitRC:
		full = append(full, "-Sbroker.rc1_path="+b.self+" rc1", "-Sbroker.rc3_path="+b.self+" rc3 -v")
	case noRC:
		full = append(full, "-Sbroker.rc1_path=", "-Sbroker.rc3_path=")
	}
	full = append(append(full, args...), program...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.flux, full...)
	cmd.Dir = b.dir
	cmd.Env = append(bootEnv(b.flux), runMainEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return boot{stdout: stdout.String(), log: stderr.String(), err: err}
}

// bootEnv is the test's environment without what would attach an instance
// to an enclosing one, with flux's directory first on PATH so that rc
// commands find the same flux.
func bootEnv(flux string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "FLUX_URI", "FLUX_KVS_NAMESPACE", "FLUX_JOB_ID", "PATH", runMainEnv:
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+filepath.Dir(flux)+":"+os.Getenv("PATH"))
}

// probe is an initial program: "modules R NAME..." for every rank, then
// with BOOT_JOB set "job OUTPUT" of flux run hostname, then with BOOT_PLAN
// set "plan R JSON", the rc3 plan of each rank (flux-modprobe rc3
// --show-deps, run there).
const probe = `set -e
size=$(flux getattr size)
for r in $(seq 0 $((size - 1))); do
    echo "modules $r $(flux exec -r $r flux module list | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' ')"
done
if [ -n "$BOOT_JOB" ]; then
    echo "job $(flux run hostname)"
fi
if [ -n "$BOOT_PLAN" ]; then
    for r in $(seq 0 $((size - 1))); do
        echo "plan $r $(flux exec -r $r sh -c "$BOOT_PLAN rc3 --show-deps")"
    done
fi
`

// modules parses the "modules R ..." lines.
func (b boot) modules() map[int][]string {
	out := map[int][]string{}
	for _, l := range b.lines("modules ") {
		f := strings.Fields(l)
		r, _ := strconv.Atoi(f[0])
		out[r] = f[1:]
	}
	return out
}

func TestRealInstanceBoot(t *testing.T) {
	for _, size := range []int{1, 2} {
		t.Run("size="+strconv.Itoa(size), func(t *testing.T) { testRealInstanceBoot(t, size) })
	}
}

func testRealInstanceBoot(t *testing.T, size int) {
	b := newBooter(t)
	builtin := b.start(noRC, size, nil, nil, "bash", "-c", probe)
	builtin.ok(t)
	ref := b.start(coreRC, size, nil, nil, "bash", "-c", probe)
	ref.ok(t)

	// The instance boots with fluxkit's rc1, runs a job, and shuts down
	// with fluxkit's rc3.
	statedir := t.TempDir()
	ours := b.start(kitRC, size, []string{"BOOT_JOB=1", "BOOT_PLAN=" + b.self}, []string{"-Sstatedir=" + statedir}, "bash", "-c", probe)
	ours.ok(t)
	host, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, []string{host}, ours.lines("job "), "the job ran")
	mods := ours.modules()
	require.Len(t, mods, size)
	assert.Equal(t, ref.modules(), mods, "rc1 loads what flux-core's rc1 loads, on every rank")
	assert.Equal(t, ref.cleanup(), ours.cleanup(), "the same cleanup commands, in the same order")
	assert.Len(t, ours.cleanup(), 4)

	// rc3 removed every module rc1 loaded, each only after what its plan
	// put before it had finished.
	plans := ours.lines("plan ")
	require.Len(t, plans, size)
	for r := range size {
		var plan map[string][]string
		num, js, _ := strings.Cut(plans[r], " ")
		require.Equal(t, strconv.Itoa(r), num)
		require.NoError(t, json.Unmarshal([]byte(js), &plan), js)
		loaded := slices.DeleteFunc(slices.Clone(mods[r]), func(m string) bool { return slices.Contains(builtin.modules()[r], m) })
		checkRemovalOrder(t, r, plan, loaded, ours.rcOutput(3, r))
	}

	// The next start from the same statedir finds the first shut down
	// cleanly, and checks the content store (there is a checkpoint now).
	again := b.start(kitRC, size, nil, []string{"-Sstatedir=" + statedir}, "flux", "startlog")
	again.ok(t)
	log := strings.Split(strings.TrimSpace(again.stdout), "\n")
	require.Len(t, log, 2, again.stdout)
	assert.Regexp(t, `^\S+ \S+ - \S+ \S+ \(`, log[0], "the first run ended")
	assert.Regexp(t, `^\S+ \S+ - running \(`, log[1])
	assert.NotContains(t, again.log, "not shut down properly")
	assert.NotContains(t, again.log, "crashed")
}

// checkRemovalOrder checks rc3's verbose trace on one rank against its plan:
// every planned module and task ran to completion after its predecessors,
// and the modules removed are those rc1 loaded.
func checkRemovalOrder(t *testing.T, rank int, plan map[string][]string, loaded []string, trace []string) {
	t.Helper()
	start, end := map[string]int{}, map[string]int{}
	var removed []string
	for i, l := range trace {
		verb, name, _ := strings.Cut(l, " ")
		switch verb {
		case "module.remove", "start":
			start[name] = i
		case "removed", "completed":
			end[name] = i
		}
		if verb == "removed" {
			removed = append(removed, name)
		}
	}
	for name, preds := range plan {
		if !assert.Contains(t, end, name, "rank %d: %s did not finish\n%s", rank, name, strings.Join(trace, "\n")) {
			continue
		}
		for _, p := range preds {
			assert.Less(t, end[p], start[name], "rank %d: %s started before %s finished", rank, name, p)
		}
	}
	slices.Sort(removed)
	slices.Sort(loaded)
	assert.Equal(t, loaded, removed, "rank %d: rc3 removes what rc1 loaded", rank)
}

func TestRealInstanceUncleanShutdown(t *testing.T) {
	b := newBooter(t)
	statedir := t.TempDir()
	in := realflux.Start(t, realflux.Options{
		Args: []string{"-Sbroker.rc1_path=" + b.self + " rc1", "-Sbroker.rc3_path=" + b.self + " rc3", "-Sstatedir=" + statedir},
		Env:  []string{runMainEnv + "=1", "PATH=" + filepath.Dir(b.flux) + ":" + os.Getenv("PATH")},
	})
	in.Kill()
	again := b.start(kitRC, 1, nil, []string{"-Sstatedir=" + statedir}, "flux", "startlog")
	again.ok(t)
	assert.Contains(t, again.log, "rc1.0: Flux was not shut down properly.  Data may have been lost.\n", "a warning, and the instance still starts")
	assert.Contains(t, again.stdout, "crashed")
}

func TestRealInstanceDumpAndRestore(t *testing.T) {
	// "auto" dumps and restores between fluxkit and flux-core, both ways,
	// with the content store removed in between so that only the dump can
	// carry the KVS across.
	b := newBooter(t)
	statedir := t.TempDir()
	dumpdir := filepath.Join(statedir, "dump")
	store := filepath.Join(statedir, "content.sqlite")
	state := []string{"-Sstatedir=" + statedir}

	// fluxkit dumps. SLURM_JOB_ID also starts the expiration sync helper
	// through the real rexec service.
	first := b.start(kitRC, 1, []string{"SLURM_JOB_ID=4242"}, append(state, "-Scontent.dump=auto"), "flux", "kvs", "put", "test.key=fluxkit")
	first.ok(t)
	assert.Contains(t, first.log, "slurm-sync", "rexec started the helper")
	dump1, err := os.Readlink(filepath.Join(dumpdir, "RESTORE"))
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9]{8}_[0-9]{6}\.tgz$`, dump1)
	assert.Contains(t, first.log, "rc3.0: dumping content to "+filepath.Join(dumpdir, dump1)+"\n")
	require.NoError(t, os.Remove(store))

	// flux-core restores it, and dumps again.
	time.Sleep(time.Second) // a dump file name per second
	second := b.start(coreRC, 1, nil, append(state, "-Scontent.restore=auto", "-Scontent.dump=auto"), "sh", "-c", "flux kvs get test.key && flux kvs put test.key2=core")
	second.ok(t)
	assert.Equal(t, "fluxkit\n", second.stdout)
	dump2, err := os.Readlink(filepath.Join(dumpdir, "RESTORE"))
	require.NoError(t, err)
	require.NotEqual(t, dump1, dump2)
	require.NoError(t, os.Remove(store))

	// fluxkit restores flux-core's dump and removes the link.
	third := b.start(kitRC, 1, nil, append(state, "-Scontent.restore=auto"), "flux", "kvs", "get", "test.key", "test.key2")
	third.ok(t)
	assert.Equal(t, "fluxkit\ncore\n", third.stdout)
	assert.Contains(t, third.log, "rc1.0: restoring content from "+filepath.Join(dumpdir, dump2)+"\n")
	_, err = os.Lstat(filepath.Join(dumpdir, "RESTORE"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestRealInstanceFakeResourcesAndCron(t *testing.T) {
	b := newBooter(t)
	conf := filepath.Join(b.dir, "conf.d")
	require.NoError(t, os.MkdirAll(conf, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(conf, "fake.toml"), []byte("[fake-resources]\nnnodes = 3\ncores-per-node = 2\ngpus-per-node = 1\nhost-prefix = \"sim\"\n"), 0o644))
	crond := filepath.Join(b.dir, "cron.d")
	require.NoError(t, os.MkdirAll(crond, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(crond, "a"), []byte("0 0 * * * true\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(crond, ".hidden"), []byte("30 1 * * * echo hidden\n"), 0o644))
	args := []string{"--config-path=" + conf, "-Scron.directory=" + crond}
	program := []string{"sh", "-c", `echo "R $(flux kvs get resource.R)"
echo "list $(flux resource list -no '{nnodes} {ncores} {ngpus} {nodelist}')"
echo "cron $(flux cron list | awk 'NR > 1 { print $2 }' | sort | tr '\n' ' ')"
[ -z "$BOOT_JOB" ] || echo "job $(flux run hostname)"`}
	ref := b.start(coreRC, 1, nil, args, program...)
	ref.ok(t)
	ours := b.start(kitRC, 1, []string{"BOOT_JOB=1"}, args, program...)
	ours.ok(t)
	require.Len(t, ref.lines("R "), 1)
	require.Len(t, ours.lines("R "), 1)
	var want, got any
	require.NoError(t, json.Unmarshal([]byte(ref.lines("R ")[0]), &want))
	require.NoError(t, json.Unmarshal([]byte(ours.lines("R ")[0]), &got))
	assert.Equal(t, want, got, "the same R as flux-core's")
	assert.Equal(t, []string{"3 6 3 sim[0-2]"}, ours.lines("list "))
	assert.Equal(t, ref.lines("list "), ours.lines("list "))
	assert.Len(t, ours.lines("job "), 1)
	assert.Contains(t, ours.log, "rc1.0: Encoding fake R: 3 nodes, 2 cores/node, 1 GPUs/node\n")
	assert.Contains(t, ours.log, "rc1.0: Fake resources injected.\n")
	assert.Equal(t, []string{"echo true "}, ours.lines("cron "), "every crontab, hidden ones too")
	assert.Equal(t, ref.lines("cron "), ours.lines("cron "))
}
