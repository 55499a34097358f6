package exec

import (
	"context"
	"fmt"
	osexec "os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// runJobs pushes n jobs through the exec service with at most window in
// flight, as flux-core's throughput.py submits a batch and waits for it, and
// returns the wall time.
func runJobs(b *testing.B, in *instance, first fluxkit.JobID, n, window int, jobspec, R string) time.Duration {
	b.Helper()
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var failed sync.Once
	start := time.Now()
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		s := in.jm.startUntracked(first+fluxkit.JobID(i), in.b.OwnerID(), jobspec, R)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-s.final:
			case <-time.After(60 * time.Second):
				failed.Do(func() { b.Errorf("job stuck: %v", s.lines()) })
			}
			<-sem
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// rank0Messages is what rank 0 handled for the exec service: the
// coordinator's messages plus those of the agent on rank 0.
func (in *instance) rank0Messages() int64 {
	n := in.coord.Stats().Messages
	if in.agents[0] != nil {
		n += in.agents[0].Stats().Messages
	}
	return n
}

func benchThroughput(b *testing.B, jobspec string, window int) {
	in := newInstance(b, instOpts{size: 1})
	R := makeR("0", "n0", 0)
	runJobs(b, in, 1, 50, 50, jobspec, R) // warm up
	m0 := in.rank0Messages()
	b.ResetTimer()
	d := runJobs(b, in, 1000, b.N, window, jobspec, R)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/d.Seconds(), "jobs/s")
	b.ReportMetric(float64(in.rank0Messages()-m0)/float64(b.N), "rank0-msgs/job")
}

// BenchmarkThroughputTestexec: single-rank jobs with simulated execution
// (target 20,000/s; Flux about 150/s, Slurm HTC 500/s).
func BenchmarkThroughputTestexec(b *testing.B) {
	benchThroughput(b, testJobspec(`{"run_duration":"0.00001s"}`), 32)
}

// BenchmarkThroughputTrue: single-rank jobs running a real /bin/true shell
// (target 500/s; Flux 11-30/s with real shells).
func BenchmarkThroughputTrue(b *testing.B) {
	benchThroughput(b, `{"version":1,"tasks":[{"command":["/bin/true"]}],"attributes":{"system":{}}}`, 4)
}

func benchLargeJob(b *testing.B, size int, jobspec string) {
	in := newInstance(b, instOpts{size: size, fanout: 8})
	R := makeR(fmt.Sprintf("0-%d", size-1), fmt.Sprintf("n[0-%d]", size-1), 0)
	runJobs(b, in, 1, 1, 1, jobspec, R)
	b.ResetTimer()
	d := runJobs(b, in, 100, b.N, 1, jobspec, R)
	b.StopTimer()
	b.ReportMetric(d.Seconds()/float64(b.N), "s/job")
}

// BenchmarkLargeJobTestexec1024: one job over 1,024 in-process ranks,
// start request to release final.
func BenchmarkLargeJobTestexec1024(b *testing.B) {
	benchLargeJob(b, 1024, testJobspec(`{"run_duration":"0.00001s"}`))
}

// BenchmarkLargeJobTrue64: one job of real /bin/true shells on 64 ranks.
func BenchmarkLargeJobTrue64(b *testing.B) {
	benchLargeJob(b, 64, `{"version":1,"tasks":[{"command":["/bin/true"]}],"attributes":{"system":{}}}`)
}

// BenchmarkRank0MessagesBySize: messages rank 0 handles per job as the job
// grows from 1 to 1,024 ranks (jobs on ranks 1..size, so the job's leader is
// never rank 0). Must stay constant (I9).
func BenchmarkRank0MessagesBySize(b *testing.B) {
	in := newInstance(b, instOpts{size: 1025, fanout: 8})
	spec := testJobspec(`{"run_duration":"0.00001s"}`)
	id := fluxkit.JobID(1)
	for _, size := range []int{1, 2, 4, 16, 64, 256, 1024} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			ranks := make([]uint32, size)
			for i := range ranks {
				ranks[i] = uint32(1 + i)
			}
			R := makeR(formatRanks(ranks), "n["+formatRanks(ranks)+"]", 0)
			m0 := in.rank0Messages()
			d := runJobs(b, in, id, b.N, 1, spec, R)
			id += fluxkit.JobID(b.N)
			b.ReportMetric(float64(in.rank0Messages()-m0)/float64(b.N), "rank0-msgs/job")
			b.ReportMetric(d.Seconds()/float64(b.N), "s/job")
		})
	}
}

// BenchmarkForkFloor is the machine's own cost of running /bin/true from Go
// (fork, exec, wait, four in flight as BenchmarkThroughputTrue keeps): the
// floor BenchmarkThroughputTrue is to be read against.
func BenchmarkForkFloor(b *testing.B) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := osexec.Command("/bin/true").Run(); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// BenchmarkOutputCapture: one shell writes 16 MiB to stdout; every byte goes
// through the agent's bounded buffer, the acknowledged output RPC and the
// exec eventlog (goal G6: >= 100 MB/s per agent, lossless).
func BenchmarkOutputCapture(b *testing.B) {
	in := newInstance(b, instOpts{size: 1})
	R := makeR("0", "n0", 0)
	spec := shellJobspec("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 16777216", "")
	b.SetBytes(16 << 20)
	b.ResetTimer()
	runJobs(b, in, 1, b.N, 1, spec, R)
}

// BenchmarkRediscovery (goal G5): 1000 running jobs of 16 ranks each; the
// coordinator restarts and the job manager re-sends start with reattach for
// every job; one op is the time until all are reattached.
func BenchmarkRediscovery(b *testing.B) {
	const jobs, ranks = 1000, 16
	in := newInstance(b, instOpts{size: ranks, fanout: 8})
	R := makeR(fmt.Sprintf("0-%d", ranks-1), fmt.Sprintf("n[0-%d]", ranks-1), 0)
	spec := testJobspec(`{"run_duration":"0"}`)
	for i := 0; i < jobs; i++ {
		s := in.jm.start(fluxkit.JobID(1+i), in.b.OwnerID(), spec, R, false)
		waitStart(b, s)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		in.coord.Sync(context.Background())
		in.stopCoordinator()
		in.startCoordinator(nil)
		b.StartTimer()
		streams := make([]*jobStream, jobs)
		for i := range streams {
			streams[i] = in.jm.start(fluxkit.JobID(1+i), in.b.OwnerID(), spec, R, true)
		}
		for _, s := range streams {
			waitType(b, s, "reattached")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(jobs*ranks), "shells")
	for i := 0; i < jobs; i++ {
		in.jm.exception(fluxkit.JobID(1+i), 0, nil)
	}
}

func waitStart(b *testing.B, s *jobStream) { waitType(b, s, "start") }

func waitType(b *testing.B, s *jobStream, typ string) {
	deadline := time.Now().Add(60 * time.Second)
	for !slices.Contains(s.types(), typ) {
		if time.Now().After(deadline) {
			b.Fatalf("no %s: %v", typ, s.lines())
		}
		time.Sleep(200 * time.Microsecond)
	}
}
