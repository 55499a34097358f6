package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
)

// benchJobs is the number of jobs per measurement: FJE_BENCH_JOBS, default
// 1000 (flux submit --cc=1-1000).
func benchJobs(b *testing.B) int {
	n := 1000
	if s := os.Getenv("FJE_BENCH_JOBS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("FJE_BENCH_JOBS=%q is not a positive count", s)
		}
	}
	return n
}

// throughput submits n jobs running true at once and returns how many
// became inactive per second, from the submission to the last; every job
// must have completed.
func (in *instance) throughput(b *testing.B, n int, args ...string) float64 {
	b.Helper()
	start := time.Now()
	ids := strings.Fields(in.flux(b, 600*time.Second, append(append([]string{"submit", fmt.Sprintf("--cc=1-%d", n)}, args...), "true")...).ok().stdout)
	in.flux(b, 1800*time.Second, "queue", "drain").ok()
	took := time.Since(start)
	res := in.flux(b, 120*time.Second, append([]string{"jobs", "-n", "-o", "{result}"}, ids...)...).ok().stdout
	if c := strings.Count(res, "COMPLETED"); c != n || len(ids) != n {
		b.Fatalf("%d of %d jobs completed", c, n)
	}
	return float64(n) / took.Seconds()
}

// BenchmarkRealThroughput: flux submit --cc=1-N true until every job is
// inactive, on one two-broker instance, with flux-core's job-exec and with
// fluxkit's exec in its place: 1000 jobs each (FJE_BENCH_JOBS), in rounds
// that alternate between the two (job-exec first; FJE_BENCH_ROUNDS, default
// 4), so that whatever else runs on the machine weighs on both alike. It
// reports each side's jobs per second over its rounds and their ratio, and
// the CPU time per job of the instance's processes (brokers, shells, and
// for fluxkit its copies and keepers), which other load does not skew.
func BenchmarkRealThroughput(b *testing.B) {
	in := jobExecInstance(b, 2)
	n := benchJobs(b)
	rounds := 4
	if s := os.Getenv("FJE_BENCH_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 || rounds > n {
			b.Fatalf("FJE_BENCH_ROUNDS=%q is not a count from 1 to the number of jobs", s)
		}
	}
	warm := func() { in.flux(b, 120*time.Second, "submit", "--cc=1-10", "--quiet", "--wait", "true").ok() }
	for i := 0; i < b.N; i++ {
		var took [2]time.Duration
		var cpu [2]time.Duration
		for r := 0; r < rounds; r++ {
			per := n / rounds
			if r == rounds-1 {
				per = n - per*(rounds-1)
			}
			for side := 0; side < 2; side++ {
				if side == 1 {
					in.swap(b)
				}
				warm()
				c0, t0 := instanceCPU(), time.Now()
				in.throughput(b, per)
				took[side] += time.Since(t0)
				cpu[side] += instanceCPU() - c0
				if side == 1 {
					in.unswap(b)
				}
			}
		}
		jobexec, fluxkit := float64(n)/took[0].Seconds(), float64(n)/took[1].Seconds()
		b.ReportMetric(jobexec, "job-exec-jobs/s")
		b.ReportMetric(fluxkit, "fluxkit-jobs/s")
		b.ReportMetric(fluxkit/jobexec, "fluxkit/job-exec")
		b.ReportMetric(cpu[0].Seconds()*1000/float64(n), "job-exec-cpu-ms/job")
		b.ReportMetric(cpu[1].Seconds()*1000/float64(n), "fluxkit-cpu-ms/job")
	}
}

// instanceCPU is the CPU time used so far by the instance's processes: the
// brokers and this program's copies and keepers, with their reaped
// children (the shells, whose parent is the broker under job-exec and the
// keeper under fluxkit).
func instanceCPU() time.Duration {
	var ticks int64
	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // the kernel keeps 15 bytes of a command's name
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if filepath.Base(d) == strconv.Itoa(os.Getpid()) {
			continue // the benchmark itself, and the flux commands it ran
		}
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		comm := s[open+1 : end]
		if !strings.HasPrefix(comm, "flux-broker") && comm != self {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// execMessages is what rank 0 handled for the exec service: the
// coordinator's messages and rank 0's agent's.
func execMessages(b *testing.B, h fluxkit.Handle) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var coord, agent struct {
		Messages int64 `json:"messages"`
	}
	if err := fluxkit.RPC(ctx, h, "job-exec.stats-get", 0, nil, &coord); err != nil {
		b.Fatal(err)
	}
	if err := fluxkit.RPC(ctx, h, agentService+".stats-get", 0, nil, &agent); err != nil {
		b.Fatal(err)
	}
	return coord.Messages + agent.Messages
}

// BenchmarkRealRank0Messages: the messages rank 0 handles per job on a
// real four-broker instance, for jobs of 1, 2 and 3 nodes on ranks 1-3
// (as exec's in-process BenchmarkRank0MessagesBySize places them, so that
// rank 0 is not the jobs' leader) and for jobs on all 4 ranks, whose
// leader is rank 0's agent.
func BenchmarkRealRank0Messages(b *testing.B) {
	in := realInstance(b, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := connect.Open(ctx, in.in.URIs[0])
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	n := max(benchJobs(b)/10, 10)
	for _, nodes := range []int{1, 2, 3, 4} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			args := []string{fmt.Sprintf("-N%d", nodes), fmt.Sprintf("-n%d", nodes)}
			if nodes < 4 {
				args = append(args, "--requires=rank:1-3")
			}
			for i := 0; i < b.N; i++ {
				m0 := execMessages(b, h)
				in.throughput(b, n, args...)
				b.ReportMetric(float64(execMessages(b, h)-m0)/float64(n), "rank0-msgs/job")
			}
		})
	}
}
