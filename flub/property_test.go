package flub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	ctx := testutil.Context(t)
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
	testutil.WaitFor(t, "online == the connected live brokers", func() bool {
		_, online, _, _ := state()
		return in.root.Online().Equal(online)
	})
	held, online, orphans, dup := state()
	require.False(t, dup, "two live brokers hold one rank; online %s", online)
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
	require.Empty(t, msg)
}

// TestPropertyNoRankHandedOutWhileHeld replaces the children of an
// interior broker hundreds of times, each replacement a new connection
// saying hello for a rank that is online, while boot clients hammer
// getinfo. Every rank of the instance is held by a live broker the whole
// time, so every getinfo must fail: a rank handed out here would be held
// twice. The replacement order, the ranks replaced and the getinfo load
// are random; the seed is logged.
func TestPropertyNoRankHandedOutWhileHeld(t *testing.T) {
	leakcheck.Check(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	// kary:2, size 7: 1 and 2 are real brokers under rank 0; 3-6 are
	// hand-driven children of 1 and 2.
	in := startInstance(t, Config{Size: 7})
	ctx := testutil.Context(t)
	parents := map[uint32]*Broker{}
	for range 2 {
		b := in.mustJoin(ctx, "interior")
		parents[b.Rank()] = b
	}
	c := in.ownerClient(t)
	keys := map[uint32]curve.KeyPair{}
	peers := map[uint32]struct {
		key curve.Key
		uri string
	}{}
	for r := uint32(3); r <= 6; r++ {
		k := mustKeyPair(t)
		keys[r] = k
		var raw json.RawMessage
		require.NoError(t, rpc(ctx, c, topicKex, (r-1)/2, kexRequest{Name: fmt.Sprint(r), Pubkey: k.Public.String()}, &raw))
		pk, uri, err := parseKexResponse(raw)
		require.NoError(t, err)
		peers[r] = struct {
			key curve.Key
			uri string
		}{pk, uri}
	}
	holders := map[uint32]*testChild{}
	hello := func(r uint32) {
		t.Helper()
		p := peers[r]
		ch := dialChild(t, keys[r], p.key, p.uri)
		resp := ch.hello(t, r)
		require.Zero(t, resp.Errnum, "hello rank %d: %s", r, resp.Payload)
		if old := holders[r]; old != nil {
			old.close()
		}
		holders[r] = ch
	}
	for r := uint32(3); r <= 6; r++ {
		hello(r)
	}
	testutil.WaitFor(t, "every rank online", func() bool { return in.root.Online().String() == "0-6" })

	hctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var calls atomic.Int64
	handedOut := make(chan uint32, 64)
	for range 1 + rng.IntN(4) {
		bc := in.ownerClient(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for hctx.Err() == nil {
				var r struct{ Rank uint32 }
				err := rpc(hctx, bc, topicGetinfo, 0, map[string]any{}, &r)
				calls.Add(1)
				if err == nil {
					select {
					case handedOut <- r.Rank:
					default:
					}
				}
			}
		}()
	}
	const replacements = 300
	for range replacements {
		hello(3 + uint32(rng.IntN(4)))
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
		}
	}
	// Let the last membership updates reach rank 0 under load.
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	close(handedOut)
	for r := range handedOut {
		assert.Fail(t, "getinfo handed out a rank a live broker held", "rank %d", r)
	}
	t.Logf("%d replacements, %d getinfo calls", replacements, calls.Load())
	assert.Equal(t, "0-6", in.root.Online().String(), "online after the replacements")
	for _, ch := range holders {
		ch.close()
	}
}
