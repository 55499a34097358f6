package modprobe

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests follow flux-core's t/t0100-modprobe.t: tasks, ordering,
// needs-* conditions, ranks and failures. Tasks that flux-core writes in
// Python are Go tasks or declarative rc files here; modules_test.go has the
// module cases.

func TestRunRunsAGoTask(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{printTask(Task{Name: "test"}, "ran a task")}})
	require.NoError(t, err)
	assert.Contains(t, h.stdout.String(), "ran a task")
}

func TestUnknownTaskKeyIsNamedWithItsLineAndTheLikelyKey(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	f := h.write("t.toml", "[[tasks]]\nname = \"test\"\nbranks = \"0\"\n")
	_, err := h.mp(0).PrepareRunFile(testutil.Context(t), f)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "test: unknown task argument branks")
	assert.Contains(t, err.Error(), `did you mean "ranks"?`)
	assert.Contains(t, err.Error(), "t.toml:3:")
}

func TestTaskWithoutANameIsRefused(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Ranks: MustParseRanks("0")}}})
	require.EqualError(t, err, `task missing required name argument: @task("name")`)
	f := h.write("t.toml", "[[tasks]]\nranks = \"0\"\n")
	_, err = h.mp(0).PrepareRunFile(testutil.Context(t), f)
	require.ErrorContains(t, err, "missing required name argument")
}

func TestRunRunsEveryTask(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{printTask(Task{Name: "test"}), printTask(Task{Name: "test2"})}})
	require.NoError(t, err)
	got := testutil.Lines(h.stdout.String())
	slices.Sort(got)
	assert.Equal(t, []string{"test", "test2"}, got)
}

func setupPrint(ctx context.Context, c *Context) error {
	_, err := c.Stdout().Write([]byte("setup\n"))
	return err
}

func TestSetupRunsBeforeTheTasks(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Setup: setupPrint, Tasks: []Task{printTask(Task{Name: "task"})}})
	require.NoError(t, err)
	assert.Equal(t, "setup\ntask\n", h.stdout.String())
}

func TestBeforeStarRunsFirst(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Setup: setupPrint, Tasks: []Task{
		printTask(Task{Name: "last"}), printTask(Task{Name: "first", Before: []string{"*"}}),
	}})
	require.NoError(t, err)
	assert.Equal(t, "setup\nfirst\nlast\n", h.stdout.String())
}

func TestSeveralBeforeStarTasksAllRunFirst(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Setup: setupPrint, Tasks: []Task{
		printTask(Task{Name: "first", Before: []string{"*"}}),
		printTask(Task{Name: "also-before", Before: []string{"*"}}),
		printTask(Task{Name: "last"}),
	}})
	require.NoError(t, err)
	got := testutil.Lines(h.stdout.String())
	require.Len(t, got, 4)
	assert.Equal(t, "setup", got[0])
	mid := slices.Clone(got[1:3])
	slices.Sort(mid)
	assert.Equal(t, []string{"also-before", "first"}, mid)
	assert.Equal(t, "last", got[3])
}

func TestATaskBeforeABeforeStarTaskIsACycle(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
		printTask(Task{Name: "first", Before: []string{"*"}}),
		printTask(Task{Name: "before-first", Before: []string{"first"}}),
	}})
	require.ErrorIs(t, err, ErrCycle)
	assert.EqualError(t, err, "('nodes are in a cycle', ['first', 'before-first', 'first'])")
	assert.Empty(t, h.stdout.String(), "nothing runs when the graph has a cycle")
}

func TestAfterStarRunsLast(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Setup: setupPrint, Tasks: []Task{
		printTask(Task{Name: "really-last", After: []string{"*"}}),
		printTask(Task{Name: "first", Before: []string{"*"}}),
		printTask(Task{Name: "last"}),
	}})
	require.NoError(t, err)
	assert.Equal(t, "setup\nfirst\nlast\nreally-last\n", h.stdout.String())
}

func TestSeveralAfterStarTasksAllRunLast(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Setup: setupPrint, Tasks: []Task{
		printTask(Task{Name: "first", Before: []string{"*"}}),
		printTask(Task{Name: "last"}),
		printTask(Task{Name: "really-last", After: []string{"*"}}),
		printTask(Task{Name: "also-really-last", After: []string{"*"}}),
	}})
	require.NoError(t, err)
	got := testutil.Lines(h.stdout.String())
	require.Len(t, got, 5)
	assert.Equal(t, []string{"setup", "first", "last"}, got[:3])
	tail := slices.Clone(got[3:])
	slices.Sort(tail)
	assert.Equal(t, []string{"also-really-last", "really-last"}, tail)
}

func TestATaskAfterAnAfterStarTaskIsACycle(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
		printTask(Task{Name: "first"}),
		printTask(Task{Name: "really-last", After: []string{"*"}}),
		printTask(Task{Name: "after-really-last", After: []string{"really-last"}}),
	}})
	require.ErrorIs(t, err, ErrCycle)
	assert.EqualError(t, err, "('nodes are in a cycle', ['really-last', 'after-really-last', 'really-last'])")
}

func TestStarCannotBeCombinedWithTheOppositeList(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "next", Before: []string{"*"}, After: []string{"first"}}}})
	require.Error(t, err)
	assert.Regexp(t, regexp.MustCompile(`next: cannot specify.*before=.*after.*is also set`), err.Error())
	assert.EqualError(t, err, `next: cannot specify 'before=["*"]' when 'after' is also set (after=['first'])`)
	_, err = h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "before", After: []string{"*"}, Before: []string{"last"}}}})
	assert.EqualError(t, err, `before: cannot specify 'after=["*"]' when 'before' is also set (before=['last'])`)
	// The same rule for declarative tasks and modules.
	f := h.write("t.toml", "[[tasks]]\nname = \"x\"\nbefore = [\"*\"]\nafter = [\"y\"]\n")
	_, err = h.mp(0).PrepareRunFile(testutil.Context(t), f)
	assert.ErrorContains(t, err, `x: cannot specify 'before=["*"]'`)
}

func TestNeedingAnUnknownNameDropsTheTask(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
		printTask(Task{Name: "first"}), printTask(Task{Name: "last", Needs: []string{"noexist"}}),
	}})
	require.NoError(t, err)
	assert.Equal(t, "first\n", h.stdout.String())
}

func TestSatisfiedNeedsKeepTheTask(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
		printTask(Task{Name: "first", Before: []string{"*"}}), printTask(Task{Name: "last", Needs: []string{"first"}}),
	}})
	require.NoError(t, err)
	assert.Equal(t, "first\nlast\n", h.stdout.String())
}

func needsFirstTasks() RC {
	return RC{Tasks: []Task{
		printTask(Task{Name: "first", Before: []string{"*"}}),
		printTask(Task{Name: "2nd", After: []string{"first"}}, "second"),
		printTask(Task{Name: "last", Needs: []string{"first"}}),
	}}
}

func TestModprobeDisableDropsNeedersAndRefusesUnknownNames(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_DISABLE"] = "first"
	_, err := h.mp(0).Run(testutil.Context(t), needsFirstTasks())
	require.NoError(t, err)
	assert.Equal(t, "second\n", h.stdout.String())

	for _, v := range []string{"", "first,,last"} {
		h.env["FLUX_MODPROBE_DISABLE"] = v
		_, err = h.mp(0).Run(testutil.Context(t), needsFirstTasks())
		assert.EqualError(t, err, "no such module or task ''", "FLUX_MODPROBE_DISABLE=%q", v)
	}
	h.env["FLUX_MODPROBE_DISABLE"] = "nosuch"
	_, err = h.mp(0).Run(testutil.Context(t), needsFirstTasks())
	assert.EqualError(t, err, "no such module or task 'nosuch'")
}

func TestNeedsAttrsLooksAtBrokerAttributes(t *testing.T) {
	cases := []struct {
		last  Task
		attrs map[string]string
		want  string
	}{
		{Task{NeedsAttrs: []string{"noexist"}}, nil, "first\n"},
		{Task{NeedsAttrs: []string{"!size"}}, nil, "first\n"},
		{Task{NeedsAttrs: []string{"test.zero"}, After: []string{"*"}}, map[string]string{"test.zero": "0"}, "first\nlast\n"},
		{Task{NeedsAttrs: []string{"test.needed"}, After: []string{"*"}}, map[string]string{"test.needed": "1"}, "first\nlast\n"},
		{Task{NeedsAttrs: []string{"!size", "test.needed"}}, map[string]string{"test.needed": "1"}, "first\n"},
		{Task{NeedsAttrs: []string{"!noexist"}, After: []string{"*"}}, nil, "first\nlast\n"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.last.NeedsAttrs, ","), func(t *testing.T) {
			h := newHarness(t, testbroker.Config{Attrs: c.attrs})
			c.last.Name = "last"
			_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{printTask(Task{Name: "first"}), printTask(c.last)}})
			require.NoError(t, err)
			assert.Equal(t, c.want, h.stdout.String())
		})
	}
}

func TestNeedsConfigLooksAtBrokerConfigKeys(t *testing.T) {
	cases := []struct {
		spec   string
		config string
		runs   bool
	}{
		{"testconfig", "", false},
		{"needed", "needed = 1", true},
		{"!needed", "needed = 1", false},
		{"!noentry", "", true},
		{"needed", "needed = false", true},
		{"needed", "needed = 0", true},
		{"a.b", "[a]\nb = \"x\"", true},
		{"a.c", "[a]\nb = \"x\"", false},
	}
	for _, c := range cases {
		t.Run(c.spec+"/"+c.config, func(t *testing.T) {
			h := newHarness(t, testbroker.Config{Config: c.config})
			_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
				printTask(Task{Name: "first", Before: []string{"*"}}),
				printTask(Task{Name: "last", NeedsConfig: []string{c.spec}}),
			}})
			require.NoError(t, err)
			want := "first\n"
			if c.runs {
				want += "last\n"
			}
			assert.Equal(t, want, h.stdout.String())
		})
	}
}

func TestNeedsEnvLooksAtLocalThenBrokerEnvironment(t *testing.T) {
	cases := []struct {
		spec      string
		local     map[string]string
		brokerEnv map[string]string
		runs      bool
	}{
		{"MODPROBE_TEST_NOEXIST", nil, nil, false},
		{"MODPROBE_TEST_VAR", map[string]string{"MODPROBE_TEST_VAR": "1"}, nil, true},
		{"MODPROBE_TEST_VAR", map[string]string{"MODPROBE_TEST_VAR": ""}, nil, true},
		{"!HOME", map[string]string{"HOME": "/home/x"}, nil, false},
		// env -u HOME: the broker environment still has it.
		{"!HOME", nil, map[string]string{"HOME": "/home/x"}, false},
		{"HOME", nil, map[string]string{"HOME": "/home/x"}, true},
		{"!MODPROBE_TEST_NOEXIST", nil, nil, true},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			h := newHarness(t, testbroker.Config{Env: c.brokerEnv})
			for k, v := range c.local {
				h.env[k] = v
			}
			_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
				printTask(Task{Name: "first", Before: []string{"*"}}),
				printTask(Task{Name: "last", NeedsEnv: []string{c.spec}}),
			}})
			require.NoError(t, err)
			want := "first\n"
			if c.runs {
				want += "last\n"
			}
			assert.Equal(t, want, h.stdout.String())
		})
	}
}

func TestBadRanksAreConfigErrors(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	f := h.write("bad.toml", "[[tasks]]\nname = \"x\"\nranks = \"=0\"\n")
	_, err := h.mp(0).PrepareRunFile(testutil.Context(t), f)
	assert.ErrorContains(t, err, "ranks: invalid idset: =0")
	f = h.write("bad.toml", "[[tasks]]\nname = \"x\"\nranks = \">=1\"\n")
	_, err = h.mp(0).PrepareRunFile(testutil.Context(t), f)
	assert.ErrorContains(t, err, "invalid literal for int() with base 10: '=1'")
	h.write("modprobe.d/x.toml", "[[modules]]\nname = \"m\"\nranks = 0\n")
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	_, err = h.mp(0).Show(testutil.Context(t), "m", Selection{})
	assert.ErrorContains(t, err, "x.toml:3: modules[0]: invalid modules entry: key ranks: expected a string, got integer 0")
}

func TestRankConditionsSelectWhereATaskRuns(t *testing.T) {
	cases := []struct {
		ranks Ranks
		after []string
		rank  uint32
		want  string
	}{
		{MustParseRanks(">0"), nil, 0, "first\n"},
		{MustParseRanks(">0"), nil, 1, "first\nlast\n"},
		{MustParseRanks("<1"), nil, 1, "first\n"},
		{MustParseRanks("<1"), nil, 0, "first\nlast\n"},
		{MustParseRanks("0"), []string{"first"}, 0, "first\nlast\n"},
		{MustParseRanks("0"), nil, 1, "first\n"},
		{Ranks{}, nil, 1, "first\nlast\n"},
	}
	for _, c := range cases {
		t.Run(c.ranks.String(), func(t *testing.T) {
			h := newHarness(t, testbroker.Config{Size: 2})
			_, err := h.mp(c.rank).Run(testutil.Context(t), RC{Tasks: []Task{
				printTask(Task{Name: "first", Before: []string{"*"}}),
				printTask(Task{Name: "last", Ranks: c.ranks, After: c.after}),
			}})
			require.NoError(t, err)
			assert.Equal(t, c.want, h.stdout.String())
		})
	}
}

func TestNeedsFollowTheRanksOfWhatIsNeeded(t *testing.T) {
	h := newHarness(t, testbroker.Config{Size: 2})
	simple := func() RC {
		return RC{Tasks: []Task{
			printTask(Task{Name: "first", Before: []string{"*"}}),
			printTask(Task{Name: "needed", Ranks: MustParseRanks("0")}),
			printTask(Task{Name: "last", Needs: []string{"needed"}, After: []string{"needed"}}),
		}}
	}
	_, err := h.mp(0).Run(testutil.Context(t), simple())
	require.NoError(t, err)
	assert.Equal(t, "first\nneeded\nlast\n", h.stdout.String())
	h.stdout.Reset()
	_, err = h.mp(1).Run(testutil.Context(t), simple())
	require.NoError(t, err)
	assert.Equal(t, "first\n", h.stdout.String())

	chained := func() RC {
		return RC{Tasks: []Task{
			printTask(Task{Name: "first", Before: []string{"*"}}),
			printTask(Task{Name: "needed", Ranks: MustParseRanks("1")}),
			printTask(Task{Name: "next", Needs: []string{"needed"}, After: []string{"needed"}}),
			printTask(Task{Name: "last", Needs: []string{"next"}, After: []string{"next"}}),
		}}
	}
	h.stdout.Reset()
	_, err = h.mp(0).Run(testutil.Context(t), chained())
	require.NoError(t, err)
	assert.Equal(t, "first\n", h.stdout.String())
	h.stdout.Reset()
	_, err = h.mp(1).Run(testutil.Context(t), chained())
	require.NoError(t, err)
	assert.Equal(t, "first\nneeded\nnext\nlast\n", h.stdout.String())
}

func TestFailedTaskIsReportedAsTaskColonError(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "next", Run: func(ctx context.Context, c *Context) error {
		return c.Bash(ctx, "false")
	}}}})
	require.ErrorIs(t, err, ErrTaskFailed)
	assert.Equal(t, "next: bash: exited with exit status 1\n", h.stderr.String())

	h.stderr.Reset()
	_, err = h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "next", Run: func(context.Context, *Context) error {
		return errors.New("test exception")
	}}}})
	require.Error(t, err)
	assert.Regexp(t, `next:.*test exception`, h.stderr.String())

	// A declarative task running a shell command, and one killed by a signal.
	h.stderr.Reset()
	f := h.write("t.toml", "[[tasks]]\nname = \"next\"\nrun = \"exit 3\"\n[[tasks]]\nname = \"sig\"\nrun = \"kill -9 $$\"\n")
	s, err := h.mp(0).PrepareRunFile(testutil.Context(t), f)
	require.NoError(t, err)
	_, err = s.Execute(testutil.Context(t))
	require.Error(t, err)
	assert.Contains(t, h.stderr.String(), "next: bash: exited with exit status 3\n")
	assert.Contains(t, h.stderr.String(), "sig: bash: died by signal 9\n")
}

func TestFailureSkipsWhatFollowsAndLetsRunningTasksFinish(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	release := make(chan struct{})
	rep, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{
		printTask(Task{Name: "first", Before: []string{"*"}}),
		{Name: "next", Run: func(context.Context, *Context) error {
			close(release)
			return errors.New("test exception")
		}},
		{Name: "next2", Run: func(ctx context.Context, c *Context) error {
			<-release // still running when next fails: it must finish
			_, err := c.Stdout().Write([]byte("next2\n"))
			return err
		}},
		printTask(Task{Name: "last", After: []string{"next"}}),
	}})
	require.Error(t, err)
	out := h.stdout.String() + h.stderr.String()
	assert.Contains(t, out, "first")
	assert.Contains(t, out, "next2")
	assert.Contains(t, out, "next: test exception")
	assert.NotContains(t, out, "last")
	assert.Equal(t, "next: test exception\n", h.stderr.String(), "skipped tasks print no error line")
	assert.Equal(t, []string{"last"}, rep.Skipped)
	var re *RunError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, []string{"last"}, re.Skipped)
}

func checking(stderr string) []string {
	var out []string
	for _, l := range testutil.Lines(stderr) {
		if strings.HasPrefix(l, "checking ") {
			out = append(out, l)
		}
	}
	return out
}

func TestSearchPathOrderFromModprobePathAndAppend(t *testing.T) {
	cases := []struct {
		path, appendPath *string
		want             []string
	}{
		{new("/test/path"), nil, []string{
			"checking (embedded)/modprobe.toml", "checking /test/path/modprobe.d/*.toml",
			"checking (embedded)/rc1.toml", "checking /test/path/rc1.d/*.toml"}},
		{nil, new("/test/path"), []string{
			"checking (embedded)/modprobe.toml", "checking (embedded)/modprobe.d/*.toml", "checking CONF/modprobe/modprobe.d/*.toml", "checking /test/path/modprobe.d/*.toml",
			"checking (embedded)/rc1.toml", "checking (embedded)/rc1.d/*.toml", "checking CONF/modprobe/rc1.d/*.toml", "checking /test/path/rc1.d/*.toml"}},
		{new("/test/path"), new("/append"), []string{
			"checking (embedded)/modprobe.toml", "checking /test/path/modprobe.d/*.toml", "checking /append/modprobe.d/*.toml",
			"checking (embedded)/rc1.toml", "checking /test/path/rc1.d/*.toml", "checking /append/rc1.d/*.toml"}},
		{new("/path1::/path2"), new(":/append1:: /append2: "), []string{
			"checking (embedded)/modprobe.toml", "checking /path1/modprobe.d/*.toml", "checking /path2/modprobe.d/*.toml",
			"checking /append1/modprobe.d/*.toml", "checking  /append2/modprobe.d/*.toml",
			"checking (embedded)/rc1.toml", "checking /path1/rc1.d/*.toml", "checking /path2/rc1.d/*.toml",
			"checking /append1/rc1.d/*.toml", "checking  /append2/rc1.d/*.toml"}},
		{new("/test/path:/other/path"), new("/test/path:/third/path"), []string{
			"checking (embedded)/modprobe.toml", "checking /test/path/modprobe.d/*.toml", "checking /other/path/modprobe.d/*.toml", "checking /third/path/modprobe.d/*.toml",
			"checking (embedded)/rc1.toml", "checking /test/path/rc1.d/*.toml", "checking /other/path/rc1.d/*.toml", "checking /third/path/rc1.d/*.toml"}},
	}
	for i, c := range cases {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			h := newHarness(t, testbroker.Config{})
			if c.path != nil {
				h.env["FLUX_MODPROBE_PATH"] = *c.path
			}
			if c.appendPath != nil {
				h.env["FLUX_MODPROBE_PATH_APPEND"] = *c.appendPath
			}
			m := h.mp(0, dryRun, verbose)
			s, err := m.PrepareRC1(testutil.Context(t))
			require.NoError(t, err)
			_, err = s.Execute(testutil.Context(t))
			require.NoError(t, err)
			conf := m.cfg.ConfDir
			want := make([]string, len(c.want))
			for i, w := range c.want {
				want[i] = strings.ReplaceAll(w, "CONF", conf)
			}
			assert.Equal(t, want, checking(h.stderr.String()))
		})
	}
}

func TestModulesFileErrorsNameFileLineAndKey(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/x.toml", "[[modules]]\nmodule = \"a\"\n")
	_, err := h.mp(0).Show(testutil.Context(t), "a", Selection{})
	require.Error(t, err)
	assert.Regexp(t, `(?i)missing required config key`, err.Error())
	assert.Contains(t, err.Error(), "x.toml:1: modules[0]: invalid modules entry: Missing required config key 'name'")
	require.ErrorIs(t, err, ErrConfig)

	h.write("modprobe.d/x.toml", "[[modules]]\nname = \"a\"\n\n[[modules]]\nname = \"b\"\nbadkey = \"\"\n")
	_, err = h.mp(0).Show(testutil.Context(t), "a", Selection{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x.toml:6: modules[1]: invalid modules entry: invalid config key badkey")

	h.write("modprobe.d/x.toml", "[[modules]]\nname = \"b\"\nneeds_config = [\"x\"]\n")
	_, err = h.mp(0).Show(testutil.Context(t), "b", Selection{})
	assert.ErrorContains(t, err, `x.toml:3: modules[0]: invalid modules entry: invalid config key needs_config (did you mean "needs-config"?)`)
}

func TestModprobeDFilesAddModules(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d/test.toml", "[[modules]]\nname=\"test\"\nrequires=[\"heartbeat\"]\n")
	var out strings.Builder
	require.NoError(t, h.mp(0).ListDependencies(testutil.Context(t), &out, "test", false, 0, Selection{}))
	assert.Equal(t, "test\n└── heartbeat\n", out.String())
}
