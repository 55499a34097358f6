package flub

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPoolAllocationOrderAndExhaustion(t *testing.T) {
	p, err := NewPool(7, 1)
	require.NoError(t, err)
	assert.Equal(t, "1-6", p.Available().String())
	for want := uint32(1); want <= 6; want++ {
		mustAlloc(t, p, want, t0.Add(time.Minute))
		assert.Equal(t, Leased, p.State(want))
	}
	_, err = p.Allocate(t0)
	requireError(t, err, fluxkit.ENOENT, "there are no available ranks", "7th allocate")
}

func TestPoolErrors(t *testing.T) {
	for _, tc := range []struct{ size, initial uint32 }{{0, 1}, {3, 0}, {3, 4}} {
		_, err := NewPool(tc.size, tc.initial)
		assert.ErrorContains(t, err, "error provisioning flub allocator", "NewPool(%d,%d)", tc.size, tc.initial)
	}
	p, _ := NewPool(1, 1)
	_, err := p.Allocate(t0)
	assert.ErrorIs(t, err, fluxkit.ENOENT, "size 1 allocate")
}

func TestPoolTransitions(t *testing.T) {
	p, _ := NewPool(8, 2) // ranks 0 and 1 booted with the instance
	steps := []struct {
		name  string
		do    func()
		avail string
	}{
		{"initial", func() {}, "2-7"},
		{"initial rank 1 online", func() { p.SetOnline(1) }, "2-7"},
		{"rank 1 goes offline and is re-provisioned", func() { p.SetOffline(1) }, "1-7"},
		{"rank 1 comes back before a replacement", func() { p.SetOnline(1) }, "2-7"},
		{"allocate 2", func() { mustAlloc(t, p, 2, t0.Add(time.Second)) }, "3-7"},
		{"stray offline of a leased rank is ignored", func() { p.SetOffline(2) }, "3-7"},
		{"2 comes online", func() { p.SetOnline(2) }, "3-7"},
		{"lease expiry leaves online ranks alone", func() { p.Expire(t0.Add(time.Hour)) }, "3-7"},
		{"allocate 3", func() { mustAlloc(t, p, 3, t0.Add(2*time.Second)) }, "4-7"},
		{"not yet expired", func() { require.Empty(t, p.Expire(t0.Add(time.Second))) }, "4-7"},
		{"expired at the deadline", func() { require.Equal(t, []uint32{3}, p.Expire(t0.Add(2*time.Second))) }, "3-7"},
		{"2 offline", func() { p.SetOffline(2) }, "2-7"},
		{"out of range is ignored", func() { p.SetOnline(99); p.SetOffline(99) }, "2-7"},
		{"rank 0 never enters the pool", func() { p.SetOnline(0); p.SetOffline(0) }, "2-7"},
	}
	for _, s := range steps {
		s.do()
		require.Equal(t, s.avail, p.Available().String(), s.name)
	}
}

func mustAlloc(t *testing.T, p *Pool, want uint32, deadline time.Time) {
	t.Helper()
	r, err := p.Allocate(deadline)
	require.NoError(t, err)
	require.Equal(t, want, r, "allocated rank")
}

func TestPoolNextExpiry(t *testing.T) {
	p, _ := NewPool(4, 1)
	_, ok := p.NextExpiry()
	require.False(t, ok, "expiry with no lease")
	mustAlloc(t, p, 1, t0.Add(3*time.Second))
	mustAlloc(t, p, 2, t0.Add(time.Second))
	d, ok := p.NextExpiry()
	require.True(t, ok)
	require.Equal(t, t0.Add(time.Second), d)
	p.SetOnline(2)
	d, _ = p.NextExpiry()
	require.Equal(t, t0.Add(3*time.Second), d, "next expiry once rank 2 is online")
}

// TestPoolProperty drives the pool with random operations against a model
// of live brokers, some cut off by a lost ancestor and reclaiming their
// ranks: no rank is ever handed to two live brokers, allocation is always
// the lowest available rank, and after every lease every rank handed out
// is online or available again.
func TestPoolProperty(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		size := uint32(2 + rng.IntN(70))
		p, _ := NewPool(size, 1)
		now := t0
		lease := 10 * time.Second
		// live: ranks a broker holds (leased, not expired, or online)
		holder := map[uint32]string{} // rank → "leased"|"online"
		handed := map[uint32]bool{}
		for step := 0; step < 400; step++ {
			switch op := rng.IntN(10); {
			case op < 4:
				avail := p.Available()
				r, err := p.Allocate(now.Add(lease))
				if err != nil {
					require.Zero(t, avail.Len(), "seed %d: allocate failed with %s available", seed, avail)
					continue
				}
				first, _ := avail.First()
				require.Equal(t, first, r, "seed %d: allocated rank, not the lowest available", seed)
				require.NotContains(t, holder, r, "seed %d: rank %d handed out while held", seed, r)
				holder[r] = "leased"
				handed[r] = true
			case op < 6: // a leased rank's broker comes online
				for r, h := range holder {
					if h == "leased" {
						p.SetOnline(r)
						holder[r] = "online"
						break
					}
				}
			case op < 7: // an online broker is lost
				for r, h := range holder {
					if h == "online" {
						p.SetOffline(r)
						delete(holder, r)
						break
					}
				}
			case op < 8: // an online broker is cut off by a lost ancestor
				for r, h := range holder {
					if h == "online" {
						p.Orphan(r, now.Add(lease))
						holder[r] = "orphaned"
						break
					}
				}
			case op < 9: // a cut-off broker reclaims its rank, or comes back
				for r, h := range holder {
					if h != "orphaned" {
						continue
					}
					if rng.IntN(2) == 0 {
						require.NoError(t, p.Reclaim(r, "holder", now.Add(lease)), "seed %d: reclaim of orphaned %d", seed, r)
						holder[r] = "reclaimed"
					} else {
						p.SetOnline(r)
						holder[r] = "online"
					}
					break
				}
			default:
				now = now.Add(time.Duration(rng.IntN(6)) * time.Second)
				for _, r := range p.Expire(now) {
					require.Contains(t, []string{"leased", "orphaned", "reclaimed"}, holder[r], "seed %d: expired rank %d", seed, r)
					delete(holder, r)
				}
			}
		}
		// After every lease has run out: every rank handed out is online
		// or back in the pool.
		p.Expire(now.Add(lease))
		for r := range handed {
			require.Contains(t, []RankState{Online, Available}, p.State(r), "seed %d: rank %d after its lease", seed, r)
		}
	}
}

func TestPoolOrphanAndReclaim(t *testing.T) {
	p, _ := NewPool(8, 1)
	for r := uint32(1); r <= 3; r++ {
		mustAlloc(t, p, r, t0.Add(time.Minute))
		p.SetOnline(r)
	}
	step := func(name string, want string) {
		t.Helper()
		require.Equal(t, want, p.Available().String(), name)
	}
	p.Orphan(3, t0.Add(10*time.Second))
	require.Equal(t, Orphaned, p.State(3))
	step("orphaned rank held", "4-7")
	mustAlloc(t, p, 4, t0.Add(time.Minute))
	require.NoError(t, p.Reclaim(3, "k3", t0.Add(20*time.Second)), "reclaim of an orphan")
	require.Equal(t, Leased, p.State(3))
	require.NoError(t, p.Reclaim(3, "k3", t0.Add(30*time.Second)), "the holder renews its reclaim")
	for _, other := range []string{"other", ""} {
		require.ErrorIs(t, p.Reclaim(3, other, t0.Add(time.Minute)), fluxkit.EEXIST, "reclaim of rank 3 by %q while k3 holds it", other)
	}
	require.ErrorIs(t, p.Reclaim(4, "k4", t0.Add(time.Minute)), fluxkit.EEXIST, "reclaim of a rank leased by getinfo")
	require.ErrorIs(t, p.Reclaim(2, "k2", t0.Add(time.Minute)), fluxkit.EEXIST, "reclaim of an online rank")
	for _, r := range []uint32{0, 8} {
		require.ErrorIs(t, p.Reclaim(r, "k", t0), fluxkit.EINVAL, "reclaim of rank %d", r)
	}
	require.Empty(t, p.Expire(t0.Add(25*time.Second)), "renewed reclaim expired early")
	p.SetOnline(3)

	// A rank orphaned again gets a new deadline when its subtree's root
	// holds it once more.
	p.Orphan(2, t0.Add(time.Second))
	p.Orphan(2, t0.Add(9*time.Second))
	require.Empty(t, p.Expire(t0.Add(2*time.Second)), "expired before the moved deadline")
	require.Equal(t, []uint32{2}, p.Expire(t0.Add(9*time.Second)))
	step("expired orphan back in the pool", "2,5-7")
	// Available after use: a root's hold takes it back; a rank never used
	// is not held for anyone.
	p.Orphan(2, t0.Add(time.Hour))
	p.Orphan(7, t0.Add(time.Hour))
	step("held again", "5-7")
	require.NoError(t, p.Reclaim(2, "k2", t0.Add(time.Hour)))
	p.SetOffline(3)
	require.NoError(t, p.Reclaim(3, "k3", t0.Add(time.Hour)), "reclaim of a rank no one took")
	require.Equal(t, Leased, p.State(3))
}

// The pool's memory follows the ranks in use: at MaxSize it allocates
// what it does at eight (it used to take 25 bytes a rank).
func TestPoolSparseAtMaxSize(t *testing.T) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	p, err := NewPool(MaxSize, 1)
	require.NoError(t, err)
	for range 100 {
		r, _ := p.Allocate(t0)
		p.SetOnline(r)
	}
	require.Equal(t, "101-2147483647", p.Available().String())
	runtime.ReadMemStats(&m1)
	require.LessOrEqual(t, m1.TotalAlloc-m0.TotalAlloc, uint64(1<<20), "bytes allocated for 100 ranks in use")
}
