package flub

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkGrow grows one instance from 1 to 256 and to 1,024 brokers (goroutines in
// this process, real zmq4 over loopback with CURVE): time until the
// overlay is full, join latency percentiles, and the overlay messages rank
// 0 handled per join. Joiners run 64 at a time, as a batch of broker
// launches would arrive. Run with -benchtime=1x.
func BenchmarkGrow(b *testing.B) {
	for _, size := range []int{256, 1024} {
		for _, topo := range []string{"kary:2", "kary:32"} {
			b.Run(fmt.Sprintf("%s/size=%d", topo, size), func(b *testing.B) {
				for range b.N {
					grow(b, topo, size, 64)
				}
			})
		}
	}
}

func grow(b *testing.B, topo string, size, parallel int) {
	in := startInstance(b, Config{Size: uint32(size), Topo: topo, Heartbeat: time.Second, TorpidMax: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		brokers  []*Broker
		firstErr error
	)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	m0 := in.root.Messages()
	start := time.Now()
	for i := 1; i < size; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfg := in.joinConfig(fmt.Sprintf("n%d", i))
			cfg.Heartbeat, cfg.TorpidMax, cfg.ParentTimeout = time.Second, 30*time.Second, time.Minute
			t0 := time.Now()
			br, err := Join(ctx, cfg)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			lat = append(lat, d)
			brokers = append(brokers, br)
		}()
	}
	wg.Wait()
	require.NoError(b, firstErr)
	for in.root.Status() != StatusFull {
		require.NoError(b, ctx.Err(), "not full: %v, online %s", in.root.Status(), in.root.Online())
		time.Sleep(5 * time.Millisecond)
	}
	full := time.Since(start)
	msgs := in.root.Messages() - m0
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(full.Seconds(), "s-to-full")
	b.ReportMetric(pct(0.50), "p50-join-ms")
	b.ReportMetric(pct(0.90), "p90-join-ms")
	b.ReportMetric(pct(0.99), "p99-join-ms")
	b.ReportMetric(float64(msgs)/float64(size-1), "rank0-msgs/join")
	var cw sync.WaitGroup
	for _, br := range brokers {
		cw.Add(1)
		go func() { defer cw.Done(); br.Close() }()
	}
	cw.Wait()
	in.root.Close()
	b.StartTimer()
}

// BenchmarkJoinDuringFlood joins brokers while 2,000 idle connections sit
// on the boot server and rank 0's overlay socket (1,000 each, from the
// joiners' own address): the join latency a flood leaves. Run with
// -benchtime=Nx.
func BenchmarkJoinDuringFlood(b *testing.B) {
	for _, idle := range []int{0, 1000} {
		b.Run(fmt.Sprintf("idle=%d", 2*idle), func(b *testing.B) {
			in := startInstance(b, Config{Size: uint32(b.N + 1), Topo: "kary:0"})
			ep, _, _ := ParseBootURI(in.root.BootURI())
			var flood []net.Conn
			defer func() {
				for _, c := range flood {
					c.Close()
				}
			}()
			for _, target := range []string{strings.TrimPrefix(ep, "tcp://"), strings.TrimPrefix(in.root.Endpoint(), "tcp://")} {
				for range idle {
					c, err := net.Dial("tcp", target)
					require.NoError(b, err)
					flood = append(flood, c)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var lat []time.Duration
			var brokers []*Broker
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				br, err := Join(ctx, in.joinConfig(fmt.Sprintf("n%d", i)))
				require.NoError(b, err)
				lat = append(lat, time.Since(t0))
				brokers = append(brokers, br)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-join-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-join-ms")
			for _, br := range brokers {
				br.Close()
			}
		})
	}
}
