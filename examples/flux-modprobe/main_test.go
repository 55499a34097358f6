package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type result struct {
	code           int
	stdout, stderr string
}

func invoke(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	leakcheck.Check(t)
	ctx := testutil.Context(t)
	var out, errb bytes.Buffer
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["FLUX_MODPROBE_PATH"]; !ok {
		env["FLUX_MODPROBE_PATH"] = "(embedded)" // no /etc/flux leaking in
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := run(ctx, args, &out, &errb, lookup)
	return result{code, out.String(), errb.String()}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no command given (see flux-modprobe --help)"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see flux-modprobe --help)`},
		{[]string{"show", "--offline"}, "show: wrong number of arguments"},
		{[]string{"rc1", "--offline", "--offline", "extra"}, "rc1: wrong number of arguments"},
		{[]string{"rc1", "--offline", "--offline", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"rc1", "--offline", "--offline", "--limit", "x"}, `invalid value "x" for flag -limit: parse error`},
		{[]string{"show", "--offline", "--offline", "--rank", "3", "--size", "2", "kvs"}, "--rank 3 is not below --size 2"},
		{[]string{"show", "--offline", "--offline", "--size", "0", "kvs"}, "--size 0: want 1 to 16777216 ranks"},
		{[]string{"show", "--offline", "--offline", "--size", "-4", "kvs"}, "--size -4: want 1 to 16777216 ranks"},
		{[]string{"show", "--offline", "--offline", "--size", "16777217", "kvs"}, "--size 16777217: want 1 to 16777216 ranks"},
		{[]string{"rc1", "--offline", "--offline", "--limit", "-1"}, "--limit, --timeout and --load-delay must not be negative"},
		{[]string{"show", "--offline", "--offline", "--attr", "novalue", "kvs"}, "--attr: invalid value 'novalue' (want KEY=VALUE)"},
		{[]string{"show", "--offline", "--offline", "--env", "=x", "kvs"}, "--env: invalid value '=x' (want KEY=VALUE)"},
		{[]string{"show", "--offline", "--offline", "-S", "sched", "kvs"}, "--set-alternative: invalid value 'sched' (want NAME=MODULE)"},
		{[]string{"show", "--offline", "--offline", "--set-alternative", "=x", "kvs"}, "--set-alternative: invalid value '=x' (want NAME=MODULE)"},
	} {
		assert.Equal(t, result{code: 2, stderr: "flux-modprobe: " + c.want + "\n"}, invoke(t, nil, c.args...), "%q: exit 2 and one line", c.args)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := invoke(t, nil, args...)
		assert.Equal(t, 0, r.code, "%q", args)
		assert.Empty(t, r.stderr, "%q", args)
		assert.True(t, strings.HasPrefix(r.stdout, "usage: flux-modprobe COMMAND"), "%q: %s", args, r.stdout)
	}
	for _, args := range [][]string{{"rc1", "--offline", "--help"}, {"rc1", "--offline", "-h"}, {"show", "--offline", "--help", "kvs"}, {"list-dependencies", "--offline", "-help"}} {
		r := invoke(t, nil, args...)
		assert.Equal(t, 0, r.code, "%q", args)
		assert.Empty(t, r.stderr, "%q", args)
		assert.True(t, strings.HasPrefix(r.stdout, "usage: flux-modprobe "+args[0]+" [OPTIONS]"), "%q: %s", args, r.stdout)
		assert.Contains(t, r.stdout, "-rank", "%q", args)
	}
	r := invoke(t, nil, "rc1", "--offline", "--help")
	assert.Contains(t, r.stdout, "-timing", "rc1 --help")
}

func TestShow(t *testing.T) {
	r := invoke(t, nil, "show", "--offline", "sched")
	want := `{"name": "sched-simple", "module": "sched-simple", "args": [], "ranks": "0", "provides": ["sched", "feasibility"], "requires": ["job-manager", "resource"], "needs": [], "before": [], "after": ["job-manager", "resource"], "priority": 50, "disabled": false, "exec": false}` + "\n"
	assert.Equal(t, result{stdout: want}, r)
	r = invoke(t, nil, "show", "--offline", "-S", "sched=sched-fifo", "feasibility")
	assert.Contains(t, r.stdout, `"name": "sched-fifo"`)
	assert.Contains(t, r.stdout, `"priority": 51`)
	r = invoke(t, nil, "show", "--offline", "-D", "sched-simple,sched-fifo", "sched")
	assert.Contains(t, r.stdout, `"name": "sched-backfill"`)
	r = invoke(t, map[string]string{"FLUX_MODPROBE_DISABLE": ""}, "show", "--offline", "sched")
	assert.Equal(t, result{code: 1, stderr: "flux-modprobe: ERROR: no such module or task ''\n"}, r)
	r = invoke(t, nil, "show", "--offline", "foo")
	assert.Equal(t, result{code: 1, stderr: "flux-modprobe: ERROR: no such task or module foo\n"}, r)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "broker.toml")
	require.NoError(t, os.WriteFile(cfg, []byte("[modules]\nfeasibility.ranks = \"0,4\"\n"), 0o644))
	r = invoke(t, nil, "show", "--offline", "--config", cfg, "feasibility")
	assert.Contains(t, r.stdout, `"ranks": "0,4"`)
	// On rank 1 nothing is viable: the best provider regardless.
	r = invoke(t, nil, "show", "--offline", "--rank", "1", "sched")
	assert.Contains(t, r.stdout, `"name": "sched-simple"`)
}

func TestListDependencies(t *testing.T) {
	r := invoke(t, nil, "list-dependencies", "--offline", "kvs-watch")
	want := "kvs-watch\n└── kvs\n    ├── content\n    │   └── content-backing (content-sqlite)\n    └── heartbeat\n"
	assert.Equal(t, result{stdout: want}, r)
	r = invoke(t, nil, "list-dependencies", "--offline", "-f", "kvs-watch")
	assert.Contains(t, r.stdout, "│   ├── heartbeat\n")
}

func TestRC1DryRunAndShowDeps(t *testing.T) {
	r := invoke(t, nil, "rc1", "--offline", "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "load kvs\n")
	assert.Contains(t, r.stdout, "run post-start-event\n")
	assert.True(t, strings.HasSuffix(r.stdout, "run run-all-rc1\n"), r.stdout)
	r = invoke(t, map[string]string{"FLUX_SCHED_MODULE": "none"}, "rc1", "--offline", "--dry-run")
	assert.NotContains(t, r.stdout, "sched-simple")
	r = invoke(t, nil, "rc1", "--offline", "--show-deps", "--rank", "1")
	require.Equal(t, 0, r.code, r.stderr)
	var deps map[string][]string
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &deps))
	assert.Equal(t, []string{"content"}, deps["kvs"], "kvs predecessors on rank 1")
	r = invoke(t, nil, "rc1", "--offline", "--dot")
	assert.True(t, strings.HasPrefix(r.stdout, "digraph modprobe {"), r.stdout)
	assert.Contains(t, r.stdout, `"kvs" -> "kvs-watch";`)
	r = invoke(t, nil, "rc1", "--offline", "--dry-run", "-v")
	assert.Contains(t, r.stderr, "checking (embedded)/modprobe.toml\nloading (embedded)/modprobe.toml\n")
}

func TestRC1TimingAndTrace(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "trace.json")
	r := invoke(t, nil, "rc1", "--offline", "--timing", "--load-delay", "1ms", "--trace", trace, "-v")
	require.Equal(t, 0, r.code, r.stderr)
	for _, want := range []string{"modprobe.stats (KVS of the in-process 1-rank instance):", " configure\n", " kvs\n", "rc1: 18 tasks ran, 0 failed, 0 skipped; makespan "} {
		assert.Contains(t, r.stdout, want)
	}
	assert.Contains(t, r.stderr, "simulated: flux startlog --post-start-event\n")
	assert.Contains(t, r.stderr, "loaded kvs\n")
	b, err := os.ReadFile(trace)
	require.NoError(t, err)
	var doc struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Len(t, doc.TraceEvents, 19)
}

func TestLoadRemove(t *testing.T) {
	r := invoke(t, nil, "load", "--offline", "--loaded", "rc1", "sched")
	assert.Equal(t, result{stderr: "flux-modprobe: INFO: All modules and dependencies are already loaded\n"}, r)
	r = invoke(t, nil, "load", "--offline", "foo")
	assert.Equal(t, result{code: 1, stderr: "flux-modprobe: ERROR: no such task or module foo\n"}, r)
	r = invoke(t, nil, "load", "--offline", "--dry-run", "--loaded", "kvs", "job-list")
	assert.Equal(t, result{stdout: "load kvs-watch\nload resource\nload job-manager\nload job-list\n"}, r)
	r = invoke(t, nil, "remove", "--offline", "--loaded", "rc1", "kvs")
	assert.Equal(t, result{code: 1, stderr: "flux-modprobe: ERROR: kvs still in use by job-exec, job-info, job-ingest, job-manager, kvs-watch\n"}, r)
	r = invoke(t, nil, "remove", "--offline", "--dry-run", "foo")
	assert.Equal(t, result{code: 1, stderr: "flux-modprobe: ERROR: module foo is not loaded\n"}, r)
	r = invoke(t, nil, "rc3", "--offline", "--dry-run", "--loaded", "rc1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "run run-all-rc3\n"), r.stdout)
	assert.Contains(t, r.stdout, "remove kvs\n")
	r = invoke(t, nil, "rc3", "--offline", "--loaded", "rc1", "--load-delay", "1ms")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Empty(t, r.stderr)
}

func TestRunFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "test.toml")
	write := func(s string) { require.NoError(t, os.WriteFile(f, []byte(s), 0o644)) }
	write("[[setup]]\nprint = \"setup\"\n[[tasks]]\nname = \"first\"\nbefore = [\"*\"]\nprint = \"first\"\n[[tasks]]\nname = \"last\"\nprint = \"last\"\n")
	r := invoke(t, nil, "run", "--offline", f)
	assert.Equal(t, result{stdout: "setup\nfirst\nlast\n"}, r)
	write("[[tasks]]\nname = \"first\"\nbefore = [\"*\"]\n[[tasks]]\nname = \"before-first\"\nbefore = [\"first\"]\n")
	r = invoke(t, nil, "run", "--offline", f)
	assert.Equal(t, result{code: 1, stderr: "flux-modprobe: ERROR: ('nodes are in a cycle', ['first', 'before-first', 'first'])\n"}, r)
	r = invoke(t, nil, "run", "--offline", "--show-deps", f)
	assert.Equal(t, result{stdout: `{"before-first":["first"],"first":["before-first"]}` + "\n"}, r)
	write("[[tasks]]\nname = \"next\"\nfail = \"test exception\"\n[[tasks]]\nname = \"last\"\nafter = [\"next\"]\nprint = \"last\"\n")
	r = invoke(t, nil, "run", "--offline", f)
	assert.Equal(t, result{code: 1, stderr: "next: test exception\n"}, r)
	write("[[tasks]]\nname = \"test\"\nbranks = \"0\"\n")
	r = invoke(t, nil, "run", "--offline", f)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "test: unknown task argument branks")
}

func TestLegacyScriptsSimulated(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "rc1.d"), 0o755))
	marker := filepath.Join(dir, "ran")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rc1.d", "x"), []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755))
	r := invoke(t, nil, "rc1", "--offline", "--confdir", dir, "-v", "--load-delay", "0s")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "simulated: '"+filepath.Join(dir, "rc1.d", "x")+"'")
	assert.NoFileExists(t, marker, "a legacy rc1.d script ran against the in-process instance")
}

func TestListDependenciesWidth(t *testing.T) {
	r := invoke(t, map[string]string{"COLUMNS": "12"}, "list-dependencies", "--offline", "kvs-watch")
	want := "kvs-watch\n└── kvs\n    ├── con+\n    │   └──+\n    └── hea+\n"
	assert.Equal(t, result{stdout: want}, r)
}
