package flub

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// TestPropertyChurn joins, kills and abandons brokers at random on a real
// overlay, then checks the properties: no rank is held by two live
// brokers, broker.online is exactly the live brokers, and after the lease
// every rank handed out is online or back in the pool.
func TestPropertyChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn on real sockets")
	}
	leakcheck.Check(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	const size = 15
	lease := 1500 * time.Millisecond
	in := startInstance(t, Config{Size: size, Lease: lease})
	c := in.ownerClient(t)
	ctx := ctxT(t, 60*time.Second)
	var (
		mu   sync.Mutex
		live []*Broker
		n    int
	)
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		for range 2 + rng.IntN(5) {
			n++
			cfg := in.joinConfig(fmt.Sprintf("j%d", n))
			cfg.ParentTimeout = lease / 2
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := Join(ctx, cfg)
				if err != nil {
					return // no rank, parent timeout, parent lost: all allowed
				}
				mu.Lock()
				live = append(live, b)
				mu.Unlock()
			}()
		}
		if rng.IntN(2) == 0 {
			getinfo(t, c, 0) // a joiner that dies right after getinfo
		}
		wg.Wait()
		mu.Lock()
		for range rng.IntN(3) {
			if len(live) == 0 {
				break
			}
			i := rng.IntN(len(live))
			live[i].Close() // a crash
			live = append(live[:i], live[i+1:]...)
		}
		mu.Unlock()
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	}
	alive := func() (map[uint32]*Broker, idset.Set, bool) {
		held := map[uint32]*Broker{}
		var bl idset.Builder
		bl.Add(0)
		dup := false
		for _, b := range live {
			select {
			case <-b.Done():
				continue
			default:
			}
			if held[b.Rank()] != nil {
				dup = true
			}
			held[b.Rank()] = b
			bl.Add(b.Rank())
		}
		return held, bl.Set(), dup
	}
	waitFor(t, "online == live brokers", 10*time.Second, func() bool {
		_, set, _ := alive()
		return in.root.Online().Equal(set)
	})
	if _, set, dup := alive(); dup {
		t.Fatalf("two live brokers hold one rank; live %s", set)
	}
	time.Sleep(lease + 500*time.Millisecond)
	done := make(chan string, 1)
	in.root.post(func() {
		for r := uint32(1); r < size; r++ {
			if st := in.root.p.pool.State(r); st != Online && st != Available {
				done <- fmt.Sprintf("rank %d is %v after its lease", r, st)
				return
			}
			if (in.root.p.pool.State(r) == Online) != in.root.online[r] {
				done <- fmt.Sprintf("rank %d: pool %v, online %v", r, in.root.p.pool.State(r), in.root.online[r])
				return
			}
		}
		done <- ""
	})
	if msg := <-done; msg != "" {
		t.Fatal(msg)
	}
	for _, b := range live {
		b.Close()
	}
}
