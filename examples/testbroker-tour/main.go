// Command testbroker-tour runs an in-process Flux instance and shows what a
// component sees through fluxkit.Handle: attributes, routing by rank and to
// the nearest service, streaming, role checks, events and a lost rank.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
)

func main() {
	size := flag.Int("size", 8, "number of ranks")
	fanout := flag.Int("fanout", 2, "k of the k-ary tree")
	flag.Parse()
	if err := run(os.Stdout, *size, *fanout); err != nil {
		fmt.Fprintln(os.Stderr, "testbroker-tour:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, size, fanout int) error {
	if size < 3 {
		return fmt.Errorf("size must be at least 3, got %d", size)
	}
	b, err := testbroker.Start(testbroker.Config{Size: size, Fanout: fanout})
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last := uint32(size - 1)
	h := b.Owner(last)

	fmt.Fprintf(out, "instance of %d ranks, kary:%d\n", size, fanout)
	for r := uint32(0); r < uint32(size); r++ {
		if p, ok := b.Parent(r); ok {
			fmt.Fprintf(out, "  rank %d -> parent %d\n", r, p)
		}
	}

	var attr struct{ Value string }
	if err := fluxkit.RPC(ctx, h, "attr.get", 0, map[string]string{"name": "size"}, &attr); err != nil {
		return err
	}
	fmt.Fprintf(out, "attr.get size from rank %d via rank 0: %s\n", last, attr.Value)

	// A counting service on rank 1, streaming.
	_, err = b.Owner(1).Register("count.up", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		if !fluxkit.RequireStreaming(w, req) {
			return
		}
		var in struct{ N int }
		if !fluxkit.DecodeRequest(w, req, &in) {
			return
		}
		for i := 1; i <= in.N; i++ {
			_ = fluxkit.Respond(w, map[string]int{"i": i})
		}
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
	})
	if err != nil {
		return err
	}
	start := time.Now()
	call, err := fluxkit.Stream(ctx, h, "count.up", 1, map[string]int{"N": 100000})
	if err != nil {
		return err
	}
	n := 0
	for {
		if _, err := call.Recv(ctx); err != nil {
			if !errors.Is(err, fluxkit.ENODATA) {
				return err
			}
			break
		}
		n++
	}
	call.Close()
	fmt.Fprintf(out, "streamed %d responses from rank 1 in %v\n", n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	const rpcs = 20000
	for i := 0; i < rpcs; i++ {
		if err := fluxkit.RPC(ctx, h, "broker.ping", 0, nil, nil); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "%d round trips rank %d -> 0: %v each\n", rpcs, last, (time.Since(start) / rpcs).Round(100*time.Nanosecond))

	err = fluxkit.RPC(ctx, b.Guest(last, 1000), "module.load", 0, map[string]string{"path": "kvs"}, nil)
	fmt.Fprintf(out, "guest module.load: %v\n", err)

	sub, err := b.Owner(last).Subscribe(ctx, "tour.")
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := b.Owner(1).Publish(ctx, "tour.hello", []byte(`{"from":1}`), 0); err != nil {
		return err
	}
	ev, err := sub.Recv(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "event %s seq %d payload %s\n", ev.Topic, ev.Seq, ev.Payload)

	b.StopRank(1)
	err = fluxkit.RPC(ctx, h, "broker.ping", 1, nil, nil)
	fmt.Fprintf(out, "rank 1 stopped: ping -> %v; broker.online = %s\n", err, b.Online())
	b.StartRank(1)
	fmt.Fprintf(out, "rank 1 restarted: ping -> %v; broker.online = %s\n", fluxkit.RPC(ctx, h, "broker.ping", 1, nil, nil), b.Online())
	return nil
}
