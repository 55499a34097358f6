package modprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContextAPI(t *testing.T) {
	h := newHarness(t, testbroker.Config{
		Size:   2,
		Attrs:  map[string]string{"cron.directory": "/etc/cron"},
		Config: "[systemd]\nenable = false\n",
		Env:    map[string]string{"BROKER_ONLY": "b", "BOTH": "broker"},
	})
	h.env["BOTH"] = "local"
	var c *Context
	_, err := h.mp(1).Run(testutil.Context(t), RC{Setup: func(ctx context.Context, cc *Context) error {
		c = cc
		return nil
	}})
	require.NoError(t, err)
	ctx := testutil.Context(t)
	assert.Equal(t, uint32(1), c.Rank())

	v, err := c.AttrGet(ctx, "cron.directory")
	require.NoError(t, err)
	assert.Equal(t, "/etc/cron", v)
	_, err = c.AttrGet(ctx, "nosuch")
	assert.ErrorIs(t, err, fluxkit.ENOENT)

	cv, ok, err := c.ConfGet(ctx, "systemd.enable")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, false, cv)
	_, ok, err = c.ConfGet(ctx, "systemd.nope")
	require.NoError(t, err)
	assert.False(t, ok)

	ev, ok := c.Getenv(ctx, "BOTH")
	assert.True(t, ok)
	assert.Equal(t, "local", ev, "local environment first")
	ev, ok = c.Getenv(ctx, "BROKER_ONLY")
	assert.True(t, ok)
	assert.Equal(t, "b", ev, "broker fallback")
	h.b.Rank(1).SetEnv("BROKER_ONLY", "changed")
	ev, _ = c.Getenv(ctx, "BROKER_ONLY")
	assert.Equal(t, "b", ev, "broker values are cached")
	_, ok = c.Getenv(ctx, "UNSET_ANYWHERE")
	assert.False(t, ok)

	require.NoError(t, c.Setenv(ctx, "NEWVAR", "x y"))
	bv, _ := h.b.Rank(1).Env("NEWVAR")
	assert.Equal(t, "x y", bv, "broker.setenv reached the broker")
	ev, _ = c.Getenv(ctx, "NEWVAR")
	assert.Equal(t, "x y", ev)
	assert.Error(t, c.Setenv(ctx, "A=B", "x"))
	require.NoError(t, c.Unsetenv(ctx, "BOTH"))
	_, ok = c.lookupLocal("BOTH")
	assert.False(t, ok)
	env := c.environ()
	assert.Contains(t, env, "NEWVAR=x y")
	assert.Contains(t, env, "FLUX_RC_USE_MODPROBE=t")
	for _, kv := range env {
		assert.False(t, strings.HasPrefix(kv, "BOTH="), "unset locally")
	}

	var attr struct {
		Value string `json:"value"`
	}
	require.NoError(t, c.RPC(ctx, "attr.get", 0, map[string]string{"name": "rank"}, &attr))
	assert.Equal(t, "0", attr.Value)

	c.Setopt("sched", "a  b", false)
	c.Setopt("sched-simple", "c", false)
	assert.Equal(t, []string{"d", "c", "a", "b"}, c.Getopts("sched-simple", []string{"d"}, "sched"))
	c.Setopt("sched", "e", true)
	assert.Equal(t, []string{"c", "a", "b", "e"}, c.Getopts("sched-simple", []string{"d"}, "sched"))

	assert.EqualError(t, c.LoadModules("nosuch"), "no such task or module nosuch")
	require.NoError(t, c.LoadModules("kvs"))
	c.s.mu.Lock()
	assert.Equal(t, []string{"kvs", "content", "heartbeat"}, c.s.active)
	c.s.mu.Unlock()
	require.NoError(t, c.Enable("sched"))
	assert.EqualError(t, c.Enable("nosuch"), "no such module or task 'nosuch'")
	require.NoError(t, c.SetAlternative("sched", "sched-fifo"))

	// Shared values are race-free.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Set(fmt.Sprint(i%3), i)
			_ = c.Get("0", nil)
		}()
	}
	wg.Wait()
	assert.Equal(t, "dflt", c.Get("missing", "dflt"))
}

func TestLoadModulesRejectsTasks(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{
		Tasks: []Task{{Name: "t1", Run: func(context.Context, *Context) error { return nil }}},
		Setup: func(_ context.Context, c *Context) error { return c.LoadModules("t1") },
	})
	assert.EqualError(t, err, "t1 is not a module")
}

func TestBashAndRCScripts(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	conf := filepath.Join(h.dir, "conf")
	script := func(rel, body string) {
		p := filepath.Join(h.dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	script("conf/rc1.d/10-a", "echo a $FLUX_RC_USE_MODPROBE")
	script("extra/rc1.d/05-b", "echo b")
	script("conf/rc1.d/20-fail", "exit 4")
	require.NoError(t, os.WriteFile(filepath.Join(conf, "rc1.d", "30-notexec"), []byte("echo no"), 0o644))
	h.env["FLUX_RC_EXTRA"] = filepath.Join(h.dir, "extra")
	m := h.mp(0, verbose, func(c *Config) { c.ConfDir = conf })
	_, err := m.Run(testutil.Context(t), RC{Tasks: []Task{{Name: "scripts", Run: func(ctx context.Context, c *Context) error {
		if err := c.Bash(ctx, "echo hello from bash"); err != nil {
			return err
		}
		return c.RunRCScripts(ctx, 1)
	}}}})
	require.Error(t, err)
	// Directory by directory (CONFDIR, then FLUX_RC_EXTRA), by name within
	// each, as the legacy shell loop ran them; a failure does not stop the
	// others.
	assert.Equal(t, "hello from bash\n"+
		"running "+filepath.Join(conf, "rc1.d/10-a")+"\na t\n"+
		"running "+filepath.Join(conf, "rc1.d/20-fail")+"\n"+
		"running "+filepath.Join(h.dir, "extra/rc1.d/05-b")+"\nb\n", h.stdout.String())
	assert.Contains(t, h.stderr.String(), filepath.Join(conf, "rc1.d/20-fail")+" failed with exit code 4\n")
	assert.Contains(t, h.stderr.String(), "scripts: one or more rc1.d scripts failed\n")
	assert.Contains(t, h.stderr.String(), "start scripts\n")
	assert.NotContains(t, h.stderr.String(), "completed scripts")
}

func TestRCScriptsFollowLinksAndReportSignals(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	conf := filepath.Join(h.dir, "conf")
	require.NoError(t, os.MkdirAll(filepath.Join(conf, "rc3.d"), 0o755))
	target := h.write("scripts/real", "#!/bin/sh\necho linked\n")
	require.NoError(t, os.Chmod(target, 0o755))
	require.NoError(t, os.Symlink(target, filepath.Join(conf, "rc3.d", "10-link")))
	killer := filepath.Join(conf, "rc3.d", "20-killed")
	require.NoError(t, os.WriteFile(killer, []byte("#!/bin/sh\nkill -TERM $$\n"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(conf, "rc3.d", "30-dir"), 0o755))
	m := h.mp(0, func(c *Config) { c.ConfDir = conf })
	_, err := m.Run(testutil.Context(t), RC{Tasks: []Task{{Name: "scripts", Run: func(ctx context.Context, c *Context) error { return c.RunRCScripts(ctx, 3) }}}})
	require.Error(t, err)
	assert.Equal(t, "running "+filepath.Join(conf, "rc3.d/10-link")+"\nlinked\nrunning "+killer+"\n", h.stdout.String(), "a link to a script runs; a directory does not")
	assert.Contains(t, h.stderr.String(), killer+" failed with exit code -15\n", "a signal is reported as Python reports it")
}

func TestTimingStats(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	for _, mod := range []string{"kvs", "content"} {
		h.b.Rank(0).SetModuleLatency(mod, 5e6)
	}
	h.stubServices(0)
	m := h.mp(0, withShell(&fakeShell{}))
	s, err := m.PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	rep, err := s.Execute(testutil.Context(t))
	require.NoError(t, err)
	require.NoError(t, s.WriteStats(testutil.Context(t), rep))
	raw, ok := h.b.KVSGet("modprobe.stats")
	require.True(t, ok)
	var stats []Stat
	require.NoError(t, json.Unmarshal(raw, &stats))
	require.Greater(t, len(stats), 4)
	assert.Equal(t, []string{"configure", "solve", "deps", "prepare"}, []string{stats[0].Name, stats[1].Name, stats[2].Name, stats[3].Name})
	names := map[string]bool{}
	for i, st := range stats[4:] {
		names[st.Name] = true
		if i > 0 {
			assert.GreaterOrEqual(t, st.StartTime, stats[4+i-1].StartTime, "tasks sorted by start time")
		}
		if st.Name == "kvs" {
			assert.GreaterOrEqual(t, st.Duration, 0.005)
		}
	}
	assert.Len(t, names, s.Plan().Len())
	// Other ranks do not write.
	h2 := newHarness(t, testbroker.Config{Size: 2})
	s2, err := h2.mp(1, dryRun).PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	rep2, err := s2.Execute(testutil.Context(t))
	require.NoError(t, err)
	require.NoError(t, s2.WriteStats(testutil.Context(t), rep2))
	_, ok = h2.b.KVSGet("modprobe.stats")
	assert.False(t, ok)
}

func TestVerboseModuleTrace(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0, verbose).Load(testutil.Context(t), "sdbus-sys")
	require.NoError(t, err)
	assert.Contains(t, h.stderr.String(), `module.load {"args":["system"],"exec":false,"name":"sdbus-sys","path":"sdbus"}`)
	assert.Contains(t, h.stderr.String(), "loaded sdbus-sys\n")
	assert.Equal(t, []string{"sdbus-sys"}, h.b.Rank(0).Modules())
	_, err = h.mp(0, verbose).Remove(testutil.Context(t), "sdbus-sys")
	require.NoError(t, err)
	assert.Contains(t, h.stderr.String(), "module.remove sdbus-sys\nremoved sdbus-sys\n")
}

func TestModuleLoadFailure(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.b.Rank(0).FailModule("kvs", fluxkit.Errorf(fluxkit.EINVAL, "kvs: bad args"))
	h.stubServices(0)
	rep, err := h.mp(0, withShell(&fakeShell{})).RC1(testutil.Context(t))
	require.ErrorIs(t, err, ErrTaskFailed)
	assert.Equal(t, "kvs: kvs: bad args\n", h.stderr.String())
	assert.Contains(t, rep.Skipped, "kvs-watch")
	assert.Contains(t, rep.Skipped, "run-all-rc1")
	assert.NotContains(t, h.b.Rank(0).Modules(), "kvs-watch")
	assert.Contains(t, h.b.Rank(0).Modules(), "content", "no rollback")
}

func TestNewRefusesNoHandleAndWhatValidateRefuses(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	_, err := New(nil, Config{})
	assert.EqualError(t, err, "modprobe: New needs a Handle")
	for cfg, want := range map[*Config]string{
		{Exec: ExecConfig{Limit: -1}}:                      "modprobe: Config.Exec.Limit -1 is negative",
		{Exec: ExecConfig{TaskTimeout: -time.Millisecond}}: "modprobe: Config.Exec.TaskTimeout -1ms is negative",
	} {
		assert.EqualError(t, cfg.Validate(), want)
		_, err = New(h.b.Owner(0), *cfg)
		assert.EqualError(t, err, want, "New refuses what Validate refuses")
	}
	var zero Config
	assert.NoError(t, zero.Validate(), "the zero Config is valid")
	_, err = Execute(testutil.Context(t), map[string][]string{"a": nil}, ExecConfig{Limit: -2}, func(context.Context, string) error { return nil })
	assert.EqualError(t, err, "modprobe: ExecConfig.Limit -2 is negative")
}

func TestRemoveModulesFromSetup(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.loadRC1(0)
	_, err := h.mp(0, dryRun).Run(testutil.Context(t), RC{Setup: func(ctx context.Context, c *Context) error {
		return c.RemoveModules(ctx, "job-list", "sched")
	}})
	require.NoError(t, err)
	got := testutil.Lines(h.stdout.String())
	assert.ElementsMatch(t, []string{"remove job-list", "remove sched-simple"}, got)

	h.stdout.Reset()
	_, err = h.mp(0, dryRun).Run(testutil.Context(t), RC{Setup: func(ctx context.Context, c *Context) error {
		return c.RemoveModules(ctx)
	}})
	require.NoError(t, err)
	got = testutil.Lines(h.stdout.String())
	assert.Len(t, got, len(rank0Modules))
	pos := func(m string) int { return slices.Index(got, "remove "+m) }
	assert.Less(t, pos("sched-simple"), pos("job-manager"), "removal reverses load order")
	assert.Less(t, pos("kvs-watch"), pos("kvs"))
	assert.Less(t, pos("kvs"), pos("content-sqlite"))
	assert.Equal(t, "remove content", got[len(got)-1], "content is loaded before everything it is ordered with")
}
