package modprobe

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func defaultDB(t testing.TB) *db {
	t.Helper()
	d := newDB()
	data, err := fs.ReadFile(Defaults(), "modprobe.toml")
	require.NoError(t, err)
	require.NoError(t, d.applyModulesFile("modprobe.toml", data))
	return d
}

func mustGet(t *testing.T, d *db, name string) *entry {
	t.Helper()
	e, err := d.get(name)
	require.NoError(t, err)
	return e
}

func TestDefaultAlternatives(t *testing.T) {
	d := defaultDB(t)
	assert.Equal(t, "content-sqlite", mustGet(t, d, "content-backing").name, "ties go to the later entry")
	assert.Equal(t, "sched-simple", mustGet(t, d, "sched").name)
	require.NoError(t, d.disable("sched-simple"))
	assert.Equal(t, "sched-backfill", mustGet(t, d, "sched").name)
	require.NoError(t, d.disable("sched"))
	assert.Equal(t, "sched-simple", mustGet(t, d, "sched").name, "all disabled: best regardless")
	sys := mustGet(t, d, "sdbus-sys")
	assert.Equal(t, "sdbus", sys.module)
	assert.Equal(t, map[string]any{"path": "sdbus", "args": []string{"system"}, "exec": false, "name": "sdbus-sys"},
		loadPayload(LoadRequest{Name: sys.name, Path: sys.module, Args: sys.args}))
	assert.NotContains(t, loadPayload(LoadRequest{Name: "kvs", Path: "kvs"}), "name")
}

func TestSetAlternativePriority(t *testing.T) {
	d := defaultDB(t)
	require.NoError(t, d.setAlternative("sched", "sched-fifo"))
	assert.Equal(t, 51, mustGet(t, d, "sched-fifo").priority)
	assert.Equal(t, "sched-fifo", mustGet(t, d, "feasibility").name, "propagates to every service")
	require.NoError(t, d.setAlternative("heartbeat", "heartbeat"), "single provider: no-op")
	assert.Equal(t, 100, mustGet(t, d, "heartbeat").priority)
	assert.EqualError(t, d.enable("x"), "no such module or task 'x'")
}

func TestMergeKeepsKeysAndIndex(t *testing.T) {
	d := defaultDB(t)
	kvs := mustGet(t, d, "kvs")
	idx := kvs.index
	require.NoError(t, d.applyModulesFile("x.toml", []byte("[[modules]]\nname = \"kvs\"\nranks = \"0-1\"\nneeds-attrs = [\"a\"]\n")))
	kvs = mustGet(t, d, "kvs")
	assert.Equal(t, idx, kvs.index)
	assert.Equal(t, "0-1", kvs.ranks.String())
	assert.Equal(t, []string{"content", "heartbeat"}, kvs.requires)
	assert.Equal(t, []string{"content-backing", "content"}, kvs.after)
	assert.Equal(t, []string{"a"}, kvs.needsAttrs, "hyphenated keys in merges")
	// A merge by service name updates the current provider.
	require.NoError(t, d.applyModulesFile("x.toml", []byte("[[modules]]\nname = \"sched\"\nargs = [\"x\"]\n")))
	assert.Equal(t, []string{"x"}, mustGet(t, d, "sched-simple").args)
	// A merge that changes provides re-registers the services.
	require.NoError(t, d.applyModulesFile("x.toml", []byte("[[modules]]\nname = \"sched-fifo\"\nprovides = [\"sched\"]\n")))
	assert.Equal(t, "sched-backfill", func() string {
		require.NoError(t, d.setAlternative("feasibility", "sched-backfill"))
		return mustGet(t, d, "feasibility").name
	}())
	assert.EqualError(t, d.setAlternative("feasibility", "sched-fifo"), "no module sched-fifo provides feasibility")
}

func TestUpdates(t *testing.T) {
	d := defaultDB(t)
	require.NoError(t, d.applyModulesFile("x.toml", []byte(`
feasibility.ranks = "0-1"
kvs.needs-config = ["a.b"]
kvs.needs-env = ["X"]
[heartbeat]
exec = true
args = ["period=1s"]
`)))
	assert.Equal(t, "0-1", mustGet(t, d, "sched-simple").ranks.String())
	assert.Equal(t, []string{"a.b"}, mustGet(t, d, "kvs").needsConfig)
	assert.Equal(t, []string{"X"}, mustGet(t, d, "kvs").needsEnv)
	assert.True(t, mustGet(t, d, "heartbeat").exec)

	cases := []struct{ src, want string }{
		{"nosuch.ranks = \"0\"\n", "x.toml:1: nosuch: no such task or module nosuch"},
		{"\n\nkvs.badkey = 1\n", "x.toml:3: kvs.badkey: invalid config key badkey"},
		{"kvs.rank = \"0\"\n", `x.toml:1: kvs.rank: invalid config key rank (did you mean "ranks"?)`},
		{"kvs.ranks = 0\n", "x.toml:1: kvs.ranks: key ranks: expected a string, got integer 0"},
		{"kvs.requires = \"content\"\n", `x.toml:1: kvs.requires: key requires: expected an array of strings, got string "content"`},
		{"kvs.requires = [1]\n", "x.toml:1: kvs.requires: key requires: expected an array of strings, got array"},
		{"kvs.priority = \"high\"\n", `x.toml:1: kvs.priority: key priority: expected an integer, got string "high"`},
		{"kvs.disabled = 1\n", "x.toml:1: kvs.disabled: key disabled: expected a boolean, got integer 1"},
		{"kvs.ranks = \">x\"\n", "x.toml:1: kvs.ranks: invalid literal for int() with base 10: 'x'"},
		{"kvs.name = \"y\"\n", "x.toml:1: kvs.name: invalid config key name (a module cannot be renamed)"},
		{"kvs = 1\n", "x.toml:1: kvs: expected a table of updates for kvs, got integer 1"},
		{"kvs.before = [\"*\"]\n", `x.toml:1: kvs: kvs: cannot specify 'before=["*"]' when 'after' is also set (after=['content-backing', 'content'])`},
		{"modules = 1\n", "x.toml:1: modules: modules must be an array of tables, got integer 1"},
		{"modules = [1]\n", "x.toml:1: modules[0]: invalid modules entry: expected a table, got integer 1"},
		{"modules = [{name = \"a\", x = 1}]\n", "x.toml:1: modules[0]: invalid modules entry: invalid config key x"},
		{"[[modules]]\nname = \"\"\n", "x.toml:2: modules[0]: invalid modules entry: key name: must not be empty"},
		{"[[modules]]\nname = 3\n", "x.toml:2: modules[0]: invalid modules entry: key name: expected a string, got integer 3"},
		{"alternatives.sched = \"kvs\"\n", "x.toml:1: alternatives.sched: no module kvs provides sched"},
		{"alternatives.nosvc = \"kvs\"\n", "x.toml:1: alternatives.nosvc: no such service nosvc"},
		{"alternatives = 1\n", "x.toml:1: alternatives: alternatives must be a table of service = module, got integer 1"},
		{"a = \n", "x.toml:1:5: "},
		{"[[modules]]\nname = \"a\"\nname = \"b\"\n", "x.toml:3:1: "},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			d := defaultDB(t)
			before := mustGet(t, d, "kvs").clone()
			err := d.applyModulesFile("x.toml", []byte(c.src))
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), c.want), "got %q, want prefix %q", err.Error(), c.want)
			assert.True(t, errors.Is(err, ErrConfig))
			after := mustGet(t, d, "kvs")
			assert.Equal(t, before.ranks, after.ranks, "a failed update leaves the entry unchanged")
			assert.Equal(t, before.before, after.before)
		})
	}
}

func TestAlternativesInTOML(t *testing.T) {
	// flux-core fails with "no such task or module alternatives" here;
	// fluxkit honours the documented table.
	d := defaultDB(t)
	require.NoError(t, d.applyModulesFile("x.toml", []byte("[alternatives]\nsched = \"sched-fifo\"\ncontent-backing = \"content-files\"\n")))
	assert.Equal(t, "sched-fifo", mustGet(t, d, "feasibility").name)
	assert.Equal(t, "content-files", mustGet(t, d, "content-backing").name)
}

func TestBrokerModulesOrder(t *testing.T) {
	// feasibility.ranks before alternatives updates the provider that won
	// before the alternative was applied.
	d := defaultDB(t)
	require.NoError(t, d.applyBrokerModules([]byte(`{"modules":{"feasibility":{"ranks":"0-3"},"alternatives":{"sched":"sched-fifo"}}}`)))
	assert.Equal(t, "0-3", mustGet(t, d, "sched-simple").ranks.String())
	assert.Equal(t, "0", mustGet(t, d, "sched-fifo").ranks.String())
	d = defaultDB(t)
	require.NoError(t, d.applyBrokerModules([]byte(`{"modules":{"alternatives":{"sched":"sched-fifo"},"feasibility":{"ranks":"0-3","priority":7,"args":null}}}`)))
	assert.Equal(t, "0-3", mustGet(t, d, "sched-fifo").ranks.String())
	assert.Equal(t, 7, mustGet(t, d, "sched-fifo").priority, "JSON numbers are integers here")

	for _, c := range []struct{ in, want string }{
		{`{"modules":{"kvs":{"bad":1}}}`, "broker config: modules.kvs.bad: invalid config key bad"},
		{`{"modules":{"kvs":1}}`, "broker config: modules.kvs: expected a table, got number 1"},
		{`{"modules":{"nosuch":{}}}`, "broker config: modules.nosuch: no such task or module nosuch"},
		{`{"modules":{"kvs":{"priority":1.5}}}`, "broker config: modules.kvs.priority: key priority: expected an integer, got number 1.5"},
		{`{"modules":[1]}`, "broker config: modules: expected a JSON object"},
		{`[`, "broker config: malformed config object"},
	} {
		err := defaultDB(t).applyBrokerModules([]byte(c.in))
		require.Error(t, err, c.in)
		assert.True(t, strings.HasPrefix(err.Error(), c.want), "got %q, want %q", err.Error(), c.want)
	}
	require.NoError(t, defaultDB(t).applyBrokerModules([]byte(`{"other":1}`)))
	require.NoError(t, defaultDB(t).applyBrokerModules(nil))
}

func TestSearchPath(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	def := []string{"/b", "/c"}
	assert.Equal(t, def, searchPath(def, env()))
	assert.Equal(t, []string{"/x"}, searchPath(def, env("FLUX_MODPROBE_PATH", "/x")))
	assert.Equal(t, []string{"/b", "/c", "/x"}, searchPath(def, env("FLUX_MODPROBE_PATH_APPEND", "/x:/b")))
	assert.Empty(t, searchPath(def, env("FLUX_MODPROBE_PATH", " : ")))
	assert.Equal(t, []string{"/b", "/c"}, def, "defaults not modified")
}

// dependencyTree is the tree list-dependencies writes, as a string.
func dependencyTree(d *db, name string, full bool, width int) (string, error) {
	var b strings.Builder
	err := writeDependencyTree(&b, d, name, full, width)
	return b.String(), err
}

func TestDependencyTree(t *testing.T) {
	d := defaultDB(t)
	out, err := dependencyTree(d, "job-manager", false, 0)
	require.NoError(t, err)
	assert.Equal(t, `job-manager
├── resource
│   └── kvs-watch
└── kvs
    ├── content
    │   └── content-backing (content-sqlite)
    └── heartbeat
`, out)
	full, err := dependencyTree(d, "job-manager", true, 0)
	require.NoError(t, err)
	assert.Equal(t, `job-manager
├── resource
│   └── kvs-watch
│       └── kvs
│           ├── content
│           │   ├── heartbeat
│           │   └── content-backing (content-sqlite)
│           └── heartbeat
└── kvs
    ├── content
    │   ├── heartbeat
    │   └── content-backing (content-sqlite)
    └── heartbeat
`, full)
	out, err = dependencyTree(d, "sched", false, 20)
	require.NoError(t, err)
	assert.Equal(t, "sched (sched-simple)\n├── job-manager\n│   └── kvs\n│       ├── content\n│       │   └── con+\n│       └── heartbe+\n└── resource\n    └── kvs-watch\n", out)
	_, err = dependencyTree(d, "foo", false, 0)
	assert.EqualError(t, err, "no such task or module foo")

	// --full terminates on a requires cycle.
	require.NoError(t, d.applyModulesFile("c.toml", []byte("[[modules]]\nname=\"a\"\nrequires=[\"b\"]\n[[modules]]\nname=\"b\"\nrequires=[\"a\"]\n")))
	out, err = dependencyTree(d, "a", true, 0)
	require.NoError(t, err)
	assert.Equal(t, "a\n└── b\n    └── a (cycle)\n", out)
	out, err = dependencyTree(d, "a", false, 0)
	require.NoError(t, err)
	assert.Equal(t, "a\n└── b\n", out)
}

func TestDepsJSONDeterministic(t *testing.T) {
	d := newDB()
	require.NoError(t, d.applyModulesFile("x.toml", []byte(`
[[modules]]
name = "m"
provides = ["svc"]
[[modules]]
name = "z"
after = ["svc", "m", "m"]
[[modules]]
name = "a"
before = ["z"]
`)))
	p := newPlanner(d, &facts{})
	tasks, err := p.closure([]string{"z", "a", "m", "svc"}, false)
	require.NoError(t, err)
	pl, err := p.graph(tasks)
	require.NoError(t, err)
	assert.Equal(t, `{"a":[],"m":[],"z":["a","m"]}`, pl.DepsJSON())
	assert.Contains(t, pl.Dot(), `"a" -> "z";`)
	assert.Contains(t, pl.Dot(), `"m" -> "z";`)
}

func TestPlannerEdgeCases(t *testing.T) {
	src := `
[[modules]]
name = "a"
requires = ["b"]
[[modules]]
name = "b"
requires = ["d"]
[[modules]]
name = "c"
disabled = true
[[modules]]
name = "d"
needs = ["c"]
[[modules]]
name = "e"
after = ["nosuch"]
[[modules]]
name = "f"
requires = ["nosuch"]
[[modules]]
name = "p"
needs = ["q"]
[[modules]]
name = "q"
needs = ["p"]
`
	d := newDB()
	require.NoError(t, d.applyModulesFile("x.toml", []byte(src)))
	p := newPlanner(d, &facts{})
	// needs is not re-checked for transitively added tasks: d still loads.
	names, err := p.filterActive([]string{"a"})
	require.NoError(t, err)
	tasks, err := p.closure(names, false)
	require.NoError(t, err)
	got := []string{}
	for _, t := range tasks {
		got = append(got, t.name)
	}
	assert.Equal(t, []string{"a", "b", "d"}, got)
	// An unknown after target is an error even for planning.
	e := []*entry{mustGet(t, d, "e")}
	_, err = p.graph(e)
	assert.EqualError(t, err, "no such task or module nosuch")
	_, err = p.closure([]string{"f"}, false)
	assert.EqualError(t, err, "no such task or module nosuch")
	// A needs cycle counts as unsatisfied.
	assert.False(t, p.needsOK(mustGet(t, d, "p")))
	// Removal cascades: dropping d (needs disabled c) drops what needs d.
	d2 := newDB()
	require.NoError(t, d2.applyModulesFile("x.toml", []byte(src+"\n[[modules]]\nname = \"g\"\nneeds = [\"d\"]\n")))
	p2 := newPlanner(d2, &facts{})
	names, err = p2.filterActive([]string{"d", "g", "a"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, names)
	assert.True(t, mustGet(t, d2, "g").disabled, "dropped names are disabled")
}
