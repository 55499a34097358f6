package modprobe

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// flux-core v0.88.0's etc/modprobe/modprobe.toml and the tasks of its
// rc1.py and rc3.py, transcribed by hand from flux-core and independently
// of defaults/*.toml. The tests below derive the expected plans from these
// tables with the planning rules, and compare them with what the embedded
// default produces.

type fluxCoreItem struct {
	name                 string
	ranks                string // "" = all
	provides, requires   []string
	before, after, needs []string
	needsAttrs, needsCfg []string
	needsEnv             []string
	prio                 int
}

func l(s ...string) []string { return s }

var fluxCoreModules = []fluxCoreItem{
	{name: "heartbeat"},
	{name: "content", requires: l("heartbeat", "content-backing")},
	{name: "cron", ranks: "0", requires: l("heartbeat")},
	{name: "content-files", ranks: "0", provides: l("content-backing"), after: l("content")},
	{name: "content-sqlite", ranks: "0", provides: l("content-backing"), after: l("content")},
	{name: "kvs", requires: l("content", "heartbeat"), after: l("content-backing", "content")},
	{name: "kvs-watch", requires: l("kvs"), after: l("kvs")},
	{name: "sdbus", needsCfg: l("systemd.enable")},
	{name: "sdbus-sys", needsCfg: l("systemd.enable")},
	{name: "sdmon", requires: l("sdbus", "sdbus-sys"), after: l("sdbus", "sdbus-sys"), needsCfg: l("systemd.enable")},
	{name: "sdexec", requires: l("sdbus", "sdexec-mapper"), after: l("sdbus"), needsCfg: l("systemd.enable")},
	{name: "sdexec-mapper", needsCfg: l("systemd.enable", "exec.sdexec-constrain-resources")},
	{name: "resource", requires: l("kvs-watch"), after: l("kvs-watch")},
	{name: "job-manager", ranks: "0", requires: l("resource", "kvs"), after: l("resource", "kvs")},
	{name: "job-info", requires: l("kvs-watch", "kvs")},
	{name: "job-list", ranks: "0", requires: l("job-manager"), after: l("job-manager")},
	{name: "job-ingest", requires: l("kvs", "job-manager"), after: l("job-manager")},
	{name: "job-exec", ranks: "0", requires: l("kvs", "job-manager"), after: l("job-manager")},
	{name: "sched-simple", ranks: "0", provides: l("sched", "feasibility"), requires: l("job-manager", "resource"), after: l("job-manager", "resource"), prio: 50},
	{name: "sched-fifo", ranks: "0", provides: l("sched", "feasibility"), requires: l("job-manager", "resource"), after: l("job-manager", "resource"), prio: 40},
	{name: "sched-backfill", ranks: "0", provides: l("sched", "feasibility"), requires: l("job-manager", "resource"), after: l("job-manager", "resource"), prio: 40},
}

var fluxCoreRC1Load = l("content", "heartbeat", "cron", "content-backing", "kvs", "kvs-watch", "sdbus", "sdbus-sys",
	"sdexec", "sdmon", "resource", "job-manager", "job-list", "job-info", "job-ingest", "job-exec", "sched", "feasibility")

var fluxCoreRC1Tasks = []fluxCoreItem{
	{name: "check-restore", ranks: "0", before: l("content-backing"), needs: l("content-backing"), needsAttrs: l("content.restore")},
	{name: "restore", ranks: "0", before: l("kvs"), after: l("content-backing", "check-restore"), requires: l("check-restore", "content-backing"), needs: l("content-backing", "check-restore"), needsAttrs: l("content.restore")},
	{name: "post-start-event", ranks: "0", after: l("content-backing", "kvs"), requires: l("kvs"), needs: l("content-backing")},
	{name: "check-clean-shutdown", ranks: "0", after: l("post-start-event"), requires: l("post-start-event"), needs: l("content-backing")},
	{name: "fsck", ranks: "0", before: l("kvs"), after: l("content-backing", "restore"), requires: l("content-backing"), needs: l("content-backing"), needsAttrs: l("!broker.recovery-mode")},
	{name: "cron-load", ranks: "0", after: l("cron"), needs: l("cron"), needsAttrs: l("cron.directory")},
	{name: "push-cleanup", ranks: "0"},
	{name: "slurm-expiration-sync", ranks: "0", after: l("resource"), needsEnv: l("SLURM_JOB_ID")},
	{name: "fake-resources", ranks: "0", before: l("resource"), after: l("kvs"), needsCfg: l("fake-resources")},
	{name: "run-all-rc1", after: l("*")},
}

var fluxCoreRC3Tasks = []fluxCoreItem{
	{name: "run-all-rc3", before: l("*")},
	{name: "post-finish-event", ranks: "0", before: l("kvs"), needs: l("kvs")},
	{name: "content-dump", ranks: "0", before: l("content-backing"), after: l("content-flush"), needsAttrs: l("content.dump")},
	{name: "content-flush", ranks: "0", before: l("content-dump", "content-backing"), after: l("kvs"), needs: l("content-backing")},
}

// world is the broker state a derivation assumes.
type world struct {
	rank  uint32
	attrs map[string]bool
}

func (w world) on(it fluxCoreItem) bool {
	if it.ranks == "0" && w.rank != 0 {
		return false
	}
	if len(it.needsCfg) > 0 || len(it.needsEnv) > 0 { // no config, no env
		return false
	}
	for _, a := range it.needsAttrs {
		neg := strings.HasPrefix(a, "!")
		if w.attrs[strings.TrimPrefix(a, "!")] == neg {
			return false
		}
	}
	return true
}

// alt is the default provider choice: highest priority, later wins ties.
func alt(name string) string {
	switch name {
	case "content-backing":
		return "content-sqlite"
	case "sched", "feasibility":
		return "sched-simple"
	}
	return name
}

func item(name string, tasks []fluxCoreItem) fluxCoreItem {
	for _, it := range append(slices.Clone(fluxCoreModules), tasks...) {
		if it.name == name {
			return it
		}
	}
	panic("unknown " + name)
}

// deriveRC1 applies the planning rules (enablement on the rank, needs,
// the requires closure, before/after with "*") to the tables.
func deriveRC1(w world) map[string][]string {
	in := map[string]bool{}
	var visit func(string)
	seen := map[string]bool{}
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		it := item(alt(n), fluxCoreRC1Tasks)
		if w.on(it) {
			in[it.name] = true
		}
		for _, r := range it.requires {
			visit(r)
		}
	}
	// Modules activated by setup, when enabled here.
	var active []string
	for _, n := range fluxCoreRC1Load {
		if w.on(item(alt(n), nil)) {
			active = append(active, n)
		}
	}
	provided := func(svc string) bool {
		for _, n := range active {
			it := item(alt(n), fluxCoreRC1Tasks)
			if it.name == svc || slices.Contains(it.provides, svc) {
				return true
			}
		}
		return false
	}
	for _, t := range fluxCoreRC1Tasks {
		if w.on(t) {
			active = append(active, t.name)
		}
	}
	// needs filter (no cascades arise in the default set).
	var kept []string
	for _, n := range active {
		ok := true
		for _, need := range item(alt(n), fluxCoreRC1Tasks).needs {
			ok = ok && provided(need)
		}
		if ok {
			kept = append(kept, n)
		}
	}
	for _, n := range kept {
		visit(n)
	}
	return derivePreds(in, fluxCoreRC1Tasks, false)
}

// derivePreds builds the predecessor map over the planned names; in rc3
// (swap) modules have before and after exchanged.
func derivePreds(in map[string]bool, tasks []fluxCoreItem, swap bool) map[string][]string {
	preds := map[string][]string{}
	get := func(n string) fluxCoreItem {
		it := item(n, tasks)
		if swap && !slices.ContainsFunc(tasks, func(t fluxCoreItem) bool { return t.name == n }) {
			it.before, it.after = it.after, it.before
		}
		return it
	}
	for n := range in {
		preds[n] = nil
	}
	for n := range in {
		it := get(n)
		for _, a := range it.after {
			if a == "*" {
				for m := range in {
					if m != n && !slices.Contains(get(m).after, "*") {
						preds[n] = append(preds[n], m)
					}
				}
			} else if in[alt(a)] {
				preds[n] = append(preds[n], alt(a))
			}
		}
		for _, b := range it.before {
			if b == "*" {
				for m := range in {
					if m != n && !slices.Contains(get(m).before, "*") {
						preds[m] = append(preds[m], n)
					}
				}
			} else if in[alt(b)] {
				preds[alt(b)] = append(preds[alt(b)], n)
			}
		}
	}
	for n := range preds {
		slices.Sort(preds[n])
		preds[n] = slices.Compact(preds[n])
		if preds[n] == nil {
			preds[n] = []string{}
		}
	}
	return preds
}

func TestDefaultRC1GraphMatchesFluxCore(t *testing.T) {
	cases := []struct {
		name  string
		rank  uint32
		attrs map[string]string
	}{
		{"rank0", 0, nil},
		{"rank1", 1, nil},
		{"rank0-restore", 0, map[string]string{"content.restore": "/x", "cron.directory": "/etc/cron"}},
		{"rank0-recovery", 0, map[string]string{"broker.recovery-mode": "1"}},
		{"rank3-restore", 3, map[string]string{"content.restore": "/x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, testbroker.Config{Size: 4, Attrs: c.attrs})
			s, err := h.mp(c.rank).PrepareRC1(testutil.Context(t))
			require.NoError(t, err)
			w := world{rank: c.rank, attrs: map[string]bool{}}
			for k := range c.attrs {
				w.attrs[k] = true
			}
			assert.Equal(t, deriveRC1(w), s.Plan().Predecessors())
			require.NoError(t, s.Plan().Check())
		})
	}
}

func TestDefaultRC1Rank0Shape(t *testing.T) {
	// A few relations spelled out, so a broken derivation cannot hide a
	// broken plan.
	h := newHarness(t, testbroker.Config{})
	s, err := h.mp(0).PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	p := s.Plan().Predecessors()
	assert.Equal(t, []string{"content"}, p["content-sqlite"])
	assert.Equal(t, []string{"content", "content-sqlite", "fsck"}, p["kvs"])
	assert.Equal(t, []string{"job-manager", "resource"}, p["sched-simple"])
	assert.Equal(t, []string{"content-sqlite"}, p["fsck"])
	assert.Len(t, p["run-all-rc1"], len(p)-1)
	assert.NotContains(t, p, "sdbus")
	assert.NotContains(t, p, "content-files")
}

func TestDefaultRC3GraphMatchesFluxCore(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	h.loadRC1(0)
	s, err := h.mp(0).PrepareRC3(testutil.Context(t))
	require.NoError(t, err)
	in := map[string]bool{}
	for _, n := range rank0Modules {
		in[n] = true
	}
	for _, t := range fluxCoreRC3Tasks {
		if (world{rank: 0}).on(t) {
			in[t.name] = true
		}
	}
	assert.Equal(t, derivePreds(in, fluxCoreRC3Tasks, true), s.Plan().Predecessors())
	p := s.Plan().Predecessors()
	assert.Contains(t, p["kvs"], "kvs-watch", "kvs is removed after kvs-watch")
	assert.Contains(t, p["kvs"], "post-finish-event")
	assert.Contains(t, p["content-flush"], "kvs")
	assert.Contains(t, p["content-sqlite"], "content-flush")
	require.NoError(t, s.Plan().Check())

	// Run it: everything is removed and content.flush was sent.
	got := h.stubServices(0)
	_, err = h.mp(0, withShell(&fakeShell{})).RC3(testutil.Context(t))
	require.NoError(t, err, h.stderr.String())
	assert.Empty(t, h.b.Rank(0).Modules())
	assert.Equal(t, []string{"runat.push", "content.flush"}, got.topics("content.checkpoint-get"), "rc1 pushed cleanup, rc3 flushed content")
}

func TestDefaultRC1RunsOnEveryRank(t *testing.T) {
	h := newHarness(t, testbroker.Config{Size: 3})
	for r := uint32(0); r < 3; r++ {
		sh := &fakeShell{}
		if r == 0 {
			h.stubServices(0)
		}
		_, err := h.mp(r, withShell(sh)).RC1(testutil.Context(t))
		require.NoError(t, err, h.stderr.String())
		if r == 0 {
			// A first start: no checkpoint, so no fsck.
			assert.ElementsMatch(t, []string{"flux startlog --post-start-event", checkCleanShutdown}, sh.commands())
		}
	}
	assert.Equal(t, rank0Modules, h.b.Rank(0).Modules())
	assert.Equal(t, []string{"content", "heartbeat", "job-info", "job-ingest", "kvs", "kvs-watch", "resource"}, h.b.Rank(1).Modules())
}

func TestDefaultRC1Setup(t *testing.T) {
	// content.backing-module selects the backing module; check-restore
	// adds "truncate" to its arguments before it loads.
	dump := filepath.Join(t.TempDir(), "dump.tgz")
	require.NoError(t, os.WriteFile(dump, nil, 0o644))
	h := newHarness(t, testbroker.Config{Attrs: map[string]string{"content.backing-module": "content-files", "content.restore": dump}})
	h.stubServices(0)
	sh := &fakeShell{}
	_, err := h.mp(0, withShell(sh)).RC1(testutil.Context(t))
	require.NoError(t, err, h.stderr.String())
	mods := h.b.Rank(0).Modules()
	assert.Contains(t, mods, "content-files")
	assert.NotContains(t, mods, "content-sqlite")
	for _, op := range h.b.Rank(0).ModuleLog() {
		if op.Name == "content-files" {
			assert.Equal(t, []string{"truncate"}, op.Args)
		}
		if op.Name == "cron" {
			assert.Equal(t, []string{"sync=heartbeat.pulse"}, op.Args)
		}
	}
	assert.Contains(t, sh.commands(), "flux restore --sd-notify --quiet --checkpoint --size-limit=100M '"+dump+"'")

	// FLUX_SCHED_MODULE=none is read from the local environment only.
	h2 := newHarness(t, testbroker.Config{Env: map[string]string{"FLUX_SCHED_MODULE": "none"}})
	s, err := h2.mp(0).PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	assert.Contains(t, s.Plan().Names(), "sched-simple")
	h2.env["FLUX_SCHED_MODULE"] = "none"
	s, err = h2.mp(0).PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	assert.NotContains(t, s.Plan().Names(), "sched-simple")

	// systemd.enable = false still counts as set: the sd* modules load.
	h3 := newHarness(t, testbroker.Config{Config: "[systemd]\nenable = false\n"})
	s, err = h3.mp(0).PrepareRC1(testutil.Context(t))
	require.NoError(t, err)
	names := s.Plan().Names()
	for _, m := range []string{"sdbus", "sdbus-sys", "sdmon"} {
		assert.Contains(t, names, m)
	}
	assert.Contains(t, names, "sdexec", "sdexec loads; its requirement sdexec-mapper is skipped")
	assert.NotContains(t, names, "sdexec-mapper")
	assert.Equal(t, []string{"sdbus"}, s.Plan().Predecessors()["sdexec"])
}
