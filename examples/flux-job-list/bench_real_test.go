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
//     request is answered, against starting flux-job-list until a list
//     request is answered (and until its ready line).
//   - FluxJobsA: the wall time of "flux jobs -a" (its first 1000 jobs),
//     and of "flux jobs -a -c 0" (all of them), with either serving.
//   - ListAll: one job-list.list of every job with every attribute,
//     streaming, as flux jobs sends it, timed from Go, flux-core's module
//     and flux-job-list beside it.
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
	// flux-core's module and flux-job-list in its place, in turn, so
	// that the machine's load falls on both alike; the figures are
	// medians, and ratio is fluxkit's over flux-core's.
	var withFluxkit *program
	useFluxkit := func() {
		run("module", "remove", "job-list")
		withFluxkit = startProgramQuiet(b, bin, uri)
	}
	useFluxCore := func() {
		withFluxkit.stop(b)
		run("module", "load", "job-list")
	}

	b.Run("Startup", func(b *testing.B) {
		var fc, ready, answered []time.Duration
		for b.Loop() {
			start := time.Now()
			run("module", "reload", "job-list")
			listAnswered("job-list")
			fc = append(fc, time.Since(start))
			run("module", "remove", "job-list")
			start = time.Now()
			p := startProgramQuiet(b, bin, uri)
			ready = append(ready, time.Since(start))
			listAnswered("job-list")
			answered = append(answered, time.Since(start))
			p.stop(b)
			run("module", "load", "job-list")
		}
		reportSideBySide(b, "answer", fc, answered)
		b.ReportMetric(ms(median(ready)), "fluxkit-ms/ready")
		b.ReportMetric(ms(median(ready))/ms(median(fc)), "ratio/ready")
	})
	for _, count := range []string{"1000", "0"} {
		b.Run("FluxJobsA/count="+count, func(b *testing.B) {
			jobsA := func() time.Duration {
				start := time.Now()
				out := run("jobs", "-a", "-c", count, "-n")
				d := time.Since(start)
				if n := strings.Count(out, "\n"); count == "0" && n != *benchJobs || count == "1000" && n != 1000 {
					b.Fatalf("flux jobs -a -c %s: %d lines", count, n)
				}
				return d
			}
			var fc, fk []time.Duration
			for b.Loop() {
				for range 3 {
					fc = append(fc, jobsA())
				}
				useFluxkit()
				for range 3 {
					fk = append(fk, jobsA())
				}
				useFluxCore()
			}
			reportSideBySide(b, "flux-jobs", fc, fk)
		})
	}
	b.Run("ListAll", func(b *testing.B) {
		shadow := startProgramQuiet(b, bin, uri, "--service", "fluxkit-job-list")
		defer shadow.stop(b)
		listAll := func(svc string) time.Duration {
			start := time.Now()
			m := fluxkit.NewRequest(svc+".list", fluxkit.NodeidAny, []byte(`{"max_entries":0,"attrs":["all"],"since":0.0,"constraint":{"and":[]}}`))
			m.Flags |= fluxkit.FlagStreaming
			call, err := h.Request(ctx, m)
			if err != nil {
				b.Fatal(err)
			}
			defer call.Close()
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
			if n != *benchJobs {
				b.Fatalf("%d jobs", n)
			}
			return time.Since(start)
		}
		var fc, fk []time.Duration
		for b.Loop() {
			fc = append(fc, listAll("job-list"))
			fk = append(fk, listAll("fluxkit-job-list"))
		}
		reportSideBySide(b, "list", fc, fk)
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportSideBySide reports both medians and their ratio.
func reportSideBySide(b *testing.B, what string, fluxcore, fluxkit []time.Duration) {
	fc, fk := median(fluxcore), median(fluxkit)
	b.ReportMetric(ms(fc), "flux-core-ms/"+what)
	b.ReportMetric(ms(fk), "fluxkit-ms/"+what)
	b.ReportMetric(ms(fk)/ms(fc), "ratio/"+what)
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
func startProgramQuiet(b *testing.B, bin, uri string, args ...string) *program {
	b.Helper()
	p := &program{ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
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
