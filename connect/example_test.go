package connect_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
)

// Inside a Flux instance, Open("") connects to the broker FLUX_URI names;
// then the handle sends RPCs, serves requests and exchanges events like any
// flux-core client. (This example needs an instance, so it is not run.)
func Example() {
	ctx := context.Background()
	h, err := connect.Open(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	var pong struct {
		Rank  uint32 `json:"rank"`
		Route string `json:"route"`
	}
	if err := fluxkit.RPC(ctx, h, "broker.ping", 0, map[string]any{"seq": 1, "pad": ""}, &pong); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("rank %d of %d answered via %s\n", pong.Rank, h.Size(), pong.Route)
}

// Outside an instance, Open says how to get one.
func ExampleOpen_outsideAnInstance() {
	noEnv := func(string) string { return "" }
	_, err := connect.New(context.Background(), connect.Config{Getenv: noEnv})
	fmt.Println(errors.Is(err, connect.ErrNoURI))
	fmt.Println(err)
	// Output:
	// true
	// connect: FLUX_URI is not set: run inside a Flux instance (flux start, or a job's environment) or pass a URI such as local:///run/flux/local
}
