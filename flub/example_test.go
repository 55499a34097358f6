package flub_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub"
	"github.com/fluxkit/fluxkit/flub/curve"
)

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner, _ := curve.GenerateKeyPair(nil) // the owner certificate's keys

	// Rank 0 of an instance that will grow to 3 ranks.
	root, err := flub.Start(ctx, flub.Config{Size: 3, Topo: "kary:2", Owner: owner.Public, Hostname: "login"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer root.Close()
	fmt.Println(root.Status(), root.Hostlist())

	for _, host := range []string{"node1", "node2"} {
		b, err := flub.Join(ctx, flub.JoinConfig{BootURI: root.BootURI(), Owner: owner, Topo: "kary:2", Hostname: host})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer b.Close()
		fmt.Printf("rank %d parent %d\n", b.Rank(), b.Parent())
	}
	for root.Status() != flub.StatusFull {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(root.Status(), root.Online(), root.Hostlist())

	// A fourth broker finds no rank.
	_, err = flub.Join(ctx, flub.JoinConfig{BootURI: root.BootURI(), Owner: owner, Topo: "kary:2"})
	fmt.Println(err)
	// Output:
	// partial login,extra[1-2]
	// rank 1 parent 0
	// rank 2 parent 0
	// full 0-2 login,node[1-2]
	// boot-flub: there are no available ranks
}

func ExampleTopology() {
	topo, _ := flub.ParseTopology("binomial")
	for r := uint32(0); r < 8; r++ {
		fmt.Println(r, topo.Parent(r), topo.Children(r, 8))
	}
	// Output:
	// 0 -1 [1 2 4]
	// 1 0 []
	// 2 0 [3]
	// 3 2 []
	// 4 0 [5 6]
	// 5 4 []
	// 6 4 [7]
	// 7 6 []
}

func ExamplePool() {
	pool, _ := flub.NewPool(7, 1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, _ := pool.Allocate(now.Add(time.Minute)) // rank 1, leased for a minute
	b, _ := pool.Allocate(now.Add(time.Minute)) // rank 2
	pool.SetOnline(b)
	fmt.Println(a, b, pool.Available())
	fmt.Println(pool.Expire(now.Add(time.Minute)), pool.Available()) // rank 1's joiner never came
	pool.SetOffline(b)                                               // rank 2's broker was lost
	fmt.Println(pool.Available())
	// Output:
	// 1 2 3-6
	// [1] 1,3-6
	// 1-6
}

// A broker cut off by the loss of an ancestor keeps its rank: the pool
// holds it (orphaned) rather than offering it, until the broker reclaims
// it through the boot server; the reclaim is the broker's to renew.
func ExamplePool_Reclaim() {
	pool, _ := flub.NewPool(flub.MaxSize, 1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 3 {
		r, _ := pool.Allocate(now.Add(time.Minute))
		pool.SetOnline(r)
	}
	pool.SetOffline(1)                   // rank 1's broker is lost...
	pool.Orphan(3, now.Add(time.Minute)) // ...and rank 3, its child, cut off
	fmt.Println(pool.Available(), pool.State(3))
	fmt.Println(pool.Reclaim(3, "rank 3's broker", now.Add(time.Minute)), pool.State(3))
	fmt.Println(pool.Reclaim(3, "rank 3's broker", now.Add(2*time.Minute)))
	fmt.Println(pool.Reclaim(3, "someone else", now.Add(2*time.Minute)))
	// Output:
	// 1,4-2147483647 orphaned
	// <nil> leased
	// <nil>
	// rank 3 is leased: another broker holds it
}

// A Go module on a joined broker, loaded, used and removed over the
// overlay as modprobe would.
func ExampleModuleFunc() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner, _ := curve.GenerateKeyPair(nil)

	greeter := func(ctx context.Context, h fluxkit.Handle, args []string) error {
		un, err := h.Register("greeter.hello", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
			_ = fluxkit.Respond(w, map[string]any{"greeting": "hello from rank " + fmt.Sprint(h.Rank()), "args": args})
		})
		if err != nil {
			return err
		}
		defer un()
		flub.SetRunning(h) // answers module.load
		<-ctx.Done()       // serve until module.remove or Close
		return nil
	}
	mods := map[string]flub.ModuleFunc{"greeter": greeter}

	root, err := flub.Start(ctx, flub.Config{Size: 2, Owner: owner.Public, Hostname: "login"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer root.Close()
	node, err := flub.Join(ctx, flub.JoinConfig{BootURI: root.BootURI(), Owner: owner, Hostname: "node1", Modules: mods})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()

	load := map[string]any{"path": "/usr/lib/flux/modules/greeter.so", "args": []string{"-v"}}
	fmt.Println(fluxkit.RPC(ctx, root, "module.load", 1, load, nil))
	var out struct {
		Greeting string
		Args     []string
	}
	fmt.Println(fluxkit.RPC(ctx, root, "greeter.hello", 1, map[string]any{}, &out), out.Greeting, out.Args)
	var list struct {
		Mods []struct{ Name, Path string }
	}
	_ = fluxkit.RPC(ctx, root, "module.list", 1, map[string]any{}, &list)
	fmt.Println(list.Mods)
	fmt.Println(fluxkit.RPC(ctx, root, "module.load", 1, load, nil))
	fmt.Println(fluxkit.RPC(ctx, root, "module.load", 0, load, nil))
	fmt.Println(fluxkit.RPC(ctx, root, "module.remove", 1, map[string]string{"name": "greeter"}, nil))
	fmt.Println(fluxkit.RPC(ctx, root, "greeter.hello", 1, map[string]any{}, nil))
	// Output:
	// <nil>
	// <nil> hello from rank 1 [-v]
	// [{connector-local builtin} {greeter /usr/lib/flux/modules/greeter.so}]
	// module greeter is already loaded
	// module greeter: no such module on rank 0
	// <nil>
	// No service matching greeter.hello is registered
}
