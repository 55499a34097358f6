// Command testbroker-tour runs an in-process Flux instance and shows what a
// component sees through fluxkit.Handle: attributes, routing by rank and to
// the nearest service, streaming, role checks, events and a lost rank.
package main

import (
	"bufio"
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

const prog = "testbroker-tour"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command line: -h prints usage on stdout and exits 0, a usage
// error is one line on stderr and exit 2, a failure (including output
// that cannot be written) is exit 1.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	size := fs.Int("size", 8, fmt.Sprintf("number of ranks, 3 to %d", testbroker.MaxSize))
	fanout := fs.Int("fanout", 2, "k of the k-ary tree, at least 1")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: %s [OPTIONS]\n", prog)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *size < 3 || *size > testbroker.MaxSize:
		err = fmt.Errorf("--size %d: want 3 to %d ranks", *size, testbroker.MaxSize)
	case *fanout < 1:
		err = fmt.Errorf("--fanout %d: want at least 1", *fanout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	w := bufio.NewWriter(stdout)
	err = tour(w, *size, *fanout)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	return 0
}

// parentsShown is how many ranks the tour lists with their parent.
const parentsShown = 16

func tour(out io.Writer, size, fanout int) error {
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
	for r := uint32(1); r < uint32(min(size, parentsShown)); r++ {
		p, _ := b.Parent(r)
		fmt.Fprintf(out, "  rank %d -> parent %d\n", r, p)
	}
	if size > parentsShown {
		fmt.Fprintf(out, "  ... and %d more ranks, created when first used\n", size-parentsShown)
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
