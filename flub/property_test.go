package flub

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// TestPropertyChurn joins, kills, cuts off and abandons brokers at random
// on a real overlay, then checks the properties: no rank is held by two
// live brokers; broker.online is exactly the live brokers whose ancestors
// are all live; the rank of a live broker cut off by a lost ancestor is
// never back in the pool; and after the lease every other rank handed out
// is online or back in the pool.
func TestPropertyChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn on real sockets")
	}
	leakcheck.Check(t)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("FLUB_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (FLUB_TEST_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	const size = 15
	lease := 1500 * time.Millisecond
	in := startInstance(t, Config{Size: size, Lease: lease})
	c := in.ownerClient(t)
	ctx := ctxT(t, 60*time.Second)
	var (
		mu      sync.Mutex
		live    []*Broker
		proxies []*tcpProxy // links that can flap
		n       int
	)
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		for range 2 + rng.IntN(5) {
			n++
			cfg := in.joinConfig(fmt.Sprintf("j%d", n))
			cfg.ParentTimeout = lease / 2
			cfg.ReconnectTimeout = new(lease / 3) // below the lease, as documented
			if rng.IntN(3) == 0 {
				cfg.hooks = &joinHooks{parentURI: func(uri string) string {
					px := newProxy(t, strings.TrimPrefix(uri, "tcp://"))
					mu.Lock()
					proxies = append(proxies, px)
					mu.Unlock()
					return px.uri()
				}}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := Join(ctx, cfg)
				if err != nil {
					return // no rank, parent timeout, parent lost: all allowed
				}
				t.Cleanup(func() { b.Close() })
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
		for range rng.IntN(3) {
			if len(proxies) > 0 {
				proxies[rng.IntN(len(proxies))].cut() // a flap
			}
		}
		mu.Unlock()
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	}
	// state is the live brokers by rank, the ranks that must be online
	// (rank 0 and every live broker whose ancestors are live) and those
	// held by a live broker cut off from rank 0.
	state := func() (held map[uint32]*Broker, online, orphans idset.Set, dup bool) {
		held = map[uint32]*Broker{}
		mu.Lock()
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
		}
		mu.Unlock()
		topo, _ := ParseTopology(in.topo)
		var on, orph idset.Builder
		on.Add(0)
		for r := range held {
			connected := true
			for p := topo.Parent(r); p > 0; p = topo.Parent(uint32(p)) {
				if held[uint32(p)] == nil {
					connected = false
				}
			}
			if connected {
				on.Add(r)
			} else {
				orph.Add(r)
			}
		}
		return held, on.Set(), orph.Set(), dup
	}
	waitFor(t, "online == the connected live brokers", 15*time.Second, func() bool {
		_, online, _, _ := state()
		return in.root.Online().Equal(online)
	})
	held, online, orphans, dup := state()
	if dup {
		t.Fatalf("two live brokers hold one rank; online %s", online)
	}
	t.Logf("online %s, cut off %s", online, orphans)
	time.Sleep(lease + 500*time.Millisecond)
	msg, _ := ask(in.root, func() string {
		for r := uint32(1); r < size; r++ {
			st := in.root.p.pool.State(r)
			switch {
			case orphans.Contains(r):
				// Held for the broker that rejoins as r: reclaimed
				// again and again while its parent is away.
				if st != Orphaned && st != Leased {
					return fmt.Sprintf("rank %d of a live cut-off broker is %v", r, st)
				}
			case st != Online && st != Available:
				return fmt.Sprintf("rank %d is %v after its lease", r, st)
			}
			if (st == Online) != in.root.below.has(r) {
				return fmt.Sprintf("rank %d: pool %v, online %v", r, st, in.root.below.has(r))
			}
			if st == Online && held[r] == nil {
				return fmt.Sprintf("rank %d online with no live broker", r)
			}
		}
		return ""
	})
	if msg != "" {
		t.Fatal(msg)
	}
}
