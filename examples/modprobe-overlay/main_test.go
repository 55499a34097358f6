package main

import (
	"bufio"
	"bytes"
	"context"
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
	"github.com/fluxkit/fluxkit/modprobe"
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
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	out := map[uint32][]string{}
	for r := uint32(0); r < size; r++ {
		var buf bytes.Buffer
		m, err := modprobe.New(tb.Owner(r), modprobe.Config{LookupEnv: testEnv().lookupEnv, DryRun: true, Stdout: &buf, Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.RC1(context.Background()); err != nil {
			t.Fatalf("dry run on rank %d: %v", r, err)
		}
		var names []string
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "load" {
				names = append(names, f[1])
			}
		}
		slices.Sort(names)
		if len(names) == 0 {
			t.Fatalf("rank %d: the dry run planned no module:\n%s", r, buf.String())
		}
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
func TestRC1RC3AcrossOverlay(t *testing.T) {
	for _, tc := range []struct {
		size uint32
		topo string
	}{{3, "kary:2"}, {4, "kary:1"}} {
		t.Run(fmt.Sprintf("%d-%s", tc.size, tc.topo), func(t *testing.T) {
			leakcheck.Check(t)
			want := plannedModules(t, tc.size)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out, errb bytes.Buffer
			args := []string{"-size", strconv.Itoa(int(tc.size)), "-topo", tc.topo, "-delay", "10ms"}
			if code := run(ctx, args, &out, &errb, testEnv()); code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
			}
			stdout := out.String()
			t.Log("\n" + stdout)

			got := map[uint32][]string{}
			for _, m := range loadedLine.FindAllStringSubmatch(stdout, -1) {
				r, _ := strconv.Atoi(m[1])
				got[uint32(r)] = strings.Fields(m[2])
			}
			for r := uint32(0); r < tc.size; r++ {
				if !slices.Equal(got[r], want[r]) {
					t.Errorf("rank %d loaded %v, modprobe plans %v", r, got[r], want[r])
				}
			}
			if len(got) != int(tc.size) {
				t.Errorf("loaded lines for %d ranks, want %d", len(got), tc.size)
			}
			// Rank 0 loads more than the others (ranks = "0" modules).
			if len(want[0]) <= len(want[1]) {
				t.Errorf("oracle: rank 0 plans %v, rank 1 %v", want[0], want[1])
			}

			rc1 := rc1Line.FindAllStringSubmatch(stdout, -1)
			if len(rc1) != int(tc.size) {
				t.Fatalf("%d rc1 summaries", len(rc1))
			}
			for _, m := range rc1 {
				if m[3] != "0" || m[4] != "0" {
					t.Errorf("rank %s rc1: %s failed, %s skipped", m[1], m[3], m[4])
				}
				makespan, err1 := time.ParseDuration(m[5])
				cp, err2 := time.ParseDuration(m[6])
				if err1 != nil || err2 != nil || cp <= 0 || makespan < cp {
					t.Errorf("rank %s: makespan %s, critical path %s", m[1], m[5], m[6])
				}
			}
			if n := len(rc3Line.FindAllStringSubmatch(stdout, -1)); n != int(tc.size) {
				t.Errorf("%d clean rc3 summaries, want %d", n, tc.size)
			}
			after := afterLine.FindAllStringSubmatch(stdout, -1)
			if len(after) != int(tc.size) {
				t.Errorf("%d after-rc3 lines", len(after))
			}
			for _, m := range after {
				if m[2] != "0" {
					t.Errorf("rank %s still has %s modules after rc3", m[1], m[2])
				}
			}
			if m := statsLine.FindStringSubmatch(stdout); m == nil || m[1] == "0" {
				t.Errorf("modprobe.stats not stored: %v", m)
			}
			if !strings.HasSuffix(stdout, "overlay shut down\n") {
				t.Error("no clean shut-down")
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		text string
	}{
		{[]string{"-h"}, 0, "-delay"},
		{[]string{"-size", "0"}, 2, "-size 0: want 1 to 64 brokers"},
		{[]string{"-delay", "-1s"}, 2, "-delay -1s: negative duration"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"-topo", "ring"}, 1, "modprobe-overlay: rank 0:"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb, testEnv())
		if code != tc.code || !strings.Contains(errb.String(), tc.text) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.text)
		}
	}
}

func TestModuleNames(t *testing.T) {
	names, err := moduleNames(modprobe.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	// sdbus-sys loads module "sdbus": one Go module serves both names.
	for _, n := range []string{"heartbeat", "kvs", "sdbus", "sched-simple", "content-sqlite"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s missing from %v", n, names)
		}
	}
	if slices.Contains(names, "sdbus-sys") {
		t.Errorf("sdbus-sys is a name, not a module: %v", names)
	}
}

// BenchmarkRC1Overlay times rc1 then rc3 on every rank of a 3-broker
// overlay with 10 ms modules and reports rank 0's rc1 makespan next to its
// critical path (the measured task durations' longest chain).
func BenchmarkRC1Overlay(b *testing.B) {
	ctx := context.Background()
	c := config{size: 3, topo: "kary:2", delay: 10 * time.Millisecond}
	names, err := moduleNames(modprobe.Defaults())
	if err != nil {
		b.Fatal(err)
	}
	o := testEnv()
	in, err := start(ctx, c, o, simModules(names, c.delay))
	if err != nil {
		b.Fatal(err)
	}
	defer in.close(ctx)
	un, err := stubRunat(in)
	if err != nil {
		b.Fatal(err)
	}
	defer un()
	all := []uint32{0, 1, 2}
	var makespan, cp, serial time.Duration
	b.ResetTimer()
	for b.Loop() {
		runs := phase(ctx, in, all, 1, o, false, io.Discard)
		for _, r := range all {
			if runs[r].err != nil {
				b.Fatal(runs[r].err)
			}
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
				if rr.err != nil {
					b.Fatalf("rank %d rc3: %v", r, rr.err)
				}
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

// BenchmarkRC1TestBroker is the anchor: the same rc1 with the same 10 ms
// module loads on the in-process test broker (no sockets, no CURVE).
func BenchmarkRC1TestBroker(b *testing.B) {
	ctx := context.Background()
	names, err := moduleNames(modprobe.Defaults())
	if err != nil {
		b.Fatal(err)
	}
	tb, err := testbroker.Start(testbroker.Config{Size: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	for r := uint32(0); r < 3; r++ {
		for _, n := range append(names, "sdbus-sys") {
			tb.Rank(r).SetModuleLatency(n, 10*time.Millisecond)
		}
	}
	// The test broker's modules serve nothing: stub what the rc tasks ask.
	for _, topic := range []string{"runat.push", "content.flush"} {
		if _, err := tb.Owner(0).Register(topic, 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
			_ = w.Respond([]byte("{}"))
		}); err != nil {
			b.Fatal(err)
		}
	}
	o := testEnv()
	run := func(r uint32, rc int) *modprobe.Report {
		m, err := modprobe.New(tb.Owner(r), modprobe.Config{LookupEnv: o.lookupEnv, Shell: simShell{rank: r, log: func(string, ...any) {}}, Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		var rep *modprobe.Report
		if rc == 1 {
			rep, err = m.RC1(ctx)
		} else {
			rep, err = m.RC3(ctx)
		}
		if err != nil {
			b.Fatalf("rank %d rc%d: %v", r, rc, err)
		}
		return rep
	}
	var makespan, cp time.Duration
	for b.Loop() {
		var wg sync.WaitGroup
		reps := make([]*modprobe.Report, 3)
		for r := range uint32(3) {
			wg.Add(1)
			go func() { defer wg.Done(); reps[r] = run(r, 1) }()
		}
		wg.Wait()
		makespan += reps[0].Makespan()
		cp += reps[0].CriticalPath()
		b.StopTimer()
		for r := range uint32(3) {
			run(r, 3)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(makespan.Microseconds())/n/1000, "rc1-makespan-ms")
	b.ReportMetric(float64(cp.Microseconds())/n/1000, "critical-path-ms")
	b.ReportMetric(float64(makespan)/float64(cp), "makespan/cp")
}
