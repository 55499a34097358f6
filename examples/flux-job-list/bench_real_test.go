package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/realflux"
)

var (
	benchJobs  = flag.Int("realflux.jobs", 10_000, "inactive jobs the real-instance benchmarks hold")
	benchShell = flag.Bool("realflux.shells", false, "run the benchmark history's jobs with real job shells "+
		"(flux submit --cc=1-N true, about 10 jobs/s here) instead of job-exec's test mode, which posts the same "+
		"job manager events for the journal without starting shells")
)

// BenchmarkReal compares flux-core's job-list and flux-job-list on one
// real instance holding -realflux.jobs inactive jobs, side by side:
//
//   - Startup: flux-core's "flux module reload job-list" until a list
//     request is answered, against starting flux-job-list until its ready
//     line (and until a list request is answered).
//   - FluxJobsA: the wall time of "flux jobs -a" (its first 1000 jobs),
//     and of "flux jobs -a -c 0" (all of them), with either serving.
//   - ListAll: one job-list.list of every job with every attribute,
//     streaming, as flux jobs sends it, timed from Go.
func BenchmarkReal(b *testing.B) {
	realflux.Require(b)
	bin := buildProgram(b)
	in := realflux.Start(b, realflux.Options{Size: 2})
	ctx := context.Background()
	h, err := connect.Open(ctx, in.URIs[0])
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	run := func(args ...string) string {
		b.Helper()
		out, err := in.Run(ctx, args...)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	t0 := time.Now()
	args := []string{"submit", fmt.Sprintf("--cc=1-%d", *benchJobs), "--quiet", "--wait"}
	if !*benchShell {
		args = append(args, "--setattr=system.exec.test.run_duration=0.001s")
	}
	run(append(args, "true")...)
	b.Logf("%d jobs inactive in %v (shells %v)", *benchJobs, time.Since(t0), *benchShell)
	if n := len(strings.Fields(run("jobs", "-a", "-c", "0", "-n", "-o", "{id}"))); n != *benchJobs {
		b.Fatalf("%d jobs listed, want %d", n, *benchJobs)
	}
	uri := in.URIs[0]
	listAnswered := func(svc string) {
		b.Helper()
		if err := fluxkit.RPC(ctx, h, svc+".list", fluxkit.NodeidAny, map[string]any{"max_entries": 1, "attrs": []string{}}, nil); err != nil {
			b.Fatal(err)
		}
	}
	// Both modes measured in turn: flux-core's module loaded, or
	// flux-job-list in its place.
	fluxcore := func() func() { return func() {} }
	fluxkitMode := func() func() {
		run("module", "remove", "job-list")
		p := startProgram(b, bin, uri)
		return func() {
			p.stop(b)
			run("module", "load", "job-list")
		}
	}
	modes := []struct {
		name  string
		setup func() func()
	}{{"flux-core", fluxcore}, {"fluxkit", fluxkitMode}}

	b.Run("Startup/flux-core", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			run("module", "reload", "job-list")
			listAnswered("job-list")
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/answer")
		}
	})
	b.Run("Startup/fluxkit", func(b *testing.B) {
		run("module", "remove", "job-list")
		defer run("module", "load", "job-list")
		for b.Loop() {
			start := time.Now()
			p := startProgramQuiet(b, bin, uri)
			ready := time.Since(start)
			listAnswered("job-list")
			answered := time.Since(start)
			b.StopTimer()
			p.stop(b)
			b.StartTimer()
			b.ReportMetric(float64(ready.Microseconds())/1000, "ms/ready")
			b.ReportMetric(float64(answered.Microseconds())/1000, "ms/answer")
		}
	})
	for _, m := range modes {
		for _, count := range []string{"1000", "0"} {
			b.Run(fmt.Sprintf("FluxJobsA/count=%s/%s", count, m.name), func(b *testing.B) {
				done := m.setup()
				defer done()
				var times []time.Duration
				for b.Loop() {
					start := time.Now()
					out := run("jobs", "-a", "-c", count, "-n")
					times = append(times, time.Since(start))
					if n := strings.Count(out, "\n"); count == "0" && n != *benchJobs || count == "1000" && n != 1000 {
						b.Fatalf("flux jobs -a -c %s: %d lines", count, n)
					}
				}
				b.ReportMetric(float64(median(times).Microseconds())/1000, "ms-median")
			})
		}
		b.Run("ListAll/"+m.name, func(b *testing.B) {
			done := m.setup()
			defer done()
			for b.Loop() {
				m := fluxkit.NewRequest("job-list.list", fluxkit.NodeidAny, []byte(`{"max_entries":0,"attrs":["all"],"since":0.0,"constraint":{"and":[]}}`))
				m.Flags |= fluxkit.FlagStreaming
				call, err := h.Request(ctx, m)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, err := call.Recv(ctx)
					if err != nil {
						if fluxkit.Errno(err) != fluxkit.ENODATA {
							b.Fatal(err)
						}
						break
					}
					n++
				}
				call.Close()
				if n != *benchJobs {
					b.Fatalf("%d jobs", n)
				}
			}
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// startProgramQuiet is startProgram without its log line, for benchmarks.
func startProgramQuiet(b *testing.B, bin, uri string) *program {
	b.Helper()
	p := &program{ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(cleanEnv(), "FLUX_URI="+uri)
	r, err := p.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go p.watch(r)
	select {
	case <-p.ready:
	case <-p.done:
		b.Fatalf("%s exited before ready: %v\n%s", prog, p.err, p.output())
	case <-time.After(120 * time.Second):
		p.kill(syscall.SIGKILL)
		b.Fatalf("%s not ready", prog)
	}
	return p
}
