package testbroker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/stretchr/testify/require"
)

// startEcho starts an instance of size ranks serving "bench.echo", which
// answers with the request's payload, on each rank of ranks.
func startEcho(b *testing.B, size int, ranks ...uint32) *Broker {
	br, err := Start(Config{Size: size})
	require.NoError(b, err)
	b.Cleanup(func() { br.Close() })
	for _, r := range ranks {
		_, err := br.Owner(r).Register("bench.echo", 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			_ = w.Respond(req.Payload)
		})
		require.NoError(b, err)
	}
	return br
}

// benchEcho measures round trips to "bench.echo" on dst from the last
// rank. It calls the concrete *Handle, as a component holding one does:
// through the fluxkit.Handle interface the request would escape to the
// heap, adding an allocation to every round trip measured.
func benchEcho(b *testing.B, size int, dst uint32) {
	h := startEcho(b, size, dst).Owner(uint32(size - 1))
	ctx := context.Background()
	payload := []byte(`{"n":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	var err error
	for b.Loop() {
		var call fluxkit.Call
		if call, err = h.Request(ctx, fluxkit.NewRequest("bench.echo", dst, payload)); err != nil {
			break
		}
		_, err = call.Recv(ctx)
		call.Close()
		if err != nil {
			break
		}
	}
	require.NoError(b, err)
}

// BenchmarkRPC is the round trip of one request and its response between
// two handles on the same rank, and across a 1000-rank tree.
func BenchmarkRPC(b *testing.B) {
	b.Run("local", func(b *testing.B) { benchEcho(b, 1, 0) })
	b.Run("1000-ranks-to-0", func(b *testing.B) { benchEcho(b, 1000, 0) })
}

// BenchmarkRPCParallel runs round trips from many goroutines at once.
func BenchmarkRPCParallel(b *testing.B) {
	h := startEcho(b, 4, 0, 1, 2, 3).Owner(0)
	b.ReportAllocs()
	var failed atomic.Pointer[error]
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := uint32(0)
		for pb.Next() {
			i++
			if err := fluxkit.RPC(ctx, h, "bench.echo", i%4, nil, nil); err != nil {
				first := err // declared here so that only a failure allocates
				failed.Store(&first)
				return
			}
		}
	})
	if err := failed.Load(); err != nil {
		require.NoError(b, *err)
	}
}

// BenchmarkStream measures one streaming RPC of b.N responses; run with
// -benchtime=1000000x for the figure of a million responses.
func BenchmarkStream(b *testing.B) { benchStream(b, Link{}) }

// BenchmarkStreamDelayed streams b.N responses over a link with a
// microsecond delay, which carries them in order.
func BenchmarkStreamDelayed(b *testing.B) { benchStream(b, Link{Delay: time.Microsecond}) }

func benchStream(b *testing.B, link Link) {
	br, err := Start(Config{Size: 2})
	require.NoError(b, err)
	defer br.Close()
	if link != (Link{}) {
		br.SetLink(1, link)
	}
	n := b.N
	_, err = br.Owner(1).Register("bench.stream", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		p := []byte(`{"i":1}`)
		for i := 0; i < n; i++ {
			_ = w.Respond(p)
		}
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
	})
	require.NoError(b, err)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	call, err := fluxkit.Stream(ctx, br.Owner(0), "bench.stream", 1, nil)
	require.NoError(b, err)
	defer call.Close()
	got := 0
	for {
		_, err := call.Recv(ctx)
		if err != nil {
			break
		}
		got++
	}
	require.Equal(b, n, got, "responses")
}

// BenchmarkStart is the cost of an instance that is started, used at one
// rank far down the tree and closed.
func BenchmarkStart(b *testing.B) {
	for _, size := range []int{1000, 1000000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			var err error
			for b.Loop() {
				var br *Broker
				if br, err = Start(Config{Size: size}); err != nil {
					break
				}
				err = fluxkit.RPC(ctx, br.Owner(uint32(size-1)), "attr.get", 0, map[string]string{"name": "size"}, nil)
				br.Close()
				if err != nil {
					break
				}
			}
			require.NoError(b, err)
		})
	}
}
