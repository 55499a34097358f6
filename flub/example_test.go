package flub_test

import (
	"context"
	"fmt"
	"time"

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
