package modprobe

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// synthetic builds a seeded random configuration of n modules: requires,
// after and needs point at earlier modules (so the ordering is acyclic),
// a tenth of the needs name a missing service, and every 8th module
// provides one of n/16 services at a random priority.
func synthetic(n int, seed uint64) (*db, []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	d := newDB()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("mod%06d", i)
	}
	for i := range n {
		e := &entry{name: names[i], kind: kindModule, module: names[i], priority: DefaultPriority}
		if i > 0 {
			for range r.IntN(4) {
				e.requires = append(e.requires, names[r.IntN(i)])
			}
			for range r.IntN(3) {
				e.after = append(e.after, names[r.IntN(i)])
			}
			if r.IntN(4) == 0 {
				if r.IntN(10) == 0 {
					e.needs = append(e.needs, "missing-service")
				} else {
					e.needs = append(e.needs, names[r.IntN(i)])
				}
			}
		}
		if i%8 == 0 && n >= 16 {
			e.provides = []string{fmt.Sprintf("svc%d", r.IntN(n/16))}
			e.priority = 50 + r.IntN(100)
		}
		if r.IntN(50) == 0 {
			e.ranks, _ = ParseRanks(">0")
		}
		d.add(e)
	}
	return d, names
}

// planAll runs the rc1 planning steps over every module.
func planAll(d *db, active []string) (*Plan, error) {
	p := newPlanner(d, &facts{})
	tasks, err := p.startTasks(active)
	if err != nil {
		return nil, err
	}
	pl, err := p.graph(tasks)
	if err != nil {
		return nil, err
	}
	return pl, pl.Check()
}

func TestSyntheticPlans(t *testing.T) {
	for _, n := range []int{10, 500, 2000} {
		d, names := synthetic(n, 42)
		pl, err := planAll(d, names)
		require.NoError(t, err)
		assert.True(t, pl.Len() > 0 && pl.Len() <= n, "n=%d: plan of %d tasks", n, pl.Len())
		for i, ps := range pl.preds {
			assert.NotContains(t, ps, int32(i), "n=%d: %s is its own predecessor", n, pl.entries[i].name)
		}
	}
}

func benchmarkPlan(b *testing.B, n int) {
	base, names := synthetic(n, 42)
	b.ReportAllocs()
	b.ResetTimer()
	var err error
	for b.Loop() {
		b.StopTimer()
		d := base.clone()
		b.StartTimer()
		_, err = planAll(d, names) // checked after the loop, off the clock
	}
	require.NoError(b, err)
}

func BenchmarkPlan500(b *testing.B)    { benchmarkPlan(b, 500) }
func BenchmarkPlan2000(b *testing.B)   { benchmarkPlan(b, 2000) }
func BenchmarkPlan100000(b *testing.B) { benchmarkPlan(b, 100000) }

// BenchmarkLoadTOML2000 parses and applies a 2,000-module modprobe.toml.
func BenchmarkLoadTOML2000(b *testing.B) {
	d, _ := synthetic(2000, 42)
	var sb strings.Builder
	list := func(l []string) string { return `["` + strings.Join(l, `", "`) + `"]` }
	for _, e := range d.entries {
		fmt.Fprintf(&sb, "[[modules]]\nname = %q\npriority = %d\n", e.name, e.priority)
		for k, l := range map[string][]string{"requires": e.requires, "after": e.after, "needs": e.needs, "provides": e.provides} {
			if len(l) > 0 {
				fmt.Fprintf(&sb, "%s = %s\n", k, list(l))
			}
		}
	}
	src := []byte(sb.String())
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		require.NoError(b, newDB().applyModulesFile("bench.toml", src))
	}
}

// randomDAG is n tasks, each after 0-2 of the 50 tasks before it, which
// gives a critical path of about 20 tasks for n = 500, like the
// reference's 0.42 s of 20 ms loads.
func randomDAG(n int, seed uint64) map[string][]string {
	r := rand.New(rand.NewPCG(seed, 2))
	preds := map[string][]string{}
	for i := range n {
		name := fmt.Sprintf("t%04d", i)
		preds[name] = nil
		if i > 0 {
			for range r.IntN(3) {
				preds[name] = append(preds[name], fmt.Sprintf("t%04d", i-1-r.IntN(min(i, 50))))
			}
		}
	}
	return preds
}

// BenchmarkExecutor500 runs 500 simulated 20 ms module loads and reports
// makespan / critical path (1.0 is ideal; flux-core's 6-thread pool
// reaches 3.98).
func BenchmarkExecutor500(b *testing.B) { benchmarkExecutor(b, 0) }

// BenchmarkExecutor500Pool6 caps concurrency at 6, flux-core's pool
// width, for comparison.
func BenchmarkExecutor500Pool6(b *testing.B) { benchmarkExecutor(b, 6) }

func benchmarkExecutor(b *testing.B, limit int) {
	preds := randomDAG(500, 7)
	var ratio, makespan float64
	for b.Loop() {
		rep, err := Execute(context.Background(), preds, ExecConfig{Limit: limit}, func(ctx context.Context, _ string) error {
			t := time.NewTimer(20 * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		require.NoError(b, err)
		ratio += rep.Efficiency()
		makespan += float64(rep.Makespan().Milliseconds())
	}
	b.ReportMetric(ratio/float64(b.N), "makespan/critical-path")
	b.ReportMetric(makespan/float64(b.N), "makespan-ms")
	b.ReportMetric(float64(depth(preds)*20), "ideal-cp-ms")
}

// depth is the number of tasks on the longest chain of preds.
func depth(preds map[string][]string) int {
	memo := map[string]int{}
	var d func(string) int
	d = func(n string) int {
		if v, ok := memo[n]; ok {
			return v
		}
		best := 0
		for _, p := range preds[n] {
			best = max(best, d(p))
		}
		memo[n] = best + 1
		return best + 1
	}
	out := 0
	for n := range preds {
		out = max(out, d(n))
	}
	return out
}

// BenchmarkBrokerLoad500 loads the same 500-module graph through modprobe
// and the in-process broker's module.load, each load taking 20 ms.
func BenchmarkBrokerLoad500(b *testing.B) {
	preds := randomDAG(500, 7)
	var sb strings.Builder
	var names []string
	for n := range preds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&sb, "[[modules]]\nname = %q\n", n)
		if len(preds[n]) > 0 {
			fmt.Fprintf(&sb, "after = [\"%s\"]\n", strings.Join(preds[n], `", "`))
		}
	}
	src := sb.String()
	var ratio, makespan float64
	for b.Loop() {
		b.StopTimer()
		tb, err := testbroker.Start(testbroker.Config{})
		require.NoError(b, err)
		for _, n := range names {
			tb.Rank(0).SetModuleLatency(n, 20*time.Millisecond)
		}
		m, err := New(tb.Owner(0), Config{Builtin: memFS{"modprobe.toml": src}, ConfDir: "/nonexistent",
			LookupEnv: func(string) (string, bool) { return "", false }})
		require.NoError(b, err)
		b.StartTimer()
		rep, err := m.Load(context.Background(), names...)
		require.NoError(b, err)
		b.StopTimer()
		require.Len(b, tb.Rank(0).Modules(), 500)
		ratio += rep.Efficiency()
		makespan += float64(rep.Makespan().Milliseconds())
		tb.Close()
		b.StartTimer()
	}
	b.ReportMetric(ratio/float64(b.N), "makespan/critical-path")
	b.ReportMetric(makespan/float64(b.N), "makespan-ms")
	b.ReportMetric(float64(depth(preds)*20), "ideal-cp-ms")
}
