package flub

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPoolAllocationOrderAndExhaustion(t *testing.T) {
	p, err := NewPool(7, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Available().String(); got != "1-6" {
		t.Fatalf("available %s, want 1-6", got)
	}
	for want := uint32(1); want <= 6; want++ {
		r, err := p.Allocate(t0.Add(time.Minute))
		if err != nil || r != want {
			t.Fatalf("allocate = %d, %v; want %d", r, err, want)
		}
		if p.State(r) != Leased {
			t.Fatalf("rank %d is %v, want leased", r, p.State(r))
		}
	}
	_, err = p.Allocate(t0)
	if fluxkit.Errno(err) != fluxkit.ENOENT || !strings.Contains(err.Error(), "there are no available ranks") {
		t.Fatalf("7th allocate: %v", err)
	}
}

func TestPoolErrors(t *testing.T) {
	for _, tc := range []struct{ size, initial uint32 }{{0, 1}, {3, 0}, {3, 4}} {
		if _, err := NewPool(tc.size, tc.initial); err == nil || !strings.Contains(err.Error(), "error provisioning flub allocator") {
			t.Errorf("NewPool(%d,%d) = %v", tc.size, tc.initial, err)
		}
	}
	p, _ := NewPool(1, 1)
	if _, err := p.Allocate(t0); fluxkit.Errno(err) != fluxkit.ENOENT {
		t.Errorf("size 1 allocate: %v", err)
	}
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
		{"not yet expired", func() {
			if got := p.Expire(t0.Add(time.Second)); len(got) != 0 {
				t.Fatalf("expired %v early", got)
			}
		}, "4-7"},
		{"expired at the deadline", func() {
			if got := p.Expire(t0.Add(2 * time.Second)); len(got) != 1 || got[0] != 3 {
				t.Fatalf("expired %v, want [3]", got)
			}
		}, "3-7"},
		{"2 offline", func() { p.SetOffline(2) }, "2-7"},
		{"out of range is ignored", func() { p.SetOnline(99); p.SetOffline(99) }, "2-7"},
		{"rank 0 never enters the pool", func() { p.SetOnline(0); p.SetOffline(0) }, "2-7"},
	}
	for _, s := range steps {
		s.do()
		if got := p.Available().String(); got != s.avail {
			t.Fatalf("%s: available %s, want %s", s.name, got, s.avail)
		}
	}
}

func mustAlloc(t *testing.T, p *Pool, want uint32, deadline time.Time) {
	t.Helper()
	r, err := p.Allocate(deadline)
	if err != nil || r != want {
		t.Fatalf("allocate = %d, %v; want %d", r, err, want)
	}
}

func TestPoolNextExpiry(t *testing.T) {
	p, _ := NewPool(4, 1)
	if _, ok := p.NextExpiry(); ok {
		t.Fatal("expiry with no lease")
	}
	mustAlloc(t, p, 1, t0.Add(3*time.Second))
	mustAlloc(t, p, 2, t0.Add(time.Second))
	if d, ok := p.NextExpiry(); !ok || !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("next expiry %v %v", d, ok)
	}
	p.SetOnline(2)
	if d, _ := p.NextExpiry(); !d.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("next expiry after online %v", d)
	}
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
					if avail.Len() != 0 {
						t.Fatalf("seed %d: allocate failed with %s available", seed, avail)
					}
					continue
				}
				if first, _ := avail.First(); first != r {
					t.Fatalf("seed %d: allocated %d, lowest available was %d", seed, r, first)
				}
				if h, ok := holder[r]; ok {
					t.Fatalf("seed %d: rank %d handed out while %s", seed, r, h)
				}
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
						if err := p.Reclaim(r, "holder", now.Add(lease)); err != nil {
							t.Fatalf("seed %d: reclaim of orphaned %d: %v", seed, r, err)
						}
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
					if h := holder[r]; h != "leased" && h != "orphaned" && h != "reclaimed" {
						t.Fatalf("seed %d: expired rank %d that was %q", seed, r, h)
					}
					delete(holder, r)
				}
			}
		}
		// After every lease has run out: every rank handed out is online
		// or back in the pool.
		p.Expire(now.Add(lease))
		for r := range handed {
			if st := p.State(r); st != Online && st != Available {
				t.Fatalf("seed %d: rank %d is %v after its lease", seed, r, st)
			}
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
		if got := p.Available().String(); got != want {
			t.Fatalf("%s: available %s, want %s", name, got, want)
		}
	}
	p.Orphan(3, t0.Add(10*time.Second))
	if p.State(3) != Orphaned {
		t.Fatalf("rank 3 %v", p.State(3))
	}
	step("orphaned rank held", "4-7")
	mustAlloc(t, p, 4, t0.Add(time.Minute))
	if err := p.Reclaim(3, "k3", t0.Add(20*time.Second)); err != nil || p.State(3) != Leased {
		t.Fatalf("reclaim of an orphan: %v, %v", err, p.State(3))
	}
	if err := p.Reclaim(3, "k3", t0.Add(30*time.Second)); err != nil {
		t.Fatalf("the holder renews its reclaim: %v", err)
	}
	for _, other := range []string{"other", ""} {
		if err := p.Reclaim(3, other, t0.Add(time.Minute)); fluxkit.Errno(err) != fluxkit.EEXIST {
			t.Fatalf("reclaim of rank 3 by %q while k3 holds it: %v", other, err)
		}
	}
	if err := p.Reclaim(4, "k4", t0.Add(time.Minute)); fluxkit.Errno(err) != fluxkit.EEXIST {
		t.Fatalf("reclaim of a rank leased by getinfo: %v", err)
	}
	if err := p.Reclaim(2, "k2", t0.Add(time.Minute)); fluxkit.Errno(err) != fluxkit.EEXIST {
		t.Fatalf("reclaim of an online rank: %v", err)
	}
	for _, r := range []uint32{0, 8} {
		if err := p.Reclaim(r, "k", t0); fluxkit.Errno(err) != fluxkit.EINVAL {
			t.Fatalf("reclaim of rank %d: %v", r, err)
		}
	}
	if got := p.Expire(t0.Add(25 * time.Second)); len(got) != 0 {
		t.Fatalf("renewed reclaim expired early: %v", got)
	}
	p.SetOnline(3)

	// A rank orphaned again gets a new deadline when its subtree's root
	// holds it once more.
	p.Orphan(2, t0.Add(time.Second))
	p.Orphan(2, t0.Add(9*time.Second))
	if got := p.Expire(t0.Add(2 * time.Second)); len(got) != 0 {
		t.Fatalf("expired %v before the moved deadline", got)
	}
	if got := p.Expire(t0.Add(9 * time.Second)); len(got) != 1 || got[0] != 2 {
		t.Fatalf("expired %v, want [2]", got)
	}
	step("expired orphan back in the pool", "2,5-7")
	// Available after use: a root's hold takes it back; a rank never used
	// is not held for anyone.
	p.Orphan(2, t0.Add(time.Hour))
	p.Orphan(7, t0.Add(time.Hour))
	step("held again", "5-7")
	if err := p.Reclaim(2, "k2", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	p.SetOffline(3)
	if err := p.Reclaim(3, "k3", t0.Add(time.Hour)); err != nil || p.State(3) != Leased {
		t.Fatalf("reclaim of a rank no one took: %v %v", err, p.State(3))
	}
}

// The pool's memory follows the ranks in use: at MaxSize it allocates
// what it does at eight (it used to take 25 bytes a rank).
func TestPoolSparseAtMaxSize(t *testing.T) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	p, err := NewPool(MaxSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		r, _ := p.Allocate(t0)
		p.SetOnline(r)
	}
	if got := p.Available().String(); got != "101-2147483647" {
		t.Fatalf("available %s", got)
	}
	runtime.ReadMemStats(&m1)
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("%d bytes allocated for 100 ranks in use", alloc)
	}
}
