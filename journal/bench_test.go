package journal

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

var bigBench = flag.Bool("journal.big", false, "also run the 1,000,000-job benchmarks")

// benchStore builds n inactive jobs with the ten events of a normal run,
// a realistic jobspec and R, in a store.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	s, err := NewStore(StoreConfig{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	t := 1.7e9
	for i := 0; i < n; i++ {
		id := fluxkit.NewJobID(uint64(1+i/8), 0, uint32(i%8))
		js := jobspecFor(fmt.Sprintf("app%d", i%7), []string{"batch", "debug"}[i%2], 1+i%4, 1, 1+i%8, i%3 == 0, 3600)
		if _, err := s.Submit(Submission{ID: id, Timestamp: t, Userid: 1000 + uint32(i%50), Urgency: 16, Jobspec: js}); err != nil {
			b.Fatal(err)
		}
		t += rng.Float64() * 0.01
		for _, ev := range []struct{ name, ctx string }{
			{"validate", ""}, {"depend", ""}, {"priority", `{"priority":16}`}, {"alloc", ""}, {"start", ""},
			{"finish", `{"status":0}`}, {"release", `{"ranks":"all","final":true}`}, {"free", ""}, {"clean", ""},
		} {
			if ev.name == "alloc" {
				// Ranks lo..lo+n as an RFC 22 idset: a single rank has no dash.
				lo, n := i%16, i%4
				ranks, nodes := fmt.Sprintf("%d-%d", lo, lo+n), fmt.Sprintf("node[%d-%d]", lo, lo+n)
				if n == 0 {
					ranks, nodes = fmt.Sprint(lo), fmt.Sprintf("node%d", lo)
				}
				if err := s.SetR(id, rFor(ranks, "0-7", nodes, t+3600)); err != nil {
					b.Fatal(err)
				}
			}
			var c []byte
			if ev.ctx != "" {
				c = []byte(ev.ctx)
			}
			t += 0.001
			if err := s.Post(id, t, ev.name, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

func sizes() []int {
	if *bigBench {
		return []int{1000, 10_240, 64_000, 100_000, 1_000_000}
	}
	return []int{1000, 10_240, 64_000, 100_000}
}

var storeCache = map[int]*Store{}

func cachedStore(b *testing.B, n int) *Store {
	if s, ok := storeCache[n]; ok {
		return s
	}
	s := benchStore(b, n)
	storeCache[n] = s
	return s
}

// BenchmarkProducerBacklog: time for the producer to emit a full backlog
// (every response encoded, as bytes ready for the wire) up to the sentinel.
func BenchmarkProducerBacklog(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := cachedStore(b, n)
			var bytes int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l := s.Subscribe(ListenerKey{Sender: "b", Matchtag: uint32(i)}, 0, true, Filter{})
				var buf [][]byte
				for done := false; !done; {
					var err error
					buf, err = s.Next(l, buf[:0], 256)
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range buf {
						bytes += int64(len(m))
						if len(m) == len(Sentinel) && string(m) == string(Sentinel) {
							done = true
						}
					}
				}
				s.Shutdown()
				_, _ = s.Next(l, nil, 1)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64(bytes)/float64(b.N)/float64(n), "B/job")
		})
	}
}

// backlogMessages returns the wire responses of a full backlog, shuffled
// (the producer's order is hash order), and the sentinel last.
func backlogMessages(b *testing.B, n int) [][]byte {
	s := cachedStore(b, n)
	l := s.Subscribe(ListenerKey{Sender: "m"}, 0, true, Filter{})
	var out [][]byte
	for {
		msgs, err := s.Next(l, nil, 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, msgs...)
		if len(msgs) == 0 || string(out[len(out)-1]) == string(Sentinel) {
			break
		}
	}
	s.Shutdown()
	_, _ = s.Next(l, nil, 1)
	body := out[:len(out)-1]
	rand.New(rand.NewPCG(2, 2)).Shuffle(len(body), func(i, j int) { body[i], body[j] = body[j], body[i] })
	return out
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkConsumerInit: time from the first backlog response to
// initialised (sentinel applied: lists sorted, stats counted), and the
// heap the index keeps per job.
func BenchmarkConsumerInit(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			msgs := backlogMessages(b, n)
			var perJob float64
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				before := heapInUse()
				c0 := cpuTime()
				b.StartTimer()
				x := NewIndex(IndexConfig{})
				for _, m := range msgs {
					if err := x.Journal(m); err != nil {
						b.Fatal(err)
					}
				}
				if !x.Initialized() {
					b.Fatal("not initialised")
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				perJob = float64(heapInUse()-before) / float64(n)
				if x.inactive.len() != n {
					b.Fatalf("%d inactive", x.inactive.len())
				}
				runtime.KeepAlive(x)
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(perJob, "heapB/job")
			// CPU time (all threads, GC included) is steadier than wall time
			// on a shared machine.
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "jobs/cpu-s")
		})
	}
}

// sliceRecv replays responses as a stream's Recv does.
type sliceRecv struct {
	msgs [][]byte
	i    int
}

func (r *sliceRecv) Recv(ctx context.Context) (*fluxkit.Message, error) {
	if r.i == len(r.msgs) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	r.i++
	return &fluxkit.Message{Payload: r.msgs[r.i-1]}, nil
}

// BenchmarkConsumerInitPipelined: BenchmarkConsumerInit as the Consumer
// runs it, responses decoded on a second goroutine ([pipeline]) and applied
// on the first.
func BenchmarkConsumerInitPipelined(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			msgs := backlogMessages(b, n)
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				_ = heapInUse()
				c0 := cpuTime()
				b.StartTimer()
				x := NewIndex(IndexConfig{})
				var err error
				pipeline(context.Background(), &sliceRecv{msgs: msgs}, func(d *decodedMsg) bool {
					if d.recvErr != nil {
						err = d.recvErr
						return false
					}
					if err = x.journalDecoded(d.payload, &d.msg, d.err); err != nil {
						return false
					}
					return !x.Initialized()
				})
				if err != nil {
					b.Fatal(err)
				}
				if !x.Initialized() {
					b.Fatal("not initialised")
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				if x.inactive.len() != n {
					b.Fatalf("%d inactive", x.inactive.len())
				}
				runtime.KeepAlive(x)
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "jobs/cpu-s")
		})
	}
}

// BenchmarkLiveEvents: one event posted at the producer, encoded, taken by
// the listener and applied by the consumer, per op; jobs cycle through
// complete lifecycles.
func BenchmarkLiveEvents(b *testing.B) {
	s, _ := NewStore(StoreConfig{})
	l := s.Subscribe(ListenerKey{Sender: "live"}, 0, true, Filter{})
	x := NewIndex(IndexConfig{})
	js := jobspecFor("app", "batch", 1, 1, 4, false, 60)
	r := rFor("0", "0-3", "node1", 0)
	evs := []struct {
		name string
		ctx  []byte
	}{{"validate", nil}, {"depend", nil}, {"priority", []byte(`{"priority":16}`)}, {"alloc", nil},
		{"start", nil}, {"finish", []byte(`{"status":0}`)}, {"release", []byte(`{"ranks":"all","final":true}`)},
		{"free", nil}, {"clean", nil}}
	var buf [][]byte
	id := fluxkit.JobID(0)
	t := 1.0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % 10
		t += 0.001
		var err error
		if k == 0 {
			id++
			_, err = s.Submit(Submission{ID: id, Timestamp: t, Urgency: 16, Jobspec: js})
		} else {
			if evs[k-1].name == "alloc" {
				_ = s.SetR(id, r)
			}
			err = s.Post(id, t, evs[k-1].name, evs[k-1].ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
		buf, _ = s.Next(l, buf[:0], 16)
		for _, m := range buf {
			if err := x.Journal(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLiveEventsBroker: the same through Producer, the in-process
// broker and Consumer; each op is one event, timed until the consumer has
// applied the last one.
func BenchmarkLiveEventsBroker(b *testing.B) {
	e := benchEnv(b)
	js := jobspecFor("app", "batch", 1, 1, 4, false, 60)
	r := rFor("0", "0-3", "node1", 0)
	names := []string{"validate", "depend", "priority", "alloc", "start", "finish", "release", "free", "clean"}
	ctxs := map[string]any{"priority": map[string]int{"priority": 16}, "finish": map[string]int{"status": 0},
		"release": map[string]any{"ranks": "all", "final": true}}
	b.ResetTimer()
	var id fluxkit.JobID
	for i := 0; i < b.N; i++ {
		k := i % 10
		if k == 0 {
			id++
			if _, err := e.p.Submit(Submission{ID: id, Timestamp: 1, Urgency: 16, Jobspec: js}); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if names[k-1] == "alloc" {
			_ = e.p.SetR(id, r)
		}
		if err := e.p.PostAt(id, 0, names[k-1], ctxs[names[k-1]]); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until the consumer has the last job in its final state.
	last := id
	deadline := time.Now().Add(time.Minute)
	for {
		if time.Now().After(deadline) {
			b.Fatal("consumer did not catch up")
		}
		var st State
		e.c.Snapshot(func(x *Index) {
			if j := x.jobs[last]; j != nil {
				st = j.state
			}
		})
		want := []State{StateNew, StateDepend, StatePriority, StateSched, StateRun, StateRun, StateCleanup, StateCleanup, StateCleanup, StateInactive}[(b.N-1)%10]
		if st == want {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkList: job-list.list with max_entries=0 and attrs ["all"] over
// 64,000 jobs, non-streaming (one message) and streaming (one per job).
func BenchmarkList(b *testing.B) {
	msgs := backlogMessages(b, 64_000)
	x := NewIndex(IndexConfig{})
	for _, m := range msgs {
		if err := x.Journal(m); err != nil {
			b.Fatal(err)
		}
	}
	for _, streaming := range []bool{false, true} {
		b.Run(fmt.Sprintf("streaming=%v", streaming), func(b *testing.B) {
			req := fluxkit.NewRequest(TopicList, 0, []byte(`{"max_entries":0,"attrs":["all"]}`))
			if streaming {
				req.Flags |= fluxkit.FlagStreaming
			}
			for i := 0; i < b.N; i++ {
				r := &countResponder{}
				x.Request(r, req)
				if r.jobs == 0 {
					b.Fatal("no jobs")
				}
			}
			b.ReportMetric(64_000*float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

type countResponder struct{ jobs, bytes int }

func (c *countResponder) Respond(p []byte) error   { c.jobs++; c.bytes += len(p); return nil }
func (c *countResponder) RespondError(error) error { return nil }
