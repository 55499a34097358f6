package testbroker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

func benchEcho(b *testing.B, size int, dst uint32) {
	br, err := Start(Config{Size: size})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	srv := br.Owner(dst)
	if _, err := srv.Register("bench.echo", 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		_ = w.Respond(req.Payload)
	}); err != nil {
		b.Fatal(err)
	}
	h := br.Owner(uint32(size - 1))
	ctx := context.Background()
	payload := []byte(`{"n":1}`)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		call, err := h.Request(ctx, fluxkit.NewRequest("bench.echo", dst, payload))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := call.Recv(ctx); err != nil {
			b.Fatal(err)
		}
		call.Close()
	}
}

// BenchmarkRPC is the round trip of one request and its response between
// two handles on the same rank, and across a 1000-rank tree.
func BenchmarkRPC(b *testing.B) {
	b.Run("local", func(b *testing.B) { benchEcho(b, 1, 0) })
	b.Run("1000-ranks-to-0", func(b *testing.B) { benchEcho(b, 1000, 0) })
}

// BenchmarkRPCParallel runs round trips from many goroutines at once.
func BenchmarkRPCParallel(b *testing.B) {
	br, err := Start(Config{Size: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	for r := uint32(0); r < 4; r++ {
		if _, err := br.Owner(r).Register("bench.echo", 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			_ = w.Respond(req.Payload)
		}); err != nil {
			b.Fatal(err)
		}
	}
	h := br.Owner(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := uint32(0)
		for pb.Next() {
			i++
			if err := fluxkit.RPC(ctx, h, "bench.echo", i%4, nil, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStream measures one streaming RPC of b.N responses; run with
// -benchtime=1000000x for the figure of a million responses.
func BenchmarkStream(b *testing.B) { benchStream(b, Link{}) }

// BenchmarkStreamDelayed streams b.N responses over a link with a
// microsecond delay, which carries them in order.
func BenchmarkStreamDelayed(b *testing.B) { benchStream(b, Link{Delay: time.Microsecond}) }

func benchStream(b *testing.B, link Link) {
	br, err := Start(Config{Size: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	if link != (Link{}) {
		br.SetLink(1, link)
	}
	n := b.N
	if _, err := br.Owner(1).Register("bench.stream", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		p := []byte(`{"i":1}`)
		for i := 0; i < n; i++ {
			_ = w.Respond(p)
		}
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
	}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	call, err := fluxkit.Stream(ctx, br.Owner(0), "bench.stream", 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer call.Close()
	got := 0
	for {
		_, err := call.Recv(ctx)
		if err != nil {
			break
		}
		got++
	}
	if got != n {
		b.Fatalf("got %d responses, want %d", got, n)
	}
}

// BenchmarkStart is the cost of an instance that is started, used at one
// rank far down the tree and closed.
func BenchmarkStart(b *testing.B) {
	for _, size := range []int{1000, 1000000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				br, err := Start(Config{Size: size})
				if err != nil {
					b.Fatal(err)
				}
				if err := fluxkit.RPC(ctx, br.Owner(uint32(size-1)), "attr.get", 0, map[string]string{"name": "size"}, nil); err != nil {
					b.Fatal(err)
				}
				br.Close()
			}
		})
	}
}
