package flub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

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
	ctx := ctxT(t, 120*time.Second)
	parents := map[uint32]*Broker{}
	for range 2 {
		b, err := in.join(ctx, "interior")
		if err != nil {
			t.Fatal(err)
		}
		parents[b.Rank()] = b
	}
	c := in.ownerClient(t)
	keys := map[uint32]curve.KeyPair{}
	peers := map[uint32]struct {
		key curve.Key
		uri string
	}{}
	for r := uint32(3); r <= 6; r++ {
		k, _ := curve.GenerateKeyPair(nil)
		keys[r] = k
		var raw json.RawMessage
		if err := rpc(ctx, c, topicKex, (r-1)/2, kexRequest{Name: fmt.Sprint(r), Pubkey: k.Public.String()}, &raw); err != nil {
			t.Fatal(err)
		}
		pk, uri, err := parseKexResponse(raw)
		if err != nil {
			t.Fatal(err)
		}
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
		if resp := ch.hello(t, r); resp.Errnum != 0 {
			t.Fatalf("hello rank %d: errno %d %q", r, resp.Errnum, resp.Payload)
		}
		if old := holders[r]; old != nil {
			old.close()
		}
		holders[r] = ch
	}
	for r := uint32(3); r <= 6; r++ {
		hello(r)
	}
	waitFor(t, "every rank online", 10*time.Second, func() bool { return in.root.Online().String() == "0-6" })

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
		t.Errorf("getinfo handed out rank %d while a live broker held it", r)
	}
	t.Logf("%d replacements, %d getinfo calls", replacements, calls.Load())
	if got := in.root.Online().String(); got != "0-6" {
		t.Errorf("online %s after the replacements, want 0-6", got)
	}
	for _, ch := range holders {
		ch.close()
	}
}
