package testbroker_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
)

func Example() {
	b, err := testbroker.Start(testbroker.Config{Size: 4})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	ctx := context.Background()

	// A service on rank 2, open to guests.
	srv := b.Owner(2)
	_, err = srv.Register("hello.greet", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ Name string }
		if err := fluxkit.DecodePayload(req, &in); err != nil {
			_ = w.RespondError(err)
			return
		}
		_ = fluxkit.Respond(w, map[string]string{"greeting": fmt.Sprintf("hello %s from rank %d", in.Name, srv.Rank())})
	})
	if err != nil {
		panic(err)
	}

	guest := b.Guest(3, 1000)
	var out struct{ Greeting string }
	if err := fluxkit.RPC(ctx, guest, "hello.greet", 2, map[string]string{"name": "guest"}, &out); err != nil {
		panic(err)
	}
	fmt.Println(out.Greeting)

	b.StopRank(2)
	err = fluxkit.RPC(ctx, guest, "hello.greet", 2, map[string]string{"name": "guest"}, &out)
	fmt.Println(errors.Is(err, syscall.EHOSTUNREACH), b.Online())
	// Output:
	// hello guest from rank 2
	// true 0-1,3
}
