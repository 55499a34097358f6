package modprobe

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rank0Modules is the rank-0 rc1 module set of the embedded default.
var rank0Modules = []string{
	"content", "content-sqlite", "cron", "heartbeat", "job-exec", "job-info", "job-ingest",
	"job-list", "job-manager", "kvs", "kvs-watch", "resource", "sched-simple",
}

func TestLoadAndRemoveRefuseWithFluxCoreTextsAndRemoveInReverse(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.loadRC1(0)
	require.Equal(t, rank0Modules, h.b.Rank(0).Modules())

	_, err := h.mp(0).Load(testutil.Context(t), "foo")
	assert.EqualError(t, err, "no such task or module foo")
	assert.ErrorIs(t, err, ErrNotFound)

	_, err = h.mp(0).Load(testutil.Context(t), "sched")
	assert.ErrorIs(t, err, ErrAllLoaded)
	assert.Regexp(t, `All modules.*already loaded`, err.Error())

	_, err = h.mp(0).Remove(testutil.Context(t), "foo")
	assert.ErrorIs(t, err, ErrNotLoaded)
	assert.EqualError(t, err, "module foo is not loaded")

	_, err = h.mp(0).Remove(testutil.Context(t), "kvs")
	assert.EqualError(t, err, "kvs still in use by job-exec, job-info, job-ingest, job-manager, kvs-watch")
	assert.ErrorIs(t, err, ErrInUse)

	// remove cron removes only cron: heartbeat is still required.
	_, err = h.mp(0, dryRun).Remove(testutil.Context(t), "cron")
	require.NoError(t, err)
	assert.Equal(t, "remove cron\n", h.stdout.String())

	// Removing a leaf by service name cascades to requirements nothing
	// else uses: none here, as job-manager and resource are in use.
	h.stdout.Reset()
	_, err = h.mp(0, dryRun).Remove(testutil.Context(t), "sched")
	require.NoError(t, err)
	assert.Equal(t, "remove sched-simple\n", h.stdout.String())

	// remove all, for real: reverse load order, everything gone.
	_, err = h.mp(0).Remove(testutil.Context(t), "all")
	require.NoError(t, err)
	assert.Empty(t, h.b.Rank(0).Modules())
	assertReverseOrder(t, h.b.Rank(0).ModuleLog())
}

// assertReverseOrder checks that every module was removed after the
// modules loaded after it (kvs-watch before kvs, kvs before content...).
func assertReverseOrder(t *testing.T, log []testbroker.ModuleOp) {
	t.Helper()
	loadEnd := map[string]int{}
	removeStart := map[string]int{}
	for i, op := range log {
		if op.Op == "load" {
			loadEnd[op.Name] = i
		} else {
			removeStart[op.Name] = i
		}
	}
	edges := [][2]string{{"kvs", "kvs-watch"}, {"content", "kvs"}, {"kvs-watch", "resource"}, {"resource", "job-manager"}, {"job-manager", "sched-simple"}, {"content", "content-sqlite"}}
	for _, e := range edges {
		assert.Less(t, loadEnd[e[0]], loadEnd[e[1]], "%s loaded before %s", e[0], e[1])
		assert.Greater(t, removeStart[e[0]], removeStart[e[1]], "%s removed after %s", e[0], e[1])
	}
}

func TestShowFollowsUpdatesAlternativesAndDisables(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	out, err := h.mp(0).Show(testutil.Context(t), "sched", Selection{})
	require.NoError(t, err)
	assert.Equal(t, `{"name": "sched-simple", "module": "sched-simple", "args": [], "ranks": "0", "provides": ["sched", "feasibility"], "requires": ["job-manager", "resource"], "needs": [], "before": [], "after": ["job-manager", "resource"], "priority": 50, "disabled": false, "exec": false}`, out)

	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/test.toml", "feasibility.ranks = \"0-1\"\nheartbeat.exec = true\n")
	out, err = h.mp(0).Show(testutil.Context(t), "feasibility", Selection{})
	require.NoError(t, err)
	assert.Contains(t, out, `"ranks": "0-1"`)
	out, err = h.mp(0).Show(testutil.Context(t), "heartbeat", Selection{})
	require.NoError(t, err)
	assert.Contains(t, out, `"exec": true`)

	require.NoError(t, h.b.Rank(0).SetConfig("[modules]\nfeasibility.ranks = \"0,4\"\njob-manager.exec = true\n"))
	out, err = h.mp(0).Show(testutil.Context(t), "feasibility", Selection{})
	require.NoError(t, err)
	assert.Contains(t, out, `"ranks": "0,4"`)
	out, err = h.mp(0).Show(testutil.Context(t), "job-manager", Selection{})
	require.NoError(t, err)
	assert.Contains(t, out, `"exec": true`)

	// -S and -D.
	out, err = h.mp(0).Show(testutil.Context(t), "sched", Selection{SetAlternative: []string{"sched=sched-fifo"}})
	require.NoError(t, err)
	assert.Contains(t, out, `"name": "sched-fifo"`)
	assert.Contains(t, out, `"priority": 51`)
	out, err = h.mp(0).Show(testutil.Context(t), "feasibility", Selection{SetAlternative: []string{"sched=sched-fifo"}})
	require.NoError(t, err)
	assert.Contains(t, out, `"name": "sched-fifo"`, "an alternative propagates to every service of the module")
	out, err = h.mp(0).Show(testutil.Context(t), "sched", Selection{Disable: []string{"sched-simple"}})
	require.NoError(t, err)
	assert.Contains(t, out, `"name": "sched-backfill"`)
	_, err = h.mp(0).Show(testutil.Context(t), "sched", Selection{SetAlternative: []string{"sched"}})
	assert.EqualError(t, err, "--set-alternative: invalid value 'sched'")
	_, err = h.mp(0).Show(testutil.Context(t), "sched", Selection{SetAlternative: []string{"nosvc=x"}})
	assert.EqualError(t, err, "no such service nosvc")
	_, err = h.mp(0).Show(testutil.Context(t), "sched", Selection{SetAlternative: []string{"sched=kvs"}})
	assert.EqualError(t, err, "no module kvs provides sched")
	_, err = h.mp(0).Show(testutil.Context(t), "nosuch", Selection{})
	assert.EqualError(t, err, "no such task or module nosuch")
}

func TestProviderWithUnmetNeedsLosesToALowerPriorityOne(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/test.toml", `
[[modules]]
name = "simple-module"
provides = ["test-sched"]
priority = 50

[[modules]]
name = "advanced-module"
provides = ["test-sched"]
priority = 500
needs = ["nonexistent-module"]
`)
	out, err := h.mp(0).Show(testutil.Context(t), "test-sched", Selection{})
	require.NoError(t, err)
	assert.Contains(t, out, `"name": "simple-module"`)
}

const schedulerModule = `
[[modules]]
name = "advanced-scheduler"
priority = 500
ranks = "0"
provides = ["sched", "feasibility"]
requires = ["job-manager", "resource"]
`

func TestExplicitLoadIgnoresDisabledFlags(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.loadRC1(0)
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/000.toml", schedulerModule)
	h.write("modprobe.d/001.toml", strings.NewReplacer("advanced-scheduler", "basic-scheduler", "priority = 500\n", "").Replace(schedulerModule))
	_, err := h.mp(0, dryRun).Load(testutil.Context(t), "basic-scheduler")
	require.NoError(t, err)
	assert.Equal(t, "load basic-scheduler\n", h.stdout.String())

	h.stdout.Reset()
	h.env["FLUX_MODPROBE_DISABLE"] = "basic-scheduler"
	_, err = h.mp(0, dryRun).Load(testutil.Context(t), "basic-scheduler")
	require.NoError(t, err)
	assert.Equal(t, "load basic-scheduler\n", h.stdout.String())
	delete(h.env, "FLUX_MODPROBE_DISABLE")

	h.write("modprobe.d/002.toml", `
[[modules]]
name = "test-disabled-module"
disabled = true
requires = ["job-manager", "another-disabled-module"]

[[modules]]
name = "another-disabled-module"
disabled = true
`)
	h.stdout.Reset()
	_, err = h.mp(0, dryRun).Load(testutil.Context(t), "test-disabled-module")
	require.NoError(t, err)
	got := testutil.Lines(h.stdout.String())
	slices.Sort(got)
	assert.Equal(t, []string{"load another-disabled-module", "load test-disabled-module"}, got)

	// For real: loaded with their arguments, and the payload carries name
	// only when it differs from the module path.
	_, err = h.mp(0).Load(testutil.Context(t), "test-disabled-module")
	require.NoError(t, err)
	assert.Contains(t, h.b.Rank(0).Modules(), "test-disabled-module")
}

func TestRC1AndRC3DryRuns(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0, dryRun).RC1(testutil.Context(t))
	require.NoError(t, err)
	assert.Contains(t, testutil.Lines(h.stdout.String()), "load kvs")
	assert.Contains(t, h.stdout.String(), "load sched-simple")

	h.stdout.Reset()
	h.env["FLUX_SCHED_MODULE"] = "none"
	_, err = h.mp(0, dryRun).RC1(testutil.Context(t))
	require.NoError(t, err)
	assert.NotContains(t, h.stdout.String(), "sched-simple")
	delete(h.env, "FLUX_SCHED_MODULE")

	h.loadRC1(0)
	_, err = h.mp(0, dryRun).RC3(testutil.Context(t))
	require.NoError(t, err)
	assert.Contains(t, testutil.Lines(h.stdout.String()), "remove kvs")
}

func TestSetoptAppendsToOrReplacesModuleArgs(t *testing.T) {
	cases := []struct {
		opts      string
		overwrite bool
		want      string
	}{
		{"test-arg", false, "load test-module foo bar test-arg"},
		{"test-arg    additional", false, "load test-module foo bar test-arg additional"},
		{"test-arg", true, "load test-module test-arg"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			h := newHarness(t, testbroker.Config{})
			h.env["FLUX_MODPROBE_PATH"] = h.dir
			h.write("modprobe.d/test.toml", "[[modules]]\nname = \"test-module\"\nargs = [\"foo\", \"bar\"]\n")
			m := h.mp(0, dryRun, func(cfg *Config) {
				cfg.RC1 = []RC{{Name: "rc1.d/test", Setup: func(_ context.Context, c *Context) error {
					c.Setopt("test-module", c.opts(), c.overwrite())
					return c.LoadModules("test-module")
				}}}
			}, withOpts(c.opts, c.overwrite))
			_, err := m.RC1(testutil.Context(t))
			require.NoError(t, err)
			assert.Contains(t, testutil.Lines(h.stdout.String()), c.want)
		})
	}
	// The same through a declarative rc1.d file, and setopt on a service
	// reaching its provider.
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/test.toml", "[[modules]]\nname = \"test-module\"\nargs = [\"foo\", \"bar\"]\n")
	h.write("rc1.d/test.toml", "[[setup]]\nsetopt = { test-module = \"test-arg\", sched = \"queue-depth=8\" }\nload = [\"test-module\"]\n")
	_, err := h.mp(0, dryRun).RC1(testutil.Context(t))
	require.NoError(t, err)
	assert.Contains(t, testutil.Lines(h.stdout.String()), "load test-module foo bar test-arg")
	assert.Contains(t, testutil.Lines(h.stdout.String()), "load sched-simple queue-depth=8")
}

// withOpts passes per-case setopt values to the setup hook above through
// the Context's shared store.
func withOpts(opts string, overwrite bool) func(*Config) {
	return func(cfg *Config) {
		setup := cfg.RC1[0].Setup
		cfg.RC1[0].Setup = func(ctx context.Context, c *Context) error {
			c.Set("opts", opts)
			c.Set("overwrite", overwrite)
			return setup(ctx, c)
		}
	}
}

func (c *Context) opts() string    { return c.Get("opts", "").(string) }
func (c *Context) overwrite() bool { return c.Get("overwrite", false).(bool) }

func TestEnableOverridesRankConditions(t *testing.T) {
	h := newHarness(t, testbroker.Config{Size: 2})
	_, err := h.mp(1, dryRun).RC1(testutil.Context(t))
	require.NoError(t, err)
	normal := testutil.Lines(h.stdout.String())
	assert.NotContains(t, normal, "load sched-simple")

	h.stdout.Reset()
	_, err = h.mp(1, dryRun, func(cfg *Config) {
		cfg.RC1 = []RC{{Setup: func(_ context.Context, c *Context) error { return c.Enable("feasibility") }}}
	}).RC1(testutil.Context(t))
	require.NoError(t, err)
	got := testutil.Lines(h.stdout.String())
	want := append(slices.Clone(normal), "load sched-simple")
	slices.Sort(got)
	slices.Sort(want)
	assert.Equal(t, want, got)
}

func TestRequiredModuleSatisfiesNeeds(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/test.toml", `
[[modules]]
name = "required-module"
ranks = "0"

[[modules]]
name = "alternate-scheduler"
provides = ["feasibility", "sched"]
ranks = "0"
requires = ["required-module"]
needs = ["required-module"]
`)
	_, err := h.mp(0, dryRun).RC1(testutil.Context(t))
	require.NoError(t, err)
	assert.Contains(t, h.stdout.String(), "load alternate-scheduler")
	assert.Contains(t, h.stdout.String(), "load required-module")
	assert.NotContains(t, h.stdout.String(), "sched-simple")
}

func TestRC3RemovesTheLoadedProviderNotADisabledAlternative(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/test.toml", `
[[modules]]
name = "default-module"
provides = ["test-service"]
ranks = "0"

[[modules]]
name = "high-module"
provides = ["test-service"]
priority = 500
ranks = "0"
`)
	h.write("rc1.d/test.toml", "[[setup]]\nload = [\"test-service\"]\n")
	h.env["FLUX_MODPROBE_DISABLE"] = "high-module"
	h.stubServices(0)
	_, err := h.mp(0, withShell(&fakeShell{})).RC1(testutil.Context(t))
	require.NoError(t, err, h.stderr.String())
	assert.Contains(t, h.b.Rank(0).Modules(), "default-module")
	assert.NotContains(t, h.b.Rank(0).Modules(), "high-module")

	_, err = h.mp(0, withShell(&fakeShell{})).RC3(testutil.Context(t))
	require.NoError(t, err, h.stderr.String())
	assert.Empty(t, h.b.Rank(0).Modules())
	for _, op := range h.b.Rank(0).ModuleLog() {
		assert.NotEqual(t, "high-module", op.Name)
	}
	assert.Empty(t, h.stderr.String())

	// Unit form: resolution keeps default-module even after the disabled
	// module is made the alternative.
	d := newDB()
	require.NoError(t, d.applyModulesFile("t.toml", []byte(`
[[modules]]
name = "default-module"
provides = ["test-service"]
[[modules]]
name = "high-module"
provides = ["test-service"]
priority = 500
`)))
	require.NoError(t, d.disable("high-module"))
	require.NoError(t, d.setAlternative("test-service", "high-module"))
	e, err := newPlanner(d, nil).resolve("test-service", false)
	require.NoError(t, err)
	assert.Equal(t, "default-module", e.name)
}

func TestRemoveIgnoresNotLoaded(t *testing.T) {
	// rc3 tolerates a module that went away between module.list and
	// module.remove (flux-core cae0b6ea2).
	h := newHarness(t, testbroker.Config{})
	m := h.mp(0, withShell(&fakeShell{}), func(c *Config) {
		c.Modules = &racyModules{Modules: HandleModules(h.b.Owner(0)), gone: "heartbeat"}
	})
	h.loadRC1(0)
	_, err := m.RC3(testutil.Context(t))
	require.NoError(t, err)
}

type racyModules struct {
	Modules
	gone string
}

func (r *racyModules) Remove(ctx context.Context, name string) error {
	if name == r.gone {
		if err := r.Modules.Remove(ctx, name); err != nil {
			return err
		}
	}
	return r.Modules.Remove(ctx, name) // ENOENT for gone: ignored
}

func TestTaskNamedLikeModule(t *testing.T) {
	// Activating a task whose name is already known activates the
	// existing entry: a task named kvs silently activates the module.
	h := newHarness(t, testbroker.Config{})
	called := false
	_, err := h.mp(0, dryRun).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "kvs", Run: func(context.Context, *Context) error {
		called = true
		return nil
	}}}})
	require.NoError(t, err)
	assert.False(t, called)
	assert.Contains(t, testutil.Lines(h.stdout.String()), "load kvs")
	assert.Contains(t, testutil.Lines(h.stdout.String()), "load content-sqlite", "with its requires closure")
}
