package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/fluxkit/fluxkit/modprobe"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testEnv keeps the host out: no /etc/flux/modprobe, no SLURM_JOB_ID.
func testEnv() options {
	env := map[string]string{"FLUX_MODPROBE_PATH": modprobe.EmbeddedDir}
	return options{
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		brokerEnv: map[string]string{},
	}
}

// plannedModules is the oracle: the modules modprobe's rc1 plans for each
// rank of an instance of size, from a dry run against the in-process test
// broker (no overlay involved).
func plannedModules(t *testing.T, size uint32) map[uint32][]string {
	t.Helper()
	tb, err := testbroker.Start(testbroker.Config{Size: int(size)})
	require.NoError(t, err)
	defer tb.Close()
	out := map[uint32][]string{}
	for r := uint32(0); r < size; r++ {
		var buf bytes.Buffer
		m, err := modprobe.New(tb.Owner(r), modprobe.Config{LookupEnv: testEnv().lookupEnv, DryRun: true, Stdout: &buf, Stderr: io.Discard})
		require.NoError(t, err)
		_, err = m.RC1(context.Background())
		require.NoError(t, err, "dry run on rank %d", r)
		var names []string
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "load" {
				names = append(names, f[1])
			}
		}
		slices.Sort(names)
		require.NotEmpty(t, names, "rank %d: the dry run planned no module:\n%s", r, buf.String())
		out[r] = names
	}
	return out
}

var (
	loadedLine = regexp.MustCompile(`(?m)^rank (\d+) loaded: (.*)$`)
	rc1Line    = regexp.MustCompile(`(?m)^rank (\d+) rc1: (\d+) tasks ran, (\d+) failed, (\d+) skipped; makespan (\S+), critical path (\S+), ratio`)
	rc3Line    = regexp.MustCompile(`(?m)^rank (\d+) rc3: \d+ tasks ran, 0 failed, 0 skipped`)
	afterLine  = regexp.MustCompile(`(?m)^rank (\d+) after rc3: (\d+) modules loaded$`)
	statsLine  = regexp.MustCompile(`(?m)^modprobe.stats: (\d+) entries in rank 0's KVS$`)
)

// The program end to end: an overlay of real brokers over CURVE, rc1 on
// every rank loads exactly what modprobe plans for that rank, rc3 removes
// it all, and nothing is left running.
func TestRC1AndRC3AcrossTheOverlayDoWhatModprobePlans(t *testing.T) {
	for _, tc := range []struct {
		size uint32
		topo string
	}{{3, "kary:2"}, {4, "kary:1"}} {
		t.Run(fmt.Sprintf("%d-%s", tc.size, tc.topo), func(t *testing.T) {
			leakcheck.Check(t)
			want := plannedModules(t, tc.size)
			ctx := testutil.ContextTimeout(t, 60*time.Second)
			var out, errb bytes.Buffer
			args := []string{"-size", strconv.Itoa(int(tc.size)), "-topo", tc.topo, "-delay", "10ms"}
			code := run(ctx, args, &out, &errb, testEnv())
			require.Equal(t, 0, code, "exit code\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
			stdout := out.String()
			t.Log("\n" + stdout)

			got := map[uint32][]string{}
			for _, m := range loadedLine.FindAllStringSubmatch(stdout, -1) {
				r, _ := strconv.Atoi(m[1])
				got[uint32(r)] = strings.Fields(m[2])
			}
			for r := uint32(0); r < tc.size; r++ {
				assert.Equal(t, want[r], got[r], "rank %d loads what modprobe plans", r)
			}
			assert.Len(t, got, int(tc.size), "ranks with a loaded line")
			// Rank 0 loads more than the others (ranks = "0" modules).
			assert.Greater(t, len(want[0]), len(want[1]), "the oracle: rank 0 plans %v, rank 1 %v", want[0], want[1])

			rc1 := rc1Line.FindAllStringSubmatch(stdout, -1)
			require.Len(t, rc1, int(tc.size), "rc1 summaries")
			for _, m := range rc1 {
				assert.Equal(t, []string{"0", "0"}, m[3:5], "rank %s rc1: failed and skipped", m[1])
				makespan, err := time.ParseDuration(m[5])
				assert.NoError(t, err)
				cp, err := time.ParseDuration(m[6])
				assert.NoError(t, err)
				assert.Positive(t, cp, "rank %s: critical path", m[1])
				assert.GreaterOrEqual(t, makespan, cp, "rank %s: makespan against the critical path", m[1])
			}
			assert.Len(t, rc3Line.FindAllStringSubmatch(stdout, -1), int(tc.size), "clean rc3 summaries")
			after := afterLine.FindAllStringSubmatch(stdout, -1)
			assert.Len(t, after, int(tc.size), "after-rc3 lines")
			for _, m := range after {
				assert.Equal(t, "0", m[2], "rank %s's modules after rc3", m[1])
			}
			m := statsLine.FindStringSubmatch(stdout)
			if assert.NotNil(t, m, "modprobe.stats stored") {
				assert.NotEqual(t, "0", m[1], "modprobe.stats entries")
			}
			assert.True(t, strings.HasSuffix(stdout, "overlay shut down\n"), "a clean shut-down")
		})
	}
}

func TestCommandLineExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		text string
	}{
		{[]string{"-h"}, 0, ""},
		{[]string{"-size", "0"}, 2, "-size 0: want 1 to 64 brokers"},
		{[]string{"-delay", "-1s"}, 2, "-delay -1s: negative duration"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"-topo", "ring"}, 1, "modprobe-overlay: rank 0:"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb, testEnv())
		assert.Equal(t, tc.code, code, "%v: exit code", tc.args)
		if tc.code == 0 {
			assert.Contains(t, out.String(), "usage: modprobe-overlay", "help goes to stdout")
			assert.Empty(t, errb.String())
			continue
		}
		assert.Contains(t, errb.String(), tc.text, "%v", tc.args)
		assert.Equal(t, 1, strings.Count(errb.String(), "\n"), "%v: one line", tc.args)
	}
}

func TestModuleNamesComeFromTheEmbeddedModprobeToml(t *testing.T) {
	names, err := moduleNames(modprobe.Defaults())
	require.NoError(t, err)
	// sdbus-sys loads module "sdbus": one Go module serves both names.
	for _, n := range []string{"heartbeat", "kvs", "sdbus", "sched-simple", "content-sqlite"} {
		assert.Contains(t, names, n)
	}
	assert.NotContains(t, names, "sdbus-sys", "a name, not a module")
}

// BenchmarkRC1Overlay times rc1 then rc3 on every rank of a 3-broker
// overlay with 10 ms modules and reports rank 0's rc1 makespan next to its
// critical path (the measured task durations' longest chain).
func BenchmarkRC1Overlay(b *testing.B) {
	ctx := context.Background()
	c := config{size: 3, topo: "kary:2", delay: 10 * time.Millisecond}
	names, err := moduleNames(modprobe.Defaults())
	require.NoError(b, err)
	o := testEnv()
	in, err := start(ctx, c, o, simModules(names, c.delay))
	require.NoError(b, err)
	defer in.close(ctx)
	un, err := stubRunat(in)
	require.NoError(b, err)
	defer un()
	all := []uint32{0, 1, 2}
	var makespan, cp, serial time.Duration
	b.ResetTimer()
	for b.Loop() {
		runs := phase(ctx, in, all, 1, o, false, io.Discard)
		for _, r := range all {
			require.NoError(b, runs[r].err, "rank %d rc1", r)
		}
		rep := runs[0].rep
		makespan += rep.Makespan()
		cp += rep.CriticalPath()
		for _, tr := range rep.Tasks {
			serial += tr.Duration()
		}
		b.StopTimer()
		for _, group := range [][]uint32{all[1:], all[:1]} {
			for r, rr := range phase(ctx, in, group, 3, o, false, io.Discard) {
				require.NoError(b, rr.err, "rank %d rc3", r)
			}
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(makespan.Microseconds())/n/1000, "rc1-makespan-ms")
	b.ReportMetric(float64(cp.Microseconds())/n/1000, "critical-path-ms")
	b.ReportMetric(float64(makespan)/float64(cp), "makespan/cp")
	b.ReportMetric(float64(serial.Microseconds())/n/1000, "serial-sum-ms")
}

// BenchmarkRC1TestBroker is the anchor: the same rc1 (runRC, modprobe.stats
// included) with the same 10 ms module loads on the in-process test broker
// (no sockets, no CURVE).
func BenchmarkRC1TestBroker(b *testing.B) {
	ctx := context.Background()
	names, err := moduleNames(modprobe.Defaults())
	require.NoError(b, err)
	tb, err := testbroker.Start(testbroker.Config{Size: 3})
	require.NoError(b, err)
	defer tb.Close()
	for r := uint32(0); r < 3; r++ {
		for _, n := range append(names, "sdbus-sys") {
			tb.Rank(r).SetModuleLatency(n, 10*time.Millisecond)
		}
	}
	// The test broker's modules serve nothing: stub what the rc tasks ask,
	// as simModule answers them on the overlay (a fresh instance has no
	// checkpoint for fsck to find).
	stubs := tb.Owner(0) // one client: a service has one provider per rank
	for _, topic := range []string{"runat.push", "content.flush", "content.checkpoint-get"} {
		_, err := stubs.Register(topic, 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			if req.Topic == "content.checkpoint-get" {
				_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "No checkpoint"))
				return
			}
			_ = w.Respond([]byte("{}"))
		})
		require.NoError(b, err)
	}
	o := testEnv()
	// run is called off the benchmark goroutine, where b.Fatal must not
	// be: it returns its error for the benchmark goroutine to check.
	run := func(r uint32, rc int) (*modprobe.Report, error) {
		rep, err := runRC(ctx, tb.Owner(r), rc, o, false, io.Discard, func(string, ...any) {})
		if err != nil {
			return nil, fmt.Errorf("rank %d rc%d: %w", r, rc, err)
		}
		return rep, nil
	}
	var makespan, cp time.Duration
	for b.Loop() {
		var wg sync.WaitGroup
		reps := make([]*modprobe.Report, 3)
		errs := make([]error, 3)
		for r := range uint32(3) {
			wg.Go(func() { reps[r], errs[r] = run(r, 1) })
		}
		wg.Wait()
		require.NoError(b, errors.Join(errs...))
		makespan += reps[0].Makespan()
		cp += reps[0].CriticalPath()
		b.StopTimer()
		for r := range uint32(3) {
			_, err := run(r, 3)
			require.NoError(b, err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(makespan.Microseconds())/n/1000, "rc1-makespan-ms")
	b.ReportMetric(float64(cp.Microseconds())/n/1000, "critical-path-ms")
	b.ReportMetric(float64(makespan)/float64(cp), "makespan/cp")
}
