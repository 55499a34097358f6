package main

import (
	"context"
	"fmt"
	"os"
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

// BenchmarkRealThroughput: flux submit --cc=1-1000 true until every job is
// inactive, on one two-broker instance, with flux-core's job-exec, then
// with fluxkit's exec in its place, then with job-exec again (the mean of
// the two job-exec runs is the reference, so that neither side gets only
// the fresher or only the fuller instance).
func BenchmarkRealThroughput(b *testing.B) {
	in := jobExecInstance(b, 2)
	n := benchJobs(b)
	warm := func() { in.flux(b, 120*time.Second, "submit", "--cc=1-10", "--quiet", "--wait", "true").ok() }
	for i := 0; i < b.N; i++ {
		warm()
		before := in.throughput(b, n)
		in.swap(b)
		warm()
		fluxkit := in.throughput(b, n)
		in.unswap(b)
		warm()
		after := in.throughput(b, n)
		ref := (before + after) / 2
		b.ReportMetric(before, "job-exec-before-jobs/s")
		b.ReportMetric(after, "job-exec-after-jobs/s")
		b.ReportMetric(fluxkit, "fluxkit-jobs/s")
		b.ReportMetric(fluxkit/ref, "fluxkit/job-exec")
	}
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
