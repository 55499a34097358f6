package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

type result struct {
	code           int
	stdout, stderr string
}

func invoke(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
		r := invoke(t, nil, c.args...)
		if r.code != 2 || r.stderr != "flux-modprobe: "+c.want+"\n" || r.stdout != "" {
			t.Errorf("%q: want exit 2 and the one line %q, got %+v", c.args, c.want, r)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := invoke(t, nil, args...)
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage: flux-modprobe COMMAND") {
			t.Errorf("%q: %+v", args, r)
		}
	}
	for _, args := range [][]string{{"rc1", "--offline", "--help"}, {"rc1", "--offline", "-h"}, {"show", "--offline", "--help", "kvs"}, {"list-dependencies", "--offline", "-help"}} {
		r := invoke(t, nil, args...)
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage: flux-modprobe "+args[0]+" [OPTIONS]") || !strings.Contains(r.stdout, "-rank") {
			t.Errorf("%q: %+v", args, r)
		}
	}
	r := invoke(t, nil, "rc1", "--offline", "--help")
	if !strings.Contains(r.stdout, "-timing") {
		t.Errorf("rc1 --help lacks --timing: %s", r.stdout)
	}
}

func TestShow(t *testing.T) {
	r := invoke(t, nil, "show", "--offline", "sched")
	want := `{"name": "sched-simple", "module": "sched-simple", "args": [], "ranks": "0", "provides": ["sched", "feasibility"], "requires": ["job-manager", "resource"], "needs": [], "before": [], "after": ["job-manager", "resource"], "priority": 50, "disabled": false, "exec": false}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "show", "--offline", "-S", "sched=sched-fifo", "feasibility")
	if !strings.Contains(r.stdout, `"name": "sched-fifo"`) || !strings.Contains(r.stdout, `"priority": 51`) {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "show", "--offline", "-D", "sched-simple,sched-fifo", "sched")
	if !strings.Contains(r.stdout, `"name": "sched-backfill"`) {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, map[string]string{"FLUX_MODPROBE_DISABLE": ""}, "show", "--offline", "sched")
	if r.code != 1 || r.stderr != "flux-modprobe: ERROR: no such module or task ''\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "show", "--offline", "foo")
	if r.code != 1 || r.stderr != "flux-modprobe: ERROR: no such task or module foo\n" {
		t.Fatalf("%+v", r)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "broker.toml")
	if err := os.WriteFile(cfg, []byte("[modules]\nfeasibility.ranks = \"0,4\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = invoke(t, nil, "show", "--offline", "--config", cfg, "feasibility")
	if !strings.Contains(r.stdout, `"ranks": "0,4"`) {
		t.Fatalf("%+v", r)
	}
	// On rank 1 nothing is viable: the best provider regardless.
	r = invoke(t, nil, "show", "--offline", "--rank", "1", "sched")
	if !strings.Contains(r.stdout, `"name": "sched-simple"`) {
		t.Fatalf("%+v", r)
	}
}

func TestListDependencies(t *testing.T) {
	r := invoke(t, nil, "list-dependencies", "--offline", "kvs-watch")
	want := "kvs-watch\n└── kvs\n    ├── content\n    │   └── content-backing (content-sqlite)\n    └── heartbeat\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "list-dependencies", "--offline", "-f", "kvs-watch")
	if !strings.Contains(r.stdout, "│   ├── heartbeat\n") {
		t.Fatalf("%+v", r)
	}
}

func TestRC1DryRunAndShowDeps(t *testing.T) {
	r := invoke(t, nil, "rc1", "--offline", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "load kvs\n") || !strings.Contains(r.stdout, "run post-start-event\n") || !strings.HasSuffix(r.stdout, "run run-all-rc1\n") {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, map[string]string{"FLUX_SCHED_MODULE": "none"}, "rc1", "--offline", "--dry-run")
	if strings.Contains(r.stdout, "sched-simple") {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "rc1", "--offline", "--show-deps", "--rank", "1")
	var deps map[string][]string
	if err := json.Unmarshal([]byte(r.stdout), &deps); err != nil || r.code != 0 {
		t.Fatalf("%v %+v", err, r)
	}
	if got := strings.Join(deps["kvs"], ","); got != "content" {
		t.Fatalf("kvs preds on rank 1: %q", got)
	}
	r = invoke(t, nil, "rc1", "--offline", "--dot")
	if !strings.HasPrefix(r.stdout, "digraph modprobe {") || !strings.Contains(r.stdout, `"kvs" -> "kvs-watch";`) {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "rc1", "--offline", "--dry-run", "-v")
	if !strings.Contains(r.stderr, "checking (embedded)/modprobe.toml\nloading (embedded)/modprobe.toml\n") {
		t.Fatalf("%+v", r)
	}
}

func TestRC1TimingAndTrace(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "trace.json")
	r := invoke(t, nil, "rc1", "--offline", "--timing", "--load-delay", "1ms", "--trace", trace, "-v")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	for _, want := range []string{"modprobe.stats (KVS of the in-process 1-rank instance):", " configure\n", " kvs\n", "rc1: 18 tasks ran, 0 failed, 0 skipped; makespan "} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("missing %q in %s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "simulated: flux startlog --post-start-event\n") || !strings.Contains(r.stderr, "loaded kvs\n") {
		t.Fatalf("%s", r.stderr)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.TraceEvents) != 19 {
		t.Fatalf("%v: %d events", err, len(doc.TraceEvents))
	}
}

func TestLoadRemove(t *testing.T) {
	r := invoke(t, nil, "load", "--offline", "--loaded", "rc1", "sched")
	if r.code != 0 || r.stderr != "flux-modprobe: INFO: All modules and dependencies are already loaded\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "load", "--offline", "foo")
	if r.code != 1 || r.stderr != "flux-modprobe: ERROR: no such task or module foo\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "load", "--offline", "--dry-run", "--loaded", "kvs", "job-list")
	if r.code != 0 || r.stdout != "load kvs-watch\nload resource\nload job-manager\nload job-list\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "remove", "--offline", "--loaded", "rc1", "kvs")
	if r.code != 1 || r.stderr != "flux-modprobe: ERROR: kvs still in use by job-exec, job-info, job-ingest, job-manager, kvs-watch\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "remove", "--offline", "--dry-run", "foo")
	if r.code != 1 || r.stderr != "flux-modprobe: ERROR: module foo is not loaded\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "rc3", "--offline", "--dry-run", "--loaded", "rc1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "run run-all-rc3\n") || !strings.Contains(r.stdout, "remove kvs\n") {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "rc3", "--offline", "--loaded", "rc1", "--load-delay", "1ms")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
}

func TestRunFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "test.toml")
	write := func(s string) {
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("[[setup]]\nprint = \"setup\"\n[[tasks]]\nname = \"first\"\nbefore = [\"*\"]\nprint = \"first\"\n[[tasks]]\nname = \"last\"\nprint = \"last\"\n")
	r := invoke(t, nil, "run", "--offline", f)
	if r.code != 0 || r.stdout != "setup\nfirst\nlast\n" {
		t.Fatalf("%+v", r)
	}
	write("[[tasks]]\nname = \"first\"\nbefore = [\"*\"]\n[[tasks]]\nname = \"before-first\"\nbefore = [\"first\"]\n")
	r = invoke(t, nil, "run", "--offline", f)
	if r.code != 1 || r.stderr != "flux-modprobe: ERROR: ('nodes are in a cycle', ['first', 'before-first', 'first'])\n" {
		t.Fatalf("%+v", r)
	}
	r = invoke(t, nil, "run", "--offline", "--show-deps", f)
	if r.code != 0 || r.stdout != `{"before-first":["first"],"first":["before-first"]}`+"\n" {
		t.Fatalf("%+v", r)
	}
	write("[[tasks]]\nname = \"next\"\nfail = \"test exception\"\n[[tasks]]\nname = \"last\"\nafter = [\"next\"]\nprint = \"last\"\n")
	r = invoke(t, nil, "run", "--offline", f)
	if r.code != 1 || r.stderr != "next: test exception\n" || r.stdout != "" {
		t.Fatalf("%+v", r)
	}
	write("[[tasks]]\nname = \"test\"\nbranks = \"0\"\n")
	r = invoke(t, nil, "run", "--offline", f)
	if r.code != 1 || !strings.Contains(r.stderr, "test: unknown task argument branks") {
		t.Fatalf("%+v", r)
	}
}

func TestLegacyScriptsSimulated(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rc1.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	if err := os.WriteFile(filepath.Join(dir, "rc1.d", "x"), []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := invoke(t, nil, "rc1", "--offline", "--confdir", dir, "-v", "--load-delay", "0s")
	if r.code != 0 || !strings.Contains(r.stderr, "simulated: '"+filepath.Join(dir, "rc1.d", "x")+"'") {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a legacy rc1.d script ran against the in-process instance")
	}
}

func TestListDependenciesWidth(t *testing.T) {
	r := invoke(t, map[string]string{"COLUMNS": "12"}, "list-dependencies", "--offline", "kvs-watch")
	want := "kvs-watch\n└── kvs\n    ├── con+\n    │   └──+\n    └── hea+\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("%q", r.stdout)
	}
}
